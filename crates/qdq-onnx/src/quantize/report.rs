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
    let pred = top1(logits, classes);
    let hits = pred
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p as i64 == **l)
        .count();
    hits as f64 / pred.len().max(1) as f64
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

/// Compares `quantized` with `reference` (rows of `classes` values).
pub fn compare(reference: &[f32], quantized: &[f32], classes: usize) -> Agreement {
    let (a, b) = (top1(reference, classes), top1(quantized, classes));
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    let (mut signal, mut noise, mut dot, mut nb) = (0f64, 0f64, 0f64, 0f64);
    for (&x, &y) in reference.iter().zip(quantized) {
        let (x, y) = (x as f64, y as f64);
        signal += x * x;
        noise += (x - y) * (x - y);
        dot += x * y;
        nb += y * y;
    }
    Agreement {
        top1: same as f64 / a.len().max(1) as f64,
        sqnr_db: if noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (signal / noise).log10()
        },
        cosine: if signal == 0.0 || nb == 0.0 {
            0.0
        } else {
            dot / (signal.sqrt() * nb.sqrt())
        },
    }
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
