//! Weights stored quantized (ModelOpt's "dq_only", `qdq quantize --weights int8`): each
//! `QuantizeLinear` of a constant weight is run once, here, and replaced by its result,
//! an INT8 (UINT8, FLOAT8E4M3FN, INT4) initializer read by the pair's
//! `DequantizeLinear`. The file shrinks about 4x (8x for INT4, two values a byte) and
//! the DQ output is the same, bit for bit: the values
//! are what the runtime's own QuantizeLinear kernel gives, which matches ONNX Runtime's.

use std::collections::{HashMap, HashSet};

use burn::tensor::Device;
use onnx_ir::{ModelProto, TensorProto};

use super::error::{PassError, PassResult};
use crate::proto::elem as dt;
use crate::runtime::{OnnxGraph, Value};

/// Replaces every default-domain `QuantizeLinear` whose inputs are all initializers by
/// an initializer holding its output; the float weights it read are dropped when no
/// other node reads them (everything else stays as it was).
/// Returns how many weights were stored quantized.
///
/// # Errors
/// A weight the runtime cannot quantize (named), or a quantized type other than
/// int8, uint8, float8e4m3fn, int4 and uint4.
pub fn store_weights_quantized(model: &mut ModelProto) -> PassResult<usize> {
    let opset = crate::proto::version::model_opset(model);
    let Some(graph) = model.graph.as_mut() else {
        return Ok(0);
    };
    let inits: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    // Each weight's Q node (by index) and the tensor it produces, run as a one-node model.
    let mut folded: Vec<(usize, TensorProto)> = Vec::new();
    // Host-side constant folding: CPU is the reference device for it.
    let device = Device::flex();
    for (i, n) in graph.node.iter().enumerate() {
        let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        let constant = n
            .input
            .iter()
            .filter(|s| !s.is_empty())
            .all(|s| inits.contains_key(s.as_str()));
        if !(default_domain && n.op_type == "QuantizeLinear" && constant) || n.output.len() != 1 {
            continue;
        }
        let fail =
            |e: String| PassError::Graph(format!("storing weight `{}` quantized: {e}", n.input[0]));
        let mut one = ModelProto::new();
        one.opset_import.push(Default::default());
        one.opset_import[0].version = opset;
        let g = one.graph.mut_or_insert_default();
        g.node.push(n.clone());
        g.initializer = n
            .input
            .iter()
            .filter_map(|s| inits.get(s.as_str()).map(|t| (*t).clone()))
            .collect();
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
        folded.push((
            i,
            crate::proto::raw_tensor(&n.output[0], q.shape(), code, bytes),
        ));
    }
    let count = folded.len();
    let weights: HashSet<String> = folded
        .iter()
        .filter_map(|(i, _)| graph.node[*i].input.first().cloned())
        .collect();
    let drop: HashSet<usize> = folded.iter().map(|(i, _)| *i).collect();
    let mut k = 0;
    graph.node.retain(|_| {
        k += 1;
        !drop.contains(&(k - 1))
    });
    graph.initializer.extend(folded.into_iter().map(|(_, t)| t));
    let read: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .chain(graph.output.iter().map(|o| o.name.clone()))
        .collect();
    let gone = |name: &String| weights.contains(name) && !read.contains(name);
    graph.initializer.retain(|t| !gone(&t.name));
    graph.input.retain(|i| !gone(&i.name));
    Ok(count)
}
