//! Writing placed quantizers into a float graph: each site's Q/DQ pair goes right before
//! its first consumer (the node list stays topologically sorted), and the consumers read
//! the dequantized tensor. Other readers of the tensor keep the float value.

use std::collections::HashMap;

use onnx_ir::{GraphProto, NodeProto};

use super::error::{PassError, PassResult};
use super::placement::{Site, SiteKind};
use super::types::elem_types;
use crate::proto::elem as dt;
use crate::qdq::{FloatForm, QdqFormat, insert_qdq_as, scales};

/// Inserts a pair for every site with an amax in `amaxes` (by site name) into `graph`,
/// in the site tensor's own float type (float16 models get float16 scales when
/// `typed_scales`, the output opset being 19 or newer; see [`FloatForm`]).
///
/// # Errors
/// A weight site whose amax count differs from its channel count, or a site missing
/// from `amaxes`.
pub fn insert_sites(
    graph: &mut GraphProto,
    sites: &[Site],
    amaxes: &HashMap<String, Vec<f32>>,
    format: QdqFormat,
    typed_scales: bool,
) -> PassResult<()> {
    insert_sites_as(graph, sites, amaxes, (format, format), typed_scales)
}

/// [`insert_sites`] with the weights in a format of their own: `(activations,
/// weights)`, e.g. `(Int8, Int4)` for W4A8.
///
/// # Errors
/// As [`insert_sites`].
pub fn insert_sites_as(
    graph: &mut GraphProto,
    sites: &[Site],
    amaxes: &HashMap<String, Vec<f32>>,
    (activation_format, weight_format): (QdqFormat, QdqFormat),
    typed_scales: bool,
) -> PassResult<()> {
    let types = elem_types(graph);
    let original = std::mem::take(&mut graph.node);
    // Pairs to emit before node i.
    let mut before: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut rewired: HashMap<(usize, usize), String> = HashMap::new();
    // Weights replaced by a float32 copy; dropped below when nothing else reads them.
    let mut replaced: std::collections::HashSet<String> = Default::default();
    for site in sites {
        let amax = amaxes.get(&site.name).ok_or_else(|| {
            PassError::Graph(format!(
                "quantizer `{}` has no amax; calibrate it first",
                site.name
            ))
        })?;
        let format = match site.kind {
            SiteKind::Weight { .. } => weight_format,
            SiteKind::Activation => activation_format,
        };
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
        let form = FloatForm {
            elem: types.get(&site.tensor).copied().unwrap_or(dt::FLOAT),
            typed_scales,
        };
        let scales = scales(amax, format);
        let dq = match widened_weight(graph, site, form, format) {
            // A weight the pair cannot hold in its type: a float32 copy feeds the pair
            // (TensorRT's constant → Q → DQ weight pattern kept), Cast back after it.
            Some(copy) => {
                let input = copy.name.clone();
                scratch.initializer.push(copy);
                let dq = insert_qdq_as(
                    &mut scratch,
                    &input,
                    &site.name,
                    &scales,
                    axis,
                    format,
                    FloatForm::default(),
                );
                let back = format!("{dq}_{}", dt::dtype_name(form.elem));
                let mut cast = crate::proto::node("Cast", &back, &[&dq], &[&back]);
                cast.attribute
                    .push(crate::proto::attr_int("to", i64::from(form.elem)));
                scratch.node.push(cast);
                replaced.insert(site.tensor.clone());
                back
            }
            None => insert_qdq_as(
                &mut scratch,
                &site.tensor,
                &site.name,
                &scales,
                axis,
                format,
                form,
            ),
        };
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
    if !replaced.is_empty() {
        let read: std::collections::HashSet<&str> = graph
            .node
            .iter()
            .flat_map(|n| n.input.iter().map(String::as_str))
            .chain(graph.output.iter().map(|o| o.name.as_str()))
            .collect();
        let unused: Vec<String> = replaced
            .into_iter()
            .filter(|w| !read.contains(w.as_str()))
            .collect();
        graph.initializer.retain(|t| !unused.contains(&t.name));
        graph.input.retain(|i| !unused.contains(&i.name));
    }
    Ok(())
}

/// For a weight site whose pair cannot be written in the weight's own type
/// ([`FloatForm::native`]: double, or float16 below opset 19), a float32 copy of the
/// weight named `{tensor}_float32` (float16 and bfloat16 widen exactly).
fn widened_weight(
    graph: &GraphProto,
    site: &Site,
    form: FloatForm,
    format: QdqFormat,
) -> Option<onnx_ir::TensorProto> {
    if form.native(format) || !matches!(site.kind, SiteKind::Weight { .. }) {
        return None;
    }
    let w = graph.initializer.iter().find(|t| t.name == site.tensor)?;
    let values = crate::proto::decode::floats(w)?;
    let dims: Vec<usize> = w.dims.iter().map(|&d| d.max(0) as usize).collect();
    Some(crate::proto::tensor_f32(
        &format!("{}_float32", site.tensor),
        &dims,
        &values,
    ))
}
