//! How far a quantized model's outputs are from the float model's: top-1 agreement,
//! SQNR and cosine similarity, and accuracy against labels.

/// Index of the largest value of each row of `classes` values.
pub fn top1(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks(classes.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0
        })
        .collect()
}

/// Share of rows whose top-1 class equals the label.
pub fn accuracy(logits: &[f32], classes: usize, labels: &[i64]) -> f64 {
    hits(logits, classes, labels) as f64 / logits.chunks(classes.max(1)).len().max(1) as f64
}

/// Number of rows whose top-1 class equals the label.
fn hits(logits: &[f32], classes: usize, labels: &[i64]) -> usize {
    top1(logits, classes)
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p as i64 == **l)
        .count()
}

/// Float vs quantized outputs of the same inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    /// Share of rows with the same top-1 class.
    pub top1: f64,
    /// Signal-to-quantization-noise ratio, dB: 10·log10(Σx² / Σ(x−y)²); infinite when equal.
    pub sqnr_db: f64,
    /// Cosine similarity of the flattened outputs.
    pub cosine: f64,
}

/// Float-vs-quantized sums of one output, fed batch by batch, so that no output is held.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Running {
    signal: f64,
    noise: f64,
    dot: f64,
    quant: f64,
    rows: usize,
    same: usize,
}

impl Running {
    /// Adds a batch: `reference` and `quantized` hold rows of `classes` values.
    pub fn add(&mut self, reference: &[f32], quantized: &[f32], classes: usize) {
        let (a, b) = (top1(reference, classes), top1(quantized, classes));
        self.rows += a.len();
        self.same += a.iter().zip(&b).filter(|(x, y)| x == y).count();
        for (&x, &y) in reference.iter().zip(quantized) {
            let (x, y) = (x as f64, y as f64);
            self.signal += x * x;
            self.noise += (x - y) * (x - y);
            self.dot += x * y;
            self.quant += y * y;
        }
    }

    /// The agreement of everything added.
    pub fn agreement(&self) -> Agreement {
        let (signal, noise) = (self.signal, self.noise);
        Agreement {
            top1: self.same as f64 / self.rows.max(1) as f64,
            sqnr_db: if noise == 0.0 {
                f64::INFINITY
            } else {
                10.0 * (signal / noise).log10()
            },
            cosine: if signal == 0.0 || self.quant == 0.0 {
                0.0
            } else {
                self.dot / (signal.sqrt() * self.quant.sqrt())
            },
        }
    }
}

/// Compares `quantized` with `reference` (rows of `classes` values).
pub fn compare(reference: &[f32], quantized: &[f32], classes: usize) -> Agreement {
    let mut r = Running::default();
    r.add(reference, quantized, classes);
    r.agreement()
}

/// One graph output, float vs quantized, over all the data ([`compare_outputs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OutputReport {
    /// The output's name.
    pub name: String,
    /// Its shape for one item (the batch dimension dropped).
    pub item_shape: Vec<usize>,
    /// Items compared.
    pub items: usize,
    /// SQNR and cosine over all values; `top1` is meaningful only where
    /// [`OutputReport::classes`] is set.
    pub agreement: Agreement,
    /// The class count of a `[batch, classes]` output (classes > 1): top-1 agreement
    /// and accuracy apply.
    pub classes: Option<usize>,
    /// Accuracy of the float and the quantized output against the labels, for a
    /// `[batch, classes]` output when labels were given.
    pub accuracy: Option<(f64, f64)>,
    /// For an integer or bool output: the share of its values that are exactly equal.
    pub exact: Option<f64>,
}

/// Per output: running sums, item count, the one-item shape and label hits.
struct OutputSums {
    running: Running,
    items: usize,
    item_shape: Vec<usize>,
    classes: Option<usize>,
    hits: (usize, usize),
    /// Integer or bool outputs: `(equal values, values)`.
    equal: Option<(usize, usize)>,
}

/// Runs `float` and `quantized` on every batch and compares each output of the float
/// graph with the quantized graph's output of the same name: SQNR and cosine for every
/// output, top-1 agreement (and accuracy, with `labels`, one per item in batch order)
/// for `[batch, classes]` outputs, and the share of exactly equal values for integer
/// and bool outputs. Each batch comes with its item count (labels are taken in that
/// order). Outputs are reduced to sums as they come.
///
/// # Errors
/// Either graph fails to run, or lacks an output of the other (named), or the two
/// disagree on an output's shape or type.
pub fn compare_outputs(
    float: &crate::runtime::OnnxGraph,
    quantized: &crate::runtime::OnnxGraph,
    batches: impl IntoIterator<Item = (usize, Vec<(String, crate::runtime::Value)>)>,
    labels: Option<&[i64]>,
) -> crate::Result<Vec<OutputReport>> {
    let mismatch = |why: String| crate::Error::Graph(why);
    let mut sums: Vec<(String, OutputSums)> = Vec::new();
    let mut offset = 0;
    for (rows, inputs) in batches {
        let yf = float.run(inputs.clone()).map_err(crate::Error::Run)?;
        let mut yq = quantized.run(inputs).map_err(crate::Error::Run)?;
        for (name, f) in yf {
            let q = yq
                .iter()
                .position(|(n, _)| *n == name)
                .map(|i| yq.swap_remove(i).1)
                .ok_or_else(|| mismatch(format!("the quantized model has no output `{name}`")))?;
            let shape = f.shape();
            if q.shape() != shape {
                return Err(mismatch(format!(
                    "output `{name}`: float shape {shape:?}, quantized {:?}",
                    q.shape()
                )));
            }
            if q.elem_type() != f.elem_type() {
                return Err(mismatch(format!(
                    "output `{name}`: float model's is {}, quantized model's {}",
                    crate::runtime::dtype_name(f.elem_type()),
                    crate::runtime::dtype_name(q.elem_type())
                )));
            }
            // Integer and bool outputs (token ids, masks, sizes) are compared exactly.
            let equal = match &f {
                crate::runtime::Value::Float(_) => None,
                _ => {
                    let (a, b) = (
                        f.to_i64().map_err(crate::Error::Run)?,
                        q.to_i64().map_err(crate::Error::Run)?,
                    );
                    Some((a.iter().zip(&b).filter(|(x, y)| x == y).count(), a.len()))
                }
            };
            let (f, q) = (
                f.to_f32().map_err(crate::Error::Run)?,
                q.to_f32().map_err(crate::Error::Run)?,
            );
            let n = shape.first().copied().unwrap_or(1);
            // Top-1 is for float scores; integer outputs are compared exactly instead.
            let classes = (shape.len() == 2 && shape[1] > 1 && equal.is_none()).then_some(shape[1]);
            let s = match sums.iter_mut().find(|(k, _)| *k == name) {
                Some((_, s)) => s,
                None => {
                    sums.push((
                        name.clone(),
                        OutputSums {
                            running: Running::default(),
                            items: 0,
                            item_shape: shape.get(1..).unwrap_or_default().to_vec(),
                            classes,
                            hits: (0, 0),
                            equal: None,
                        },
                    ));
                    &mut sums.last_mut().expect("just pushed").1
                }
            };
            s.running.add(&f, &q, classes.unwrap_or(f.len().max(1)));
            s.items += n;
            if let Some((e, t)) = equal {
                let (e0, t0) = s.equal.unwrap_or_default();
                s.equal = Some((e0 + e, t0 + t));
            }
            if let (Some(c), Some(l)) = (classes, labels) {
                let l = l.get(offset..offset + n).unwrap_or_default();
                s.hits.0 += hits(&f, c, l);
                s.hits.1 += hits(&q, c, l);
            }
        }
        offset += rows;
    }
    Ok(sums
        .into_iter()
        .map(|(name, s)| {
            let items = s.items.max(1) as f64;
            OutputReport {
                name,
                item_shape: s.item_shape,
                items: s.items,
                agreement: s.running.agreement(),
                classes: s.classes,
                accuracy: (s.classes.is_some() && labels.is_some())
                    .then(|| (s.hits.0 as f64 / items, s.hits.1 as f64 / items)),
                exact: s.equal.map(|(e, t)| e as f64 / t.max(1) as f64),
            }
        })
        .collect())
}

/// SQNR (dB) of every tensor that the float and the quantized graph both compute, in
/// the quantized graph's execution order, for one batch of `inputs`. The float
/// activations of that batch are held to compare against, so pass a small batch.
///
/// # Errors
/// Either graph fails to run.
pub fn layer_sqnr(
    float: &crate::runtime::OnnxGraph,
    quantized: &crate::runtime::OnnxGraph,
    inputs: Vec<(String, crate::runtime::Value)>,
) -> crate::Result<Vec<(String, f64)>> {
    use std::collections::HashMap;
    let mut reference: HashMap<String, Vec<f32>> = HashMap::new();
    float
        .run_with(inputs.clone(), &mut |name, v| {
            if let Ok(x) = v.to_f32() {
                reference.insert(name.to_string(), x);
            }
            Ok(())
        })
        .map_err(crate::Error::Run)?;
    let mut layers = Vec::new();
    quantized
        .run_with(inputs, &mut |name, v| {
            if let (Some(r), Ok(q)) = (reference.get(name), v.to_f32())
                && r.len() == q.len()
            {
                layers.push((name.to_string(), compare(r, &q, r.len().max(1)).sqnr_db));
            }
            Ok(())
        })
        .map_err(crate::Error::Run)?;
    Ok(layers)
}

/// The layer where SQNR falls the most from the layer before it, with the fall in dB:
/// where quantization error jumps. Exact layers (infinite SQNR) are passed over; when
/// SQNR never falls, the first inexact layer is where error appears (fall 0).
pub fn error_jump(layers: &[(String, f64)]) -> Option<(&str, f64)> {
    let finite: Vec<&(String, f64)> = layers.iter().filter(|(_, s)| s.is_finite()).collect();
    let first = finite.first().map(|(n, _)| (n.as_str(), 0.0));
    finite
        .windows(2)
        .map(|w| (w[1].0.as_str(), w[0].1 - w[1].1))
        .filter(|(_, d)| *d > 0.0)
        .fold(None, |best: Option<(&str, f64)>, (n, d)| match best {
            Some((_, b)) if b >= d => best,
            _ => Some((n, d)),
        })
        .or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        let r = [1.0, 2.0, 0.0, 3.0, 1.0, 0.0];
        let q = [1.0, 2.0, 0.0, 1.0, 3.0, 0.0];
        assert_eq!(top1(&r, 3), [1, 0]);
        let m = compare(&r, &q, 3);
        assert_eq!(m.top1, 0.5);
        // signal 15, noise 8: 10·log10(15/8)
        assert!((m.sqnr_db - 10.0 * (15.0f64 / 8.0).log10()).abs() < 1e-12);
        // dot 1+4+3+3 = 11, |r| = |q| = sqrt(15)
        assert!((m.cosine - 11.0 / 15.0).abs() < 1e-12);
        assert_eq!(accuracy(&r, 3, &[1, 1]), 0.5);
        assert_eq!(compare(&r, &r, 3).sqnr_db, f64::INFINITY);
    }

    #[test]
    fn every_output_is_compared_top1_only_for_classes() {
        use crate::proto::{attr_int, node, tensor_f32, tensor_i64, value_info_named};
        use crate::runtime::{OnnxGraph, Value};
        // logits = x * k ([batch, 3]); map = Reshape(x, [0, 3, 1]) ([batch, 3, 1]);
        // whole = Cast(logits, int64) ([batch, 3]).
        let graph = |k: [f32; 3]| {
            let mut m = onnx_ir::ModelProto::new();
            m.opset_import.push(Default::default());
            if let Some(o) = m.opset_import.last_mut() {
                o.version = 17;
            }
            let g = m.graph.mut_or_insert_default();
            g.node = vec![
                node("Mul", "mul", &["x", "k"], &["logits"]),
                node("Reshape", "reshape", &["x", "shape"], &["map"]),
                node("Cast", "cast", &["logits"], &["whole"]),
            ];
            g.node[2].attribute.push(attr_int("to", 7));
            g.input = vec![value_info_named("x", 1, &[0, 3], Some("batch"))];
            g.output = vec![
                value_info_named("logits", 1, &[0, 3], Some("batch")),
                value_info_named("map", 1, &[0, 3, 1], Some("batch")),
                value_info_named("whole", 7, &[0, 3], Some("batch")),
            ];
            g.initializer = vec![
                tensor_f32("k", &[3], &k),
                tensor_i64("shape", &[3], &[0, 3, 1]),
            ];
            OnnxGraph::from_model(&m, &burn::tensor::Device::flex()).unwrap()
        };
        let (float, quant) = (graph([1.0; 3]), graph([1.0, 1.0, 0.5]));
        let x = || {
            let v = vec![1.0, 2.0, 3.0, 3.0, 2.0, 1.0];
            vec![(
                "x".to_string(),
                Value::from_f32(v, &[2, 3], &burn::tensor::Device::flex()),
            )]
        };
        let labels = [2, 0, 2, 1];
        let r = compare_outputs(&float, &quant, [(2, x()), (2, x())], Some(&labels)).unwrap();
        assert_eq!(r.len(), 3);
        let (logits, map) = (&r[0], &r[1]);
        assert_eq!((logits.name.as_str(), map.name.as_str()), ("logits", "map"));
        assert_eq!((logits.items, logits.classes), (4, Some(3)));
        assert_eq!(logits.item_shape, [3]);
        // Rows [1, 2, 1.5] (top-1 moves from 2 to 1) and [3, 2, 0.5] (stays 0), twice:
        // signal 2·28, noise 2·(1.5² + 0.5²).
        assert_eq!(logits.agreement.top1, 0.5);
        let sqnr = 10.0 * (56.0f64 / 5.0).log10();
        assert!((logits.agreement.sqnr_db - sqnr).abs() < 1e-12);
        // Labels 2, 0, 2, 1: float predicts 2, 0, 2, 0 (3 hits), quantized 1, 0, 1, 0 (1).
        assert_eq!(logits.accuracy, Some((0.75, 0.25)));
        assert_eq!((map.items, map.classes, map.accuracy), (4, None, None));
        assert_eq!(map.item_shape, [3, 1]);
        assert_eq!(map.agreement.sqnr_db, f64::INFINITY);
        assert!((map.agreement.cosine - 1.0).abs() < 1e-12);
        assert_eq!((logits.exact, map.exact), (None, None));
        // Cast truncates: [1, 2, 3, 3, 2, 1] vs [1, 2, 1, 3, 2, 0]: 4 of 6 values equal.
        assert_eq!((r[2].exact, r[2].classes), (Some(4.0 / 6.0), None));
    }

    #[test]
    fn error_jump_is_the_largest_fall() {
        let l = |v: &[(&str, f64)]| {
            v.iter()
                .map(|(n, s)| (n.to_string(), *s))
                .collect::<Vec<_>>()
        };
        // Exact at a, then 40 dB, 38 dB, a fall of 20 dB at d, 1 dB more at e.
        let layers = l(&[
            ("a", f64::INFINITY),
            ("b", 40.0),
            ("c", 38.0),
            ("d", 18.0),
            ("e", 17.0),
        ]);
        assert_eq!(error_jump(&layers), Some(("d", 20.0)));
        // Never falling: the error appears at the first inexact layer.
        let layers = l(&[("a", f64::INFINITY), ("b", 30.0), ("c", 35.0)]);
        assert_eq!(error_jump(&layers), Some(("b", 0.0)));
        assert_eq!(error_jump(&l(&[("x", f64::INFINITY)])), None);
    }
}
