//! `--method auto`: for each activation quantizer, the amax among several methods (max,
//! entropy, mse and percentiles, all read from the one histogram pass) whose quantization
//! least changes what the quantizer's consumers compute.
//!
//! A quantizer's consumers (the Conv, MatMul, Gemm, pooling, Add or Concat it feeds) are
//! cut out of the prepared graph into a small *probe* graph, once with every input in
//! float and once per candidate amax with the quantizer and the consumers' weight
//! quantizers inserted as in the written model. A second pass over a few batches runs the
//! float graph; as soon as a probe's inputs have all been produced, each probe graph runs
//! on them and the relative squared error of the consumers' outputs against float,
//! `Σ (q - f)² / Σ f²`, is added up per candidate. The candidate with the least total error
//! wins (ties go to the earlier candidate of [`candidates`]). On large maps, a probe of
//! spatially local consumers (convolutions, pools, Add, channel Concat) measures on
//! every other position of each spatial axis of 16 or more ([`sampled_axes`]), float
//! and quantized alike.
//!
//! Why the consumer's output rather than the tensor itself: clipping a few large values
//! that a convolution then weights heavily costs more than rounding many small ones; the
//! tensor-level criteria (entropy, mse) cannot see the weights, the consumer can.

use std::collections::{HashMap, HashSet};

use onnx_ir::{GraphProto, ModelProto, ValueInfoProto};
use qdq::tensor_quant::HostValues;

use super::Method;
use super::Prepared;
use super::auto_model::{default_width, fused, least, relative_error, side_by_side};
use super::calibrate::Calibration;
use crate::error::{Error, Result};
use crate::passes::{Site, SiteKind, insert_sites_as};
use crate::qdq::QdqFormat;
use crate::runtime::{OnnxGraph, RunError, Value};

/// The amaxes `auto` chooses among, in order of preference on a tie.
pub fn candidates() -> Vec<Method> {
    vec![
        Method::Max,
        Method::Percentile(99.999),
        Method::Percentile(99.99),
        Method::Percentile(99.9),
        Method::mse(),
        Method::entropy(),
    ]
}

/// What `auto` chose for one quantizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// The winning method.
    pub method: Method,
    /// Its amax.
    pub amax: f32,
    /// Every candidate's method, amax and mean relative output error over the batches
    /// seen (the winner's is the least).
    pub errors: Vec<(Method, f32, f64)>,
}

/// One quantizer's probe: its consumers, run in float and quantized with each
/// candidate. The runtime graphs are built when the probe runs and dropped after, so
/// only one quantizer's copies of its consumers' weights are alive at a time.
struct Probe {
    tensor: String,
    cut: Cut,
    /// The candidates: method and amax.
    candidates: Vec<(Method, f32)>,
    /// Sum over batches of each candidate's relative error.
    error: Vec<f64>,
    batches: usize,
}

/// The second, measuring pass of `auto` over a few batches.
pub struct AutoSelect {
    probes: Vec<Probe>,
    formats: (QdqFormat, QdqFormat),
    device: burn::tensor::Device,
}

impl AutoSelect {
    /// Builds a probe for every activation quantizer of `prepared` that `calib` has a
    /// histogram for, with `calib`'s candidate amaxes and weight amaxes, in `format`.
    /// A quantizer inside a subgraph is probed on the values of the first time its
    /// consumers' inputs are all seen in a batch (the first iteration of a loop body); one
    /// in a branch never taken gets no choice and keeps the fallback method (`max`),
    /// unless the whole-model step of a global `auto` ([`super::choose_model`]) finds a
    /// uniform method better.
    ///
    /// # Errors
    /// A probe graph the runtime cannot load (named by tensor).
    pub fn new(
        prepared: &Prepared,
        calib: &Calibration,
        format: QdqFormat,
        device: &burn::tensor::Device,
    ) -> Result<Self> {
        let graph = prepared
            .model
            .graph
            .as_ref()
            .ok_or_else(|| Error::Graph("the model has no graph".into()))?;
        let mut probes = Vec::new();
        for site in prepared
            .sites
            .iter()
            .filter(|s| s.kind == SiteKind::Activation)
        {
            let mut amaxes = calib.candidate_amaxes(&site.key(), &candidates());
            // Methods that agree (percentiles often equal the max on small sets) are
            // measured once, under the first of them.
            let mut seen = Vec::new();
            amaxes.retain(|&(_, a)| {
                let new = !seen.contains(&a.to_bits());
                seen.push(a.to_bits());
                new
            });
            if amaxes.is_empty() {
                continue;
            }
            let cut = Cut::new(&prepared.model, graph, site, &prepared.sites, calib)?;
            let probe = Probe {
                tensor: site.key(),
                cut,
                error: vec![0.0; amaxes.len()],
                candidates: amaxes,
                batches: 0,
            };
            // The float graph and one quantized graph load now, so a failure shows
            // before the pass (the other candidates differ only in one scale).
            probe.load(None, (format, format), device)?;
            probe.load(Some(probe.candidates[0].1), (format, format), device)?;
            probes.push(probe);
        }
        Ok(Self {
            probes,
            formats: (format, format),
            device: device.clone(),
        })
    }

    /// Probes with the weights in `weight` instead of the activations' format (W4A8:
    /// [`QdqFormat::Int4`], so each candidate is measured against the 4-bit weights the
    /// file will hold).
    #[must_use]
    pub fn with_weight_format(mut self, weight: QdqFormat) -> Self {
        self.formats.1 = weight;
        self
    }

    /// Runs one batch through the float `graph`, running each probe as soon as its
    /// inputs exist (values are kept only until their last probe has run); returns the
    /// graph's outputs (for [`super::ModelCheck`]).
    ///
    /// # Errors
    /// A run error (of the graph or of a probe, named).
    pub fn feed(
        &mut self,
        graph: &OnnxGraph,
        inputs: Vec<(String, Value)>,
    ) -> Result<Vec<(String, Value)>> {
        // A probe's inputs, and its consumers' float outputs, which the float graph
        // computes anyway (the same nodes on the same values): the probe reuses them
        // rather than running its float copy.
        let needed: HashSet<String> = self
            .probes
            .iter()
            .flat_map(|p| p.cut.inputs.iter().chain(&p.cut.outputs).cloned())
            .collect();
        let mut pending: Vec<usize> = (0..self.probes.len()).collect();
        let mut held: HashMap<String, Value> = HashMap::new();
        let mut failure = None;
        let probes = &mut self.probes;
        let (formats, device) = (self.formats, &self.device);
        let mut on_value = |name: &str, v: &Value| -> Result<()> {
            if !needed.contains(name) {
                return Ok(());
            }
            held.insert(name.to_string(), v.clone());
            let mut k = 0;
            while k < pending.len() {
                let p = &mut probes[pending[k]];
                if p.cut.wanted().all(|i| held.contains_key(i)) {
                    p.measure(&held, formats, device)?;
                    pending.swap_remove(k);
                } else {
                    k += 1;
                }
            }
            held.retain(|n, _| {
                pending
                    .iter()
                    .any(|&i| probes[i].cut.wanted().any(|w| w == n))
            });
            Ok(())
        };
        for (name, v) in &inputs {
            on_value(name, v)?;
        }
        let run = graph.run_with(inputs, &mut |name, v| {
            on_value(name, v).map_err(|e| {
                let msg = e.to_string();
                failure = Some(e);
                RunError::Observer(msg)
            })
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let outputs = run.map_err(Error::Run)?;
        // A consumer output the run never showed (an unused optional output): those
        // probes run their float copy.
        for i in pending {
            if self.probes[i]
                .cut
                .inputs
                .iter()
                .all(|n| held.contains_key(n))
            {
                self.probes[i].measure(&held, self.formats, &self.device)?;
            }
        }
        Ok(outputs)
    }

    /// The choice for every probed tensor (none before a batch was fed).
    pub fn choices(&self) -> HashMap<String, Choice> {
        let mut out = HashMap::new();
        for p in self.probes.iter().filter(|p| p.batches > 0) {
            let n = p.batches as f64;
            let errors: Vec<(Method, f32, f64)> = p
                .candidates
                .iter()
                .zip(&p.error)
                .map(|((m, a), e)| (*m, *a, e / n))
                .collect();
            // The least error; NaN (a probe output that was NaN) never wins.
            let totals: Vec<f64> = errors.iter().map(|e| e.2).collect();
            if let Some(i) = least(&totals) {
                out.insert(
                    p.tensor.clone(),
                    Choice {
                        method: errors[i].0,
                        amax: errors[i].1,
                        errors,
                    },
                );
            }
        }
        out
    }
}

impl Probe {
    /// The runtime graph of the consumers, float (`amax` = `None`) or with the
    /// quantizer at `amax`.
    fn load(
        &self,
        amax: Option<f32>,
        formats: (QdqFormat, QdqFormat),
        device: &burn::tensor::Device,
    ) -> Result<OnnxGraph> {
        let model = fused(self.cut.model(amax, formats)?);
        OnnxGraph::from_model(&model, device).map_err(|e| {
            Error::Graph(format!(
                "auto: probing the consumers of `{}`: {e}",
                self.tensor
            ))
        })
    }

    /// Runs the probe graphs on the `held` values and adds each candidate's error
    /// against the float outputs, taken from `held` when the float graph made them.
    fn measure(
        &mut self,
        held: &HashMap<String, Value>,
        formats: (QdqFormat, QdqFormat),
        device: &burn::tensor::Device,
    ) -> Result<()> {
        let axes = match self.cut.local {
            true => sampled_axes(self.cut.inputs.iter().map(|n| &held[n])),
            false => Vec::new(),
        };
        let errors = match self.errors_on(held, &axes, formats, device) {
            Ok(errors) => errors,
            // A sample the consumers cannot take (a kernel longer than the sampled
            // axis, a fixed output shape): the whole map.
            Err(_) if !axes.is_empty() => self.errors_on(held, &[], formats, device)?,
            Err(e) => return Err(e),
        };
        for (k, e) in errors.into_iter().enumerate() {
            self.error[k] += e;
        }
        self.batches += 1;
        Ok(())
    }

    /// Each candidate's relative error on the `held` values, on every other position
    /// of `axes`.
    fn errors_on(
        &self,
        held: &HashMap<String, Value>,
        axes: &[usize],
        formats: (QdqFormat, QdqFormat),
        device: &burn::tensor::Device,
    ) -> Result<Vec<f64>> {
        let tensor = &self.tensor;
        let fail = |e: RunError| Error::Graph(format!("auto: probing `{tensor}`: {e}"));
        let mut feed: Vec<(String, Value)> = self
            .cut
            .inputs
            .iter()
            .map(|n| (n.clone(), held[n].clone()))
            .collect();
        for (_, v) in &mut feed {
            for &axis in axes {
                let every_other: Vec<usize> = (0..v.shape()[axis]).step_by(2).collect();
                *v = v.clone().select_entries(axis, &every_other).map_err(fail)?;
            }
        }
        let run = |g: OnnxGraph| -> Result<Vec<Vec<f32>>> {
            host(g.run(feed.clone()).map_err(fail)?).map_err(fail)
        };
        // The float graph's outputs cover the whole map; a sample needs its own.
        let seen: Option<Vec<&Value>> = match axes.is_empty() {
            true => self.cut.outputs.iter().map(|n| held.get(n)).collect(),
            false => None,
        };
        // Read in place: the float graph still holds these values.
        let float: Vec<HostValues> = match seen {
            Some(values) => values
                .into_iter()
                .map(Value::host_f32)
                .collect::<std::result::Result<_, _>>()
                .map_err(fail)?,
            None => run(self.load(None, formats, device)?)?
                .into_iter()
                .map(HostValues::Copied)
                .collect(),
        };
        // The candidates run side by side (a probe is a few nodes, often elementwise
        // work on one thread).
        side_by_side(&self.candidates, default_width(), |&(_, amax)| {
            let q = run(self.load(Some(amax), formats, device)?)?;
            Ok::<_, Error>(relative_error(
                q.iter()
                    .zip(&float)
                    .map(|(q, f)| (q.as_slice(), f.as_slice())),
            ))
        })
        .into_iter()
        .collect()
    }
}

/// Sizes from which a probe measures every other position of an axis. From 32 to 16 on
/// the corpus (16 + 16 items): four models gained (ppocrv6-det 0.982 -> 0.986, two
/// recognizers by one string of 16), none lost, `auto` took 10-25 % less time.
const SAMPLE_FROM: usize = 16;

/// The axes a probe of spatially local consumers samples: every axis after batch and
/// channels that is at least [`SAMPLE_FROM`] long in all of `inputs` alike; none when the
/// inputs differ in rank or in those sizes (a broadcast operand). The probe then runs
/// on every other position of each (a quarter of a 2-D map), float and quantized
/// alike: the probes were over a third of `auto`'s time on 640x640 detectors, and a
/// quarter of a map's values, spread over all of it, ranks the candidates as the whole
/// map does. (A central window, tried first, missed the border values some
/// quantizers' choices hinge on: the text-line classifier's whole-model error went
/// up twentyfold on its calibration items, where this sample keeps it.)
fn sampled_axes<'a>(inputs: impl Iterator<Item = &'a Value>) -> Vec<usize> {
    let shapes: Vec<Vec<usize>> = inputs.map(Value::shape).collect();
    let Some(first) = shapes.first() else {
        return Vec::new();
    };
    let rank = first.len();
    let same = |a: usize| shapes.iter().all(|s| s.len() == rank && s[a] == first[a]);
    (2..rank)
        .filter(|&a| first[a] >= SAMPLE_FROM && same(a))
        .collect()
}

/// Whether every output position of `node` depends only on the same and nearby
/// positions of its inputs, so the node computed on a sample of positions is a fair
/// sample of its work.
fn spatially_local(node: &onnx_ir::NodeProto) -> bool {
    match node.op_type.as_str() {
        "Conv" | "ConvTranspose" | "MaxPool" | "AveragePool" | "Add" => true,
        // Joined along channels only.
        "Concat" => node
            .attribute
            .iter()
            .find(|a| a.name == "axis")
            .is_some_and(|a| a.i == 1),
        _ => false,
    }
}

/// Every output as f32 on the host.
fn host(outputs: Vec<(String, Value)>) -> std::result::Result<Vec<Vec<f32>>, RunError> {
    outputs.into_iter().map(|(_, v)| v.into_f32()).collect()
}

/// One quantizer's consumers cut out of the graph.
struct Cut {
    /// The consumer nodes, in graph order.
    nodes: Vec<onnx_ir::NodeProto>,
    /// Their non-constant inputs.
    inputs: Vec<String>,
    /// Their outputs.
    outputs: Vec<String>,
    /// The constants they read.
    initializers: Vec<onnx_ir::TensorProto>,
    /// The quantizer and the consumers' weight quantizers, with node indices into
    /// `nodes`.
    sites: Vec<Site>,
    /// The weight quantizers' amaxes, by site name.
    weight_amaxes: HashMap<String, Vec<f32>>,
    /// A model without graph holding the opsets of the cut one.
    template: ModelProto,
    /// Whether every node is [`spatially_local`], so the probe may measure a sample of
    /// positions.
    local: bool,
}

impl Cut {
    /// The values a probe waits for: its inputs and its float outputs.
    fn wanted(&self) -> impl Iterator<Item = &String> {
        self.inputs.iter().chain(&self.outputs)
    }

    fn new(
        model: &ModelProto,
        graph: &GraphProto,
        site: &Site,
        all: &[Site],
        calib: &Calibration,
    ) -> Result<Self> {
        let main = graph;
        let graph = crate::passes::subgraph(main, &site.graph).ok_or_else(|| {
            Error::Graph(format!(
                "auto: quantizer `{}`: its subgraph is missing",
                site.name
            ))
        })?;
        let mut index: Vec<usize> = site.consumers.iter().map(|c| c.0).collect();
        index.sort_unstable();
        index.dedup();
        let local = |i: usize| index.iter().position(|&j| j == i);
        let mut nodes: Vec<_> = index
            .iter()
            .filter_map(|&i| graph.node.get(i).cloned())
            .collect();
        let mut inputs = Vec::new();
        let mut initializers = Vec::new();
        let mut seen = HashSet::new();
        // Constants (of this graph or an enclosing one) travel with the probe; other
        // inputs take the scoped names the runtime shows them under (`Site::key`).
        let mut renamed: HashMap<String, String> = HashMap::new();
        for name in nodes.iter().flat_map(|n| &n.input) {
            if name.is_empty() || !seen.insert(name.clone()) {
                continue;
            }
            match crate::passes::visible_constant(main, &site.graph, name) {
                Some(t) => initializers.push(t.clone()),
                None => {
                    let key = format!(
                        "{}{name}",
                        crate::passes::subgraph::scope_of(main, &site.graph, name)
                    );
                    renamed.insert(name.clone(), key.clone());
                    inputs.push(key);
                }
            }
        }
        for input in nodes.iter_mut().flat_map(|n| n.input.iter_mut()) {
            if let Some(key) = renamed.get(input.as_str()) {
                input.clone_from(key);
            }
        }
        let outputs = nodes
            .iter()
            .flat_map(|n| n.output.iter().filter(|o| !o.is_empty()).cloned())
            .collect();
        // The quantizer itself and every weight quantizer read only by these nodes.
        let sites: Vec<Site> = all
            .iter()
            .filter(|s| {
                s.name == site.name
                    || (matches!(s.kind, SiteKind::Weight { .. })
                        && s.graph == site.graph
                        && s.consumers.iter().all(|c| local(c.0).is_some()))
            })
            .map(|s| Site {
                tensor: renamed.get(&s.tensor).unwrap_or(&s.tensor).clone(),
                graph: Vec::new(),
                consumers: s
                    .consumers
                    .iter()
                    .filter_map(|&(n, slot)| local(n).map(|l| (l, slot)))
                    .collect(),
                group: None,
                ..s.clone()
            })
            .collect();
        let mut weight_amaxes = HashMap::new();
        for s in sites
            .iter()
            .filter(|s: &&Site| s.kind != SiteKind::Activation)
        {
            let amax = calib
                .weight_amax(&s.key())
                .ok_or_else(|| Error::Graph(format!("auto: weight `{}` has no amax", s.tensor)))?;
            weight_amaxes.insert(s.name.clone(), amax);
        }
        let mut template = ModelProto::new();
        template.ir_version = model.ir_version;
        template.opset_import = model.opset_import.clone();
        let local = nodes.iter().all(spatially_local);
        Ok(Self {
            local,
            nodes,
            inputs,
            outputs,
            initializers,
            sites,
            weight_amaxes,
            template,
        })
    }

    /// The probe model: float (`amax` = `None`), or with the quantizer at `amax` and
    /// the weight quantizers at their calibrated amaxes.
    fn model(&self, amax: Option<f32>, formats: (QdqFormat, QdqFormat)) -> Result<ModelProto> {
        let mut graph = GraphProto::new();
        graph.name = "auto_probe".into();
        graph.node = self.nodes.clone();
        graph.initializer = self.initializers.clone();
        graph.input = self.inputs.iter().map(|n| value_info(n)).collect();
        graph.output = self.outputs.iter().map(|n| value_info(n)).collect();
        let mut model = self.template.clone();
        if let Some(amax) = amax {
            let mut amaxes = self.weight_amaxes.clone();
            for s in self.sites.iter().filter(|s| s.kind == SiteKind::Activation) {
                amaxes.insert(s.name.clone(), vec![amax]);
            }
            // The probe runs on the runtime, in f32 whatever the model's float type.
            insert_sites_as(&mut graph, &self.sites, &amaxes, formats, false)?;
        }
        model.graph = Some(graph).into();
        Ok(model)
    }
}

/// An input or output declared by name only (any type and shape).
fn value_info(name: &str) -> ValueInfoProto {
    let mut v = ValueInfoProto::new();
    v.name = name.to_string();
    v
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::proto::elem as dtype;
    use crate::proto::{model, node, tensor_f32, value_info_named};
    use crate::quantize::{QuantizeOptions, prepare};

    /// `x [batch, 8]` -> MatMul(ones [8, 1]) -> `y`: the consumer sums its input, so each
    /// candidate's error can be computed by hand.
    fn sum_model() -> ModelProto {
        model(
            vec![node("MatMul", "sum", &["x", "w"], &["y"])],
            vec![value_info_named("x", dtype::FLOAT, &[1, 8], Some("batch"))],
            &["y"],
            vec![tensor_f32("w", &[8, 1], &[1.0; 8])],
            13,
        )
    }

    /// Rows of small values, one of them with an outlier: clipping the outlier (a low
    /// percentile) costs more in the sum than coarse rounding (max) does, or the other
    /// way round, depending on the data; the test checks the measured errors, not a
    /// preferred method.
    fn rows() -> Vec<[f32; 8]> {
        let mut s = 11u64;
        (0..160)
            .map(|i| {
                let mut r = [0f32; 8];
                for v in &mut r {
                    s = s
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    *v = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8;
                }
                if i == 100 {
                    r[2] = 9.0;
                }
                r
            })
            .collect()
    }

    /// What the probe should measure for amax `a`: the relative squared error of the
    /// sums, with `x` quantized at `a / 127` and the weights (all 1) at `1 / 127`.
    fn expected_error(batches: &[Vec<[f32; 8]>], a: f32) -> f64 {
        let s = a / 127.0;
        let w = 127.0 * (1.0f32 / 127.0);
        let fq = |v: f32| (v / s).round_ties_even().clamp(-128.0, 127.0) * s;
        let mut total = 0.0;
        for b in batches {
            let (mut diff, mut energy) = (0.0f64, 0.0f64);
            for r in b {
                let f: f64 = r.iter().map(|&v| f64::from(v)).sum();
                let q: f64 = r.iter().map(|&v| f64::from(fq(v) * w)).sum();
                diff += (q - f).powi(2);
                energy += f * f;
            }
            total += diff / energy;
        }
        total / batches.len() as f64
    }

    #[test]
    fn auto_measures_each_candidate_on_the_consumer_and_takes_the_least_error() {
        let device = Device::flex();
        let prepared = prepare(&sum_model(), &QuantizeOptions::default()).unwrap();
        let graph = OnnxGraph::from_model(&prepared.model, &device).unwrap();
        let proto = prepared.model.graph.as_ref().unwrap();
        let mut calib = Calibration::new(proto, &prepared.sites, false).unwrap();
        let batches: Vec<Vec<[f32; 8]>> = rows().chunks(32).map(<[_]>::to_vec).collect();
        let value = |b: &[[f32; 8]]| {
            let flat: Vec<f32> = b.iter().flatten().copied().collect();
            vec![(
                "x".to_string(),
                Value::from_f32(flat, &[b.len(), 8], &device),
            )]
        };
        for b in &batches {
            calib.feed(&graph, value(b)).unwrap();
        }
        let mut auto = AutoSelect::new(&prepared, &calib, QdqFormat::Int8, &device).unwrap();
        assert!(auto.choices().is_empty(), "no batch seen, no choice");
        for b in &batches {
            auto.feed(&graph, value(b)).unwrap();
        }
        let choices = auto.choices();
        let c = &choices["x"];
        // Every candidate was measured, with the amax the histogram gives it (each
        // distinct amax once).
        let mut want = calib.candidate_amaxes("x", &candidates());
        assert_eq!(want.len(), candidates().len());
        want.dedup_by_key(|c| c.1.to_bits());
        assert_eq!(c.errors.len(), want.len());
        for ((m, a, e), (wm, wa)) in c.errors.iter().zip(&want) {
            assert_eq!((m, a), (wm, wa));
            let x = expected_error(&batches, *a);
            assert!(
                (e - x).abs() <= 1e-3 * x + 1e-12,
                "{m}: amax {a}: measured {e}, expected {x}"
            );
        }
        // The amaxes differ (the outlier separates max from the percentiles), so the
        // choice is a real one, and it is the least error.
        assert!(
            c.errors[0].1 > 8.9 && c.errors.iter().any(|e| e.1 < 1.0),
            "{:?}",
            c.errors
        );
        let least = c.errors.iter().map(|e| e.2).fold(f64::INFINITY, f64::min);
        assert_eq!(c.errors.iter().find(|e| e.2 == least).unwrap().0, c.method);
        assert_eq!(c.amax, c.errors.iter().find(|e| e.0 == c.method).unwrap().1);
        // The cache records the choice, as `auto:METHOD`.
        let cache = calib
            .cache_with(Method::Max, &HashMap::new(), &choices)
            .unwrap();
        assert_eq!(cache.entries["x"].amax, vec![c.amax]);
        assert_eq!(cache.entries["x"].method, format!("auto:{}", c.method));
    }

    #[test]
    fn long_axes_shared_by_every_input_are_sampled() {
        let device = Device::flex();
        let v =
            |shape: &[usize]| Value::from_f32(vec![0.0; shape.iter().product()], shape, &device);
        let (a, b) = (v(&[2, 3, 128, 64]), v(&[2, 5, 128, 64]));
        assert_eq!(sampled_axes([&a, &b].into_iter()), [2, 3]);
        // Short axes stay whole; a broadcast operand or another rank: no sample.
        assert_eq!(sampled_axes([&v(&[1, 4, 15, 200])].into_iter()), [3]);
        assert_eq!(sampled_axes([&v(&[1, 4, 16, 17])].into_iter()), [2, 3]);
        assert!(sampled_axes([&a, &v(&[2, 3, 1, 1])].into_iter()).is_empty());
        assert_eq!(sampled_axes([&v(&[1, 4, 100])].into_iter()), [2]);
        assert!(sampled_axes([&a, &v(&[128, 64])].into_iter()).is_empty());
        // Only consumers whose outputs follow their inputs' positions take one.
        let concat = |axis: i64| {
            let mut n = node("Concat", "c", &["a", "b"], &["y"]);
            let mut at = onnx_ir::AttributeProto::new();
            at.name = "axis".into();
            at.i = axis;
            n.attribute.push(at);
            n
        };
        assert!(spatially_local(&concat(1)));
        assert!(!spatially_local(&concat(2)));
        assert!(spatially_local(&node("Conv", "c", &["x", "w"], &["y"])));
        assert!(!spatially_local(&node("MatMul", "m", &["x", "w"], &["y"])));
        assert!(!spatially_local(&node(
            "GlobalAveragePool",
            "g",
            &["x"],
            &["y"]
        )));
    }

    /// A 1x1 convolution copying a 128x128 map, with an outlier at an odd position: the
    /// probe measures each candidate on the even rows and columns only, where nothing is
    /// clipped, so the percentiles that clip the outlier are not charged for it.
    #[test]
    fn a_probe_of_a_large_map_measures_every_other_position() {
        let device = Device::flex();
        let conv = model(
            vec![node("Conv", "conv", &["x", "w"], &["y"])],
            vec![value_info_named("x", dtype::FLOAT, &[1, 1, 128, 128], None)],
            &["y"],
            vec![tensor_f32("w", &[1, 1, 1, 1], &[1.0])],
            13,
        );
        let prepared = prepare(&conv, &QuantizeOptions::default()).unwrap();
        let graph = OnnxGraph::from_model(&prepared.model, &device).unwrap();
        let proto = prepared.model.graph.as_ref().unwrap();
        let mut calib = Calibration::new(proto, &prepared.sites, false).unwrap();
        let mut s = 3u64;
        let map: Vec<f32> = (0..128 * 128)
            .map(|i| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(7);
                if i == 128 + 1 {
                    9.0
                } else {
                    ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8
                }
            })
            .collect();
        let value = || {
            vec![(
                "x".to_string(),
                Value::from_f32(map.clone(), &[1, 1, 128, 128], &device),
            )]
        };
        calib.feed(&graph, value()).unwrap();
        let mut auto = AutoSelect::new(&prepared, &calib, QdqFormat::Int8, &device).unwrap();
        auto.feed(&graph, value()).unwrap();
        let choice = &auto.choices()["x"];
        let w = 127.0 * (1.0f32 / 127.0);
        let error = |a: f32, step: usize| {
            let sc = a / 127.0;
            let (mut diff, mut energy) = (0.0f64, 0.0f64);
            for r in (0..128).step_by(step) {
                for c in (0..128).step_by(step) {
                    let x = map[r * 128 + c];
                    let q = (x / sc).round_ties_even().clamp(-128.0, 127.0) * sc * w;
                    diff += f64::from(q - x).powi(2);
                    energy += f64::from(x).powi(2);
                }
            }
            diff / energy
        };
        let mut differs = false;
        for &(m, a, e) in &choice.errors {
            let want = error(a, 2);
            assert!(
                (e - want).abs() <= 1e-3 * want + 1e-12,
                "{m}: {e} vs sampled {want}"
            );
            differs |= (error(a, 1) - want).abs() > 0.5 * want;
        }
        assert!(
            differs,
            "the outlier should matter on the whole map: {:?}",
            choice.errors
        );
    }
    /// A convolution whose kernel (40) is longer than the sampled axis (64 -> 32)
    /// cannot run on the sample: the probe measures the whole axis instead, and its
    /// errors are the whole axis's.
    #[test]
    fn a_probe_the_sample_cannot_feed_measures_the_whole_map() {
        let device = Device::flex();
        let conv = model(
            vec![node("Conv", "conv", &["x", "w"], &["y"])],
            vec![value_info_named("x", dtype::FLOAT, &[1, 1, 64], None)],
            &["y"],
            vec![tensor_f32("w", &[1, 1, 40], &[1.0; 40])],
            13,
        );
        let prepared = prepare(&conv, &QuantizeOptions::default()).unwrap();
        let graph = OnnxGraph::from_model(&prepared.model, &device).unwrap();
        let proto = prepared.model.graph.as_ref().unwrap();
        let mut calib = Calibration::new(proto, &prepared.sites, false).unwrap();
        let xs: Vec<f32> = (0..64)
            .map(|i| {
                if i == 5 {
                    6.0
                } else {
                    ((i * 37 % 29) as f32 - 14.0) / 20.0
                }
            })
            .collect();
        let value = || {
            vec![(
                "x".to_string(),
                Value::from_f32(xs.clone(), &[1, 1, 64], &device),
            )]
        };
        calib.feed(&graph, value()).unwrap();
        let mut auto = AutoSelect::new(&prepared, &calib, QdqFormat::Int8, &device).unwrap();
        auto.feed(&graph, value()).unwrap();
        let choice = &auto.choices()["x"];
        let w = 127.0 * (1.0f32 / 127.0);
        for &(m, a, e) in &choice.errors {
            let sc = a / 127.0;
            let fq = |x: f32| (x / sc).round_ties_even().clamp(-128.0, 127.0) * sc * w;
            let (mut diff, mut energy) = (0.0f64, 0.0f64);
            for t in 0..25 {
                let f: f64 = xs[t..t + 40].iter().map(|&x| f64::from(x)).sum();
                let q: f64 = xs[t..t + 40].iter().map(|&x| f64::from(fq(x))).sum();
                diff += (q - f).powi(2);
                energy += f * f;
            }
            let want = diff / energy;
            assert!(
                (e - want).abs() <= 1e-3 * want + 1e-12,
                "{m}: {e} vs whole {want}"
            );
        }
    }
}
