//! What the rules share: the graph context of one lint run and helpers on nodes.

use std::collections::HashMap;

use onnx_ir::{NodeProto, TensorProto};

use super::LintOptions;
use crate::proto::decode::floats;

/// A quantize or a dequantize node (ONNX's or TensorRT's FP8 one).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `QuantizeLinear`.
    Q,
    /// `DequantizeLinear`.
    Dq,
}

/// Whether `n` is a Q or a DQ.
pub(super) fn qdq_kind(n: &NodeProto) -> Option<Kind> {
    match (n.domain.as_str(), n.op_type.as_str()) {
        ("" | "ai.onnx", "QuantizeLinear") | ("trt", "TRT_FP8QuantizeLinear") => Some(Kind::Q),
        ("" | "ai.onnx", "DequantizeLinear") | ("trt", "TRT_FP8DequantizeLinear") => Some(Kind::Dq),
        _ => None,
    }
}

/// A node's name in messages: its name, else its first output, else its op.
pub(super) fn node_name(n: &NodeProto) -> String {
    if n.name.is_empty() {
        n.output
            .first()
            .cloned()
            .unwrap_or_else(|| n.op_type.clone())
    } else {
        n.name.clone()
    }
}

/// A node's first output (`""` when it has none).
pub(super) fn first_output(n: &NodeProto) -> &str {
    n.output.first().map_or("", String::as_str)
}

/// An integer attribute of a node.
pub(super) fn int_attr(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// What the rules read of the whole graph, computed once per lint.
pub(super) struct Context<'a> {
    /// Default-domain opset.
    pub opset: i64,
    /// Constants by name (initializers and `Constant` outputs).
    pub consts: HashMap<&'a str, &'a TensorProto>,
    /// Element type of every tensor whose type is known.
    pub types: HashMap<String, i32>,
    /// The node writing each tensor.
    pub producers: HashMap<&'a str, &'a NodeProto>,
    /// The nodes (and input slots) reading each tensor.
    pub consumers: HashMap<&'a str, Vec<(&'a NodeProto, usize)>>,
    /// The linter's options.
    pub options: &'a LintOptions,
}

impl Context<'_> {
    /// A named tensor and its element type, when known.
    pub(super) fn typed<'n>(&self, t: Option<&'n String>) -> Option<(&'n str, i32)> {
        let t = t.filter(|t| !t.is_empty())?;
        Some((t.as_str(), *self.types.get(t.as_str())?))
    }

    /// The weight constant behind a Q (its input) or a DQ (its Q's input, or its own
    /// constant input), or `None` for an activation.
    pub(super) fn weight_source(&self, node: &NodeProto, kind: Kind) -> Option<&TensorProto> {
        let input = node.input.first()?.as_str();
        if let Some(t) = self.consts.get(input) {
            return Some(t);
        }
        if kind == Kind::Dq {
            let q = self
                .producers
                .get(input)
                .filter(|p| qdq_kind(p) == Some(Kind::Q))?;
            return self.consts.get(q.input.first()?.as_str()).copied();
        }
        None
    }

    /// The per-channel axis TensorRT's kernels expect for a weight at `slot` of `op`.
    pub(super) fn expected_axis(&self, op: &NodeProto, slot: usize, rank: i64) -> Option<i64> {
        match (op.op_type.as_str(), slot) {
            ("Conv", 1) => Some(0),
            ("ConvTranspose", 1) => Some(self.options.conv_transpose_axis),
            ("Gemm", 1) => Some(if int_attr(op, "transB").unwrap_or(0) == 1 {
                0
            } else {
                1
            }),
            ("MatMul", 1) => Some(rank - 1),
            _ => None,
        }
    }

    /// Whether two tensors are the same constant (equal values and dims).
    pub(super) fn same_constant(&self, a: Option<&String>, b: Option<&String>) -> bool {
        match (
            a.and_then(|a| self.consts.get(a.as_str())),
            b.and_then(|b| self.consts.get(b.as_str())),
        ) {
            (Some(x), Some(y)) => floats(x) == floats(y) && x.dims == y.dims,
            _ => false,
        }
    }
}
