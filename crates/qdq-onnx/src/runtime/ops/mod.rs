//! Operator kernels, one file per family, and the table mapping ONNX op types to them.
//! Every kernel sees a [`Ctx`] (attributes, inputs, opset, device) and returns the node's
//! outputs in order; shape checks happen here so burn never panics on a bad model.

use burn::tensor::{Bool, DType, Device, Float, Int, Tensor};
use onnx_ir::{AttributeProto, NodeProto};

use super::error::{RunResult, op_err};
use super::value::{DynTensor, Value};
use crate::proto::elem::{self as dt};

pub(crate) mod batch_norm_training;
pub(crate) mod conv;
pub(crate) mod conv_host;
pub(crate) mod einsum;
pub(crate) mod elementwise;
pub(crate) mod erf;
pub(crate) mod exp;
pub(crate) mod gather_scatter;
pub(crate) mod grid_sample;
pub(crate) mod host;
pub(crate) mod host_unary;
pub(crate) mod integer;
pub(crate) mod integer_quant;
pub(crate) mod linalg;
pub(crate) mod loss;
pub(crate) mod math;
pub(crate) mod max_unpool;
pub(crate) mod ml;
pub(crate) mod nms;
pub(crate) mod norm;
pub(crate) mod pool;
pub(crate) mod pool_indices;
pub(crate) mod qlinear;
pub(crate) mod quant;
pub(crate) mod quant_fused;
pub(crate) mod random;
pub(crate) mod recurrent;
pub(crate) mod reduce;
pub(crate) mod resize;
pub(crate) mod roi_align;
pub(crate) mod select;
pub(crate) mod sequence;
pub(crate) mod shape;
pub(crate) mod signal;
pub(crate) mod space_depth;
pub(crate) mod topk;
pub(crate) mod training;
pub(crate) mod triangular;

/// Dispatch on a runtime rank (1..=7), binding the const `$r`; the body yields a
/// `RunResult`, and other ranks an error.
macro_rules! with_rank {
    ($rank:expr, |$r:ident| $body:expr) => {{
        match $rank {
            rank @ 1..=7 => $crate::runtime::value::const_rank!(rank, |$r| $body),
            other => Err($crate::runtime::error::op_err(format!(
                "rank {other} is not supported (1 to 7)"
            ))),
        }
    }};
}
pub(crate) use with_rank;

/// What a kernel sees of its node: the node (for attributes), its inputs in slot order
/// (`None` for an omitted optional input), the model's opset and the device.
pub(crate) struct Ctx<'a> {
    /// The node being run.
    pub node: &'a NodeProto,
    /// Default-domain opset of the model (some ops changed form across opsets).
    pub opset: i64,
    /// Inputs by slot; `None` where the node leaves an optional input empty.
    pub inputs: Vec<Option<Value>>,
    /// Device the outputs are made on.
    pub device: &'a Device,
}

impl Ctx<'_> {
    /// The attribute `name`, when the node has it.
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    /// Whether the node has the attribute `name`.
    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }
    /// Integer attribute `name`, or `default` when absent.
    pub fn int_attr(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }
    /// Float attribute `name`, or `default` when absent.
    pub fn float_attr(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }
    /// String attribute `name` (lossy UTF-8), or `default` when absent.
    pub fn string_attr(&self, name: &str, default: &str) -> String {
        self.attr(name).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        })
    }
    /// Integer-list attribute `name` (axes, pads, perm...), when present.
    pub fn ints_attr(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    /// Float-list attribute `name`, when present.
    pub fn floats_attr(&self, name: &str) -> Option<Vec<f32>> {
        self.attr(name).map(|a| a.floats.clone())
    }
    /// Optional input `i`.
    pub fn opt(&self, i: usize) -> Option<Value> {
        self.inputs.get(i).cloned().flatten()
    }
    /// Required input `i`, taken out of the node's inputs: a kernel that reads it once
    /// can then write its result into the input's buffer (burn's CPU backend does, and
    /// so do qdq's host kernels) when the executor handed over the last reference.
    pub fn take(&mut self, i: usize) -> RunResult<Value> {
        self.inputs
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| op_err(format!("missing required input #{i}")))
    }
    /// Required input `i`.
    pub fn input(&self, i: usize) -> RunResult<Value> {
        self.opt(i)
            .ok_or_else(|| op_err(format!("missing required input #{i}")))
    }
    /// Required float input `i`.
    pub fn float(&self, i: usize) -> RunResult<DynTensor<Float>> {
        match self.input(i)? {
            Value::Float(t) => Ok(t),
            v => Err(op_err(format!(
                "input #{i} must be float32, got {}",
                v.describe()
            ))),
        }
    }
    /// Optional integer input read to the host (shapes, axes, pads...).
    pub fn host_ints(&self, i: usize) -> RunResult<Option<Vec<i64>>> {
        match self.opt(i) {
            None => Ok(None),
            Some(Value::Int(t, _)) => Ok(Some(t.to_vec()?)),
            Some(v) => Err(op_err(format!(
                "input #{i} must be an integer tensor, got {}",
                v.describe()
            ))),
        }
    }
    /// Optional scalar float input (Clip bounds, Pad value...).
    pub fn host_scalar(&self, i: usize) -> RunResult<Option<f64>> {
        match self.opt(i) {
            None => Ok(None),
            Some(Value::Float(t)) => Ok(t.to_vec()?.first().map(|&v| v as f64)),
            Some(Value::Int(t, _)) => Ok(t.to_vec()?.first().map(|&v| v as f64)),
            Some(Value::Bool(t)) => Ok(t.to_vec()?.first().map(|&v| v as u8 as f64)),
            Some(v) => Err(v.not_a_tensor()),
        }
    }
    /// Whether output `i` is requested.
    pub fn wants_output(&self, i: usize) -> bool {
        self.node.output.get(i).is_some_and(|s| !s.is_empty())
    }
}

/// Normalizes a possibly negative axis for `rank`: ONNX's range `[-rank, rank - 1]`,
/// so a scalar has no axis (callers index the shape with the result).
pub(crate) fn norm_axis(axis: i64, rank: usize) -> RunResult<usize> {
    let r = rank as i64;
    let a = if axis < 0 {
        axis.saturating_add(r)
    } else {
        axis
    };
    if a < 0 || a >= r {
        return Err(op_err(format!(
            "axis {axis} is out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

/// A 1-D index tensor on `device`.
pub(crate) fn index_tensor(idx: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    Tensor::from_data(burn::tensor::TensorData::new(v, [idx.len()]), device)
}

/// Int tensors are int64 in the runtime; burn ops that make ints use the device default.
pub(crate) fn to_i64<const D: usize>(t: Tensor<D, Int>) -> Tensor<D, Int> {
    if t.dtype() == DType::I64 {
        t
    } else {
        t.cast(DType::I64)
    }
}

/// Float view of any tensor (ints converted), for ops that compute in float.
pub(crate) fn as_float(v: Value) -> RunResult<DynTensor<Float>> {
    Ok(match v {
        Value::Float(t) => t,
        Value::Int(t, _) => DynTensor::with(super::value::dyn_map!(t.t, |x, R| x.float()), t.shape),
        Value::Bool(t) => DynTensor::with(super::value::dyn_map!(t.t, |x, R| x.float()), t.shape),
        v => return Err(v.not_a_tensor()),
    })
}

/// Float tensor back to an integer value of ONNX type `elem` (truncating).
pub(crate) fn float_to_int(t: DynTensor<Float>, elem: i32) -> Value {
    Value::Int(
        DynTensor::with(super::value::dyn_map!(t.t, |x, R| to_i64(x.int())), t.shape),
        elem,
    )
}

/// Bool view (nonzero) of a tensor.
pub(crate) fn as_bool(v: Value) -> RunResult<DynTensor<Bool>> {
    Ok(match v {
        Value::Bool(t) => t,
        Value::Float(t) => DynTensor::with(
            super::value::dyn_map!(t.t, |x, R| x.not_equal_elem(0.0)),
            t.shape,
        ),
        Value::Int(t, _) => DynTensor::with(
            super::value::dyn_map!(t.t, |x, R| x.not_equal_elem(0)),
            t.shape,
        ),
        v => return Err(v.not_a_tensor()),
    })
}

/// Every op type the runtime executes (default ONNX domain).
pub const SUPPORTED: &[&str] = &[
    // elementwise
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "Ceil",
    "Celu",
    "Clip",
    "Cos",
    "Cosh",
    "Div",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Floor",
    "Gelu",
    "Greater",
    "GreaterOrEqual",
    "HardSigmoid",
    "HardSwish",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "Max",
    "Mean",
    "Min",
    "Mul",
    "Neg",
    "Not",
    "Or",
    "Pow",
    "PRelu",
    "Reciprocal",
    "Relu",
    "Round",
    "Selu",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Softplus",
    "Softsign",
    "Sqrt",
    "Sub",
    "Sum",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
    "Where",
    "Xor",
    // linear algebra
    "Gemm",
    "MatMul",
    // convolution and pooling
    "AveragePool",
    "Conv",
    "ConvTranspose",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "LRN",
    "MaxPool",
    // normalization and softmax
    "BatchNormalization",
    "InstanceNormalization",
    "LayerNormalization",
    "LogSoftmax",
    "Softmax",
    // reductions
    "ArgMax",
    "ArgMin",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    // shape and data movement
    "Cast",
    "CastLike",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Dropout",
    "Expand",
    "Flatten",
    "Gather",
    "Identity",
    "Pad",
    "Range",
    "Reshape",
    "Shape",
    "Size",
    "Slice",
    "Split",
    "Squeeze",
    "Tile",
    "Transpose",
    "Unsqueeze",
    // resampling
    "Resize",
    "Upsample",
    // quantization
    "DequantizeLinear",
    "QuantizeLinear",
    // recurrent layers, control flow, selection (issue 17)
    "Einsum",
    "GRU",
    "If",
    "LSTM",
    "Loop",
    "NonMaxSuppression",
    "RNN",
    "Scan",
    "TopK",
    // host kernels: gathers/scatters, losses, masks, integer and signal ops
    "BitShift",
    "BlackmanWindow",
    "Compress",
    "CumSum",
    "DFT",
    "DepthToSpace",
    "Det",
    "DynamicQuantizeLinear",
    "EyeLike",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "GatherElements",
    "GatherND",
    "HammingWindow",
    "HannWindow",
    "Hardmax",
    "IsInf",
    "IsNaN",
    "MatMulInteger",
    "MeanVarianceNormalization",
    "MelWeightMatrix",
    "Mod",
    "NegativeLogLikelihoodLoss",
    "NonZero",
    "OneHot",
    "ReverseSequence",
    "STFT",
    "Scatter",
    "ScatterElements",
    "ScatterND",
    "Shrink",
    "SoftmaxCrossEntropyLoss",
    "SpaceToDepth",
    "Trilu",
    "ConvInteger",
    "GridSample",
    "QLinearConv",
    "QLinearMatMul",
    "Unique",
    "MaxUnpool",
    "RoiAlign",
    // sequences and optionals
    "ConcatFromSequence",
    "Optional",
    "OptionalGetElement",
    "OptionalHasElement",
    "SequenceAt",
    "SequenceConstruct",
    "SequenceEmpty",
    "SequenceErase",
    "SequenceInsert",
    "SequenceLength",
    "SequenceMap",
    "SplitToSequence",
];

/// Domain of ONNX's optimizer ops.
pub const TRAINING_DOMAIN: &str = "ai.onnx.preview.training";

/// Ops of [`TRAINING_DOMAIN`] the runtime executes.
pub const TRAINING: &[&str] = &["Adagrad", "Adam", "Momentum"];

/// Ops of [`quant::INTERNAL_DOMAIN`] (made by the runtime's users, never written out).
pub const INTERNAL: &[&str] = &["FakeQuantizeLinear"];

/// Whether the runtime executes `node`.
pub(crate) fn supports(node: &NodeProto) -> bool {
    if node.domain.is_empty() || node.domain == "ai.onnx" {
        SUPPORTED.contains(&node.op_type.as_str())
    } else if node.domain == TRAINING_DOMAIN {
        TRAINING.contains(&node.op_type.as_str())
    } else if node.domain == ml::DOMAIN {
        ml::OPS.contains(&node.op_type.as_str())
    } else {
        node.domain == quant::INTERNAL_DOMAIN && INTERNAL.contains(&node.op_type.as_str())
    }
}

/// Runs one node. Only the sequence ops and Identity take a sequence or an optional;
/// any other op given one fails here, naming the input, so kernels see tensors only.
/// `ctx` is mutable so that a kernel may take an input it holds alone and reuse its
/// buffer (the fused fake quant does).
pub(crate) fn run_op(op: &str, ctx: &mut Ctx) -> RunResult<Vec<Value>> {
    if op != "Identity" && !sequence::OPS.contains(&op) {
        let bad = ctx.inputs.iter().enumerate().find_map(|(i, v)| {
            v.as_ref()
                .filter(|v| !v.is_tensor())
                .map(|v| (i, v.describe()))
        });
        if let Some((i, what)) = bad {
            return Err(op_err(format!(
                "input #{i} is a {what}; {op} takes tensors"
            )));
        }
    }
    match op {
        // host kernels for modes the burn kernels below do not cover
        "MaxPool" if ctx.wants_output(1) => pool_indices::max_pool_with_indices(ctx),
        "BatchNormalization" if ctx.int_attr("training_mode", 0) != 0 => {
            batch_norm_training::batch_norm_training(ctx)
        }
        "Gemm" => linalg::gemm(ctx),
        "MatMul" => linalg::matmul(ctx),
        "Conv" => conv::conv(ctx),
        "ConvTranspose" => conv::conv_transpose(ctx),
        "MaxPool" | "AveragePool" => pool::pool(ctx, op),
        "GlobalAveragePool" | "GlobalMaxPool" => pool::global_pool(ctx, op),
        "LRN" => pool::lrn(ctx),
        "BatchNormalization" => norm::batch_norm(ctx),
        "InstanceNormalization" => norm::instance_norm(ctx),
        "LayerNormalization" => norm::layer_norm(ctx),
        "Softmax" | "LogSoftmax" => norm::softmax(ctx, op),
        "ArgMax" | "ArgMin" => reduce::arg(ctx, op),
        o if o.starts_with("Reduce") => reduce::reduce(ctx, op),
        "Resize" | "Upsample" => resize::resize(ctx, op),
        "QuantizeLinear" => quant::quantize(ctx),
        "DequantizeLinear" => quant::dequantize(ctx),
        "FakeQuantizeLinear" => quant::fake_quantize(ctx),
        // recurrent layers, control flow, selection (issue 17)
        "LSTM" => recurrent::run(ctx, recurrent::Kind::Lstm),
        "GRU" => recurrent::run(ctx, recurrent::Kind::Gru),
        "RNN" => recurrent::run(ctx, recurrent::Kind::Rnn),
        "TopK" => topk::topk(ctx),
        "NonMaxSuppression" => nms::nms(ctx),
        "Einsum" => einsum::einsum(ctx),
        // the executor runs these with their subgraphs (runtime/control.rs)
        "If" | "Loop" | "Scan" => Err(super::error::op_err(format!("{op} has no subgraph"))),
        "Cast" | "CastLike" | "Concat" | "Constant" | "ConstantOfShape" | "Dropout" | "Expand"
        | "Flatten" | "Gather" | "Identity" | "Pad" | "Range" | "Reshape" | "Shape" | "Size"
        | "Slice" | "Split" | "Squeeze" | "Tile" | "Transpose" | "Unsqueeze" => shape::run(ctx, op),
        // host kernels
        "GatherElements" => gather_scatter::gather_elements(ctx),
        "ScatterElements" | "Scatter" => gather_scatter::scatter_elements(ctx),
        "GatherND" => gather_scatter::gather_nd(ctx),
        "ScatterND" => gather_scatter::scatter_nd(ctx),
        "NegativeLogLikelihoodLoss" => loss::nll_loss(ctx),
        "SoftmaxCrossEntropyLoss" => loss::softmax_cross_entropy(ctx),
        "Trilu" => triangular::trilu(ctx),
        "EyeLike" => triangular::eye_like(ctx),
        "RandomNormal" | "RandomNormalLike" | "RandomUniform" | "RandomUniformLike" => {
            random::random(ctx, op)
        }
        "Mod" => integer::modulo(ctx),
        "BitShift" => integer::bit_shift(ctx),
        "CumSum" => math::cumsum(ctx),
        "Hardmax" => math::hardmax(ctx),
        "Shrink" => math::shrink(ctx),
        "IsInf" | "IsNaN" => math::is_special(ctx, op),
        "MeanVarianceNormalization" => math::mean_variance_norm(ctx),
        "Det" => math::det(ctx),
        "Compress" => select::compress(ctx),
        "NonZero" => select::non_zero(ctx),
        "OneHot" => select::one_hot(ctx),
        "ReverseSequence" => select::reverse_sequence(ctx),
        "DepthToSpace" => space_depth::depth_to_space(ctx),
        "SpaceToDepth" => space_depth::space_to_depth(ctx),
        "HannWindow" | "HammingWindow" | "BlackmanWindow" => signal::window(ctx, op),
        "DFT" => signal::dft_op(ctx),
        "STFT" => signal::stft(ctx),
        "MelWeightMatrix" => signal::mel_weight_matrix(ctx),
        "DynamicQuantizeLinear" => integer_quant::dynamic_quantize(ctx),
        "MatMulInteger" => integer_quant::matmul_integer(ctx),
        "ConvInteger" => qlinear::conv_integer(ctx),
        "QLinearConv" => qlinear::qlinear_conv(ctx),
        "QLinearMatMul" => qlinear::qlinear_matmul(ctx),
        "GridSample" => grid_sample::grid_sample(ctx),
        "Unique" => select::unique(ctx),
        "MaxUnpool" => max_unpool::max_unpool(ctx),
        "RoiAlign" => roi_align::roi_align(ctx),
        o if sequence::OPS.contains(&o) => sequence::run(ctx, o),
        "Momentum" if ctx.node.domain == TRAINING_DOMAIN => training::momentum(ctx),
        "Adagrad" if ctx.node.domain == TRAINING_DOMAIN => training::adagrad(ctx),
        "Adam" if ctx.node.domain == TRAINING_DOMAIN => training::adam(ctx),
        "Scaler" if ctx.node.domain == ml::DOMAIN => ml::scaler(ctx),
        _ => elementwise::run(ctx, op),
    }
}

/// Elem type of a value produced by `Cast(to)`.
pub(crate) fn is_int_type(code: i32) -> bool {
    matches!(
        code,
        dt::INT64
            | dt::INT32
            | dt::INT16
            | dt::INT8
            | dt::UINT8
            | dt::UINT16
            | dt::UINT32
            | dt::UINT64
    )
}
