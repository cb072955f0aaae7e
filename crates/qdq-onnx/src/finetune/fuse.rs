//! Q→DQ pairs to one `FakeQuantizeLinear` node each, so that the gradient can pass
//! the quantizer (a `QuantizeLinear` output is integer, and autodiff stops there).

use std::collections::HashMap;

use onnx_ir::GraphProto;

use crate::error::{Error, Result};
use crate::runtime::INTERNAL_DOMAIN;

/// Rewrites `graph` in place: every `DequantizeLinear` fed by a `QuantizeLinear` with
/// the same scale and zero-point tensors becomes `FakeQuantizeLinear(x, scale, zp)`
/// with the pair's attributes; the `QuantizeLinear` goes once nothing else reads it.
/// Returns how many pairs were fused.
///
/// # Errors
/// A pair whose two nodes use different scale or zero-point tensors, or whose
/// `QuantizeLinear` output is also read by another node: fine-tuning cannot give it
/// a gradient. The error names the node.
pub(crate) fn fuse_qdq_pairs(graph: &mut GraphProto) -> Result<usize> {
    let producer: HashMap<String, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(k, n)| n.output.iter().map(move |o| (o.clone(), k)))
        .collect();
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for n in &graph.node {
        for i in &n.input {
            *readers.entry(i.as_str()).or_default() += 1;
        }
    }
    let mut fused = Vec::new();
    for (k, dq) in graph.node.iter().enumerate() {
        if dq.op_type != "DequantizeLinear" {
            continue;
        }
        let Some(&qk) = dq.input.first().and_then(|i| producer.get(i)) else {
            continue;
        };
        let q = &graph.node[qk];
        if q.op_type != "QuantizeLinear" {
            continue;
        }
        let label = if dq.name.is_empty() {
            &dq.output[0]
        } else {
            &dq.name
        };
        if q.input.get(1..) != dq.input.get(1..) {
            return Err(Error::Graph(format!(
                "DequantizeLinear `{label}` does not share its scale and zero point with its QuantizeLinear; fine-tuning needs one quantizer per pair"
            )));
        }
        if readers.get(dq.input[0].as_str()) != Some(&1) {
            return Err(Error::Graph(format!(
                "the quantized tensor `{}` feeding DequantizeLinear `{label}` is read by other nodes too; fine-tuning needs plain Q→DQ pairs",
                dq.input[0]
            )));
        }
        fused.push((k, qk));
    }
    let dropped: std::collections::HashSet<usize> = fused.iter().map(|&(_, qk)| qk).collect();
    for &(k, qk) in &fused {
        let q = graph.node[qk].clone();
        let dq = &mut graph.node[k];
        dq.op_type = "FakeQuantizeLinear".into();
        dq.domain = INTERNAL_DOMAIN.into();
        dq.input[0] = q.input[0].clone();
        // The pair's attributes (axis, output_dtype, saturate), the Q's winning.
        for a in q.attribute {
            dq.attribute.retain(|b| b.name != a.name);
            dq.attribute.push(a);
        }
    }
    let mut k = 0;
    graph.node.retain(|_| {
        k += 1;
        !dropped.contains(&(k - 1))
    });
    Ok(fused.len())
}
