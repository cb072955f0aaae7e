//! Entropy (KL divergence) amax search: `_compute_amax_entropy` of the reference.
//!
//! For every candidate number of kept bins `i` (`start_bin..=len`, step `stride`):
//! `P` = the first `i` bins with everything above folded into the last kept one, `Q`
//! = those bins merged into `2^(bits-1+unsigned)` contiguous groups and expanded back
//! as each group's average over its non-empty bins. The candidate with the least
//! `KL(P || Q)` gives amax = the right edge of its last kept bin.
//!
//! The reference takes O(i) logarithms per candidate in Python (~1 s for 2048 bins).
//! Here `ln b` is taken once per bin and `ln(S/N)` once per group and candidate, and
//!
//! `KL = (1/T) Σ_j P_j (ln P_j − ln Q_j) + ln(T'/T)`, `T = Σ P` (all data), `T' = Σ Q`,
//!
//! which is `Σ p ln(p/q)` with `p = P/T`, `q = Q/T'` rearranged. Wherever `P` equals
//! `Q` every term is exactly 0 (the same `ln` of the same number), so exact ties
//! between candidates, which decide the result through the last-minimum rule, are
//! reproduced.

use rayon::prelude::*;

use super::{Ties, argmin};
use crate::error::{Error, Result};
use crate::tensor_quant::NumBits;

/// amax by least KL divergence (see the module docs).
///
/// Reference rules kept: bin 0 takes bin 1's count first (suppresses a ReLU zero
/// spike), the *last* minimum wins, and if any candidate's divergence is NaN (it kept
/// no data, so `Q` sums to 0) the last NaN candidate wins, as `np.argmin` returns the
/// first NaN of the reversed list.
pub(super) fn amax(
    counts: &[u64],
    edges: &[f32],
    num_bits: NumBits,
    unsigned: bool,
    start_bin: usize,
    stride: usize,
) -> Result<f32> {
    let levels = match num_bits {
        NumBits::Int(b) => 1usize << (b - 1 + u32::from(unsigned)),
        NumBits::E4M3(_) => {
            return Err(Error::Unsupported {
                what: "entropy calibration",
                format: "FP8 E4M3 (num_bits (4, 3)); use mse, percentile or max".into(),
            });
        }
    };
    if stride == 0 {
        return Err(Error::Unsupported {
            what: "a candidate stride of 0",
            format: "entropy calibration".into(),
        });
    }
    if start_bin == 0 {
        // The reference fails on the empty candidate too (`reference_density[-1]`).
        return Err(Error::Unsupported {
            what: "start_bin 0 (a candidate keeping no bins)",
            format: "entropy calibration".into(),
        });
    }
    if counts.len() < start_bin.max(2) {
        return Err(Error::TooFewBins {
            method: "entropy",
            bins: counts.len(),
            start_bin,
        });
    }
    let kl = Divergence::new(counts, levels);
    let candidates: Vec<usize> = (start_bin..=counts.len()).step_by(stride).collect();
    let divergences: Vec<f64> = candidates
        .par_iter()
        .with_min_len(32)
        .map(|&i| kl.of(i))
        .collect();
    Ok(edges[candidates[argmin(&divergences, Ties::Last)]])
}

/// Per-bin tables shared by all candidates.
struct Divergence {
    /// Counts, bin 0 replaced by bin 1.
    bins: Vec<u64>,
    /// `bins` as f64.
    bins_f: Vec<f64>,
    /// `ln(bins)`, 0 for empty bins (multiplied by their count 0).
    ln_bins: Vec<f64>,
    /// `cum[j]` = sum of `bins[..j]`.
    cum: Vec<u64>,
    /// `nonzero[j]` = number of non-empty bins in `bins[..j]`.
    nonzero: Vec<u64>,
    /// Quantization levels the kept bins are merged into.
    levels: usize,
}

impl Divergence {
    fn new(counts: &[u64], levels: usize) -> Self {
        let mut bins = counts.to_vec();
        bins[0] = bins[1];
        let mut cum = Vec::with_capacity(bins.len() + 1);
        let mut nonzero = Vec::with_capacity(bins.len() + 1);
        let (mut c, mut z) = (0u64, 0u64);
        cum.push(0);
        nonzero.push(0);
        for &b in &bins {
            c += b;
            z += u64::from(b > 0);
            cum.push(c);
            nonzero.push(z);
        }
        let bins_f = bins.iter().map(|&b| b as f64).collect();
        let ln_bins = bins
            .iter()
            .map(|&b| if b > 0 { (b as f64).ln() } else { 0.0 })
            .collect();
        Self {
            bins,
            bins_f,
            ln_bins,
            cum,
            nonzero,
            levels,
        }
    }

    /// `KL(P || Q)` keeping `i >= 1` bins (scipy.stats.entropy semantics: NaN when `Q`
    /// or `P` sums to 0, +inf when `P > 0` where `Q = 0`).
    fn of(&self, i: usize) -> f64 {
        let total = self.cum[self.bins.len()];
        let kept = self.cum[i];
        if total == 0 || kept == 0 {
            return f64::NAN;
        }
        let outliers = total - kept;
        let last = i - 1;
        if outliers > 0 && self.bins[last] == 0 {
            // Only the last kept bin can have P > 0 = Q (Q is 0 just where bins are).
            return f64::INFINITY;
        }
        let p_last = (self.bins[last] + outliers) as f64;
        let mut sum = 0.0;
        if i <= self.levels {
            // Every kept bin is a group of its own (floor(j * levels / i) is
            // injective), so Q equals P except in the last bin when it took outliers.
            if outliers > 0 {
                sum = p_last * (p_last.ln() - self.ln_bins[last]);
            }
        } else {
            // Group k holds bins j with floor(j * levels / i) == k: a contiguous range.
            let mut lo = 0;
            for k in 0..self.levels {
                let hi = ((k + 1) * i).div_ceil(self.levels);
                let filled = self.nonzero[hi] - self.nonzero[lo];
                let takes_outliers = hi == i && outliers > 0;
                // A group with one non-empty bin averages to that bin: all terms 0.
                if filled > 1 || (filled == 1 && takes_outliers) {
                    let mean = (self.cum[hi] - self.cum[lo]) as f64 / filled as f64;
                    let ln_q = mean.ln();
                    let end = if takes_outliers { hi - 1 } else { hi };
                    let mut group = 0.0;
                    for j in lo..end {
                        group += self.bins_f[j] * (self.ln_bins[j] - ln_q);
                    }
                    if takes_outliers {
                        group += p_last * (p_last.ln() - ln_q);
                    }
                    sum += group;
                }
                lo = hi;
            }
        }
        // ln(T'/T) is exactly 0 without outliers.
        sum / total as f64 + (kept as f64 / total as f64).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INT8: NumBits = NumBits::Int(8);

    /// The reference loop, literally: digitize, group averages, scipy's entropy.
    fn reference_divergences(
        counts: &[u64],
        levels: usize,
        start_bin: usize,
        stride: usize,
    ) -> Vec<f64> {
        let mut bins = counts.to_vec();
        bins[0] = bins[1];
        let total: u64 = bins.iter().sum();
        let mut out = Vec::new();
        for i in (start_bin..=bins.len()).step_by(stride) {
            let group: Vec<Option<usize>> = (0..i)
                .map(|j| (bins[j] != 0).then_some(j * levels / i))
                .collect();
            let mut sums = vec![0.0f64; levels];
            let mut ns = vec![0usize; levels];
            for (j, g) in group.iter().enumerate() {
                if let Some(g) = *g {
                    sums[g] += bins[j] as f64;
                    ns[g] += 1;
                }
            }
            let q: Vec<f64> = group
                .iter()
                .map(|g| g.map_or(0.0, |g| sums[g] / ns[g] as f64))
                .collect();
            let mut p: Vec<f64> = bins[..i].iter().map(|&b| b as f64).collect();
            p[i - 1] += bins[i..].iter().sum::<u64>() as f64;
            let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
            let mut d = 0.0;
            for (&pj, &qj) in p.iter().zip(&q) {
                let (pj, qj) = (pj / sp, qj / sq);
                d += if pj.is_nan() || qj.is_nan() {
                    f64::NAN
                } else if pj > 0.0 && qj > 0.0 {
                    pj * (pj / qj).ln()
                } else if pj == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                };
            }
            out.push(d);
        }
        let _ = total;
        out
    }

    fn edges(n: usize) -> Vec<f32> {
        (0..=n).map(|k| k as f32).collect()
    }

    /// Counts shaped like |N(0, 1)| activations with a sparse tail.
    fn activation_like(n: usize, seed: u64) -> Vec<u64> {
        let u = crate::calib::histogram::tests::uniform(seed, n);
        (0..n)
            .map(|k| {
                let x = k as f64 / n as f64 * 6.0;
                let dense = 200_000.0 * (-x * x / 2.0).exp();
                let noise = f64::from(u[k]);
                if dense < 1.0 {
                    u64::from(noise < 0.05 * (1.0 + 3.0 * dense))
                } else {
                    (dense * (0.9 + 0.2 * noise)) as u64
                }
            })
            .collect()
    }

    #[test]
    fn matches_the_reference_loop() {
        let cases: Vec<(Vec<u64>, usize, usize, usize)> = vec![
            (activation_like(2048, 1), 128, 128, 1),
            (activation_like(700, 2), 256, 128, 1),
            (activation_like(600, 3), 8, 16, 5),
            (activation_like(300, 4), 128, 100, 2),
            ((0..400u64).map(|k| (k * 7919) % 13).collect(), 16, 20, 1),
        ];
        for (n, (counts, levels, start_bin, stride)) in cases.into_iter().enumerate() {
            let want = reference_divergences(&counts, levels, start_bin, stride);
            let kl = Divergence::new(&counts, levels);
            let got: Vec<f64> = (start_bin..=counts.len())
                .step_by(stride)
                .map(|i| kl.of(i))
                .collect();
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                let ok =
                    (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 1e-12 + 1e-9 * w.abs();
                assert!(ok, "case {n} candidate {k}: {g} vs {w}");
            }
            assert_eq!(
                argmin(&got, Ties::Last),
                argmin(&want, Ties::Last),
                "case {n}"
            );
        }
    }

    #[test]
    fn exact_ties_go_to_the_last_candidate() {
        // Equal counts in the first 300 bins, nothing above: for every candidate
        // keeping all the data, each group's non-empty bins equal their average, so
        // P == Q and KL is exactly 0; the last of those ties (all 2048 bins) wins,
        // not the first (300 bins).
        let mut counts = vec![0u64; 2048];
        counts[..300].fill(7);
        let kl = Divergence::new(&counts, 128);
        assert!((300..=2048).all(|i| kl.of(i) == 0.0));
        assert!(kl.of(299) > 0.0);
        let e = edges(2048);
        assert_eq!(amax(&counts, &e, INT8, false, 128, 1).unwrap(), 2048.0);
        // Isolated non-empty bins (integer-valued data) tie the same way.
        let mut sparse = vec![0u64; 2048];
        for k in (0..2048).step_by(21) {
            sparse[k] = 1 + (k as u64 % 5);
        }
        let kl = Divergence::new(&sparse, 128);
        let last_full = 2048;
        assert_eq!(kl.of(last_full), 0.0);
        assert_eq!(amax(&sparse, &e, INT8, false, 128, 1).unwrap(), 2048.0);
    }

    #[test]
    fn nan_and_inf_candidates() {
        // Data only in bins 1000..1100: candidates up to 1000 keep nothing (NaN),
        // and the last of them is the answer, whatever the finite minimum.
        let mut counts = vec![0u64; 2048];
        counts[1000..1100].fill(50);
        let e = edges(2048);
        assert_eq!(amax(&counts, &e, INT8, false, 128, 1).unwrap(), 1000.0);
        // Last kept bin empty with data above: +inf, never chosen while finite exist.
        let mut counts = vec![10u64; 2048];
        counts[1500] = 0;
        let kl = Divergence::new(&counts, 128);
        assert_eq!(kl.of(1501), f64::INFINITY);
        assert!(kl.of(1502).is_finite());
        // Stride and start_bin map back to edges[start_bin + k * stride].
        let mut counts = activation_like(2048, 9);
        counts[2047] += 1;
        let got = amax(&counts, &e, INT8, false, 130, 7).unwrap();
        assert_eq!((got as usize - 130) % 7, 0);
        let want = reference_divergences(&counts, 128, 130, 7);
        assert_eq!(got as usize, 130 + 7 * argmin(&want, Ties::Last));
    }

    #[test]
    fn levels_follow_bits_and_sign() {
        let counts = activation_like(2048, 4);
        let e = edges(2048);
        for (bits, unsigned, levels) in [
            (8, false, 128),
            (8, true, 256),
            (4, false, 8),
            (16, true, 65536),
        ] {
            let got = amax(&counts, &e, NumBits::Int(bits), unsigned, 128, 1).unwrap();
            let want = reference_divergences(&counts, levels, 128, 1);
            assert_eq!(
                got as usize,
                128 + argmin(&want, Ties::Last),
                "{bits} bits unsigned={unsigned}"
            );
        }
    }
}
