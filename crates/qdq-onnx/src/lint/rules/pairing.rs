//! Pairs and biases: every Q feeds DQs with its scale, every DQ reads a Q or a
//! constant, and no DQ feeds a bias.

use super::{Context, Kind, QdqNode, first_output, node_name, qdq_kind};
use crate::lint::{Rule, Violation};

/// Pushes this rule's violations at one Q/DQ node.
pub(super) fn check(cx: &Context, n: &QdqNode, out: &mut Vec<Violation>) {
    let node = n.node;
    let mut push = |rule, message: String, fix: &str| n.push(out, rule, message, fix);
    let kind = n.kind;
    match kind {
        Kind::Q => {
            for (consumer, _) in cx.consumers.get(first_output(node)).into_iter().flatten() {
                if qdq_kind(consumer) != Some(Kind::Dq) {
                    push(
                        Rule::Pairing,
                        format!(
                            "QuantizeLinear output feeds {} `{}`",
                            consumer.op_type,
                            node_name(consumer)
                        ),
                        "follow every QuantizeLinear with a DequantizeLinear",
                    );
                } else if consumer.input.get(1) != node.input.get(1)
                    && !cx.same_constant(consumer.input.get(1), node.input.get(1))
                {
                    push(
                        Rule::Pairing,
                        format!(
                            "DequantizeLinear `{}` uses another scale than its QuantizeLinear",
                            node_name(consumer)
                        ),
                        "share one scale (and zero point) between the pair",
                    );
                }
            }
        }
        Kind::Dq => {
            let input = node.input.first().map_or("", String::as_str);
            let from_q = cx
                .producers
                .get(input)
                .is_some_and(|p| qdq_kind(p) == Some(Kind::Q));
            if !from_q && !cx.consts.contains_key(input) {
                push(
                    Rule::Pairing,
                    format!(
                        "DequantizeLinear input `{input}` comes from neither a QuantizeLinear nor a constant"
                    ),
                    "insert the QuantizeLinear of the pair",
                );
            }
            for (consumer, slot) in cx.consumers.get(first_output(node)).into_iter().flatten() {
                if *slot == 2
                    && matches!(consumer.op_type.as_str(), "Conv" | "ConvTranspose" | "Gemm")
                {
                    push(
                        Rule::BiasDequantize,
                        format!(
                            "DequantizeLinear feeds the bias of {} `{}`",
                            consumer.op_type,
                            node_name(consumer)
                        ),
                        "keep the bias a float32 initializer without Q/DQ",
                    );
                }
            }
        }
    }
}
