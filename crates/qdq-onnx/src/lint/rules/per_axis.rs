//! Per-axis scales: weights only, opset 13+, one per channel, on the axis the
//! consuming op's kernels expect.

use super::{Context, Kind, QdqNode, first_output, int_attr, node_name};
use crate::lint::{Rule, Violation};

/// Pushes this rule's violations at one Q/DQ node.
pub(super) fn check(cx: &Context, n: &QdqNode, out: &mut Vec<Violation>) {
    let node = n.node;
    let mut push = |rule, message: String, fix: &str| n.push(out, rule, message, fix);
    let kind = n.kind;
    let scale_len = n.scale_len;
    let per_axis = scale_len.is_some_and(|n| n > 1);
    if per_axis {
        if cx.opset < 13 {
            push(
                Rule::Opset,
                format!(
                    "per-axis quantization needs opset 13, model has {}",
                    cx.opset
                ),
                "export with opset >= 13",
            );
        }
        let source = cx.weight_source(node, kind);
        match source {
            None => push(
                Rule::PerAxisActivation,
                "per-axis scales on an activation; TensorRT quantizes activations per tensor"
                    .into(),
                "use one scale for this tensor",
            ),
            Some(weight) => {
                let rank = weight.dims.len() as i64;
                let axis = int_attr(node, "axis").unwrap_or(1);
                let axis = if axis < 0 { axis + rank } else { axis };
                if let Some(n) = scale_len {
                    let dim = weight.dims.get(axis.max(0) as usize).copied().unwrap_or(-1);
                    if dim != n as i64 {
                        push(
                            Rule::Scale,
                            format!(
                                "{n} scales for axis {axis} of a weight of shape {:?}",
                                weight.dims
                            ),
                            "give one scale per channel of the quantized axis",
                        );
                    }
                }
                if kind == Kind::Dq {
                    for (consumer, slot) in
                        cx.consumers.get(first_output(node)).into_iter().flatten()
                    {
                        if let Some(want) = cx.expected_axis(consumer, *slot, rank)
                            && want != axis
                        {
                            push(
                                Rule::WeightAxis,
                                format!(
                                    "weight of {} `{}` is quantized on axis {axis}; TensorRT expects axis {want}",
                                    consumer.op_type,
                                    node_name(consumer)
                                ),
                                "requantize the weight per channel on that axis",
                            );
                        }
                    }
                }
            }
        }
    }
}
