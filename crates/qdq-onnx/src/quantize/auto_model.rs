//! `auto`'s last step: the whole model decides between the per-quantizer choices and
//! each candidate method applied to every quantizer (those inside subgraphs, which have
//! no per-quantizer probe, included: the whole model chooses their method).
//!
//! Each quantizer's choice ([`super::AutoSelect`]) is the best one *for its consumers*
//! with every other quantizer in float; errors of neighbouring layers can add up
//! differently (on the PP-OCRv4 recognizer the per-quantizer choices left three times
//! the output error of percentile=99.999 everywhere). So the
//! written model's outputs decide: the QDQ model of every distinct assignment runs on
//! the items `auto` measured on, and its outputs' distance to the float model's,
//! `Σ (q - f)² / Σ f²` per output and batch, summed over outputs and averaged over
//! batches, is measured. The closest uniform method replaces the per-quantizer choices
//! when its error is at most [`DECISIVE`] times theirs (ties go to the earlier
//! candidate): a few items are a rough sample, and small differences there did not
//! carry over to other items, where large ones did. The per-quantizer choices are
//! measured first; a uniform method stops as soon as it can no longer be kept, or is
//! behind them on the batches measured so far ([`Stopped`]).

use std::collections::HashMap;

use onnx_ir::ModelProto;
use qdq::tensor_quant::HostValues;
use rayon::prelude::*;

use super::auto::{Choice, candidates};
use super::{Calibration, CalibrationCache, Method, Prepared, QuantizeOptions, apply};
use crate::error::{Error, Result};
use crate::runtime::{OnnxGraph, RunError, Value};

/// How much lower a uniform method's whole-model error must be than the per-quantizer
/// choices' to replace them: a third. Eight items estimate the whole model's error
/// roughly, while each per-quantizer choice is measured on its own consumers; on the
/// corpus, uniform methods that were only slightly better on those items (by 7–40 %)
/// were worse on other items, those that were 1.5–3x better were better there too.
pub const DECISIVE: f64 = 2.0 / 3.0;

/// The assignment `auto` kept, with what every assignment measured.
#[derive(Clone, Debug)]
pub struct ModelChoice {
    /// The kept assignment's cache (activations `auto:METHOD`).
    pub cache: CalibrationCache,
    /// `per quantizer` or the method applied to every quantizer.
    pub label: String,
    /// Every distinct assignment and its whole-model error (NaN: it did not run).
    pub errors: Vec<(String, Measured)>,
}

/// A whole-model error: over every kept batch, or a lower bound from the first
/// `batches` of them where the measuring stopped because the assignment could no
/// longer be kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// The error: the mean over all batches, counting the unmeasured ones as zero when
    /// stopped (so a lower bound of the full error).
    pub error: f64,
    /// Batches measured.
    pub batches: usize,
    /// Why the measuring stopped before the last batch; `None`: every batch was measured.
    pub stopped: Option<Stopped>,
}

/// Why [`choose_model`] stopped measuring a uniform method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stopped {
    /// Its error so far already passed [`DECISIVE`] times the per-quantizer choices'
    /// whole error: it can no longer be kept.
    Above,
    /// Its error summed over the batches measured so far passed the per-quantizer
    /// choices' on the same batches ([`choose_model`]'s race): both means over those
    /// batches.
    Behind {
        /// This method's.
        ours: f64,
        /// The per-quantizer choices'.
        theirs: f64,
    },
}

impl Measured {
    fn whole(error: f64) -> Self {
        Self {
            error,
            batches: 0,
            stopped: None,
        }
    }

    /// Whether every batch was measured.
    pub fn complete(&self) -> bool {
        self.stopped.is_none()
    }
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let batches = match self.batches {
            1 => "1 batch".to_string(),
            n => format!("{n} batches"),
        };
        match self.stopped {
            None => write!(f, "{:.3e}", self.error),
            Some(Stopped::Above) => write!(f, ">{:.3e} (stopped after {batches})", self.error),
            // The lower bound alone would read as lower than the kept error: say what
            // the two measured on the same batches.
            Some(Stopped::Behind { ours, theirs }) => write!(
                f,
                ">{:.3e} (stopped after {batches}: {ours:.3e} there, the per-quantizer choices {theirs:.3e})",
                self.error
            ),
        }
    }
}

/// When [`ModelCheck`] may stop measuring an assignment before its last batch: the
/// decision the measure serves is already known.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StopWhen<'a> {
    /// Stop once the error summed so far, divided by the number of batches, passes
    /// this: the mean over all batches could only be larger.
    pub above: Option<f64>,
    /// Per-batch errors of the assignment this one races: the batches are measured in
    /// decreasing order of these, and the measure stops once the error summed so far
    /// passes theirs summed over the same batches.
    pub behind: Option<&'a [f64]>,
}

/// Chooses between the per-quantizer `chosen` amaxes and each of [`candidates`] applied
/// to every quantizer in `chosen`, by the whole model's error on `check`'s batches
/// (module docs): the least error among the uniform methods replaces the per-quantizer
/// choices when it is at most [`DECISIVE`] times theirs. The other tensors keep `method`
/// or their `per_tensor` method. An assignment whose model fails to build or run counts
/// as NaN and is not kept.
///
/// # Errors
/// A method failing on a histogram, or every assignment failing (the per-quantizer
/// one's error is returned).
pub fn choose_model(
    prepared: &Prepared,
    calib: &Calibration,
    (method, per_tensor): (Method, &HashMap<String, Method>),
    chosen: &HashMap<String, Choice>,
    check: &ModelCheck,
    options: &QuantizeOptions,
    device: &burn::tensor::Device,
) -> Result<ModelChoice> {
    let mut assignments = vec![(
        "per quantizer".to_string(),
        calib.cache_with(method, per_tensor, chosen)?,
    )];
    // The quantizers inside subgraphs have no probe (see `AutoSelect::new`): the
    // uniform methods apply to them too, so the whole model's error chooses theirs.
    let mut varied: Vec<String> = chosen.keys().cloned().collect();
    varied.extend(
        prepared
            .sites
            .iter()
            .filter(|s| s.in_subgraph() && s.kind == super::SiteKind::Activation)
            .map(super::Site::key)
            .filter(|k| !chosen.contains_key(k) && !per_tensor.contains_key(k)),
    );
    varied.sort();
    varied.dedup();
    for m in candidates() {
        let uniform: HashMap<String, Choice> = varied
            .iter()
            .filter_map(|t| {
                let (_, amax) = calib.candidate_amaxes(t, &[m]).into_iter().next()?;
                Some((
                    t.clone(),
                    Choice {
                        method: m,
                        amax,
                        errors: Vec::new(),
                    },
                ))
            })
            .collect();
        let cache = calib.cache_with(method, per_tensor, &uniform)?;
        // Methods that give the same amaxes make the same model: measured once.
        let same = |c: &CalibrationCache| {
            c.entries.len() == cache.entries.len()
                && c.entries
                    .iter()
                    .zip(&cache.entries)
                    .all(|(a, b)| a.0 == b.0 && a.1.amax == b.1.amax)
        };
        if !assignments.iter().any(|(_, c)| same(c)) {
            assignments.push((m.to_string(), cache));
        }
    }
    let measure = |cache: &CalibrationCache, stop: (StopWhen, usize)| {
        apply(prepared, cache, options)
            .and_then(|m| check.error_over(&m, check.len(), stop, None, device))
    };
    // The per-quantizer choices first. A uniform method stops as soon as its error so
    // far passes DECISIVE times their whole error (it can no longer replace them: the
    // same decision as measuring it to the end), or passes theirs on the same batches,
    // taken from their worst down: a method not even better where they err most is not
    // the decisively better one (on per-batch traces of 31 models this race kept every
    // decision and cut the step's runs by a fifth).
    let measured: Vec<Result<Measured>> = if assignments.len() == 1 || check.is_empty() {
        assignments
            .iter()
            .map(|_| Ok(Measured::whole(0.0)))
            .collect()
    } else {
        // Alone, so its batches run side by side; the uniform methods run side by side
        // with each other, each batch after batch (to stop at the first it can).
        let width = parallel_width(prepared);
        let (per, per_batch) = match measure(&assignments[0].1, (StopWhen::default(), width)) {
            Ok((m, batches)) => (Ok(m), Some(batches)),
            Err(e) => (Err(e), None),
        };
        let stop = StopWhen {
            above: per.as_ref().ok().map(|m| DECISIVE * m.error),
            behind: per_batch.as_deref(),
        };
        let mut all = vec![per];
        all.extend(side_by_side(&assignments[1..], width, |(_, cache)| {
            measure(cache, (stop, 1)).map(|(m, _)| m)
        }));
        all
    };
    let mut errors = Vec::with_capacity(assignments.len());
    let mut first_failure = None;
    for ((label, _), m) in assignments.iter().zip(measured) {
        let m = m.unwrap_or_else(|e| {
            first_failure.get_or_insert(e);
            Measured::whole(f64::NAN)
        });
        errors.push((label.clone(), m));
    }
    let Some(k) = decide(&errors) else {
        return Err(first_failure.unwrap_or_else(|| {
            Error::Graph(
                "auto: every candidate model gave NaN outputs on the items it measured, where the float model's are numbers; choose a method (--method max, percentile, ...)".into(),
            )
        }));
    };
    let (label, cache) = assignments.swap_remove(k);
    Ok(ModelChoice {
        cache,
        label,
        errors,
    })
}

/// Which of `errors` [`choose_model`] keeps (the first is the per-quantizer choices'):
/// the least error among those measured to the end, a uniform method only when it is
/// at most [`DECISIVE`] times the per-quantizer one (or that one is NaN). A stopped
/// method's error is a lower bound of a method that can no longer win, never kept.
/// `None` when every error is NaN.
fn decide(errors: &[(String, Measured)]) -> Option<usize> {
    let totals: Vec<f64> = errors
        .iter()
        .map(|(_, m)| if m.complete() { m.error } else { f64::NAN })
        .collect();
    let k = least(&totals)?;
    // A uniform method replaces the per-quantizer choices only on decisive evidence.
    Some(
        match k == 0 || totals[0].is_nan() || totals[k] <= DECISIVE * totals[0] {
            true => k,
            false => 0,
        },
    )
}

/// How many whole models [`choose_model`] (and `sensitivity`) runs at once: [`side_by_side`]'s default
/// width, and one when the model's weights are over [`SERIAL_ABOVE_BYTES`] (each running
/// copy holds its own quantized weights and activations; memory goes first on large
/// models).
pub(crate) fn parallel_width(prepared: &Prepared) -> usize {
    // The runtime holds weights as f32, whatever their stored type.
    let weights: usize = prepared.model.graph.as_ref().map_or(0, |g| {
        g.initializer
            .iter()
            .map(|t| crate::proto::decode::numel(t).saturating_mul(4))
            .fold(0, usize::saturating_add)
    });
    if weights > SERIAL_ABOVE_BYTES {
        1
    } else {
        default_width()
    }
}

/// Weights above which `auto` runs its whole models one at a time (256 MiB).
const SERIAL_ABOVE_BYTES: usize = 256 << 20;

/// The most runs `auto` makes at once: past a few, the serial parts of each run are
/// covered and more copies only add memory.
const MAX_SIDE_BY_SIDE: usize = 4;

/// How many runs of a model to make at once: one per core, at most
/// [`MAX_SIDE_BY_SIDE`] (auto's candidates, the calibration pass's batches).
pub fn default_width() -> usize {
    rayon::current_num_threads().clamp(1, MAX_SIDE_BY_SIDE)
}

/// `f` of every item, in order, `width` items at a time on rayon's threads. `auto`'s
/// runs are largely elementwise work on one thread each, so running a few side by
/// side fills the cores; each result is computed exactly as alone.
pub(crate) fn side_by_side<T: Sync, R: Send>(
    items: &[T],
    width: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let mut out = Vec::with_capacity(items.len());
    for group in items.chunks(width.max(1)) {
        out.extend(group.par_iter().map(&f).collect::<Vec<_>>());
    }
    out
}

/// One kept batch: its inputs and the float model's outputs on the host.
type Kept = (Vec<(String, Value)>, Vec<HostValues>);

/// The float model's outputs on `auto`'s items, kept with the inputs that made them,
/// to measure whole quantized models against.
#[derive(Default)]
pub struct ModelCheck {
    batches: Vec<Kept>,
    /// The graph outputs measured; empty: every output.
    outputs: Vec<String>,
}

impl ModelCheck {
    /// An empty check measuring every output.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty check measuring only the graph outputs named in `outputs` (every
    /// output when empty): the ones that matter when others are auxiliary (a recurrent
    /// state, a debug tensor) and would otherwise weigh as much in the choice.
    pub fn measuring(outputs: Vec<String>) -> Self {
        Self {
            batches: Vec::new(),
            outputs,
        }
    }

    /// Whether output `name` is measured.
    fn measures(&self, name: &str) -> bool {
        self.outputs.is_empty() || self.outputs.iter().any(|o| o == name)
    }

    /// Keeps one batch: its `inputs` and the float model's `outputs` on them.
    ///
    /// # Errors
    /// An output that cannot be read as numbers (a sequence, a string tensor).
    pub fn push(
        &mut self,
        inputs: Vec<(String, Value)>,
        outputs: &[(String, Value)],
    ) -> Result<()> {
        let host = outputs
            .iter()
            .filter(|(name, _)| self.measures(name))
            .map(|(name, v)| {
                v.host_f32()
                    .map_err(|e| Error::Graph(format!("auto: reading float output `{name}`: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        self.batches.push((inputs, host));
        Ok(())
    }

    /// Whether no batch was kept.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The number of kept batches.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// The error of quantized `model` against float: for every batch and output,
    /// `Σ (q - f)² / Σ f²` (the absolute squared error where the float output is all
    /// zeros), summed over outputs and averaged over batches; NaN when an output is NaN.
    ///
    /// # Errors
    /// The model does not load or run, or its outputs differ in number from the float
    /// model's (an output of another length is compared with zeros past the shorter
    /// end).
    pub fn error(&self, model: &ModelProto, device: &burn::tensor::Device) -> Result<f64> {
        self.error_on_first(model, self.batches.len(), device)
    }

    /// [`ModelCheck::error`] on the first `first` kept batches only (all when there are
    /// fewer): a cheaper, rougher estimate.
    ///
    /// # Errors
    /// As [`ModelCheck::error`].
    pub fn error_on_first(
        &self,
        model: &ModelProto,
        first: usize,
        device: &burn::tensor::Device,
    ) -> Result<f64> {
        self.error_over(model, first, (StopWhen::default(), 1), None, device)
            .map(|(m, _)| m.error)
    }

    /// [`ModelCheck::error`] of `model` (the float model itself, to see how steady its
    /// outputs are) with every float input value scaled by `1 ± rel` (the sign a fixed
    /// pseudo-random pattern): far below INT8's rounding for `rel` = 1e-3, so a
    /// continuous model moves by about `rel²` there, while outputs that sort or pick
    /// (TopK, ArgMax, NMS) jump.
    ///
    /// # Errors
    /// As [`ModelCheck::error`].
    pub fn nudged_error(
        &self,
        model: &ModelProto,
        rel: f32,
        device: &burn::tensor::Device,
    ) -> Result<f64> {
        self.error_over(
            model,
            self.batches.len(),
            (StopWhen::default(), 1),
            Some(rel),
            device,
        )
        .map(|(m, _)| m.error)
    }

    /// [`ModelCheck::error`] over the first `first` batches, stopping early as `stop`
    /// says, float inputs nudged by `1 ± nudge` when given
    /// ([`ModelCheck::nudged_error`]); with each measured batch's error, in the order
    /// measured (the batches' own; in a race, [`StopWhen::behind`]'s). `width` batches
    /// run at once on one graph (the stop is decided between such groups, so only 1
    /// stops at the first batch it can); the errors do not depend on it.
    fn error_over(
        &self,
        model: &ModelProto,
        first: usize,
        (stop, width): (StopWhen, usize),
        nudge: Option<f32>,
        device: &burn::tensor::Device,
    ) -> Result<(Measured, Vec<f64>)> {
        let graph = OnnxGraph::from_model(&fused(model.clone()), device).map_err(Error::Run)?;
        let batches = &self.batches[..first.min(self.batches.len())];
        let n = batches.len().max(1) as f64;
        let one = |(inputs, float): &Kept| -> Result<f64> {
            let inputs = match nudge {
                Some(rel) => nudged(inputs, rel, device)?,
                None => inputs.clone(),
            };
            let mut outputs = graph.run(inputs).map_err(Error::Run)?;
            outputs.retain(|(name, _)| self.measures(name));
            if outputs.len() != float.len() {
                return Err(Error::Run(RunError::Graph(format!(
                    "auto: the quantized model has {} outputs, the float one {}",
                    outputs.len(),
                    float.len()
                ))));
            }
            let mut error = 0.0;
            for ((_, q), f) in outputs.into_iter().zip(float) {
                let q = q.into_f32().map_err(Error::Run)?;
                // An output whose size follows the data (a TTS model's audio, as long
                // as the durations it predicts) may come out longer or shorter
                // quantized: the part one side lacks counts as zeros there.
                let (short, long) = (q.len().min(f.len()), q.len().max(f.len()));
                let zeros = vec![0.0; long - short];
                let (q_tail, f_tail) = match q.len() > f.len() {
                    true => (&q[short..], &zeros[..]),
                    false => (&zeros[..], &f[short..]),
                };
                error += relative_error([(&q[..short], &f[..short]), (q_tail, f_tail)]);
            }
            Ok(error)
        };
        // Racing, the batches where the raced assignment erred most come first: one
        // batch it got badly wrong is then seen before anything is decided (the others
        // could all favour it while it loses overall).
        let mut order: Vec<usize> = (0..batches.len()).collect();
        if let Some(theirs) = stop.behind {
            let at = |b: usize| theirs.get(b).copied().unwrap_or(0.0);
            order.sort_by(|&a, &b| at(b).total_cmp(&at(a)));
        }
        let mut per_batch: Vec<f64> = Vec::with_capacity(batches.len());
        for group in order.chunks(width.max(1)) {
            let b = per_batch.len();
            let total: f64 = per_batch.iter().sum();
            let theirs: Option<f64> = stop
                .behind
                .map(|theirs| order[..b].iter().filter_map(|&k| theirs.get(k)).sum());
            let behind = theirs.filter(|&seen| b > 0 && total > seen);
            let stopped = match stop.above {
                Some(bound) if total / n > bound => Some(Stopped::Above),
                _ => behind.map(|seen| Stopped::Behind {
                    ours: total / b as f64,
                    theirs: seen / b as f64,
                }),
            };
            if stopped.is_some() {
                let m = Measured {
                    error: total / n,
                    batches: b,
                    stopped,
                };
                return Ok((m, per_batch));
            }
            for error in side_by_side(group, group.len(), |&k| one(&batches[k])) {
                per_batch.push(error?);
            }
        }
        let m = Measured {
            error: per_batch.iter().sum::<f64>() / n,
            batches: batches.len(),
            stopped: None,
        };
        Ok((m, per_batch))
    }
}

/// `inputs` with each float tensor's values scaled by `1 ± rel`, the sign from a fixed
/// hash of the position.
fn nudged(
    inputs: &[(String, Value)],
    rel: f32,
    device: &burn::tensor::Device,
) -> Result<Vec<(String, Value)>> {
    inputs
        .iter()
        .map(|(name, v)| {
            if !v.is_tensor() || v.elem_type() != crate::proto::elem::FLOAT {
                return Ok((name.clone(), v.clone()));
            }
            let mut values = v.to_f32().map_err(Error::Run)?;
            for (i, x) in values.iter_mut().enumerate() {
                let up = ((i as u64).wrapping_mul(2_654_435_761) >> 16) & 1 == 1;
                *x *= if up { 1.0 + rel } else { 1.0 - rel };
            }
            Ok((name.clone(), Value::from_f32(values, &v.shape(), device)))
        })
        .collect()
}

/// `model` with its Q→DQ pairs as the runtime's one-node fake quant, which computes the
/// same values in one pass (`verify` checks that on every written model) where the pair
/// runs five tensor ops; `model` as it is when a pair does not fuse.
pub(crate) fn fused(mut model: ModelProto) -> ModelProto {
    let Some(graph) = model.graph.as_mut() else {
        return model;
    };
    let mut g = graph.clone();
    if crate::finetune::fuse::fuse_qdq_pairs(&mut g).is_ok() {
        *graph = g;
    }
    model
}

/// `Σ (q - f)² / Σ f²` over the values of pairs `(q, f)` of quantized and float
/// slices, in order, or the absolute `Σ (q - f)²` when every `f` is zero (any change is
/// a change). Places where the float value is NaN or infinite (a model's masked
/// outputs) say nothing and are passed over; a non-finite `q` elsewhere makes it NaN.
pub(crate) fn relative_error<'a>(pairs: impl IntoIterator<Item = (&'a [f32], &'a [f32])>) -> f64 {
    let (mut diff, mut energy) = (0.0f64, 0.0f64);
    // Slice by slice: a plain loop the compiler keeps tight (an iterator over
    // flattened outputs was a tenth of `auto`'s time on the detectors).
    for (q, f) in pairs {
        for (&q, &f) in q.iter().zip(f) {
            if !f.is_finite() {
                continue;
            }
            let (q, f) = (f64::from(q), f64::from(f));
            diff += (q - f).powi(2);
            energy += f * f;
        }
    }
    if energy > 0.0 { diff / energy } else { diff }
}

/// The index of the least error (NaN never wins; ties keep the earlier), if any is a
/// number.
pub fn least(errors: &[f64]) -> Option<usize> {
    errors
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.is_nan())
        .fold(None::<(usize, f64)>, |best, (i, &e)| match best {
            Some((_, b)) if b <= e => best,
            _ => Some((i, e)),
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::proto::elem as dtype;
    use crate::proto::{model, node, tensor_f32, value_info_named};

    /// The per-quantizer choices stay unless a uniform method measured to the end errs
    /// at most 2/3 as much; a stopped one's lower bound never wins, however low.
    #[test]
    fn decide_takes_a_uniform_method_only_when_complete_and_decisive() {
        let m = |error: f64, stopped: Option<Stopped>| Measured {
            error,
            batches: 1,
            stopped,
        };
        let per = ("per quantizer".to_string(), m(3.0, None));
        let with = |others: &[Measured]| {
            let mut all = vec![per.clone()];
            all.extend(others.iter().map(|&o| ("uniform".to_string(), o)));
            decide(&all)
        };
        assert_eq!(with(&[m(2.5, None)]), Some(0));
        assert_eq!(with(&[m(2.5, None), m(2.0, None)]), Some(2));
        let behind = Some(Stopped::Behind {
            ours: 4.0,
            theirs: 3.0,
        });
        assert_eq!(with(&[m(0.1, behind)]), Some(0));
        assert_eq!(with(&[m(0.1, behind), m(1.9, None)]), Some(2));
        let failed = vec![
            ("per quantizer".to_string(), m(f64::NAN, None)),
            ("max".to_string(), m(5.0, None)),
        ];
        assert_eq!(decide(&failed), Some(1));
        assert_eq!(decide(&failed[..1]), None);
    }

    #[test]
    fn least_skips_nan_and_keeps_the_earlier_on_a_tie() {
        assert_eq!(least(&[0.5, f64::NAN, 0.2, 0.2]), Some(2));
        assert_eq!(least(&[f64::NAN, 0.1]), Some(1));
        assert_eq!(least(&[f64::NAN]), None);
        assert_eq!(least(&[]), None);
    }

    #[test]
    fn relative_error_of_a_zero_output_is_absolute() {
        assert_eq!(relative_error([(&[1.0, 2.0][..], &[1.0, 1.0][..])]), 0.5);
        assert_eq!(relative_error([(&[0.5, 0.0][..], &[0.0, 0.0][..])]), 0.25);
        // Over several outputs, one sum: (1 + 4) / (1 + 4).
        let (q, f) = ([2.0f32, 0.0], [1.0f32, 2.0]);
        assert_eq!(
            relative_error([(&q[..1], &f[..1]), (&q[1..], &f[1..])]),
            1.0
        );
        // Where the float output is NaN (masked) nothing is measured; a NaN where it
        // is a number is an error of NaN.
        let nan = f32::NAN;
        assert_eq!(relative_error([(&[nan, 3.0][..], &[nan, 2.0][..])]), 0.25);
        assert_eq!(relative_error([(&[7.0, 3.0][..], &[nan, 2.0][..])]), 0.25);
        assert!(relative_error([(&[1.0, nan][..], &[1.0, 2.0][..])]).is_nan());
    }

    /// The error of a model scaling its input by 1.5 against the float model scaling it
    /// by 2 is computed by hand: per batch `Σ (1.5x - 2x)² / Σ (2x)² = 1/16`.
    /// `y = k · x` for `x [batch, width]`.
    fn scaling(k: f32, width: usize) -> ModelProto {
        model(
            vec![node("Mul", "scale", &["x", "k"], &["y"])],
            vec![value_info_named(
                "x",
                dtype::FLOAT,
                &[1, width],
                Some("batch"),
            )],
            &["y"],
            vec![tensor_f32("k", &[1], &[k])],
            13,
        )
    }

    /// A check keeping `float`'s outputs on each of `rows`, one batch of one row each.
    fn kept(float: &ModelProto, rows: &[&[f32]], device: &Device) -> ModelCheck {
        let float = OnnxGraph::from_model(float, device).unwrap();
        let mut check = ModelCheck::new();
        assert!(check.is_empty());
        for row in rows {
            let x = Value::from_f32(row.to_vec(), &[1, row.len()], device);
            let inputs = vec![("x".to_string(), x)];
            let outputs = float.run(inputs.clone()).unwrap();
            check.push(inputs, &outputs).unwrap();
        }
        check
    }

    #[test]
    fn error_compares_whole_models_on_the_kept_batches() {
        let device = Device::flex();
        let scaled = |k: f32| scaling(k, 3);
        let rows: [&[f32]; 2] = [&[1.0, -2.0, 3.0], &[0.5, 0.25, 4.0]];
        let check = kept(&scaled(2.0), &rows, &device);
        assert_eq!(check.error(&scaled(2.0), &device).unwrap(), 0.0);
        let e = check.error(&scaled(1.5), &device).unwrap();
        assert!((e - 1.0 / 16.0).abs() < 1e-12, "{e}");
    }

    /// Four batches whose errors against the float model are known: measuring stops
    /// after the batch at which the running error passes the bound, or passes the
    /// raced assignment's on the same batches, and reports what it had; otherwise every
    /// batch is measured.
    #[test]
    fn error_over_stops_once_past_the_bound_or_behind() {
        let device = Device::flex();
        let scaled = |k: f32| scaling(k, 1);
        let rows: [&[f32]; 4] = [&[1.0], &[2.0], &[3.0], &[4.0]];
        let check = kept(&scaled(2.0), &rows, &device);
        // Every batch: (1.5x - 2x)^2 / (2x)^2 = 1/16; the mean over four is 1/16.
        let q = scaled(1.5);
        let over = |stop: StopWhen| check.error_over(&q, 4, (stop, 1), None, &device).unwrap();
        let (full, per_batch) = over(StopWhen::default());
        assert_eq!(
            (full.error, full.batches, full.stopped),
            (1.0 / 16.0, 4, None)
        );
        assert_eq!(per_batch, vec![1.0 / 16.0; 4]);
        let never = StopWhen {
            above: Some(1.0 / 16.0),
            behind: Some(&per_batch),
        };
        assert_eq!(over(never).0, full);
        // Past 1/40 after two batches (2/16 / 4 = 1/32): stopped there.
        let (stopped, seen) = over(StopWhen {
            above: Some(1.0 / 40.0),
            behind: None,
        });
        assert_eq!(
            (stopped.error, stopped.batches, stopped.stopped),
            (1.0 / 32.0, 2, Some(Stopped::Above))
        );
        assert_eq!(seen, vec![1.0 / 16.0; 2]);
        assert_eq!(stopped.to_string(), ">3.125e-2 (stopped after 2 batches)");
        assert_eq!(full.to_string(), "6.250e-2");
        // The raced assignment erred 1/16 on the first batch and nothing after: level
        // after one batch, behind after two.
        let theirs = [1.0 / 16.0, 0.0, 0.0, 0.0];
        let (behind, _) = over(StopWhen {
            above: None,
            behind: Some(&theirs),
        });
        assert_eq!(
            (behind.error, behind.batches, behind.stopped),
            (
                1.0 / 32.0,
                2,
                Some(Stopped::Behind {
                    ours: 1.0 / 16.0,
                    theirs: 1.0 / 32.0
                })
            )
        );
        assert_eq!(
            behind.to_string(),
            ">3.125e-2 (stopped after 2 batches: 6.250e-2 there, the per-quantizer choices 3.125e-2)"
        );
        // Erring nothing on three batches and badly on the last, the raced assignment
        // loses overall: its bad batch is measured first, and this one is never behind.
        let once_bad = [0.0, 0.0, 0.0, 1.0];
        let (raced, order) = over(StopWhen {
            above: None,
            behind: Some(&once_bad),
        });
        assert_eq!((raced.error, raced.stopped), (full.error, None));
        assert_eq!(order.len(), 4);
        // Two batches at a time: the same errors; a stop only between pairs.
        let by_two = |stop| check.error_over(&q, 4, (stop, 2), None, &device).unwrap();
        assert_eq!(by_two(StopWhen::default()), (full, per_batch.clone()));
        let early = StopWhen {
            above: Some(1.0 / 70.0),
            behind: None,
        };
        assert_eq!((over(early).0.batches, by_two(early).0.batches), (1, 2));
    }

    /// An output that comes out longer (a TTS model's audio follows its predicted
    /// durations) is compared with zeros past the float one's end: `y = x` against
    /// `y = [x, 2]`, error `2² / Σ x²`.
    #[test]
    fn an_output_of_another_length_counts_the_extra_part_against_zeros() {
        let device = Device::flex();
        let x = || vec![value_info_named("x", dtype::FLOAT, &[1, 2], Some("batch"))];
        let float = model(
            vec![node("Identity", "y", &["x"], &["y"])],
            x(),
            &["y"],
            vec![],
            13,
        );
        let mut cat = node("Concat", "y", &["x", "two"], &["y"]);
        cat.attribute.push(crate::proto::attr_int("axis", 1));
        let longer = model(
            vec![cat],
            x(),
            &["y"],
            vec![tensor_f32("two", &[1, 1], &[2.0])],
            13,
        );
        let check = kept(&float, &[&[1.0, 3.0]], &device);
        assert_eq!(check.error(&longer, &device).unwrap(), 4.0 / 10.0);
        // And the other way round: the float output's tail against zeros.
        let check = kept(&longer, &[&[1.0, 3.0]], &device);
        assert_eq!(check.error(&float, &device).unwrap(), 4.0 / 14.0);
    }

    /// A check measuring one named output ignores the others: two outputs `y = 2x` and
    /// `z = kx`, against a model that changes only `z` (k = 3 instead of 4).
    #[test]
    fn a_check_of_named_outputs_ignores_the_others() {
        let device = Device::flex();
        let two = |k: f32| {
            model(
                vec![
                    node("Mul", "y", &["x", "two"], &["y"]),
                    node("Mul", "z", &["x", "k"], &["z"]),
                ],
                vec![value_info_named("x", dtype::FLOAT, &[1, 2], Some("batch"))],
                &["y", "z"],
                vec![tensor_f32("two", &[1], &[2.0]), tensor_f32("k", &[1], &[k])],
                13,
            )
        };
        let float = OnnxGraph::from_model(&two(4.0), &device).unwrap();
        let inputs = vec![(
            "x".to_string(),
            Value::from_f32(vec![1.0, -3.0], &[1, 2], &device),
        )];
        let outputs = float.run(inputs.clone()).unwrap();
        let mut all = ModelCheck::new();
        all.push(inputs.clone(), &outputs).unwrap();
        let mut y_only = ModelCheck::measuring(vec!["y".into()]);
        y_only.push(inputs, &outputs).unwrap();
        // z: Σ (3x - 4x)² / Σ (4x)² = 1/16; y unchanged.
        let e = all.error(&two(3.0), &device).unwrap();
        assert!((e - 1.0 / 16.0).abs() < 1e-12, "{e}");
        assert_eq!(y_only.error(&two(3.0), &device).unwrap(), 0.0);
    }

    /// Two MatMuls in a chain, each with a quantizer in front: the per-quantizer
    /// choices and every distinct uniform method are measured on the whole model, and
    /// the kept cache is the least error's.
    #[test]
    fn choose_model_keeps_the_least_whole_model_error() {
        use crate::quantize::{AutoSelect, QuantizeOptions, prepare};
        let device = Device::flex();
        let w: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
            .collect();
        let float_model = model(
            vec![
                node("MatMul", "mm1", &["x", "w1"], &["h"]),
                node("MatMul", "mm2", &["h", "w2"], &["y"]),
            ],
            vec![value_info_named("x", dtype::FLOAT, &[1, 8], Some("batch"))],
            &["y"],
            vec![tensor_f32("w1", &[8, 8], &w), tensor_f32("w2", &[8, 8], &w)],
            13,
        );
        let options = QuantizeOptions::default();
        let prepared = prepare(&float_model, &options).unwrap();
        let graph = OnnxGraph::from_model(&prepared.model, &device).unwrap();
        let proto = prepared.model.graph.as_ref().unwrap();
        let mut calib = Calibration::new(proto, &prepared.sites, false).unwrap();
        // Small values with rare outliers, so that the methods' amaxes differ.
        let mut s = 5u64;
        let batches: Vec<Vec<f32>> = (0..6)
            .map(|b| {
                (0..32 * 8)
                    .map(|i| {
                        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        let v = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5;
                        if (b * 256 + i) % 397 == 0 {
                            v * 40.0
                        } else {
                            v
                        }
                    })
                    .collect()
            })
            .collect();
        let value = |b: &[f32]| {
            vec![(
                "x".to_string(),
                Value::from_f32(b.to_vec(), &[32, 8], &device),
            )]
        };
        for b in &batches {
            calib.feed(&graph, value(b)).unwrap();
        }
        let mut auto = AutoSelect::new(&prepared, &calib, options.format, &device).unwrap();
        let mut check = ModelCheck::new();
        for b in &batches[..2] {
            let outputs = auto.feed(&graph, value(b)).unwrap();
            check.push(value(b), &outputs).unwrap();
        }
        let chosen = auto.choices();
        assert_eq!(chosen.len(), 2, "{chosen:?}");
        let per = HashMap::new();
        let choice = choose_model(
            &prepared,
            &calib,
            (Method::Max, &per),
            &chosen,
            &check,
            &options,
            &device,
        )
        .unwrap();
        assert_eq!(choice.errors[0].0, "per quantizer");
        assert!(choice.errors.len() >= 2, "{:?}", choice.errors);
        // Each measured error is the model's, recomputed here.
        for (label, e) in &choice.errors {
            let cache = if label == "per quantizer" {
                calib.cache_with(Method::Max, &per, &chosen).unwrap()
            } else {
                let m = candidates()
                    .into_iter()
                    .find(|m| m.to_string() == *label)
                    .unwrap();
                let uniform = chosen
                    .keys()
                    .map(|t| {
                        let amax = calib.candidate_amaxes(t, &[m])[0].1;
                        (
                            t.clone(),
                            Choice {
                                method: m,
                                amax,
                                errors: Vec::new(),
                            },
                        )
                    })
                    .collect();
                calib.cache_with(Method::Max, &per, &uniform).unwrap()
            };
            let model = apply(&prepared, &cache, &options).unwrap();
            let full = check.error(&model, &device).unwrap();
            match e.stopped {
                None => assert_eq!(full, e.error, "{label}"),
                // Stopped: a lower bound, already past what could be kept.
                Some(Stopped::Above) => {
                    assert!(e.error <= full && e.batches < 2, "{label}: {e:?} vs {full}");
                    assert!(
                        e.error > DECISIVE * choice.errors[0].1.error,
                        "{label}: {e:?}"
                    );
                }
                // Behind the per-quantizer choices on the batches it ran: a lower bound.
                Some(Stopped::Behind { .. }) => {
                    assert!(e.error <= full && (1..2).contains(&e.batches), "{e:?}")
                }
            }
        }
        // Only a method measured to the end can be kept.
        let per_quantizer = choice.errors[0].1.error;
        let uniform = choice.errors[1..]
            .iter()
            .filter(|e| e.1.complete())
            .map(|e| e.1.error)
            .fold(f64::INFINITY, f64::min);
        if uniform <= DECISIVE * per_quantizer {
            let kept = choice.errors.iter().find(|e| e.1.error == uniform).unwrap();
            assert_eq!(kept.0, choice.label);
        } else {
            assert_eq!(choice.label, "per quantizer", "{:?}", choice.errors);
        }
        for t in chosen.keys() {
            let entry = &choice.cache.entries[t];
            assert!(entry.method.starts_with("auto:"), "{entry:?}");
            if choice.label != "per quantizer" {
                assert_eq!(entry.method, format!("auto:{}", choice.label));
            }
        }
    }
}
