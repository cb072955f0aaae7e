//! Binning |x| exactly as `torch.histc` does: the reference's bin edges, one
//! scan for the max and non-finite values, and serial or parallel counting.

use rayon::prelude::*;

use super::dyadic;
use crate::error::{Error, Result};

/// Most bins a histogram may have, first or grown (4 Mi). It keeps a runaway growth
/// (a tiny first batch followed by a huge one) from allocating without bound, keeps
/// the searches' cost sane (entropy is quadratic in the bins), and lets
/// [`Binner::bin`] convert bin numbers with exact float tricks (valid below 2^22).
pub(super) const MAX_BINS: usize = 1 << 22;

/// Bit pattern of +Inf: every |x| pattern at or above it is Inf or NaN.
pub(super) const INF_BITS: u32 = 0x7f80_0000;

/// `1.5 * 2^23`: adding it to `0 <= y < 2^22` rounds `y` to an integer in the binade
/// where the float's bits count in units.
pub(super) const FLOOR_MAGIC: f32 = 12_582_912.0;

/// Batches up to this size are scanned and binned on the calling thread.
pub(super) const SERIAL_LEN: usize = 1 << 16;

/// `torch.linspace(0, e, num_bins + 1)` in float32 as ATen's CPU kernel computes it:
/// `step = fl32(e / num_bins)`; the first half `fl32(step * i)`, the second half
/// `fl32(e - fl32(step * (num_bins - i)))`, so the last edge is exactly `e`.
pub(super) fn linspace_edges(e: f32, num_bins: usize) -> Vec<f32> {
    let steps = num_bins + 1;
    let step = e / num_bins as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                step * i as f32
            } else {
                e - step * (steps - 1 - i) as f32
            }
        })
        .collect()
}

/// What one read pass over a batch finds.
#[derive(Clone, Copy)]
pub(super) struct Scan {
    /// Bit pattern of max |x| (>= `INF_BITS` when the batch holds Inf or NaN).
    pub(super) max_bits: u32,
    /// Number of zeros (either sign).
    pub(super) zeros: usize,
}

pub(super) fn scan(data: &[f32]) -> Scan {
    if data.len() <= SERIAL_LEN {
        return scan_serial(data);
    }
    data.par_chunks(SERIAL_LEN).map(scan_serial).reduce(
        || Scan {
            max_bits: 0,
            zeros: 0,
        },
        |a, b| Scan {
            max_bits: a.max_bits.max(b.max_bits),
            zeros: a.zeros + b.zeros,
        },
    )
}

/// The max is taken over magnitude bit patterns: for non-negative floats they order
/// like the values, and Inf/NaN patterns sort above every finite one, so one integer
/// max both finds max |x| and flags non-finite data, in lanes that vectorise.
pub(super) fn scan_serial(data: &[f32]) -> Scan {
    const LANES: usize = 8;
    let (chunks, rest) = data.as_chunks::<LANES>();
    let mut max = [0u32; LANES];
    // Per-lane zero counts fit u32: callers pass at most SERIAL_LEN values.
    let mut zeros = [0u32; LANES];
    for chunk in chunks {
        for l in 0..LANES {
            let bits = chunk[l].to_bits() & 0x7fff_ffff;
            max[l] = max[l].max(bits);
            zeros[l] += u32::from(bits == 0);
        }
    }
    let mut scan = Scan {
        max_bits: max.into_iter().max().unwrap_or(0),
        zeros: zeros.iter().map(|&z| z as usize).sum(),
    };
    for &x in rest {
        let bits = x.to_bits() & 0x7fff_ffff;
        scan.max_bits = scan.max_bits.max(bits);
        scan.zeros += usize::from(bits == 0);
    }
    scan
}

/// `torch.histc(|x|, bins = n, min = 0, max = hi)`'s bin of one value:
/// `trunc(fl32(fl32(|x| * n) / hi))` in float32 (multiply, then divide), with
/// `|x| == hi` in the last bin. Callers guarantee `|x| <= hi`.
#[derive(Clone, Copy)]
pub(super) struct Binner {
    n: f32,
    /// Right edge of the last bin.
    hi: f32,
    last: f32,
}

impl Binner {
    /// The dyadic grid's binner: `floor(|x| / 2^exp)` (`n = 1`, `hi = 2^exp`; dividing
    /// by a power of two is exact, and no product can overflow), at most `bins - 1`.
    pub(super) fn dyadic(exp: i32, bins: usize) -> Self {
        Self {
            n: 1.0,
            hi: dyadic::pow2(exp),
            last: bins.saturating_sub(1) as f32,
        }
    }

    pub(super) fn new(hi: f32, num_bins: usize) -> Result<Self> {
        let n = num_bins as f32;
        if !(hi * n).is_finite() {
            return Err(Error::Unsupported {
                what: "histogram binning of values this large",
                format: format!(
                    "max |x| = {hi:e} with {num_bins} bins (|x| * bins overflows float32; scale the data down)"
                ),
            });
        }
        Ok(Self {
            n,
            hi,
            last: n - 1.0,
        })
    }

    #[inline(always)]
    pub(super) fn bin(self, x: f32) -> u32 {
        let v = f32::from_bits(x.to_bits() & 0x7fff_ffff);
        let y = (v * self.n) / self.hi;
        // Clamping before truncation equals clamping after (`last` is an integer).
        let y = if y < self.last { y } else { self.last };
        // trunc(y) = floor(y) as y >= 0, taken with the 1.5 * 2^23 rounding trick
        // (exact for y < 2^22, see MAX_BINS) and read from the bits: `as u32` would
        // be a saturating conversion that does not vectorise.
        let r = (y + FLOOR_MAGIC) - FLOOR_MAGIC;
        let floor = if r > y { r - 1.0 } else { r };
        (floor + FLOOR_MAGIC).to_bits() - FLOOR_MAGIC.to_bits()
    }
}

/// Bins with a histc kernel that takes its bin count from the length of its counts
/// (the GPU's `histc(hi, counts)`, which computes as [`Binner::bin`] does).
///
/// A reference binner maps to it directly. A dyadic one (`n = 1`) goes through `cap`
/// = its bins rounded up to a power of two and `hi = cap · 2^exp`: `fl32(|x| · cap) /
/// hi` is then `|x| / 2^exp` exactly, the same bins; values lie below `bins · 2^exp`,
/// so bins `bins..cap` stay empty. `None` when `hi · cap` overflows float32 (data above
/// about 2^115): the caller bins on the host.
// Only the GPU path calls it outside the tests.
#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
pub(super) fn via_histc(
    binner: Binner,
    counts: &mut [u64],
    histc: impl FnOnce(f32, &mut [u64]) -> Result<()>,
) -> Option<Result<()>> {
    if binner.n == counts.len() as f32 {
        return Some(histc(binner.hi, counts));
    }
    let cap = counts.len().next_power_of_two();
    let hi = cap as f32 * binner.hi;
    if !(hi * cap as f32).is_finite() {
        return None;
    }
    let mut all = vec![0u64; cap];
    if let Err(e) = histc(hi, &mut all) {
        return Some(Err(e));
    }
    let (kept, above) = all.split_at(counts.len());
    for (c, &a) in counts.iter_mut().zip(kept) {
        *c += a;
    }
    // Empty (see above); were it not, the host's clamp would count it in the last bin.
    if let Some(last) = counts.last_mut() {
        *last += above.iter().sum::<u64>();
    }
    Some(Ok(()))
}

/// Bins `data` into `counts`: on this thread for small batches, otherwise one
/// private histogram per part, summed at the end.
pub(super) fn bin_into(data: &[f32], binner: Binner, counts: &mut [u64]) {
    // A part should hold several times more values than bins, or zeroing and summing
    // its private histogram costs more than it saves.
    let per_part = (4 * counts.len()).max(SERIAL_LEN);
    let parts = (data.len() / per_part).clamp(1, rayon::current_num_threads());
    if parts == 1 {
        bin_serial(data, binner, counts);
        return;
    }
    let bins = counts.len();
    let locals: Vec<Vec<u64>> = data
        .par_chunks(data.len().div_ceil(parts))
        .map(|part| {
            let mut local = vec![0u64; bins];
            bin_serial(part, binner, &mut local);
            local
        })
        .collect();
    for local in &locals {
        for (c, &l) in counts.iter_mut().zip(local) {
            *c += l;
        }
    }
}

pub(super) fn bin_serial(data: &[f32], binner: Binner, counts: &mut [u64]) {
    // Bin indices are computed a block at a time (that loop vectorises, the float
    // division being the cost) and scattered afterwards.
    const BLOCK: usize = 256;
    let mut idx = [0u32; BLOCK];
    for block in data.chunks(BLOCK) {
        for (i, &x) in idx.iter_mut().zip(block) {
            *i = binner.bin(x);
        }
        for &i in &idx[..block.len()] {
            counts[i as usize] += 1;
        }
    }
}
