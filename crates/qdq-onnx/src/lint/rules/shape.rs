//! Q/DQ parameter shapes: a scalar or 1-D scale (blocked quantization aside), and a
//! zero point of the scale's shape.

use super::{Context, QdqNode, int_attr};
use crate::lint::{Rule, Violation};

/// Pushes this rule's violations at one Q/DQ node.
pub(super) fn check(cx: &Context, n: &QdqNode, out: &mut Vec<Violation>) {
    let node = n.node;
    let mut push = |rule, message: String, fix: &str| n.push(out, rule, message, fix);
    let blocked = int_attr(node, "block_size").is_some_and(|b| b != 0);
    let scale_t = node.input.get(1).and_then(|s| cx.consts.get(s.as_str()));
    if let Some(sc) = scale_t.filter(|t| !blocked && t.dims.len() > 1) {
        push(
            Rule::QdqShape,
            format!(
                "scale `{}` has shape {:?}; a scale is a scalar (per tensor) or 1-D (per axis)",
                sc.name, sc.dims
            ),
            "store one scale, or one per channel as a 1-D tensor",
        );
    }
    let zp_t = node
        .input
        .get(2)
        .filter(|s| !s.is_empty())
        .and_then(|s| cx.consts.get(s.as_str()));
    if let (Some(sc), Some(zp)) = (scale_t, zp_t)
        && sc.dims != zp.dims
    {
        push(
            Rule::QdqShape,
            format!(
                "zero point `{}` has shape {:?} but scale `{}` has shape {:?}",
                zp.name, zp.dims, sc.name, sc.dims
            ),
            "give the zero point the scale's shape",
        );
    }
}
