//! Streaming calibration of an ONNX graph: one pass over the data, every activation
//! quantizer's histogram and max collected at once as the runtime produces each tensor
//! (activations are never stored), weights read from their initializers.
//!
//! Tensors inside subgraphs are collected under their scoped name ([`Site::key`]) every
//! time the subgraph runs; a subgraph never run on the data (a branch not taken) leaves
//! its quantizers without data, and [`Calibration::cache`] leaves them out
//! ([`Calibration::uncalibrated`]) rather than invent an amax.
//!
//! Histograms use the dyadic grid ([`Grid::Dyadic`]): the cache depends only on the
//! calibration items, not on the batch size or the order the batches come in.

use std::collections::{BTreeMap, HashMap};

use onnx_ir::GraphProto;
use qdq::calib::{Grid, HistogramCalibrator, MaxCalibrator};

use super::Method;
use super::auto::Choice;
use super::cache::{CalibrationCache, Entry};
use crate::error::{Error, Result};
use crate::passes::{Site, SiteKind};
use crate::proto::decode::floats;
use crate::runtime::value::dyn_apply;
use crate::runtime::{OnnxGraph, RunError, Value};

/// What one activation site collects.
pub(super) enum Stats {
    /// A histogram on the dyadic grid, which also tracks the exact max: every method.
    Histogram(HistogramCalibrator),
    /// The running max |x| only ([`Calibration::max_only`]): the `max` method,
    /// without binning.
    Max(MaxCalibrator),
}

/// A calibration in progress over `sites`.
pub struct Calibration {
    pub(super) sites: Vec<Site>,
    /// One collector per activation tensor, by [`Site::key`].
    pub(super) stats: HashMap<String, Stats>,
    weights: BTreeMap<String, Vec<f32>>,
    pub(super) batches: usize,
    /// The most elements of any one value the graph computed in a batch fed here.
    largest: usize,
}

pub(super) fn qdq_err(tensor: &str, e: qdq::Error) -> Error {
    Error::Graph(format!("calibrating tensor `{tensor}`: {e}"))
}

impl Calibration {
    /// Prepares calibrators for `sites` of `graph`; weight amaxes (per channel, max)
    /// are computed here from the initializers.
    ///
    /// # Errors
    /// A weight site whose tensor is not a float constant.
    pub fn new(graph: &GraphProto, sites: &[Site], unsigned: bool) -> Result<Self> {
        let mut stats = HashMap::new();
        let mut weights = BTreeMap::new();
        for s in sites {
            match s.kind {
                SiteKind::Activation => {
                    let hist = HistogramCalibrator::new(8, None, unsigned)
                        .map_err(|e| qdq_err(&s.tensor, e))?
                        .with_grid(Grid::Dyadic);
                    stats.insert(s.key(), Stats::Histogram(hist));
                }
                SiteKind::Weight { axis } => {
                    weights.insert(s.key(), site_weight_amax(graph, s, axis)?);
                }
            }
        }
        Ok(Self {
            sites: sites.to_vec(),
            stats,
            weights,
            batches: 0,
            largest: 0,
        })
    }

    /// Collects on `grid` instead of [`Grid::Dyadic`] (before any batch is fed):
    /// [`Grid::Reference`] reproduces pytorch-quantization's histograms for one given
    /// batching, and makes the cache depend on the batch size; for comparisons.
    #[must_use]
    pub fn with_grid(mut self, grid: Grid) -> Self {
        for stat in self.stats.values_mut() {
            if let Stats::Histogram(hist) = stat {
                *hist = hist.clone().with_grid(grid);
            }
        }
        self
    }

    /// Collects only the max |x| of each activation (before any batch is fed): no
    /// histogram is built, so calibration runs faster, and [`Calibration::cache`]
    /// then gives the `max` method only (the same amaxes, bit for bit).
    #[must_use]
    pub fn max_only(mut self) -> Self {
        for stat in self.stats.values_mut() {
            if let Stats::Histogram(hist) = stat {
                *stat = Stats::Max(MaxCalibrator::new(8, None, hist.unsigned()));
            }
        }
        self
    }

    /// Number of batches fed.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// Runs one batch through `graph`, feeding every watched tensor (graph inputs
    /// included) to its calibrators; returns the graph's outputs.
    ///
    /// # Errors
    /// A run error, or NaN/Inf in a watched tensor (named).
    pub fn feed(
        &mut self,
        graph: &OnnxGraph,
        inputs: Vec<(String, Value)>,
    ) -> Result<Vec<(String, Value)>> {
        for (name, v) in &inputs {
            self.observe(name, v)?;
        }
        let mut failure = None;
        let outputs = graph.run_with(inputs, &mut |name, v| {
            self.largest = self.largest.max(v.shape().iter().product());
            if let Err(e) = self.observe(name, v) {
                let msg = e.to_string();
                failure = Some(e);
                return Err(RunError::Observer(msg));
            }
            Ok(())
        });
        if let Some(e) = failure {
            return Err(e);
        }
        self.batches += 1;
        outputs.map_err(Error::Run)
    }

    /// The most elements of any one value (activation or output) the graph computed
    /// in one of the batches fed here: what a batch of that many items holds at its
    /// largest, for sizing the next ones.
    pub fn largest_value(&self) -> usize {
        self.largest
    }

    /// Folds `other`, a calibration of the same sites fed other items, into this one:
    /// the result is what one calibration fed both sets of items gives, bit for bit
    /// (the dyadic grid and the max do not depend on how items are split or ordered),
    /// so batches can be collected on several threads and joined.
    ///
    /// # Errors
    /// Calibrations of different sites or collectors (the tensor named).
    pub fn absorb(&mut self, other: Calibration) -> Result<()> {
        for (key, theirs) in other.stats {
            let ours = self.stats.get_mut(&key).ok_or_else(|| {
                Error::Graph(format!(
                    "joining calibrations: tensor `{key}` is not collected here"
                ))
            })?;
            let merged = match (ours, &theirs) {
                (Stats::Histogram(a), Stats::Histogram(b)) => a.merge(b),
                (Stats::Max(a), Stats::Max(b)) => a.merge(b),
                _ => Err(qdq::Error::Data(
                    "a histogram and a max collector do not join".into(),
                )),
            };
            merged.map_err(|e| qdq_err(&key, e))?;
        }
        self.batches += other.batches;
        self.largest = self.largest.max(other.largest);
        Ok(())
    }

    fn observe(&mut self, name: &str, v: &Value) -> Result<()> {
        let Some(stat) = self.stats.get_mut(name) else {
            return Ok(());
        };
        // A float tensor goes to the calibrator as it is, so on a GPU only the
        // histogram (or the max) comes back to the host.
        let collected = match (stat, v) {
            (Stats::Histogram(hist), Value::Float(t)) => dyn_apply!(&t.t, |x, R| hist.collect(x)),
            (Stats::Histogram(hist), _) => hist.collect_slice(&v.to_f32().map_err(Error::Run)?),
            (Stats::Max(max), v) => {
                let collected = match v {
                    Value::Float(t) => dyn_apply!(&t.t, |x, R| max.collect(x)),
                    _ => {
                        let data = v.to_f32().map_err(Error::Run)?;
                        max.collect_slice(&data, &[data.len()])
                    }
                };
                // The max propagates NaN and Inf; refuse them as the histogram does.
                collected.and_then(|()| match max.compute_amax() {
                    Some(a) if a.values().iter().any(|x| !x.is_finite()) => Err(qdq::Error::Data(
                        "max calibration input contains NaN or Inf".into(),
                    )),
                    _ => Ok(()),
                })
            }
        };
        collected.map_err(|e| qdq_err(name, e))
    }

    /// Activation quantizers inside subgraphs that saw no data (a branch not taken on
    /// the calibration set): [`Calibration::cache`] leaves them out.
    pub fn uncalibrated(&self) -> Vec<&Site> {
        self.sites
            .iter()
            .filter(|s| s.in_subgraph() && s.kind == SiteKind::Activation)
            .filter(|s| match self.stats.get(&s.key()) {
                Some(Stats::Histogram(h)) => {
                    matches!(h.compute_amax(Method::Max), Err(qdq::Error::NoData { .. }))
                }
                Some(Stats::Max(m)) => m.compute_amax().is_none(),
                None => false,
            })
            .collect()
    }

    /// The amax of each of `methods` for activation `tensor` (a [`Site::key`]), from its histogram;
    /// methods that fail on it (and tensors with no histogram) give none.
    pub fn candidate_amaxes(&self, tensor: &str, methods: &[Method]) -> Vec<(Method, f32)> {
        let Some(Stats::Histogram(hist)) = self.stats.get(tensor) else {
            return Vec::new();
        };
        methods
            .iter()
            .filter_map(|&m| Some((m, hist.compute_amax(m).ok()?.values()[0])))
            .filter(|(_, a)| a.is_finite() && *a > 0.0)
            .collect()
    }

    /// The per-channel amax of weight `tensor` (a [`Site::key`]).
    pub fn weight_amax(&self, tensor: &str) -> Option<Vec<f32>> {
        self.weights.get(tensor).cloned()
    }

    /// Amax of every site: activations by `method` (or `per_tensor[tensor]`), weights
    /// by max per channel; Concat groups share their largest amax. Keys are
    /// [`Site::key`]s; the [`Calibration::uncalibrated`] quantizers have no entry.
    ///
    /// # Errors
    /// No batch was fed (an empty calibration set), or a method fails on a histogram.
    pub fn cache(
        &self,
        method: Method,
        per_tensor: &HashMap<String, Method>,
    ) -> Result<CalibrationCache> {
        self.cache_with(method, per_tensor, &HashMap::new())
    }

    /// [`Calibration::cache`], with the tensors in `chosen` taking the amax `auto`
    /// chose for them (their method recorded as `auto:METHOD`).
    ///
    /// # Errors
    /// As [`Calibration::cache`].
    pub fn cache_with(
        &self,
        method: Method,
        per_tensor: &HashMap<String, Method>,
        chosen: &HashMap<String, Choice>,
    ) -> Result<CalibrationCache> {
        if self.batches == 0 {
            return Err(Error::Graph(
                "the calibration set is empty: give at least one batch of data".into(),
            ));
        }
        let skipped: std::collections::HashSet<String> =
            self.uncalibrated().iter().map(|s| s.key()).collect();
        let mut entries = BTreeMap::new();
        for (tensor, amax) in &self.weights {
            entries.insert(
                tensor.clone(),
                Entry {
                    amax: amax.clone(),
                    method: "max".into(),
                },
            );
        }
        for (tensor, stat) in &self.stats {
            if skipped.contains(tensor) {
                continue;
            }
            if let Some(c) = chosen.get(tensor) {
                entries.insert(
                    tensor.clone(),
                    Entry {
                        amax: vec![c.amax],
                        method: format!("auto:{}", c.method),
                    },
                );
                continue;
            }
            let m = per_tensor.get(tensor).copied().unwrap_or(method);
            let amax = match stat {
                Stats::Histogram(hist) => hist
                    .compute_amax(m)
                    .map_err(|e| qdq_err(tensor, e))?
                    .values()[0],
                Stats::Max(_) if m != Method::Max => {
                    return Err(Error::Graph(format!(
                        "tensor `{tensor}`: method {m} needs histograms, but only the max was collected (max_only)"
                    )));
                }
                // No value seen: the histogram's NoData error, for the same case.
                Stats::Max(max) => {
                    let amax = max.compute_amax().ok_or_else(|| {
                        qdq_err(
                            tensor,
                            qdq::Error::NoData {
                                calibrator: max.to_string(),
                            },
                        )
                    })?;
                    amax.values()[0]
                }
            };
            entries.insert(
                tensor.clone(),
                Entry {
                    amax: vec![amax],
                    method: m.to_string(),
                },
            );
        }
        // Concat inputs: one amax per group, the largest, so no input clips.
        let mut group_max: HashMap<usize, f32> = HashMap::new();
        for s in self.sites.iter().filter(|s| s.group.is_some()) {
            let a = entries.get(&s.key()).map_or(0.0, |e| e.amax[0]);
            let g = group_max.entry(s.group.unwrap_or(0)).or_insert(0.0);
            *g = g.max(a);
        }
        for s in self.sites.iter().filter(|s| s.group.is_some()) {
            if let (Some(e), Some(g)) = (
                entries.get_mut(&s.key()),
                group_max.get(&s.group.unwrap_or(0)),
            ) {
                e.amax = vec![*g];
            }
        }
        Ok(CalibrationCache { entries })
    }
}

/// Per-channel max |w| of weight site `site`'s constant along `axis`, found in the
/// site's graph or an enclosing one (`graph` is the main graph).
pub(crate) fn site_weight_amax(graph: &GraphProto, site: &Site, axis: usize) -> Result<Vec<f32>> {
    let mut consts = HashMap::new();
    if let Some(t) = crate::passes::visible_constant(graph, &site.graph, &site.tensor) {
        consts.insert(site.tensor.as_str(), t);
    }
    weight_amax(&consts, &site.tensor, axis)
}

/// Per-channel max |w| of constant `tensor` along `axis` (weights need no data).
pub(crate) fn weight_amax(
    consts: &HashMap<&str, &onnx_ir::TensorProto>,
    tensor: &str,
    axis: usize,
) -> Result<Vec<f32>> {
    let t = consts
        .get(tensor)
        .ok_or_else(|| Error::Graph(format!("weight `{tensor}` is not a constant")))?;
    let data =
        floats(t).ok_or_else(|| Error::Graph(format!("weight `{tensor}` is not float32")))?;
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let mut m = MaxCalibrator::new(8, Some(vec![axis as isize]), false);
    m.collect_slice(&data, &dims)
        .map_err(|e| qdq_err(tensor, e))?;
    Ok(m.compute_amax()
        .map(|a| a.values().to_vec())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use onnx_ir::ModelProto;

    use super::*;
    use crate::proto::elem as dtype;
    use crate::proto::value_info_named;
    use crate::quantize::{QuantizeOptions, prepare};

    /// x [batch,1,4,4] -> Conv(2x1x3x3, pad 1) -> Relu -> Flatten -> Gemm(32 -> 3).
    fn float_model() -> ModelProto {
        crate::test_models::conv_relu_gemm(value_info_named(
            "x",
            dtype::FLOAT,
            &[1, 1, 4, 4],
            Some("batch"),
        ))
    }

    /// 64 items of 16 values whose ranges differ from item to item (1/8 to 8, one
    /// item late in the set reaching 40), so the first batch's max is not the set's.
    fn items() -> Vec<Vec<f32>> {
        let mut s = 5u64;
        (0..64)
            .map(|i| {
                let scale = 2f32.powi(i % 7 - 3) * if i == 50 { 5.0 } else { 1.0 };
                (0..16)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.4) * 2.0 * scale
                    })
                    .collect()
            })
            .collect()
    }

    /// The test model's float graph and a calibration of its sites, set up by `setup`.
    fn start(setup: impl FnOnce(Calibration) -> Calibration) -> (OnnxGraph, Calibration) {
        let prepared = prepare(&float_model(), &QuantizeOptions::default()).unwrap();
        let graph = OnnxGraph::from_model(&prepared.model, &Device::flex()).unwrap();
        let proto = prepared.model.graph.as_ref().unwrap();
        let calib = Calibration::new(proto, &prepared.sites, false).unwrap();
        (graph, setup(calib))
    }

    /// Feeds `items` to `calib` in batches of `batch`.
    fn feed(graph: &OnnxGraph, calib: &mut Calibration, items: &[Vec<f32>], batch: usize) {
        for chunk in items.chunks(batch) {
            let x = Value::from_f32(chunk.concat(), &[chunk.len(), 1, 4, 4], graph.device());
            calib.feed(graph, vec![("x".into(), x)]).unwrap();
        }
    }

    /// `items` fed in batches of `batch` on `grid`.
    fn calibrate(items: &[Vec<f32>], batch: usize, grid: Grid) -> Calibration {
        let (graph, mut calib) = start(|c| c.with_grid(grid));
        feed(&graph, &mut calib, items, batch);
        assert_eq!(calib.batches(), items.len().div_ceil(batch));
        calib
    }

    /// The cache of `calib` by `method`, as saved JSON.
    fn json(calib: &Calibration, method: &str) -> String {
        let cache = calib
            .cache(method.parse().unwrap(), &HashMap::new())
            .unwrap();
        // Both activation quantizers (the Conv's and the Gemm's inputs) are in it.
        assert!(cache.entries.contains_key("x") && cache.entries.contains_key("f"));
        serde_json::to_string_pretty(&cache).unwrap()
    }

    /// The caches of `items` in batches of `batch` (dyadic grid), by method.
    fn caches(items: &[Vec<f32>], batch: usize) -> Vec<String> {
        let calib = calibrate(items, batch, Grid::Dyadic);
        ["entropy", "mse", "percentile=99.9", "max"]
            .map(|m| json(&calib, m))
            .to_vec()
    }

    #[test]
    fn max_only_gives_the_histograms_max_without_binning() {
        let items = items();
        let (graph, mut calib) = start(Calibration::max_only);
        feed(&graph, &mut calib, &items, 7);
        let max = calib.cache(Method::Max, &HashMap::new()).unwrap();
        assert_eq!(
            serde_json::to_string_pretty(&max).unwrap(),
            caches(&items, 32)[3]
        );
        // No histogram, so no other method.
        let e = calib.cache(Method::entropy(), &HashMap::new()).unwrap_err();
        assert!(e.to_string().contains("only the max was collected"), "{e}");
        // NaN is refused, naming the tensor, as on histograms.
        let mut bad = items[0].clone();
        bad[3] = f32::NAN;
        let x = Value::from_f32(bad, &[1, 1, 4, 4], graph.device());
        let e = calib.feed(&graph, vec![("x".into(), x)]).unwrap_err();
        assert!(
            e.to_string().contains("`x`") && e.to_string().contains("NaN"),
            "{e}"
        );
    }

    /// Items split across calibrations (as the collecting pass's workers split them)
    /// and joined give the one-pass cache of every method, histograms and max alone.
    #[test]
    fn joined_calibrations_give_the_one_pass_cache() {
        let items = items();
        let want = caches(&items, 32);
        for cut in [1, 20, 50, 63] {
            let (graph, mut first) = start(|c| c);
            let (_, mut second) = start(|c| c);
            feed(&graph, &mut first, &items[cut..], 5);
            feed(&graph, &mut second, &items[..cut], 3);
            first.absorb(second).unwrap();
            let got = ["entropy", "mse", "percentile=99.9", "max"].map(|m| json(&first, m));
            assert_eq!(got.to_vec(), want, "cut at {cut}");
            let (graph, mut first) = start(Calibration::max_only);
            let (_, mut second) = start(Calibration::max_only);
            feed(&graph, &mut first, &items[..cut], 4);
            feed(&graph, &mut second, &items[cut..], 6);
            first.absorb(second).unwrap();
            assert_eq!(json(&first, "max"), want[3], "cut at {cut}");
        }
        // A histogram and a max collector do not join; the tensor is named.
        let (_, mut hist) = start(|c| c);
        let (_, max) = start(Calibration::max_only);
        let e = hist.absorb(max).unwrap_err().to_string();
        assert!(e.contains("do not join") && e.contains('`'), "{e}");
    }

    #[test]
    fn the_cache_does_not_depend_on_batch_size_or_order() {
        let items = items();
        let want = caches(&items, 32);
        assert_eq!(caches(&items, 1), want);
        let mut reversed = items.clone();
        reversed.reverse();
        assert_eq!(caches(&reversed, 7), want);
        // Entropy and MSE give other amaxes than max here, so the comparison is not
        // one of trivial caches.
        assert_ne!(want[0], want[3]);
        assert_ne!(want[1], want[3]);
        // The same items on the reference grid: the cache depends on the split (this
        // is what the dyadic grid fixes); max alone agrees.
        let reference =
            |batch: usize, method: &str| json(&calibrate(&items, batch, Grid::Reference), method);
        assert_ne!(
            reference(1, "percentile=99.9"),
            reference(32, "percentile=99.9")
        );
        assert_eq!(reference(1, "max"), want[3]);
    }
}
