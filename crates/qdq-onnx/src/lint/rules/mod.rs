//! The Q/DQ rules, one file each, and the table [`RULES`] that runs them in the order
//! their violations are reported.

mod pairing;
mod per_axis;
mod scale;
mod shape;
mod types;
mod zero_point;

use onnx_ir::NodeProto;

pub(super) use super::context::{Context, Kind, first_output, int_attr, node_name, qdq_kind};
use super::{Rule, Violation};
use crate::proto::decode::{floats, numel};

/// One Q/DQ node under check, with what several rules need of it.
pub(super) struct QdqNode<'a> {
    /// The node.
    pub node: &'a NodeProto,
    /// Quantize or dequantize.
    pub kind: Kind,
    /// Its name in messages ([`node_name`]).
    pub name: String,
    /// How many scales it has, when its scale is a constant.
    pub scale_len: Option<usize>,
}

impl<'a> QdqNode<'a> {
    /// `node` (a Q or DQ) with its scale count read from `cx`.
    pub fn new(cx: &Context, node: &'a NodeProto, kind: Kind) -> Self {
        let scale_len = node
            .input
            .get(1)
            .and_then(|s| cx.consts.get(s.as_str()))
            .map(|t| floats(t).map_or_else(|| numel(t), |v| v.len()));
        Self {
            node,
            kind,
            name: node_name(node),
            scale_len,
        }
    }

    /// Records a violation of `rule` at this node.
    pub fn push(&self, out: &mut Vec<Violation>, rule: Rule, message: String, fix: &str) {
        out.push(Violation {
            rule,
            node: self.name.clone(),
            message,
            fix: fix.to_string(),
        });
    }
}

/// A rule: pushes its violations at one Q/DQ node.
pub(super) type Check = fn(&Context, &QdqNode, &mut Vec<Violation>);

/// Every Q/DQ rule, in the order their violations are reported.
pub(super) const RULES: &[Check] = &[
    scale::check,
    types::check,
    shape::check,
    zero_point::check,
    per_axis::check,
    pairing::check,
];
