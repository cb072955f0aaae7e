//! Scales: positive, finite build-time constants.

use super::{Context, QdqNode};
use crate::lint::{Rule, Violation};
use crate::proto::decode::floats;

/// Pushes this rule's violations at one Q/DQ node.
pub(super) fn check(cx: &Context, n: &QdqNode, out: &mut Vec<Violation>) {
    let node = n.node;
    let mut push = |rule, message: String, fix: &str| n.push(out, rule, message, fix);
    let scale = node.input.get(1).and_then(|s| cx.consts.get(s.as_str()));
    match scale {
        None => push(
            Rule::Scale,
            format!(
                "scale `{}` is not a constant",
                node.input.get(1).map_or("", |s| s)
            ),
            "make the scale a float32 initializer",
        ),
        Some(t) => match floats(t) {
            Some(v) if v.iter().all(|s| s.is_finite() && *s > 0.0) => {}
            Some(v) => {
                let bad = v
                    .iter()
                    .find(|s| !(s.is_finite() && **s > 0.0))
                    .copied()
                    .unwrap_or(f32::NAN);
                push(
                    Rule::Scale,
                    format!("scale holds {bad}; TensorRT needs positive finite scales"),
                    "recalibrate: every amax must be > 0 (an amax of 0 gets scale 1)",
                );
            }
            // A non-float scale, or one whose float type the opset or the tensor
            // does not take, is a QdqType violation (rules::types).
            None => {}
        },
    }
}
