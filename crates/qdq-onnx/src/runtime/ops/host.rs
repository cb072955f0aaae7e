//! Host-side tensors for index-heavy kernels (gathers, scatters, losses, signal ops):
//! the values are read back once, moved by exact index arithmetic, and written back as a
//! [`Value`] of the same ONNX element type. Sizes are checked with [`checked_numel`]
//! before anything is allocated, and every index read from a tensor is range-checked.

use burn::tensor::Device;

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::elementwise::broadcast_shape;

/// Element storage of a [`Host`] tensor, one variant per runtime value kind.
#[derive(Clone, Debug)]
pub(crate) enum Data {
    /// float32.
    F32(Vec<f32>),
    /// Integers (stored as i64) with their ONNX element type.
    I64(Vec<i64>, i32),
    /// bool.
    Bool(Vec<bool>),
}

/// A tensor on the host: row-major data and its logical shape (`[]` for a scalar).
#[derive(Clone, Debug)]
pub(crate) struct Host {
    /// The elements, row-major.
    pub data: Data,
    /// Logical shape.
    pub shape: Vec<usize>,
}

impl Host {
    /// Reads a value to the host.
    pub fn read(v: &Value) -> RunResult<Self> {
        let shape = v.shape();
        let data = match v {
            Value::Float(t) => Data::F32(t.to_vec()?),
            Value::Int(t, e) => Data::I64(t.to_vec()?, *e),
            Value::Bool(t) => Data::Bool(t.to_vec()?),
            v => return Err(v.not_a_tensor()),
        };
        Ok(Self { data, shape })
    }

    /// float32 data of `shape`.
    pub fn f32(v: Vec<f32>, shape: Vec<usize>) -> Self {
        Self {
            data: Data::F32(v),
            shape,
        }
    }

    /// Integer data of ONNX type `elem` and `shape`.
    pub fn i64(v: Vec<i64>, elem: i32, shape: Vec<usize>) -> Self {
        Self {
            data: Data::I64(v, elem),
            shape,
        }
    }

    /// Writes the tensor back as a runtime value on `device`.
    pub fn into_value(self, device: &Device) -> RunResult<Value> {
        match self.data {
            Data::F32(v) => Value::try_from_f32(v, &self.shape, device),
            Data::I64(v, e) => Value::try_from_i64(v, &self.shape, device, e),
            Data::Bool(v) => Value::try_from_bool(v, &self.shape, device),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v, _) => v.len(),
            Data::Bool(v) => v.len(),
        }
    }

    /// Values as f64 (ints and bools converted), for kernels that compute in float.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I64(v, _) => v.iter().map(|&x| x as f64).collect(),
            Data::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// A tensor of the same kind holding `self[idx[i]]` at position `i`, of `shape`
    /// (callers guarantee every index is below [`Host::len`]).
    pub fn take(&self, idx: &[usize], shape: Vec<usize>) -> Self {
        let data = match &self.data {
            Data::F32(v) => Data::F32(idx.iter().map(|&i| v[i]).collect()),
            Data::I64(v, e) => Data::I64(idx.iter().map(|&i| v[i]).collect(), *e),
            Data::Bool(v) => Data::Bool(idx.iter().map(|&i| v[i]).collect()),
        };
        Self { data, shape }
    }

    /// Same kind, with `self[idx[i]]` where `idx[i]` is `Some` and the kind's zero
    /// elsewhere (padding of Trilu, DepthToSpace...).
    pub fn take_or_zero(&self, idx: &[Option<usize>], shape: Vec<usize>) -> Self {
        let data = match &self.data {
            Data::F32(v) => Data::F32(idx.iter().map(|i| i.map_or(0.0, |i| v[i])).collect()),
            Data::I64(v, e) => Data::I64(idx.iter().map(|i| i.map_or(0, |i| v[i])).collect(), *e),
            Data::Bool(v) => Data::Bool(idx.iter().map(|i| i.is_some_and(|i| v[i])).collect()),
        };
        Self { data, shape }
    }

    /// Broadcasts (numpy rules) to `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> RunResult<Self> {
        if broadcast_shape(&self.shape, shape)? != shape {
            return Err(op_err(format!(
                "cannot broadcast {:?} to {shape:?}",
                self.shape
            )));
        }
        if self.shape == shape {
            return Ok(self.clone());
        }
        let n = checked_numel("", "", shape)?;
        let off = shape.len() - self.shape.len();
        let src_strides = strides(&self.shape);
        let mut idx = Vec::with_capacity(n);
        let mut coord = vec![0usize; shape.len()];
        for i in 0..n {
            unravel(i, shape, &mut coord);
            let s = (0..self.shape.len())
                .map(|k| {
                    let c = if self.shape[k] == 1 {
                        0
                    } else {
                        coord[k + off]
                    };
                    c * src_strides[k]
                })
                .sum();
            idx.push(s);
        }
        Ok(self.take(&idx, shape.to_vec()))
    }
}

/// Row-major strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1];
    }
    s
}

/// Writes the coordinates of flat index `i` in `shape` to `out`.
pub(crate) fn unravel(mut i: usize, shape: &[usize], out: &mut [usize]) {
    for k in (0..shape.len()).rev() {
        let d = shape[k].max(1);
        out[k] = i % d;
        i /= d;
    }
}

/// An index read from a tensor, normalized for a dimension of size `dim`: ONNX allows
/// `[-dim, dim - 1]`; anything else is an error naming `what`.
pub(crate) fn index_in(i: i64, dim: usize, what: &str) -> RunResult<usize> {
    let d = dim as i64;
    let j = if i < 0 { i.saturating_add(d) } else { i };
    if j < 0 || j >= d {
        return Err(op_err(format!(
            "{what} {i} is out of range for a dimension of size {dim}"
        )));
    }
    Ok(j as usize)
}

/// Integer values of input `i` of `ctx` read to the host, or an error naming the slot.
pub(crate) fn ints_of(v: &Value, what: &str) -> RunResult<Vec<i64>> {
    match v {
        Value::Int(t, _) => t.to_vec(),
        other => Err(op_err(format!(
            "{what} must be an integer tensor, got {}",
            crate::proto::elem::dtype_name(other.elem_type())
        ))),
    }
}
