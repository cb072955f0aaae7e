//! Turning constant-producing nodes into initializers, so later passes see weights as
//! constants: `Constant` nodes with a tensor `value`, and `ConstantOfShape` on a
//! constant shape (how some exporters, and ONNX's own model zoo, store weights).

use onnx_ir::{GraphProto, ModelProto, TensorProto};

use crate::proto::decode::int64s;
use crate::proto::elem as dtype;
use crate::proto::{raw_tensor, tensor_f32, value_info};

/// Folds what it can in `model`'s graph, and from IR version 4 in its subgraphs too
/// (they become the subgraph's own initializers, so weights inside If branches and Loop
/// bodies are constants for placement); returns the number of nodes folded. Below IR
/// version 4, where initializers must also be graph inputs, the new ones are added as
/// inputs too, and subgraphs are left as they are (their inputs are fixed by the op).
pub fn fold_constant_nodes(model: &mut ModelProto) -> usize {
    let as_inputs = model.ir_version < 4;
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    fold_graph(graph, as_inputs, 0)
}

fn fold_graph(graph: &mut GraphProto, as_inputs: bool, depth: usize) -> usize {
    let mut folded = 0;
    if !as_inputs && depth < crate::runtime::MAX_SUBGRAPH_DEPTH {
        for a in graph.node.iter_mut().flat_map(|n| n.attribute.iter_mut()) {
            if let Some(g) = a.g.as_mut() {
                folded += fold_graph(g, false, depth + 1);
            }
        }
    }
    let nodes = std::mem::take(&mut graph.node);
    for node in nodes {
        let out = node.output.first().cloned().unwrap_or_default();
        let value = node
            .attribute
            .iter()
            .find(|a| a.name == "value")
            .and_then(|a| a.t.as_ref());
        let init = match node.op_type.as_str() {
            "Constant" if node.domain.is_empty() => value.map(|t| {
                let mut t = t.clone();
                t.name.clone_from(&out);
                t
            }),
            "ConstantOfShape" if node.domain.is_empty() => node
                .input
                .first()
                .and_then(|s| graph.initializer.iter().find(|t| t.name == *s))
                .and_then(sizes)
                .and_then(|shape| filled(&out, &shape, value)),
            _ => None,
        };
        match init {
            Some(t) if !out.is_empty() => {
                if as_inputs {
                    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
                    graph.input.push(value_info(&t.name, t.data_type, &dims));
                }
                graph.initializer.push(t);
                folded += 1;
            }
            _ => graph.node.push(node),
        }
    }
    folded
}

/// A shape tensor's values as sizes (`None` when not int64 or negative).
fn sizes(t: &TensorProto) -> Option<Vec<usize>> {
    int64s(t)?
        .into_iter()
        .map(|d| usize::try_from(d).ok())
        .collect()
}

/// A tensor of `shape` filled with `value`'s single element (float 0 by default).
fn filled(name: &str, shape: &[usize], value: Option<&TensorProto>) -> Option<TensorProto> {
    let n: usize = shape.iter().product();
    let Some(v) = value else {
        return Some(tensor_f32(name, shape, &vec![0.0; n]));
    };
    let bytes: Vec<u8> = if !v.raw_data.is_empty() {
        v.raw_data.to_vec()
    } else if let Some(&f) = v.float_data.first() {
        f.to_le_bytes().to_vec()
    } else if let Some(&i) = v.int64_data.first() {
        i.to_le_bytes().to_vec()
    } else if let Some(&i) = v.int32_data.first() {
        i.to_le_bytes().to_vec()
    } else {
        return None;
    };
    let width = match v.data_type {
        dtype::FLOAT => 4,
        dtype::INT64 => 8,
        _ => return None,
    };
    let one = bytes.get(..width)?;
    Some(raw_tensor(name, shape, v.data_type, one.repeat(n)))
}
