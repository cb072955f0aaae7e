//! Weights stored quantized (ModelOpt's "dq_only", `qdq quantize --weights int8`): each
//! `QuantizeLinear` of a constant weight is run once, here, and replaced by its result,
//! an INT8 (UINT8, FLOAT8E4M3FN, INT4) initializer read by the pair's
//! `DequantizeLinear`. The file shrinks about 4x (8x for INT4, two values a byte) and
//! the DQ output is the same, bit for bit: the values
//! are what the runtime's own QuantizeLinear kernel gives, which matches ONNX Runtime's.

use std::collections::HashSet;

use burn::tensor::Device;
use onnx_ir::{GraphProto, ModelProto, NodeProto, TensorProto};

use super::error::{PassError, PassResult};
use super::subgraph::{GraphPath, graph_attrs, reads, subgraph, subgraph_mut, visible_constant};
use crate::proto::elem as dt;
use crate::runtime::{OnnxGraph, Value};

/// Replaces every default-domain `QuantizeLinear` whose inputs are all constants (the
/// graph's own initializers or `Constant` outputs, or those of an enclosing graph) by an
/// initializer holding its output, in every graph of the model: the main graph, `If`
/// branches and `Loop`/`Scan` bodies (the initializer goes into the graph the node was
/// in). The float weights it read are dropped when no node of any graph reads them
/// (everything else stays as it was). Returns how many weights were stored quantized.
///
/// # Errors
/// A weight the runtime cannot quantize (named), or a quantized type other than
/// int8, uint8, float8e4m3fn, int4 and uint4.
pub fn store_weights_quantized(model: &mut ModelProto) -> PassResult<usize> {
    let opset = crate::proto::version::model_opset(model);
    let Some(graph) = model.graph.as_mut() else {
        return Ok(0);
    };
    let mut paths = Vec::new();
    graph_paths(graph, &mut Vec::new(), &mut paths);
    // Folded first, the model unchanged, so every path still leads where it did.
    let mut folds: Vec<(GraphPath, Vec<(usize, TensorProto)>)> = Vec::new();
    for path in paths {
        let g = subgraph(graph, &path).expect("a path of graph_paths");
        let mut folded = Vec::new();
        for (i, n) in g.node.iter().enumerate() {
            let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
            if !default_domain || n.op_type != "QuantizeLinear" || n.output.len() != 1 {
                continue;
            }
            // A `Constant`'s tensor may carry another name than the output it makes.
            let constants: Option<Vec<TensorProto>> = n
                .input
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let mut t = visible_constant(graph, &path, s)?.clone();
                    t.name.clone_from(s);
                    Some(t)
                })
                .collect();
            if let Some(constants) = constants {
                folded.push((i, quantized(n, constants, opset)?));
            }
        }
        if !folded.is_empty() {
            folds.push((path, folded));
        }
    }
    // Deepest graphs first: removing a graph's nodes moves the paths below it only.
    folds.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    let mut count = 0;
    let mut weights: HashSet<String> = HashSet::new();
    for (path, folded) in folds {
        let g = subgraph_mut(graph, &path).expect("a path of graph_paths");
        count += folded.len();
        weights.extend(
            folded
                .iter()
                .filter_map(|(i, _)| g.node[*i].input.first().cloned()),
        );
        let drop: HashSet<usize> = folded.iter().map(|(i, _)| *i).collect();
        let mut k = 0;
        g.node.retain(|_| {
            k += 1;
            !drop.contains(&(k - 1))
        });
        g.initializer.extend(folded.into_iter().map(|(_, t)| t));
    }
    // A float weight is gone when no node of any graph reads it and no graph
    // outputs it (a name read anywhere is kept, shadowed or not).
    let mut read: HashSet<String> = reads(graph).into_iter().map(str::to_string).collect();
    let mut all = Vec::new();
    graph_paths(graph, &mut Vec::new(), &mut all);
    for path in &all {
        let g = subgraph(graph, path).expect("a path of graph_paths");
        read.extend(g.output.iter().map(|o| o.name.clone()));
    }
    let gone = |name: &String| weights.contains(name) && !read.contains(name);
    for path in &all {
        let g = subgraph_mut(graph, path).expect("a path of graph_paths");
        g.initializer.retain(|t| !gone(&t.name));
        g.input.retain(|i| !gone(&i.name));
    }
    // Last, as removing nodes moves the paths in `all`.
    drop_unread_constants(graph, &gone);
    Ok(count)
}

/// The output of the weight's `QuantizeLinear` node `n`, run alone on `constants`, as an
/// initializer named after that output.
fn quantized(n: &NodeProto, constants: Vec<TensorProto>, opset: i64) -> PassResult<TensorProto> {
    let fail =
        |e: String| PassError::Graph(format!("storing weight `{}` quantized: {e}", n.input[0]));
    // Host-side constant folding: CPU is the reference device for it.
    let device = Device::flex();
    let mut one = ModelProto::new();
    one.opset_import.push(Default::default());
    one.opset_import[0].version = opset;
    let g = one.graph.mut_or_insert_default();
    g.node.push(n.clone());
    g.initializer = constants;
    let mut out = onnx_ir::ValueInfoProto::new();
    out.name.clone_from(&n.output[0]);
    g.output.push(out);
    let g = OnnxGraph::from_model(&one, &device).map_err(|e| fail(e.to_string()))?;
    let out = g.run(vec![]).map_err(|e| fail(e.to_string()))?;
    let Some((_, Value::Int(q, code))) = out.into_iter().next() else {
        return Err(fail("QuantizeLinear gave no integer tensor".into()));
    };
    let values = q.to_vec().map_err(|e| fail(e.to_string()))?;
    let bytes: Vec<u8> = match code {
        dt::INT8 => values.iter().map(|&v| v as i8 as u8).collect(),
        dt::UINT8 | dt::FLOAT8E4M3FN => values.iter().map(|&v| v as u8).collect(),
        dt::INT4 | dt::UINT4 => crate::proto::nibble::pack(&values),
        other => {
            return Err(fail(format!(
                "quantized type {} is not stored (int8, uint8, float8e4m3fn, int4, uint4)",
                dt::dtype_name(other)
            )));
        }
    };
    Ok(crate::proto::raw_tensor(
        &n.output[0],
        q.shape(),
        code,
        bytes,
    ))
}

/// Every graph of `graph`, by path, the main graph (empty path) first, then each
/// subgraph before the ones inside it, at most [`crate::runtime::MAX_SUBGRAPH_DEPTH`]
/// deep.
fn graph_paths(graph: &GraphProto, path: &mut GraphPath, out: &mut Vec<GraphPath>) {
    out.push(path.clone());
    if path.len() >= crate::runtime::MAX_SUBGRAPH_DEPTH {
        return;
    }
    for (i, n) in graph.node.iter().enumerate() {
        for (attr, sub) in graph_attrs(n) {
            path.push((i, attr.to_string()));
            graph_paths(sub, path, out);
            path.pop();
        }
    }
}

/// Removes, in `graph` and every subgraph, the `Constant` nodes whose output is `gone`.
fn drop_unread_constants(graph: &mut GraphProto, gone: &impl Fn(&String) -> bool) {
    graph
        .node
        .retain(|n| !(n.op_type == "Constant" && n.output.len() == 1 && gone(&n.output[0])));
    for n in &mut graph.node {
        for a in &mut n.attribute {
            if let Some(g) = a.g.as_mut() {
                drop_unread_constants(g, gone);
            }
        }
    }
}
