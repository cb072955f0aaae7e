//! Streaming calibration of an ONNX graph: one pass over the data, every activation
//! quantizer's histogram and max collected at once as the runtime produces each tensor
//! (activations are never stored), weights read from their initializers.

use std::collections::{BTreeMap, HashMap};

use onnx_ir::GraphProto;
use qdq::calib::{HistogramCalibrator, MaxCalibrator};

use super::Method;
use super::cache::{CalibrationCache, Entry};
use crate::error::{Error, Result};
use crate::passes::{Site, SiteKind};
use crate::runtime::value::dyn_apply;
use crate::runtime::{OnnxGraph, RunError, Value};
use crate::tensor::{constants, floats};

/// A calibration in progress over `sites`.
pub struct Calibration {
    sites: Vec<Site>,
    /// One histogram per activation tensor; it also tracks the exact max.
    stats: HashMap<String, HistogramCalibrator>,
    weights: BTreeMap<String, Vec<f32>>,
    batches: usize,
}

fn qdq_err(tensor: &str, e: qdq::Error) -> Error {
    Error::Graph(format!("calibrating tensor `{tensor}`: {e}"))
}

impl Calibration {
    /// Prepares calibrators for `sites` of `graph`; weight amaxes (per channel, max)
    /// are computed here from the initializers.
    ///
    /// # Errors
    /// A weight site whose tensor is not a float constant.
    pub fn new(graph: &GraphProto, sites: &[Site], unsigned: bool) -> Result<Self> {
        let consts = constants(graph);
        let mut stats = HashMap::new();
        let mut weights = BTreeMap::new();
        for s in sites {
            match s.kind {
                SiteKind::Activation => {
                    let hist = HistogramCalibrator::new(8, None, unsigned)
                        .map_err(|e| qdq_err(&s.tensor, e))?;
                    stats.insert(s.tensor.clone(), hist);
                }
                SiteKind::Weight { axis } => {
                    weights.insert(s.tensor.clone(), weight_amax(&consts, &s.tensor, axis)?);
                }
            }
        }
        Ok(Self {
            sites: sites.to_vec(),
            stats,
            weights,
            batches: 0,
        })
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

    fn observe(&mut self, name: &str, v: &Value) -> Result<()> {
        let Some(hist) = self.stats.get_mut(name) else {
            return Ok(());
        };
        // A float tensor goes to the calibrator as it is, so on a GPU only the
        // histogram comes back to the host.
        let collected = match v {
            Value::Float(t) => dyn_apply!(&t.t, |x, R| hist.collect(x)),
            _ => hist.collect_slice(&v.to_f32().map_err(Error::Run)?),
        };
        collected.map_err(|e| qdq_err(name, e))
    }

    /// Amax of every site: activations by `method` (or `per_tensor[tensor]`), weights
    /// by max per channel; Concat groups share their largest amax.
    ///
    /// # Errors
    /// No batch was fed (an empty calibration set), or a method fails on a histogram.
    pub fn cache(
        &self,
        method: Method,
        per_tensor: &HashMap<String, Method>,
    ) -> Result<CalibrationCache> {
        if self.batches == 0 {
            return Err(Error::Graph(
                "the calibration set is empty: give at least one batch of data".into(),
            ));
        }
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
        for (tensor, hist) in &self.stats {
            let m = per_tensor.get(tensor).copied().unwrap_or(method);
            let amax = hist
                .compute_amax(m)
                .map_err(|e| qdq_err(tensor, e))?
                .values()[0];
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
            let a = entries.get(&s.tensor).map_or(0.0, |e| e.amax[0]);
            let g = group_max.entry(s.group.unwrap_or(0)).or_insert(0.0);
            *g = g.max(a);
        }
        for s in self.sites.iter().filter(|s| s.group.is_some()) {
            if let (Some(e), Some(g)) = (
                entries.get_mut(&s.tensor),
                group_max.get(&s.group.unwrap_or(0)),
            ) {
                e.amax = vec![*g];
            }
        }
        Ok(CalibrationCache { entries })
    }
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
