//! Writing placed quantizers into a float graph: each site's Q/DQ pair goes right before
//! its first consumer (the node list stays topologically sorted), and the consumers read
//! the dequantized tensor. Other readers of the tensor keep the float value.

use std::collections::HashMap;

use onnx_ir::{GraphProto, NodeProto};

use super::error::{PassError, PassResult};
use super::placement::{Site, SiteKind};
use crate::qdq::{QdqFormat, insert_qdq};

/// Inserts a pair for every site with an amax in `amaxes` (by site name) into `graph`.
///
/// # Errors
/// A weight site whose amax count differs from its channel count, or a site missing
/// from `amaxes`.
pub fn insert_sites(
    graph: &mut GraphProto,
    sites: &[Site],
    amaxes: &HashMap<String, Vec<f32>>,
    format: QdqFormat,
) -> PassResult<()> {
    let original = std::mem::take(&mut graph.node);
    // Pairs to emit before node i.
    let mut before: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut rewired: HashMap<(usize, usize), String> = HashMap::new();
    for site in sites {
        let amax = amaxes.get(&site.name).ok_or_else(|| {
            PassError::Graph(format!(
                "quantizer `{}` has no amax; calibrate it first",
                site.name
            ))
        })?;
        let axis = match site.kind {
            SiteKind::Weight { axis } if amax.len() > 1 => Some(axis as i64),
            _ if amax.len() == 1 => None,
            _ => {
                return Err(PassError::Graph(format!(
                    "quantizer `{}`: {} amax values for a per-tensor quantizer",
                    site.name,
                    amax.len()
                )));
            }
        };
        let mut scratch = GraphProto::new();
        let dq = insert_qdq(&mut scratch, &site.tensor, &site.name, amax, axis, format);
        graph.initializer.extend(scratch.initializer);
        let first = site.consumers.iter().map(|c| c.0).min().unwrap_or(0);
        before.entry(first).or_default().extend(scratch.node);
        for &slot in &site.consumers {
            rewired.insert(slot, dq.clone());
        }
    }
    for (i, mut node) in original.into_iter().enumerate() {
        if let Some(pairs) = before.remove(&i) {
            graph.node.extend(pairs);
        }
        for (k, input) in node.input.iter_mut().enumerate() {
            if let Some(dq) = rewired.get(&(i, k)) {
                input.clone_from(dq);
            }
        }
        graph.node.push(node);
    }
    Ok(())
}
