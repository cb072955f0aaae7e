//! The dyadic grid: histogram bins of width `2^exp` anchored at zero, chosen from the
//! largest |x| alone, so the counts depend only on the data collected, not on its order
//! or on how it was split into batches or shards.
//!
//! The reference grid ([`super::Grid::Reference`]) takes its bin width from the first
//! batch (`max / 2048`) and keeps it as the range grows: the same data in batches of 1
//! and of 32 lands on different grids, and histograms of two shards rarely merge.
//! Here, for a histogram whose largest |x| is `max > 0`:
//!
//! - `2^p` is `num_bins` rounded up to a power of two (2048 → `p = 11`; `p <= 21`);
//! - `exp` is the smallest integer `>= -149` with `max < 2^(p+1) · 2^exp`;
//! - the grid has `bins = floor(max / 2^exp) + 1` bins, edges `j · 2^exp`.
//!
//! So `2^p + 1 <= bins <= 2^(p+1)` (2049 to 4096 by default): more than `num_bins` bins
//! span `[0, max]`, at least as fine as the reference's 2048, and never more than twice
//! that, which bounds the entropy and MSE searches' cost. The last bin holds `max`.
//!
//! A value's bin is `floor(|x| / 2^exp)`, computed exactly (division by a power of two).
//! As `floor(floor(x / 2^e) / 2^d) = floor(x / 2^(e+d))`, the counts on a grid with a
//! larger `exp` are sums of `2^d` adjacent old bins: growing the range ([`coarsen`])
//! and merging shards are exact, and every order and split of the same data gives the
//! counts of binning all of it at once on the final grid.
//!
//! Range: `exp = -149` makes bins one smallest subnormal wide (every float is a multiple
//! of it), so subnormal data is binned exactly; `exp <= 127 - p` (116 by default) covers
//! values up to `f32::MAX`. The one edge that float32 cannot hold, `2^128`, is stored as
//! `f32::MAX` (no finite value lies above it). A histogram of only zeros has no grid yet
//! (its edges are all zero, as on the reference grid) and every method gives amax 0.

use super::Binner;

/// Smallest bin-width exponent: 2^-149 is the smallest positive float32.
pub(super) const MIN_EXP: i32 = -149;

/// Largest `p` (`2^p >= num_bins`): `2^(p+1)` bins is then [`super::MAX_BINS`], below
/// which [`Binner::bin`] truncates exactly.
const MAX_P: u32 = 21;

/// Bins of width `2^exp` from zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DyadicGrid {
    /// Bin width exponent, `MIN_EXP..=127 - p`.
    pub exp: i32,
    /// Number of bins, `2^p + 1..=2^(p+1)` (fewer only where `exp` is `MIN_EXP`).
    pub bins: usize,
}

impl DyadicGrid {
    /// The grid for data whose largest |x| is `max` (finite, > 0), `num_bins` (>= 1)
    /// giving `p` (see the module docs).
    pub fn for_max(max: f32, num_bins: usize) -> Self {
        let p = num_bins.next_power_of_two().trailing_zeros().min(MAX_P) as i32;
        let exp = (floor_log2(max) - p).max(MIN_EXP);
        // max / 2^exp < 2^(p+1) <= 2^22, exact; its floor is a bin number.
        let top = Binner::dyadic(exp, usize::MAX).bin(max) as usize;
        Self { exp, bins: top + 1 }
    }

    /// The grid of a histogram's edges (`bins + 1` of them, `edges[1] = 2^exp`).
    pub fn of_edges(edges: &[f32]) -> Self {
        Self {
            exp: floor_log2(edges[1]),
            bins: edges.len() - 1,
        }
    }

    /// `bins + 1` edges `j · 2^exp` (each exact), the last at most `f32::MAX`.
    pub fn edges(self) -> Vec<f32> {
        let width = pow2(self.exp);
        (0..=self.bins)
            .map(|j| (j as f32 * width).min(f32::MAX))
            .collect()
    }

    /// The binner for this grid: `floor(|x| / 2^exp)`, at most `bins - 1`.
    pub fn binner(self) -> Binner {
        Binner::dyadic(self.exp, self.bins)
    }
}

/// `counts` on grid `from` summed onto the coarser (or same) grid `to`: old bin `j`
/// goes to `j >> (to.exp - from.exp)`.
pub(super) fn coarsen(counts: &[u64], from: DyadicGrid, to: DyadicGrid) -> Vec<u64> {
    debug_assert!(to.exp >= from.exp);
    let shift = u32::try_from(to.exp - from.exp).unwrap_or(0);
    let mut out = vec![0u64; to.bins];
    let last = to.bins - 1;
    for (j, &c) in counts.iter().enumerate() {
        // The clamp never acts when `to` covers `from`'s data; it keeps a bad caller
        // from indexing out of bounds.
        out[j.checked_shr(shift).unwrap_or(0).min(last)] += c;
    }
    out
}

/// `2^e` as float32, for `-149 <= e <= 127` (subnormal below -126).
pub(super) fn pow2(e: i32) -> f32 {
    debug_assert!((MIN_EXP..=127).contains(&e));
    if e >= -126 {
        f32::from_bits(((e + 127) as u32) << 23)
    } else {
        f32::from_bits(1 << (e - MIN_EXP))
    }
}

/// `floor(log2(x))` of a positive finite float32, subnormals included, read from its
/// bits.
pub(super) fn floor_log2(x: f32) -> i32 {
    let bits = x.to_bits() & 0x7fff_ffff;
    let biased = (bits >> 23) as i32;
    if biased > 0 {
        biased - 127
    } else {
        MIN_EXP + (31 - bits.leading_zeros() as i32)
    }
}

#[cfg(test)]
mod tests;
