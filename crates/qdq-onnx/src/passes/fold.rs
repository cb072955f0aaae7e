//! Turning constant-producing nodes into initializers, so later passes see weights as
//! constants: `Constant` nodes with a tensor `value`, and `ConstantOfShape` on a
//! constant shape (how some exporters, and ONNX's own model zoo, store weights).

use std::collections::HashSet;

use onnx_ir::{GraphProto, ModelProto, NodeProto, TensorProto};

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

/// Ops a weight can be computed through from constants: a float16 weight cast to the
/// float32 a Conv takes (the weights of an FP16-stored model), INT8 storage cast and
/// scaled (`Cast → Mul`, a hand-made weight-only quantization), a transpose or reshape
/// of the stored layout.
const WEIGHT_OPS: &[&str] = &[
    "Cast",
    "Mul",
    "Div",
    "Add",
    "Sub",
    "Transpose",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Identity",
];

/// Evaluates the constant computations that feed the weight input (input 1) of a Conv,
/// ConvTranspose, Gemm or MatMul, through [`WEIGHT_OPS`], into float initializers of the
/// computed type, so that placement sees them as weights (per-channel weight
/// quantizers, `--weights int8` storage) rather than as activations calibrated per
/// tensor; initializers only they read are dropped. Runs in subgraphs too. Returns the
/// number of nodes folded. Nothing is done below IR version 4 (initializers would have
/// to become graph inputs), and an initializer that is also a graph input (a default
/// the caller may override) is not a constant.
pub fn fold_weight_chains(model: &mut ModelProto) -> usize {
    if model.ir_version < 4 {
        return 0;
    }
    let opset = crate::proto::version::model_opset(model);
    let Some(graph) = model.graph.as_mut() else {
        return 0;
    };
    fold_weights_in(graph, opset, 0)
}

fn fold_weights_in(graph: &mut GraphProto, opset: i64, depth: usize) -> usize {
    let mut folded = 0;
    if depth < crate::runtime::MAX_SUBGRAPH_DEPTH {
        for a in graph.node.iter_mut().flat_map(|n| n.attribute.iter_mut()) {
            if let Some(g) = a.g.as_mut() {
                folded += fold_weights_in(g, opset, depth + 1);
            }
            for g in &mut a.graphs {
                folded += fold_weights_in(g, opset, depth + 1);
            }
        }
    }
    // The tensors a weight input is computed from, back through WEIGHT_OPS (nodes come
    // in topological order: one pass backwards reaches them all).
    let mut wanted: HashSet<String> = HashSet::new();
    for n in graph.node.iter().rev() {
        let op = n.op_type.as_str();
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            continue;
        }
        if matches!(op, "Conv" | "ConvTranspose" | "Gemm" | "MatMul") {
            wanted.extend(n.input.get(1).cloned());
        } else if WEIGHT_OPS.contains(&op) && n.output.iter().any(|o| wanted.contains(o)) {
            wanted.extend(n.input.iter().filter(|i| !i.is_empty()).cloned());
        }
    }
    let overridable: HashSet<String> = graph.input.iter().map(|v| v.name.clone()).collect();
    let mut read_by_folded: HashSet<String> = HashSet::new();
    let nodes = std::mem::take(&mut graph.node);
    let before = folded;
    for n in nodes {
        let foldable = (n.domain.is_empty() || n.domain == "ai.onnx")
            && WEIGHT_OPS.contains(&n.op_type.as_str())
            && n.output.len() == 1
            && wanted.contains(&n.output[0]);
        let inputs: Option<Vec<&TensorProto>> = foldable
            .then(|| {
                n.input
                    .iter()
                    .filter(|i| !i.is_empty())
                    .map(|i| {
                        (!overridable.contains(i))
                            .then(|| graph.initializer.iter().find(|t| t.name == *i))
                            .flatten()
                    })
                    .collect()
            })
            .flatten();
        match inputs.and_then(|inputs| evaluate(&n, &inputs, opset)) {
            Some(t) => {
                read_by_folded.extend(n.input.iter().cloned());
                graph.initializer.push(t);
                folded += 1;
            }
            None => graph.node.push(n),
        }
    }
    if folded > before {
        // The stored originals (float16, INT8) nothing reads any more.
        let read: HashSet<String> = super::subgraph::reads(graph)
            .into_iter()
            .map(str::to_string)
            .chain(graph.output.iter().map(|v| v.name.clone()))
            .collect();
        graph
            .initializer
            .retain(|t| !read_by_folded.contains(&t.name) || read.contains(&t.name));
    }
    folded
}

/// Node `n` run by qdq's runtime on the constant `inputs`, as an initializer named
/// like its output, in the type ONNX gives it (Cast's `to`, else the first input's),
/// when that type is float32, float16 or bfloat16 and the result is no larger than its
/// largest input (no broadcast blows a weight up); `None` otherwise.
fn evaluate(n: &NodeProto, inputs: &[&TensorProto], opset: i64) -> Option<TensorProto> {
    let out = n.output.first()?;
    let code = match n.op_type.as_str() {
        "Cast" => n.attribute.iter().find(|a| a.name == "to")?.i as i32,
        _ => inputs.first()?.data_type,
    };
    if !matches!(code, dtype::FLOAT | dtype::FLOAT16 | dtype::BFLOAT16) {
        return None;
    }
    let mut m = ModelProto::new();
    m.ir_version = crate::passes::ir_version_for(opset);
    m.opset_import.push(Default::default());
    if let Some(o) = m.opset_import.last_mut() {
        o.version = opset;
    }
    let g = m.graph.mut_or_insert_default();
    g.name = "weight".into();
    g.node.push(n.clone());
    g.initializer = inputs.iter().map(|&t| t.clone()).collect();
    let mut o = onnx_ir::ValueInfoProto::new();
    o.name.clone_from(out);
    g.output.push(o);
    let device = burn::tensor::Device::flex();
    let graph = crate::runtime::OnnxGraph::from_model(&m, &device).ok()?;
    let (_, v) = graph.run(Vec::new()).ok()?.into_iter().next()?;
    let shape = v.shape();
    let largest = inputs
        .iter()
        .map(|t| crate::proto::decode::numel(t))
        .max()?;
    if shape.iter().product::<usize>() > largest {
        return None;
    }
    let values = v.to_f32().ok()?;
    crate::proto::tensor_float(out, &shape, &values, code)
}
