//! MSE amax search: `_compute_amax_mse` of the reference.
//!
//! Candidates are bin centers `centers[i]`, `i` in `start_bin..len` (exclusive) step
//! `stride`. Each one fake-quantizes every bin center with amax = that center (the
//! function defaults: narrow range, the integer grid or FP8 E4M3) and scores
//! `mean(fl32(fl32((fq(c) - c)^2) * count))`; the first minimum wins.
//!
//! The float32 terms are bit-exact with the reference; their mean is accumulated in
//! f64 instead of torch's float32 reduction (the same bin won in every case checked
//! in the spec). Empty bins add exactly 0 and are skipped.

use rayon::prelude::*;

use super::{Ties, argmin};
use crate::error::{Error, Result};
use crate::tensor_quant::kernel::{E4M3Params, IntParams};
use crate::tensor_quant::{IntRange, NumBits};

/// amax by least mean squared quantization error (see the module docs).
pub(super) fn amax(
    counts: &[u64],
    edges: &[f32],
    num_bits: NumBits,
    unsigned: bool,
    start_bin: usize,
    stride: usize,
) -> Result<f32> {
    if stride == 0 {
        return Err(Error::Unsupported {
            what: "a candidate stride of 0",
            format: "mse calibration".into(),
        });
    }
    if counts.len() <= start_bin {
        return Err(Error::TooFewBins {
            method: "mse",
            bins: counts.len(),
            start_bin,
        });
    }
    let centers: Vec<f32> = edges.windows(2).map(|e| (e[1] + e[0]) / 2.0).collect();
    let (values, weights): (Vec<f32>, Vec<f32>) = centers
        .iter()
        .zip(counts)
        .filter(|&(_, &n)| n > 0)
        .map(|(&c, &n)| (c, n as f32))
        .unzip();
    let candidates: Vec<usize> = (start_bin..counts.len()).step_by(stride).collect();
    let bins = counts.len() as f64;
    let errors: Vec<f64> = match num_bits {
        NumBits::Int(b) => {
            let range = IntRange::new(b, unsigned, true)?;
            candidates
                .par_iter()
                .with_min_len(16)
                .map_init(Vec::new, |terms, &i| {
                    let q = IntParams::new(centers[i], range);
                    squared_error(&values, &weights, terms, |x| q.fake(x)) / bins
                })
                .collect()
        }
        NumBits::E4M3(_) => candidates
            .par_iter()
            .with_min_len(16)
            .map_init(Vec::new, |terms, &i| {
                let q = E4M3Params::new(centers[i]);
                squared_error(&values, &weights, terms, |x| q.fake(x)) / bins
            })
            .collect(),
    };
    Ok(centers[candidates[argmin(&errors, Ties::First)]])
}

/// `Σ fl32(fl32((fake(c) - c)^2) * w)`, accumulated in f64.
///
/// Two simple loops rather than one, so both vectorise: the float32 terms into
/// `terms` (a scratch buffer reused across candidates), then their f64 sum.
#[inline(always)]
fn squared_error(
    values: &[f32],
    weights: &[f32],
    terms: &mut Vec<f32>,
    fake: impl Fn(f32) -> f32,
) -> f64 {
    terms.resize(values.len(), 0.0);
    for ((t, &v), &w) in terms.iter_mut().zip(values).zip(weights) {
        let d = fake(v) - v;
        *t = d * d * w;
    }
    // Independent lanes; reassociating the f64 sum moves it by ulps of f64, far below
    // the float32 terms' own rounding.
    const LANES: usize = 4;
    let (chunks, rest) = terms.as_chunks::<LANES>();
    let mut acc = [0.0f64; LANES];
    for chunk in chunks {
        for l in 0..LANES {
            acc[l] += f64::from(chunk[l]);
        }
    }
    acc.iter().sum::<f64>() + rest.iter().map(|&t| f64::from(t)).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference loop, literally, over every bin (empty ones too).
    fn reference(
        counts: &[u64],
        edges: &[f32],
        bits: u32,
        unsigned: bool,
        start_bin: usize,
        stride: usize,
    ) -> f32 {
        let centers: Vec<f32> = edges.windows(2).map(|e| (e[1] + e[0]) / 2.0).collect();
        let range = IntRange::new(bits, unsigned, true).unwrap();
        let mut best = (f64::INFINITY, 0);
        for i in (start_bin..centers.len()).step_by(stride) {
            let q = IntParams::new(centers[i], range);
            let mut sum = 0.0f64;
            for (&c, &n) in centers.iter().zip(counts) {
                let d = q.fake(c) - c;
                sum += f64::from(d * d * n as f32);
            }
            let mse = sum / centers.len() as f64;
            if mse < best.0 {
                best = (mse, i);
            }
        }
        centers[best.1]
    }

    #[test]
    fn matches_the_reference_loop() {
        let u = crate::calib::histogram::tests::uniform(21, 4096);
        let edges: Vec<f32> = (0..=2048).map(|k| k as f32 * (6.0 / 2048.0)).collect();
        let counts: Vec<u64> = (0..2048)
            .map(|k| {
                let x = f64::from(edges[k]);
                let dense = 100_000.0 * (-x * x / 2.0).exp() * (0.9 + 0.2 * f64::from(u[k]));
                if dense < 1.0 {
                    u64::from(u[k + 2048] < 0.02)
                } else {
                    dense as u64
                }
            })
            .collect();
        for (bits, unsigned, start_bin, stride) in [
            (8, false, 128, 1),
            (8, true, 128, 1),
            (4, false, 16, 3),
            (6, false, 500, 2),
        ] {
            let got = amax(
                &counts,
                &edges,
                NumBits::Int(bits),
                unsigned,
                start_bin,
                stride,
            )
            .unwrap();
            let want = reference(&counts, &edges, bits, unsigned, start_bin, stride);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{bits} bits unsigned={unsigned}"
            );
        }
    }

    #[test]
    fn first_minimum_wins() {
        assert_eq!(argmin(&[3.0, 1.0, 2.0, 1.0], Ties::First), 1);
        assert_eq!(argmin(&[3.0, f64::NAN, 0.0, f64::NAN], Ties::First), 1);
        assert_eq!(argmin(&[3.0, 1.0, 2.0, 1.0], Ties::Last), 3);
        assert_eq!(argmin(&[3.0, f64::NAN, 0.0, f64::NAN], Ties::Last), 3);
        // Data only in bin 0 (center 0.5): every candidate rounds it to 0, an equal
        // error for all, so the first candidate is the answer.
        let mut counts = vec![0u64; 300];
        counts[0] = 5;
        let edges: Vec<f32> = (0..=300).map(|k| k as f32).collect();
        let got = amax(&counts, &edges, NumBits::Int(8), false, 128, 1).unwrap();
        assert_eq!(got, 128.5);
    }

    #[test]
    fn e4m3_candidates_use_the_fp8_grid() {
        let edges: Vec<f32> = (0..=2048).map(|k| k as f32 / 2048.0).collect();
        let counts = vec![1u64; 2048];
        let got = amax(&counts, &edges, NumBits::FP8_E4M3, false, 128, 1).unwrap();
        // Uniform data: FP8's relative precision makes clipping the costlier error.
        assert!(got > 0.9, "{got}");
    }
}
