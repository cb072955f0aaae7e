//! Percentile amax: `_compute_amax_percentile` of the reference.
//!
//! `cdf = cumsum(hist / total)` in f64 (each count divided first, summed in order);
//! amax is the *left* edge of the first bin with `cdf >= p / 100`, or the last edge
//! when rounding keeps the cdf below it (e.g. `p = 100`). No interpolation, so the
//! result is up to one bin width below the exact percentile.

use crate::error::{Error, Result};

/// Rejects percentiles outside [0, 100] (and NaN).
pub(super) fn check(p: f64) -> Result<()> {
    if (0.0..=100.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::InvalidPercentile(p))
    }
}

/// amax at percentile `p` (already checked).
pub(super) fn amax(counts: &[u64], edges: &[f32], p: f64) -> f32 {
    let total = counts.iter().sum::<u64>() as f64;
    let target = p / 100.0;
    let mut cdf = 0.0f64;
    for (k, &n) in counts.iter().enumerate() {
        cdf += n as f64 / total;
        if cdf >= target {
            return edges[k];
        }
    }
    edges[counts.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_edge_of_the_first_bin_reaching_the_percentile() {
        let edges = [0.0f32, 1.0, 2.0, 3.0, 4.0];
        let counts = [1u64, 1, 1, 1];
        assert_eq!(amax(&counts, &edges, 0.0), 0.0);
        assert_eq!(amax(&counts, &edges, 25.0), 0.0);
        assert_eq!(amax(&counts, &edges, 25.1), 1.0);
        assert_eq!(amax(&counts, &edges, 50.0), 1.0);
        assert_eq!(amax(&counts, &edges, 100.0), 3.0);
        // 0.1 + 0.2 + ... in f64 stays below 1 for some splits: then the last edge.
        let counts = [1u64; 10];
        let edges: Vec<f32> = (0..=10).map(|k| k as f32).collect();
        let mut cdf = 0.0f64;
        for _ in 0..10 {
            cdf += 0.1;
        }
        let want = if cdf >= 1.0 { 9.0 } else { 10.0 };
        assert_eq!(amax(&counts, &edges, 100.0), want);
    }

    #[test]
    fn range_check() {
        assert!(check(0.0).is_ok() && check(100.0).is_ok() && check(99.99).is_ok());
        for p in [-1e-9, 100.000_001, f64::NAN, f64::INFINITY] {
            assert!(matches!(check(p), Err(Error::InvalidPercentile(_))), "{p}");
        }
    }
}
