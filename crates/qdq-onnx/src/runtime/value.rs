//! Rank-erased tensors. burn fixes a tensor's rank at compile time while ONNX ranks are
//! only known at run time, so values are an enum over ranks 1..=7 ([`Dyn`]) plus the
//! logical ONNX shape (which may be `[]`, a scalar stored as a burn `[1]` tensor). The
//! `dyn_*` macros dispatch over ranks; ops stay burn tensor ops (autodiff-friendly).

use burn::tensor::kind::Basic;
use burn::tensor::{Bool, DType, Device, Float, Int, Tensor, TensorData};
use onnx_ir::TensorProto;
use qdq::tensor_quant::HostValues;

use super::error::{RunError, RunResult, checked_numel, op_err};
use crate::proto::decode::{DecodeError, HostData, decode};
use crate::proto::elem::{self as dt, dtype_name};

/// Highest tensor rank the runtime handles.
pub const MAX_RANK: usize = 7;

/// Most elements one tensor may hold: 2^31 (8 GiB of float32). Every size the runtime
/// reads from a model or computes from one (dims, pads, Expand, Tile, Resize...) is
/// checked against it before allocating, so a hostile file gets
/// [`RunError::TooLarge`] rather than an overflow or a terabyte allocation.
#[cfg(not(feature = "fuzz-limits"))]
pub const MAX_ELEMENTS: usize = 1 << 31;

/// Most elements one tensor may hold in fuzz builds (feature `fuzz-limits`, enabled
/// only by `fuzz/Cargo.toml`): 2^24, so that libFuzzer's memory limit catches an
/// unchecked size rather than a permitted 16 GiB int64 tensor. The checks are the
/// same code; only the bound differs.
#[cfg(feature = "fuzz-limits")]
pub const MAX_ELEMENTS: usize = 1 << 24;

/// A burn tensor of rank 1..=7 whose rank is chosen at run time.
#[derive(Clone, Debug)]
pub enum Dyn<K: Basic> {
    /// Rank 1 (also rank 0, as `[1]`).
    R1(Tensor<1, K>),
    /// Rank 2.
    R2(Tensor<2, K>),
    /// Rank 3.
    R3(Tensor<3, K>),
    /// Rank 4.
    R4(Tensor<4, K>),
    /// Rank 5.
    R5(Tensor<5, K>),
    /// Rank 6.
    R6(Tensor<6, K>),
    /// Rank 7 (ONNX's NLL and cross-entropy tests go this far).
    R7(Tensor<7, K>),
}

/// Runs `$body` with the const `$r` set to the run-time `$rank`: 1 to 6, and 7 for
/// anything else (callers check ranks first). The one place a run-time rank becomes a
/// compile-time one.
macro_rules! const_rank {
    ($rank:expr, |$r:ident| $body:expr) => {{
        match $rank {
            1 => {
                #[allow(dead_code)]
                const $r: usize = 1;
                $body
            }
            2 => {
                #[allow(dead_code)]
                const $r: usize = 2;
                $body
            }
            3 => {
                #[allow(dead_code)]
                const $r: usize = 3;
                $body
            }
            4 => {
                #[allow(dead_code)]
                const $r: usize = 4;
                $body
            }
            5 => {
                #[allow(dead_code)]
                const $r: usize = 5;
                $body
            }
            6 => {
                #[allow(dead_code)]
                const $r: usize = 6;
                $body
            }
            _ => {
                #[allow(dead_code)]
                const $r: usize = 7;
                $body
            }
        }
    }};
}

/// `match` over a [`Dyn`], binding the tensor to `$t` and its rank to the const `$r`,
/// rewrapping the body's tensor at the same rank.
macro_rules! dyn_map {
    ($x:expr, |$t:ident, $r:ident| $body:expr) => {
        $crate::runtime::value::dyn_apply!($x, |$t, $r| $crate::runtime::value::Dyn::from($body))
    };
}

/// `match` over a [`Dyn`], returning whatever the body returns.
macro_rules! dyn_apply {
    ($x:expr, |$t:ident, $r:ident| $body:expr) => {{
        use $crate::runtime::value::Dyn;
        match $x {
            Dyn::R1($t) => {
                #[allow(dead_code)]
                const $r: usize = 1;
                $body
            }
            Dyn::R2($t) => {
                #[allow(dead_code)]
                const $r: usize = 2;
                $body
            }
            Dyn::R3($t) => {
                #[allow(dead_code)]
                const $r: usize = 3;
                $body
            }
            Dyn::R4($t) => {
                #[allow(dead_code)]
                const $r: usize = 4;
                $body
            }
            Dyn::R5($t) => {
                #[allow(dead_code)]
                const $r: usize = 5;
                $body
            }
            Dyn::R6($t) => {
                #[allow(dead_code)]
                const $r: usize = 6;
                $body
            }
            Dyn::R7($t) => {
                #[allow(dead_code)]
                const $r: usize = 7;
                $body
            }
        }
    }};
}

/// Same-rank pair dispatch; the body returns a tensor of that rank. Yields a `RunResult`.
macro_rules! dyn_zip {
    ($a:expr, $b:expr, |$x:ident, $y:ident, $r:ident| $body:expr) => {{
        use $crate::runtime::value::Dyn;
        match ($a, $b) {
            (Dyn::R1($x), Dyn::R1($y)) => {
                #[allow(dead_code)]
                const $r: usize = 1;
                Ok(Dyn::R1($body))
            }
            (Dyn::R2($x), Dyn::R2($y)) => {
                #[allow(dead_code)]
                const $r: usize = 2;
                Ok(Dyn::R2($body))
            }
            (Dyn::R3($x), Dyn::R3($y)) => {
                #[allow(dead_code)]
                const $r: usize = 3;
                Ok(Dyn::R3($body))
            }
            (Dyn::R4($x), Dyn::R4($y)) => {
                #[allow(dead_code)]
                const $r: usize = 4;
                Ok(Dyn::R4($body))
            }
            (Dyn::R5($x), Dyn::R5($y)) => {
                #[allow(dead_code)]
                const $r: usize = 5;
                Ok(Dyn::R5($body))
            }
            (Dyn::R6($x), Dyn::R6($y)) => {
                #[allow(dead_code)]
                const $r: usize = 6;
                Ok(Dyn::R6($body))
            }
            (Dyn::R7($x), Dyn::R7($y)) => {
                #[allow(dead_code)]
                const $r: usize = 7;
                Ok(Dyn::R7($body))
            }
            _ => Err($crate::runtime::error::op_err("internal: rank mismatch")),
        }
    }};
}

#[allow(unused_imports)]
pub(crate) use {const_rank, dyn_apply, dyn_map, dyn_zip};

/// `Dyn::from(tensor)` at the tensor's rank, so macros can rewrap without naming it.
macro_rules! dyn_from {
    ($($v:ident $r:literal),*) => {$(
        impl<K: Basic> From<Tensor<$r, K>> for Dyn<K> {
            fn from(t: Tensor<$r, K>) -> Self {
                Dyn::$v(t)
            }
        }
    )*};
}
dyn_from!(R1 1, R2 2, R3 3, R4 4, R5 5, R6 6, R7 7);

impl<K: Basic> Dyn<K> {
    /// burn rank (1 for scalars).
    pub fn rank(&self) -> usize {
        dyn_apply!(self, |_t, R| R)
    }
}

/// Fixed-size array from a slice of the right length.
pub(crate) fn arr<const D: usize>(v: &[usize]) -> [usize; D] {
    std::array::from_fn(|i| v[i])
}

/// A rank-erased tensor with its logical ONNX shape (`[]` for scalars).
#[derive(Clone, Debug)]
pub struct DynTensor<K: Basic> {
    pub(crate) t: Dyn<K>,
    pub(crate) shape: Vec<usize>,
}

/// burn shape of a logical shape (`[1]` for a scalar).
pub(crate) fn burn_shape(shape: &[usize]) -> Vec<usize> {
    if shape.is_empty() {
        vec![1]
    } else {
        shape.to_vec()
    }
}

fn check_rank(shape: &[usize]) -> RunResult<()> {
    if shape.len() > MAX_RANK {
        return Err(op_err(format!(
            "rank {} (shape {shape:?}) exceeds the runtime's maximum rank {MAX_RANK}",
            shape.len()
        )));
    }
    Ok(())
}

/// `t.reshape(shape)`, except for a tensor with no elements, which burn's reshape
/// cannot move to another rank (it indexes past the shape): a new empty tensor of the
/// same dtype on the same device instead (found by the `runtime_graph` fuzz target).
fn reshaped<const D: usize, const R: usize, K: Basic>(
    t: Tensor<D, K>,
    shape: [usize; R],
) -> Tensor<R, K> {
    if shape.contains(&0) {
        let options = (&t.device(), t.dtype());
        Tensor::empty(shape, options)
    } else {
        t.reshape(shape)
    }
}

impl<K: Basic> DynTensor<K> {
    /// Logical ONNX shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Logical rank (0 for scalars).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Element count.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Wraps a burn tensor, taking its shape as the logical shape.
    pub fn from_tensor<const D: usize>(t: Tensor<D, K>) -> Self {
        let shape = t.dims().to_vec();
        let t = const_rank!(D, |R| Dyn::from(t.reshape(arr::<R>(&shape))));
        Self { t, shape }
    }

    /// Wraps a burn tensor reshaped to the logical `shape` (same element count).
    pub(crate) fn from_tensor_as<const D: usize>(
        t: Tensor<D, K>,
        shape: Vec<usize>,
    ) -> RunResult<Self> {
        check_rank(&shape)?;
        let n: usize = t.dims().iter().product();
        if Some(n) != shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
            return Err(op_err(format!(
                "cannot reshape {:?} to {shape:?}",
                t.dims()
            )));
        }
        let b = burn_shape(&shape);
        let t = const_rank!(b.len(), |R| Dyn::from(reshaped(t, arr::<R>(&b))));
        Ok(Self { t, shape })
    }

    /// Wraps a same-shape result of a [`Dyn`] op.
    pub(crate) fn with(t: Dyn<K>, shape: Vec<usize>) -> Self {
        Self { t, shape }
    }

    /// Reshapes (element count must match).
    pub fn reshape(self, shape: &[usize]) -> RunResult<Self> {
        if shape == self.shape.as_slice() {
            return Ok(self);
        }
        dyn_apply!(self.t, |t, R| Self::from_tensor_as(t, shape.to_vec()))
    }

    /// The burn tensor at rank `D` (the logical rank must be `D`, or 0 with `D == 1`).
    pub fn to_rank<const D: usize>(self) -> RunResult<Tensor<D, K>> {
        let b = burn_shape(&self.shape);
        if b.len() != D {
            return Err(op_err(format!(
                "expected a rank-{D} tensor, got shape {:?}",
                self.shape
            )));
        }
        Ok(dyn_apply!(self.t, |t, R| reshaped(t, arr::<D>(&b))))
    }

    /// Same values with leading 1s so that the rank is at least `rank`.
    pub(crate) fn lift(self, rank: usize) -> RunResult<Self> {
        if self.shape.len() >= rank {
            return Ok(self);
        }
        let mut s = vec![1; rank - self.shape.len()];
        s.extend_from_slice(&self.shape);
        self.reshape(&s)
    }

    /// Builds from host data laid out in `shape`.
    pub(crate) fn from_data(
        data: TensorData,
        shape: Vec<usize>,
        device: &Device,
        dtype: Option<DType>,
    ) -> RunResult<Self> {
        check_rank(&shape)?;
        let opts = |d: &Device| match dtype {
            Some(dt) => burn::tensor::TensorCreationOptions::from((d, dt)),
            None => burn::tensor::TensorCreationOptions::from(d),
        };
        let b = burn_shape(&shape);
        let t = const_rank!(b.len(), |R| Dyn::from(Tensor::<R, K>::from_data(
            data,
            opts(device)
        )));
        Ok(Self { t, shape })
    }

    /// Device of the tensor.
    pub fn device(&self) -> Device {
        dyn_apply!(&self.t, |t, R| t.device())
    }
}

fn read_err(e: impl std::fmt::Debug) -> RunError {
    RunError::Read(format!("{e:?}"))
}

impl DynTensor<Float> {
    /// Host copy of the values.
    pub fn to_vec(&self) -> RunResult<Vec<f32>> {
        dyn_apply!(self.t.clone(), |t, R| t.try_into_vec_as::<f32>()).map_err(read_err)
    }

    /// The values on the host without a copy where the backend allows it
    /// ([`HostValues`]): for reading a value that the runtime still holds.
    pub fn host(&self) -> RunResult<HostValues> {
        dyn_apply!(&self.t, |t, R| HostValues::of(t)).map_err(read_err)
    }

    /// The values read in place ([`HostValues::shared`]), or `None`, copying nothing,
    /// when the backend does not allow it.
    pub fn shared_host(&self) -> Option<HostValues> {
        dyn_apply!(&self.t, |t, R| HostValues::shared(t))
    }

    /// The values, taking the tensor: no copy when this was its last reference.
    pub fn into_vec(self) -> RunResult<Vec<f32>> {
        dyn_apply!(self.t, |t, R| t.try_into_vec_as::<f32>()).map_err(read_err)
    }
}

impl DynTensor<Int> {
    /// Host copy of the values.
    pub fn to_vec(&self) -> RunResult<Vec<i64>> {
        dyn_apply!(self.t.clone(), |t, R| t.try_into_vec_as::<i64>()).map_err(read_err)
    }
}

impl DynTensor<Bool> {
    /// Host copy of the values.
    pub fn to_vec(&self) -> RunResult<Vec<bool>> {
        dyn_apply!(self.t.clone(), |t, R| t.try_into_vec_as::<bool>()).map_err(read_err)
    }
}

/// A runtime value: a float, integer or bool tensor of any rank up to [`MAX_RANK`], or
/// one of ONNX's two non-tensor types, a sequence of tensors or an optional value.
///
/// Floats are computed in f32 whatever their ONNX type: float16, bfloat16 and double
/// tensors are read as f32 values, and `Cast` to float16/bfloat16 rounds through that
/// type, so a value equals the real one wherever f32 holds it exactly.
///
/// Integer tensors are stored as int64 and carry their ONNX element type (int64, int32,
/// int8, uint8, ... and FLOAT8E4M3FN stored as its bit pattern).
#[derive(Clone, Debug)]
pub enum Value {
    /// float32 (also float16, bfloat16 and double, held as f32).
    Float(DynTensor<Float>),
    /// Integer data with its ONNX element type code.
    Int(DynTensor<Int>, i32),
    /// bool.
    Bool(DynTensor<Bool>),
    /// `seq(tensor(elem))`: tensors of one element type (the code, kept for an empty
    /// sequence) and any shapes. Made and read only by the sequence ops, Identity, If,
    /// Loop and graph inputs/outputs; every other op rejects it by name.
    Sequence(Vec<Value>, i32),
    /// `optional(T)`: a tensor or sequence, or nothing (`None`).
    Optional(Option<Box<Value>>),
}

impl Value {
    /// A float32 tensor from host data (`shape` may be `[]` for a scalar).
    ///
    /// Panics if `data.len()` does not match `shape` or the rank exceeds [`MAX_RANK`];
    /// use [`Value::try_from_f32`] for a fallible version.
    pub fn from_f32(data: Vec<f32>, shape: &[usize], device: &Device) -> Self {
        Self::try_from_f32(data, shape, device).expect("Value::from_f32")
    }

    /// A float32 tensor from host data, checking length and rank.
    pub fn try_from_f32(data: Vec<f32>, shape: &[usize], device: &Device) -> RunResult<Self> {
        check_len(data.len(), shape)?;
        let td = TensorData::new(data, burn_shape(shape));
        Ok(Value::Float(DynTensor::from_data(
            td,
            shape.to_vec(),
            device,
            Some(DType::F32),
        )?))
    }

    /// An int64 tensor from host data. Panics like [`Value::from_f32`].
    pub fn from_i64(data: Vec<i64>, shape: &[usize], device: &Device) -> Self {
        Self::try_from_i64(data, shape, device, dt::INT64).expect("Value::from_i64")
    }

    /// An integer tensor of ONNX element type `elem_type` from host data.
    pub fn try_from_i64(
        data: Vec<i64>,
        shape: &[usize],
        device: &Device,
        elem_type: i32,
    ) -> RunResult<Self> {
        check_len(data.len(), shape)?;
        let td = TensorData::new(data, burn_shape(shape));
        Ok(Value::Int(
            DynTensor::from_data(td, shape.to_vec(), device, Some(DType::I64))?,
            elem_type,
        ))
    }

    /// A bool tensor from host data.
    pub fn try_from_bool(data: Vec<bool>, shape: &[usize], device: &Device) -> RunResult<Self> {
        check_len(data.len(), shape)?;
        let td = TensorData::new(data, burn_shape(shape));
        Ok(Value::Bool(DynTensor::from_data(
            td,
            shape.to_vec(),
            device,
            None,
        )?))
    }

    /// Wraps a burn float tensor (its shape becomes the logical shape).
    pub fn from_float_tensor<const D: usize>(t: Tensor<D>) -> Self {
        Value::Float(DynTensor::from_tensor(t))
    }

    /// The burn float tensor at rank `D` (errors for int/bool values or another rank).
    pub fn into_float_tensor<const D: usize>(self) -> RunResult<Tensor<D>> {
        match self {
            Value::Float(t) => t.to_rank::<D>(),
            other => Err(op_err(format!(
                "expected a float tensor, got {}",
                other.describe()
            ))),
        }
    }

    /// Logical shape (`[]` for a scalar; also `[]` for a sequence or an optional, which
    /// have no shape of their own: see [`Value::is_tensor`]).
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Value::Float(t) => t.shape.clone(),
            Value::Int(t, _) => t.shape.clone(),
            Value::Bool(t) => t.shape.clone(),
            Value::Sequence(..) | Value::Optional(_) => Vec::new(),
        }
    }

    /// ONNX element type code (of the elements, for a sequence or a full optional;
    /// 0, UNDEFINED, for an empty optional).
    pub fn elem_type(&self) -> i32 {
        match self {
            Value::Float(_) => dt::FLOAT,
            Value::Int(_, e) => *e,
            Value::Bool(_) => dt::BOOL,
            Value::Sequence(_, e) => *e,
            Value::Optional(v) => v.as_ref().map_or(0, |v| v.elem_type()),
        }
    }

    /// Entries `idx` of `axis` of a float tensor, in that order (a copy).
    ///
    /// # Errors
    /// Not a float tensor, an axis past the rank, or an index past the axis.
    pub fn select_entries(self, axis: usize, idx: &[usize]) -> RunResult<Value> {
        match self {
            Value::Float(t) if axis < t.shape.len() => {
                Ok(Value::Float(super::ops::shape::select_float(t, axis, idx)?))
            }
            v => Err(op_err(format!(
                "cannot select along axis {axis} of a {}",
                v.describe()
            ))),
        }
    }

    /// Whether the value is a tensor (not a sequence or an optional).
    pub fn is_tensor(&self) -> bool {
        !matches!(self, Value::Sequence(..) | Value::Optional(_))
    }

    /// What the value is, for messages: `float32 [2, 3]`, `sequence of float32 (2
    /// tensors)`, `optional (empty)`.
    pub fn describe(&self) -> String {
        match self {
            Value::Sequence(items, e) => {
                format!("sequence of {} ({} tensors)", dtype_name(*e), items.len())
            }
            Value::Optional(None) => "optional (empty)".into(),
            Value::Optional(Some(v)) => format!("optional ({})", v.describe()),
            v => format!("{} {:?}", dtype_name(v.elem_type()), v.shape()),
        }
    }

    /// Error for a sequence or optional where a tensor is needed.
    pub(crate) fn not_a_tensor(&self) -> RunError {
        op_err(format!("expected a tensor, got a {}", self.describe()))
    }

    /// Host copy as f32 (ints and bools converted; FP8 bit patterns are not decoded).
    pub fn to_f32(&self) -> RunResult<Vec<f32>> {
        match self {
            Value::Float(t) => t.to_vec(),
            Value::Int(t, _) => Ok(t.to_vec()?.into_iter().map(|v| v as f32).collect()),
            Value::Bool(t) => Ok(t.to_vec()?.into_iter().map(|v| v as u8 as f32).collect()),
            v => Err(v.not_a_tensor()),
        }
    }

    /// [`Value::to_f32`] without a copy where the backend allows it (a float tensor;
    /// [`HostValues`]).
    pub fn host_f32(&self) -> RunResult<HostValues> {
        match self {
            Value::Float(t) => t.host(),
            v => v.to_f32().map(HostValues::Copied),
        }
    }

    /// [`Value::to_f32`], taking the value: a float tensor holding the last reference
    /// to its data is read without a copy.
    pub fn into_f32(self) -> RunResult<Vec<f32>> {
        match self {
            Value::Float(t) => t.into_vec(),
            v => v.to_f32(),
        }
    }

    /// Host copy as i64 (floats truncated, bools 0/1).
    pub fn to_i64(&self) -> RunResult<Vec<i64>> {
        match self {
            Value::Float(t) => Ok(t.to_vec()?.into_iter().map(|v| v as i64).collect()),
            Value::Int(t, _) => t.to_vec(),
            Value::Bool(t) => Ok(t.to_vec()?.into_iter().map(|v| v as i64).collect()),
            v => Err(v.not_a_tensor()),
        }
    }

    /// Reads a serialized ONNX tensor (raw little-endian or typed storage) onto
    /// `device`, through the proto floor's one decoder.
    ///
    /// # Errors
    /// [`RunError::TooLarge`] over [`MAX_ELEMENTS`]; [`RunError::Dtype`] for an element
    /// type the runtime does not hold; [`RunError::Graph`] for external data, a negative
    /// dim or storage of the wrong length.
    pub fn from_tensor_proto(t: &TensorProto, device: &Device) -> RunResult<Self> {
        let d = decode(t, MAX_ELEMENTS).map_err(|e| match e {
            DecodeError::TooLarge { name, dims, limit } => RunError::TooLarge {
                node: "initializer".into(),
                tensor: name,
                shape: dims,
                limit,
            },
            e @ DecodeError::Dtype { .. } => RunError::Dtype(e.to_string()),
            e => RunError::Graph(e.to_string()),
        })?;
        match d.data {
            HostData::F32(v) => Self::try_from_f32(v, &d.shape, device),
            HostData::I64(v) => Self::try_from_i64(v, &d.shape, device, d.elem_type),
            HostData::Bool(v) => Self::try_from_bool(v, &d.shape, device),
        }
    }
}

fn check_len(len: usize, shape: &[usize]) -> RunResult<()> {
    check_rank(shape)?;
    let n = checked_numel("value", "", shape)?;
    if len != n {
        return Err(op_err(format!(
            "{len} values do not fill shape {shape:?} ({n} elements)"
        )));
    }
    Ok(())
}
