//! `CastLike` to a float16 or bfloat16 target. The runtime holds every float type as
//! f32, so a target value no longer says it is float16; its declared type does. At load
//! time each `CastLike` whose target is declared (graph input, output, `value_info`,
//! initializer, `Constant`, or the output of a `Cast`/resolved `CastLike`) as float16 or
//! bfloat16 becomes the equivalent `Cast` with `to`, which rounds through that type.

use std::collections::HashMap;

use onnx_ir::{GraphProto, NodeProto};

use crate::proto::attr_int;
use crate::proto::elem as dt;

/// The graph's nodes, with `CastLike` to a declared float16/bfloat16 target rewritten as
/// `Cast(to)` (input 1 dropped). Other nodes are unchanged.
pub(crate) fn resolve_cast_like(graph: &GraphProto) -> Vec<NodeProto> {
    let mut declared: HashMap<&str, i32> = HashMap::new();
    for v in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        if let Some(t) = v.type_.as_ref().filter(|t| t.has_tensor_type()) {
            declared.insert(v.name.as_str(), t.tensor_type().elem_type);
        }
    }
    for t in &graph.initializer {
        declared.insert(t.name.as_str(), t.data_type);
    }
    let half = |e: i32| matches!(e, dt::FLOAT16 | dt::BFLOAT16);
    let mut nodes = Vec::with_capacity(graph.node.len());
    for n in &graph.node {
        let out = n.output.first().map(String::as_str).unwrap_or_default();
        let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
        match n.op_type.as_str() {
            "Constant" => {
                if let Some(t) = attr("value").and_then(|a| a.t.as_ref()) {
                    declared.entry(out).or_insert(t.data_type);
                }
            }
            "Cast" => {
                if let Some(a) = attr("to") {
                    declared.entry(out).or_insert(a.i as i32);
                }
            }
            "CastLike" => {
                let target = n
                    .input
                    .get(1)
                    .and_then(|t| declared.get(t.as_str()).copied());
                if let Some(to) = target.filter(|&e| half(e)) {
                    declared.entry(out).or_insert(to);
                    let mut cast = n.clone();
                    cast.op_type = "Cast".into();
                    cast.input.truncate(1);
                    cast.attribute.push(attr_int("to", i64::from(to)));
                    nodes.push(cast);
                    continue;
                }
            }
            _ => {}
        }
        nodes.push(n.clone());
    }
    nodes
}
