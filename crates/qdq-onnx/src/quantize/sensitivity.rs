//! Per-layer sensitivity: how much the whole model's outputs move when one layer alone
//! is quantized, every other layer in float.
//!
//! A layer is a node with quantizers on its inputs (a Conv's input and weight, an
//! attention MatMul's two inputs, a residual Add's skip branch). For each one, the QDQ
//! model with only that node's quantizers is built from the calibrated cache and its
//! outputs measured against the float model's on the same items by
//! [`ModelCheck::error`] (`Σ (q - f)² / Σ f²` per output, as `auto` measures whole
//! models). Sorted, the list says which layers lose the most; keeping the first few in
//! float ([`keep_float`], `qdq quantize --keep-float-sensitive N`) is the usual
//! remedy when full INT8 misses the accuracy target (TensorRT's and ModelOpt's
//! "partial quantization" / layer-wise sensitivity analysis).

use std::collections::{BTreeMap, HashSet};

use super::auto_model::{ModelCheck, parallel_width, side_by_side};
use super::{CalibrationCache, Prepared, QuantizeOptions, build};
use crate::error::{Error, Result};
use crate::passes::{GraphPath, node_label, path_scope, subgraph};

/// A layer: the graph holding its node (empty: the main graph; see [`GraphPath`]) and
/// the node's index there. Node indices alone are ambiguous once subgraphs hold
/// quantizers (an `If` branch's node 3 is not the main graph's).
pub type Layer = (GraphPath, usize);

/// One layer's sensitivity.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSensitivity {
    /// The graph holding the node: empty for the main graph.
    pub graph: GraphPath,
    /// The node's index in that graph of the prepared model.
    pub node: usize,
    /// The scope of that graph (`If_0/then_branch/`; empty for the main graph).
    pub scope: String,
    /// The node's label, as `--skip` matches it (its name, else its first output).
    pub label: String,
    /// The node's op type.
    pub op_type: String,
    /// The quantizers on its inputs.
    pub quantizers: Vec<String>,
    /// The whole model's output error with only this layer quantized (NaN when an
    /// output is NaN).
    pub error: f64,
}

impl LayerSensitivity {
    /// The layer measured.
    pub fn layer(&self) -> Layer {
        (self.graph.clone(), self.node)
    }
}

/// The nodes with quantizers on their inputs, the main graph's first, then each
/// subgraph's, in node order, each with its quantizers' names.
pub fn quantized_layers(prepared: &Prepared) -> BTreeMap<Layer, Vec<String>> {
    let mut layers: BTreeMap<Layer, Vec<String>> = BTreeMap::new();
    for s in &prepared.sites {
        for &(node, _) in &s.consumers {
            let names = layers.entry((s.graph.clone(), node)).or_default();
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
    }
    layers
}

/// [`quantized_layers`] the written model keeps with `cache`: not those whose quantizers
/// all stay out (a branch calibration never took, see [`Prepared::left_out`]).
fn written_layers(prepared: &Prepared, cache: &CalibrationCache) -> BTreeMap<Layer, Vec<String>> {
    let left_out: HashSet<&str> = prepared
        .left_out(cache)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let mut layers = quantized_layers(prepared);
    layers.retain(|_, q| q.iter().any(|q| !left_out.contains(q.as_str())));
    layers
}

/// `prepared` with only the quantizer inputs of the nodes `keep` accepts (by graph and
/// index): every site loses the consumers at other nodes, and sites left with none are
/// dropped.
fn restricted(prepared: &Prepared, keep: impl Fn(&GraphPath, usize) -> bool) -> Prepared {
    let sites = prepared
        .sites
        .iter()
        .filter_map(|s| {
            let mut s = s.clone();
            s.consumers.retain(|&(node, _)| keep(&s.graph, node));
            (!s.consumers.is_empty()).then_some(s)
        })
        .collect();
    Prepared {
        model: prepared.model.clone(),
        sites,
    }
}

/// `prepared` with the layers `float` left unquantized (their inputs read the float
/// tensors), as `--skip` would leave them.
pub fn keep_float(prepared: &Prepared, float: &HashSet<Layer>) -> Prepared {
    // No allocation per consumer: compare paths in place.
    restricted(prepared, |graph, node| {
        !float.iter().any(|(g, n)| *n == node && g == graph)
    })
}

/// Every quantized layer's sensitivity, most sensitive first (NaN first: the layer
/// breaks the outputs; ties keep node order): the model with only that layer's
/// quantizers, amaxes from `cache`, measured by `check`. Layers inside subgraphs count;
/// those whose quantizers all stay out (a branch calibration never took, see
/// [`Prepared::left_out`]) are not layers of the written model and are not listed.
///
/// # Errors
/// A quantizer missing from `cache`, a model that cannot be written or run, or an
/// empty `check` (nothing to measure on).
pub fn sensitivity(
    prepared: &Prepared,
    cache: &CalibrationCache,
    check: &ModelCheck,
    options: &QuantizeOptions,
    device: &burn::tensor::Device,
) -> Result<Vec<LayerSensitivity>> {
    sensitivity_of(
        prepared,
        cache,
        (check, check.len()),
        |_| true,
        options,
        device,
    )
}

/// [`sensitivity`] of the layers `select` accepts, measured on the first `batches`
/// batches of `check`.
fn sensitivity_of(
    prepared: &Prepared,
    cache: &CalibrationCache,
    (check, batches): (&ModelCheck, usize),
    select: impl Fn(&Layer) -> bool,
    options: &QuantizeOptions,
    device: &burn::tensor::Device,
) -> Result<Vec<LayerSensitivity>> {
    if check.is_empty() {
        return Err(Error::Graph(
            "sensitivity: no item to measure the layers on".into(),
        ));
    }
    let graph = prepared
        .model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Graph("the model has no graph".into()))?;
    let layers: Vec<(Layer, Vec<String>)> = written_layers(prepared, cache)
        .into_iter()
        .filter(|(l, _)| select(l))
        .collect();
    // One whole model per layer, a few side by side (as `auto`'s whole-model step).
    let errors = side_by_side(&layers, parallel_width(prepared), |((path, node), _)| {
        let one = restricted(prepared, |g, n| n == *node && g == path);
        check.error_on_first(&build(&one, cache, options)?, batches, device)
    });
    let mut out = Vec::with_capacity(layers.len());
    for (((path, node), quantizers), error) in layers.into_iter().zip(errors) {
        let n = subgraph(graph, &path)
            .and_then(|g| g.node.get(node))
            .ok_or_else(|| {
                Error::Graph(format!(
                    "sensitivity: layer {node} of graph {path:?} is not in the model"
                ))
            })?;
        out.push(LayerSensitivity {
            scope: path_scope(graph, &path),
            graph: path,
            node,
            label: node_label(n, node),
            op_type: n.op_type.clone(),
            quantizers,
            error: error?,
        });
    }
    let mut layers = out;
    // `total_cmp` orders NaN above every number: reversed, NaN comes first.
    layers.sort_by(|a, b| b.error.total_cmp(&a.error));
    Ok(layers)
}

/// The whole-model error ([`ModelCheck::error`]) past which a quantized model counts
/// as broken: a tenth of its outputs' energy (about a cosine of 0.95 on one output).
/// Ordinary INT8 layers cost 1e-4 to 1e-2 each alone; on the corpus, a layer past this
/// alone was one INT8 cannot represent: a power spectrum read through a Log (the mel
/// front end), an LSTM's input projection fed values up to 2449 (silero-vad-op18),
/// the first convolution of a page-layout detector.
pub const BROKEN: f64 = 0.1;

/// What [`breaking_layers`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Breaking {
    /// These layers break the model alone, most sensitive first (possibly none).
    Layers(Vec<LayerSensitivity>),
    /// The float model's own outputs move by this much (past [`BROKEN`] / 10) when its
    /// float inputs move by 1e-3 ([`ModelCheck::nudged_error`]): outputs that sort or
    /// pick (TopK, NMS) jump at any change, so no layer is to blame.
    Unsteady(f64),
    /// More than [`MAX_BROKEN`] layers (or a quarter of them, if that is more than 2)
    /// each break it alone: the outputs react to any quantization, no few layers are to
    /// blame.
    TooMany(usize),
    /// Each of the model's this many layers breaks it alone: keeping them all float
    /// would write the FP32 model under a QDQ name.
    Every(usize),
}

/// The most layers [`breaking_layers`] blames: a model broken by more is not broken by
/// a few layers INT8 cannot represent (on the corpus: 1, 2 and 4).
pub const MAX_BROKEN: usize = 8;

/// The layers that break the model alone: whose error with only them quantized is above
/// [`BROKEN`] (or NaN), most sensitive first. First the float model's steadiness is
/// checked ([`Breaking::Unsteady`]). A model of up to [`SCREEN_ABOVE`] layers is
/// measured on every batch of `check`; a larger one is screened on the first batch (a
/// quarter of `auto`'s items) by halving groups of layers ([`screen`]), stopping once
/// more than [`MAX_BROKEN`] single layers pass half of [`BROKEN`] there; the layers
/// that did are measured on every batch. `auto` keeps them in float when the quantized
/// model's own error is past [`BROKEN`].
///
/// # Errors
/// As [`sensitivity`].
pub fn breaking_layers(
    prepared: &Prepared,
    cache: &CalibrationCache,
    check: &ModelCheck,
    options: &QuantizeOptions,
    device: &burn::tensor::Device,
) -> Result<Breaking> {
    let unsteady = check.nudged_error(&prepared.model, 1e-3, device)?;
    if unsteady.is_nan() || unsteady > BROKEN / 10.0 {
        return Ok(Breaking::Unsteady(unsteady));
    }
    let past = |l: &LayerSensitivity, bound: f64| l.error.is_nan() || l.error > bound;
    let layers: Vec<Layer> = written_layers(prepared, cache).into_keys().collect();
    let limit = MAX_BROKEN.min(layers.len() / 4).max(2);
    let measured = if layers.len() <= SCREEN_ABOVE {
        sensitivity(prepared, cache, check, options, device)?
    } else {
        let suspects: HashSet<Layer> =
            match screen(prepared, cache, check, &layers, limit, options, device)? {
                Ok(suspects) => suspects.into_iter().collect(),
                Err(n) => return Ok(Breaking::TooMany(n)),
            };
        let all = (check, check.len());
        sensitivity_of(
            prepared,
            cache,
            all,
            |l| suspects.contains(l),
            options,
            device,
        )?
    };
    let broken: Vec<LayerSensitivity> = measured.into_iter().filter(|l| past(l, BROKEN)).collect();
    Ok(match broken.len() {
        n if n > 0 && n == layers.len() => Breaking::Every(n),
        n if n > limit => Breaking::TooMany(n),
        _ => Breaking::Layers(broken),
    })
}

/// [`breaking_layers`]' screen of a large model's `layers` on the first batch of
/// `check`, by halving: a group of layers is quantized together (every other layer
/// float) and measured; a group within half of [`BROKEN`] holds no layer past that
/// alone (the errors of separately quantized layers add up, to first order), a group
/// past it is split in two and each half measured, down to single layers: the
/// suspects. Groups go depth first, a few side by side, so a model that many layers
/// break shows them early, and the screen stops once more than `limit` are found
/// (`Err` with their number). A few breaking layers among hundreds cost a few runs
/// each where one run per layer cost hundreds.
fn screen(
    prepared: &Prepared,
    cache: &CalibrationCache,
    check: &ModelCheck,
    layers: &[Layer],
    limit: usize,
    options: &QuantizeOptions,
    device: &burn::tensor::Device,
) -> Result<std::result::Result<Vec<Layer>, usize>> {
    let width = parallel_width(prepared);
    // The whole set is what the guard was called for: start from its halves, the
    // first on top.
    let (a, b) = layers.split_at(layers.len() / 2);
    let mut stack: Vec<&[Layer]> = vec![b, a];
    stack.retain(|g| !g.is_empty());
    let mut suspects = Vec::new();
    while !stack.is_empty() {
        let take = width.min(stack.len());
        let groups: Vec<&[Layer]> = stack.drain(stack.len() - take..).rev().collect();
        let errors = side_by_side(&groups, width, |group| {
            let some = restricted(prepared, |g, n| {
                group.iter().any(|(lg, ln)| *ln == n && lg == g)
            });
            check.error_on_first(&build(&some, cache, options)?, 1, device)
        });
        // In reverse, so the first group's halves end on top of the stack.
        for (group, error) in groups.into_iter().zip(errors).rev() {
            let error = error?;
            if !(error.is_nan() || error > BROKEN / 2.0) {
                continue;
            }
            match group {
                [one] => suspects.push(one.clone()),
                _ => {
                    let (a, b) = group.split_at(group.len() / 2);
                    stack.push(b);
                    stack.push(a);
                }
            }
        }
        if suspects.len() > limit {
            return Ok(Err(suspects.len()));
        }
    }
    Ok(Ok(suspects))
}

/// Layers past which [`breaking_layers`] screens on one batch first. A few items vary
/// a lot on some models (near-silent audio), so small models, cheap to measure, are
/// measured on all of them.
pub const SCREEN_ABOVE: usize = 32;

/// The layers to keep in float from a `ranking` ([`sensitivity`]'s order): the first
/// `top` and every layer whose error is above `above` (NaN included).
pub fn most_sensitive(
    ranking: &[LayerSensitivity],
    top: usize,
    above: Option<f64>,
) -> HashSet<Layer> {
    ranking
        .iter()
        .enumerate()
        .filter(|(i, l)| *i < top || above.is_some_and(|t| l.error.is_nan() || l.error > t))
        .map(|(_, l)| l.layer())
        .collect()
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::proto::elem as dtype;
    use crate::proto::{model, node, tensor_f32, value_info_named};
    use crate::quantize::{Calibration, Entry, Method, apply, prepare};
    use crate::runtime::{OnnxGraph, Value};

    /// The labels of the `ranking`'s layers past [`BROKEN`], in its order.
    fn past_bound(ranking: &[LayerSensitivity]) -> Vec<&str> {
        ranking
            .iter()
            .filter(|l| l.error > BROKEN)
            .map(|l| l.label.as_str())
            .collect()
    }

    /// `float_model` (one input `x [batch, 8]`) prepared, calibrated by max on 3
    /// deterministic batches of `rows` rows, and those batches kept to measure on.
    fn calibrated(
        float_model: &onnx_ir::ModelProto,
        rows: usize,
        device: &Device,
    ) -> (Prepared, CalibrationCache, ModelCheck) {
        let prepared = prepare(float_model, &QuantizeOptions::default()).unwrap();
        let graph = OnnxGraph::from_model(&prepared.model, device).unwrap();
        let proto = prepared.model.graph.as_ref().unwrap();
        let mut calib = Calibration::new(proto, &prepared.sites, false)
            .unwrap()
            .max_only();
        let mut check = ModelCheck::new();
        for b in 0..3 {
            let x: Vec<f32> = (0..rows * 8)
                .map(|i| (((i + 5 * b) * 29 % 23) as f32 - 11.0) / 11.0)
                .collect();
            let inputs = vec![("x".to_string(), Value::from_f32(x, &[rows, 8], device))];
            calib.feed(&graph, inputs.clone()).unwrap();
            let outputs = graph.run(inputs.clone()).unwrap();
            check.push(inputs, &outputs).unwrap();
        }
        let cache = calib.cache(Method::Max, &Default::default()).unwrap();
        (prepared, cache, check)
    }

    /// Three MatMuls in a chain `x → mm1 → h1 → mm2 → h2 → mm3 → y`, calibrated by max
    /// on deterministic items; then mm2's input amax is cut to 1% of its max (it clips
    /// badly) and mm1's to half (it clips a little).
    fn fixture(device: &Device) -> (Prepared, CalibrationCache, ModelCheck) {
        let w: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
            .collect();
        let float_model = model(
            vec![
                node("MatMul", "mm1", &["x", "w1"], &["h1"]),
                node("MatMul", "mm2", &["h1", "w2"], &["h2"]),
                node("MatMul", "mm3", &["h2", "w3"], &["y"]),
            ],
            vec![value_info_named("x", dtype::FLOAT, &[1, 8], Some("batch"))],
            &["y"],
            vec![
                tensor_f32("w1", &[8, 8], &w),
                tensor_f32("w2", &[8, 8], &w),
                tensor_f32("w3", &[8, 8], &w),
            ],
            13,
        );
        let (prepared, mut cache, check) = calibrated(&float_model, 16, device);
        let mut scale = |t: &str, k: f32| {
            let e: &mut Entry = cache.entries.get_mut(t).unwrap();
            e.amax = e.amax.iter().map(|a| a * k).collect();
        };
        scale("h1", 0.01);
        scale("x", 0.5);
        (prepared, cache, check)
    }

    /// The badly clipped layer comes first, the mildly clipped one second, the
    /// untouched one last; each error is the model's with that node's two quantizers
    /// alone, and keeping the worst in float takes its error out of the full model.
    #[test]
    fn ranks_the_clipped_layer_first_and_keeping_it_float_helps() {
        let device = Device::flex();
        let (prepared, cache, check) = fixture(&device);
        let options = QuantizeOptions::default();
        let ranking = sensitivity(&prepared, &cache, &check, &options, &device).unwrap();
        let order: Vec<&str> = ranking.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(order, ["mm2", "mm1", "mm3"], "{ranking:?}");
        assert_eq!((ranking[0].graph.len(), ranking[0].node), (0, 1));
        assert_eq!(ranking[0].op_type, "MatMul");
        assert_eq!(
            ranking[0].quantizers,
            ["mm2._input_quantizer", "mm2._weight_quantizer"]
        );
        // mm2 reads h1 clipped to 1% of its range: most of the signal is gone.
        assert!(ranking[0].error > 0.5, "{ranking:?}");
        // mm3 has only the 8-bit rounding of its input and weight: small.
        assert!(ranking[2].error < 1e-3, "{ranking:?}");
        assert!(ranking[1].error > 10.0 * ranking[2].error, "{ranking:?}");

        let full = check
            .error(&apply(&prepared, &cache, &options).unwrap(), &device)
            .unwrap();
        let float = most_sensitive(&ranking, 1, None);
        assert_eq!(float, HashSet::from([(Vec::new(), 1)]));
        let kept = keep_float(&prepared, &float);
        assert!(
            kept.sites
                .iter()
                .all(|s| s.consumers.iter().all(|&(n, _)| n != 1)),
            "{:?}",
            kept.sites
        );
        assert_eq!(kept.sites.len(), prepared.sites.len() - 2);
        let partial = check
            .error(&apply(&kept, &cache, &options).unwrap(), &device)
            .unwrap();
        // mm1 still clips (its error stays), mm2's is gone.
        assert!(partial < full / 4.0, "{partial} vs {full}");
        // Nothing float: the model is the full one.
        assert_eq!(keep_float(&prepared, &HashSet::new()).sites, prepared.sites);
    }

    #[test]
    fn most_sensitive_takes_the_top_and_those_above_the_threshold() {
        let layer = |node, error| LayerSensitivity {
            graph: Vec::new(),
            node,
            scope: String::new(),
            label: format!("n{node}"),
            op_type: "Conv".into(),
            quantizers: Vec::new(),
            error,
        };
        let ranking = [
            layer(4, f64::NAN),
            layer(2, 0.3),
            layer(7, 0.02),
            layer(1, 0.001),
        ];
        let main = |nodes: &[usize]| -> HashSet<Layer> {
            nodes.iter().map(|&n| (Vec::new(), n)).collect()
        };
        assert_eq!(most_sensitive(&ranking, 0, None), main(&[]));
        assert_eq!(most_sensitive(&ranking, 2, None), main(&[4, 2]));
        assert_eq!(most_sensitive(&ranking, 0, Some(0.01)), main(&[4, 2, 7]));
        assert_eq!(most_sensitive(&ranking, 10, Some(0.5)), main(&[4, 2, 7, 1]));
    }

    /// The fixture's mm2 reads its input clipped to 1 % of its range and mm1 at half:
    /// each alone breaks the model (0.97 and 0.19), mm3 does not (7e-5); the two-step
    /// measure finds what the full ranking does.
    #[test]
    fn breaking_layers_are_those_past_the_bound_alone() {
        let device = Device::flex();
        let (prepared, cache, check) = fixture(&device);
        assert_eq!(check.len(), 3);
        let options = QuantizeOptions::default();
        let full = sensitivity(&prepared, &cache, &check, &options, &device).unwrap();
        let want = past_bound(&full);
        assert_eq!(want, ["mm2", "mm1"], "{full:?}");
        let Breaking::Layers(got) =
            breaking_layers(&prepared, &cache, &check, &options, &device).unwrap()
        else {
            panic!("a steady model with two broken layers of three");
        };
        assert_eq!(got, full[..2]);
        // With both float, mm3 alone is below the bound: nothing breaks the rest.
        let rest = keep_float(
            &prepared,
            &got.iter().map(LayerSensitivity::layer).collect(),
        );
        assert_eq!(
            breaking_layers(&rest, &cache, &check, &options, &device).unwrap(),
            Breaking::Layers(Vec::new())
        );
    }

    /// A chain of `n` MatMuls by the identity (`h0 = x`, `h{i+1} = h{i} · I`, output
    /// `h{n}`), calibrated by max on 3 batches, with the inputs of the layers in
    /// `clipped` cut to 1 % of their range: those each break the model alone, the
    /// others barely move it.
    fn chain(
        n: usize,
        clipped: &[usize],
        device: &Device,
    ) -> (Prepared, CalibrationCache, ModelCheck) {
        let mut eye = vec![0.0f32; 64];
        for i in 0..8 {
            eye[i * 9] = 1.0;
        }
        let h = |i: usize| {
            if i == 0 {
                "x".to_string()
            } else {
                format!("h{i}")
            }
        };
        let nodes = (0..n)
            .map(|i| node("MatMul", &format!("mm{i}"), &[&h(i), "w"], &[&h(i + 1)]))
            .collect();
        let float_model = model(
            nodes,
            vec![value_info_named("x", dtype::FLOAT, &[1, 8], Some("batch"))],
            &[&h(n)],
            vec![tensor_f32("w", &[8, 8], &eye)],
            13,
        );
        let (prepared, mut cache, check) = calibrated(&float_model, 4, device);
        for &i in clipped {
            let e: &mut Entry = cache.entries.get_mut(&h(i)).unwrap();
            e.amax = e.amax.iter().map(|a| a * 0.01).collect();
        }
        (prepared, cache, check)
    }

    /// Past [`SCREEN_ABOVE`] layers the screen halves groups of layers: in a chain of
    /// 40 it finds the two clipped layers, as one run per layer would, most sensitive
    /// first; with more than [`MAX_BROKEN`] clipped it gives up as `TooMany`.
    #[test]
    fn the_screen_of_a_large_model_finds_the_layers_one_run_each_would() {
        let device = Device::flex();
        let options = QuantizeOptions::default();
        let (prepared, cache, check) = chain(40, &[7, 31], &device);
        assert!(written_layers(&prepared, &cache).len() > SCREEN_ABOVE);
        let full = sensitivity(&prepared, &cache, &check, &options, &device).unwrap();
        let want = past_bound(&full);
        assert_eq!(want.len(), 2, "{full:?}");
        assert!(want.contains(&"mm7") && want.contains(&"mm31"), "{want:?}");
        assert!(full[2].error < 1e-3, "{:?}", full[2]);
        let found = breaking_layers(&prepared, &cache, &check, &options, &device).unwrap();
        assert_eq!(found, Breaking::Layers(full[..2].to_vec()));
        let many: Vec<usize> = (0..40).step_by(4).collect();
        let (prepared, cache, check) = chain(40, &many, &device);
        let found = breaking_layers(&prepared, &cache, &check, &options, &device).unwrap();
        assert!(
            matches!(found, Breaking::TooMany(n) if n > MAX_BROKEN),
            "{found:?}"
        );
    }

    /// A model whose output picks (`ArgMax` over two tied values) is unsteady: a 0.1 %
    /// nudge of its input flips the answer, so no layer is blamed for its error.
    #[test]
    fn an_output_that_picks_is_unsteady_and_no_layer_is_blamed() {
        let device = Device::flex();
        let mut eye = vec![0.0f32; 16];
        for i in 0..4 {
            eye[i * 5] = 1.0;
        }
        let mut argmax = node("ArgMax", "pick", &["h"], &["i"]);
        argmax.attribute.push(crate::proto::attr_int("axis", 1));
        let mut cast = node("Cast", "cast", &["i"], &["y"]);
        cast.attribute
            .push(crate::proto::attr_int("to", i64::from(dtype::FLOAT)));
        let float_model = model(
            vec![node("MatMul", "mm", &["x", "w"], &["h"]), argmax, cast],
            vec![value_info_named("x", dtype::FLOAT, &[1, 4], Some("batch"))],
            &["y"],
            vec![tensor_f32("w", &[4, 4], &eye)],
            13,
        );
        let options = QuantizeOptions::default();
        let prepared = prepare(&float_model, &options).unwrap();
        let graph = OnnxGraph::from_model(&prepared.model, &device).unwrap();
        let mut check = ModelCheck::new();
        // x0 and x1 tie for the max: the float answer is 0, either nudge may flip it.
        let x = vec![1.0, 1.0, 0.5, 0.25, 0.5, 2.0, 2.0, 0.0];
        let inputs = vec![("x".to_string(), Value::from_f32(x, &[2, 4], &device))];
        let outputs = graph.run(inputs.clone()).unwrap();
        check.push(inputs, &outputs).unwrap();
        assert!(check.nudged_error(&prepared.model, 1e-3, &device).unwrap() > BROKEN / 10.0);
        let proto = prepared.model.graph.as_ref().unwrap();
        let cache = Calibration::new(proto, &prepared.sites, false)
            .unwrap()
            .max_only();
        let mut calib = cache;
        calib
            .feed(
                &graph,
                vec![(
                    "x".to_string(),
                    Value::from_f32(vec![1.0, 1.0, 0.5, 0.25], &[1, 4], &device),
                )],
            )
            .unwrap();
        let cache = calib.cache(Method::Max, &Default::default()).unwrap();
        let found = breaking_layers(&prepared, &cache, &check, &options, &device).unwrap();
        assert!(
            matches!(found, Breaking::Unsteady(e) if e > BROKEN / 10.0),
            "{found:?}"
        );
    }

    #[test]
    fn an_empty_check_is_refused() {
        let device = Device::flex();
        let (prepared, cache, _) = fixture(&device);
        let e = sensitivity(
            &prepared,
            &cache,
            &ModelCheck::new(),
            &QuantizeOptions::default(),
            &device,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no item"), "{e}");
    }
}
