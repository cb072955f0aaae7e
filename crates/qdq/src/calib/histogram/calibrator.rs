//! [`HistogramCalibrator`]: collecting |x| into a histogram over batches, merging,
//! and running the amax searches on it.

use std::fmt;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "gpu")]
use super::binning::via_histc;
use super::binning::{Binner, INF_BITS, MAX_BINS, Scan, bin_into, linspace_edges, scan};
use super::dyadic::{self, DyadicGrid};
use super::method::HistogramMethod;
use super::{entropy, mse, percentile};
use crate::error::{Error, Result};
use crate::tensor_quant::{Amax, IntRange, NumBits};

/// Bins of a new histogram unless [`HistogramCalibrator::with_num_bins`] says otherwise.
const DEFAULT_NUM_BINS: usize = 2048;

/// Where a histogram's bins lie; chosen with [`HistogramCalibrator::with_grid`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grid {
    /// pytorch-quantization's grid, bit-exact with it: the first non-zero batch spreads
    /// `num_bins` bins over `[0, its max]`, later batches add bins of that width. The
    /// result depends on how the data is split into batches (their order included).
    #[default]
    Reference,
    /// Bins of width `2^exp` anchored at zero, `exp` chosen from the largest |x| so
    /// that more than `num_bins` (and at most twice as many, rounded up to a power of
    /// two) bins span `[0, max]`; a growing range merges whole groups of bins. The
    /// counts depend only on the data, not on its order or split, and histograms of
    /// shards [`merge`](HistogramCalibrator::merge) exactly (see the `dyadic` grid's notes).
    Dyadic,
}

/// Histogram of |x| over batches, from which [`HistogramCalibrator::compute_amax`]
/// derives amax by entropy, MSE or percentile (pytorch-quantization's
/// `HistogramCalibrator`, per tensor only).
///
/// On the default [`Grid::Reference`], the first batch sets a grid of `num_bins` bins
/// over `[0, max|x|]`; a later batch with a larger max adds bins of the same width. On
/// [`Grid::Dyadic`] the grid follows the max so far in power-of-two steps, and the counts
/// do not depend on how the data was split into batches. The histogram is never modified by
/// `compute_amax`, so it can be asked for any method any number of times.
///
/// ```
/// use qdq::calib::{HistogramCalibrator, HistogramMethod};
/// let mut c = HistogramCalibrator::new(8, None, false).unwrap();
/// let data: Vec<f32> = (0..100).map(|v| v as f32).collect();
/// c.collect_slice(&data).unwrap();
/// let amax = c.compute_amax(HistogramMethod::percentile(90.0)).unwrap();
/// assert!((amax.values()[0] - 89.0).abs() < 100.0 / 1024.0);
/// ```
///
/// Where the reference crashes or silently loses data, this one does better:
/// - a first batch of only zeros: the reference builds a zero-width grid (and fails
///   on the next batch); here the zeros are counted in bin 0 of a zero-width grid,
///   and the next batch with non-zero data lays the real grid, keeping them in bin 0
///   (until then every method gives amax 0, as the reference's zero grid does);
/// - `skip_zeros` and a batch of only zeros: the batch is ignored (reference: error);
/// - an empty batch is ignored (reference: error);
/// - NaN or Inf in a batch: [`Error::Data`] naming which, histogram unchanged
///   (reference: histc rejects a non-finite range on the first batch; later, NaN is
///   silently dropped and Inf fails the growth);
/// - more than 2^24 values in one bin are counted exactly (reference: float32
///   counts stop at 2^24);
/// - a batch that would grow the histogram past 2^22 bins (a tiny first batch, then
///   a huge one) is refused with [`Error::Unsupported`] instead of allocating
///   without bound.
#[derive(Clone)]
pub struct HistogramCalibrator {
    pub(super) num_bits: NumBits,
    pub(super) unsigned: bool,
    pub(super) num_bins: usize,
    pub(super) grid: Grid,
    pub(super) skip_zeros: bool,
    /// Count of every bin; empty before any data.
    pub(super) counts: Vec<u64>,
    /// `counts.len() + 1` edges; empty before any data, all zero while only zeros
    /// were seen.
    pub(super) edges: Vec<f32>,
    /// Largest |x| collected (0 before any data).
    pub(super) max_abs: f32,
}

impl HistogramCalibrator {
    /// A per-tensor histogram calibrator for a `num_bits` (`unsigned`) quantizer, with
    /// 2048 bins and zeros counted.
    ///
    /// # Errors
    /// [`Error::HistogramAxis`] when `axis` is given (the reference raises
    /// `NotImplementedError`), [`Error::InvalidNumBits`] for an unsupported integer
    /// width.
    pub fn new(
        num_bits: impl Into<NumBits>,
        axis: Option<Vec<isize>>,
        unsigned: bool,
    ) -> Result<Self> {
        if let Some(axis) = axis {
            return Err(Error::HistogramAxis { axis });
        }
        let num_bits = num_bits.into();
        if let NumBits::Int(b) = num_bits {
            IntRange::new(b, unsigned, false)?;
        }
        Ok(Self {
            num_bits,
            unsigned,
            num_bins: DEFAULT_NUM_BINS,
            grid: Grid::Reference,
            skip_zeros: false,
            counts: Vec::new(),
            edges: Vec::new(),
            max_abs: 0.0,
        })
    }

    /// Number of bins the first batch is spread over (default 2048).
    ///
    /// # Panics
    /// When `num_bins` is 0 or above 2^22.
    #[must_use]
    pub fn with_num_bins(mut self, num_bins: usize) -> Self {
        assert!(
            (1..=MAX_BINS).contains(&num_bins),
            "num_bins must be in 1..=2^22, got {num_bins}"
        );
        self.num_bins = num_bins;
        self
    }

    /// The bin grid (default [`Grid::Reference`]). A different grid forgets the data
    /// collected so far (its counts are on the other grid).
    #[must_use]
    pub fn with_grid(mut self, grid: Grid) -> Self {
        if grid != self.grid {
            self.reset();
        }
        self.grid = grid;
        self
    }

    /// Leave exact zeros (and -0.0) out of the histogram (default false), e.g. for
    /// post-ReLU activations whose zero spike would dominate.
    #[must_use]
    pub fn with_skip_zeros(mut self, skip_zeros: bool) -> Self {
        self.skip_zeros = skip_zeros;
        self
    }

    /// Bits of the quantizer this calibrates.
    pub fn num_bits(&self) -> NumBits {
        self.num_bits
    }

    /// Whether the quantizer is unsigned.
    pub fn unsigned(&self) -> bool {
        self.unsigned
    }

    /// Number of bins a first batch is spread over.
    pub fn num_bins(&self) -> usize {
        self.num_bins
    }

    /// The bin grid.
    pub fn grid(&self) -> Grid {
        self.grid
    }

    /// Whether zeros are left out.
    pub fn skip_zeros(&self) -> bool {
        self.skip_zeros
    }

    /// Count of every bin (empty before any data).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Bin edges, one more than the bins (empty before any data).
    pub fn edges(&self) -> &[f32] {
        &self.edges
    }

    /// Number of values collected.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds one batch of values (any layout; only |x| matters).
    ///
    /// # Errors
    /// [`Error::Data`] when the batch holds NaN or Inf; [`Error::Unsupported`] when
    /// the batch would grow the histogram past 2^22 bins (a first batch far smaller
    /// than later ones) or holds values so large that `|x| * bins` overflows float32.
    /// On error the histogram is unchanged.
    pub fn collect_slice(&mut self, data: &[f32]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.collect_scanned(data.len(), scan(data), |binner, counts| {
            bin_into(data, binner, counts);
            Ok(())
        })
    }

    /// Adds a batch of `len` values that `scan` summarised; `bin` adds its values to
    /// the counts on the grid this chooses (on the host, or on a GPU).
    pub(super) fn collect_scanned(
        &mut self,
        len: usize,
        Scan { max_bits, zeros }: Scan,
        bin: impl FnOnce(Binner, &mut [u64]) -> Result<()>,
    ) -> Result<()> {
        if max_bits >= INF_BITS {
            // NaN patterns sort above Inf's.
            let what = if max_bits > INF_BITS { "NaN" } else { "Inf" };
            return Err(Error::Data(format!(
                "histogram input contains {what}; the batch was not collected"
            )));
        }
        let zeros = zeros as u64;
        let kept = len as u64 - if self.skip_zeros { zeros } else { 0 };
        if kept == 0 {
            return Ok(());
        }
        let x_max = f32::from_bits(max_bits);
        if x_max == 0.0 {
            // Only zeros: bin 0 of the grid, or of a zero-width one if there is none yet.
            if self.edges.is_empty() {
                self.edges = vec![0.0; self.num_bins + 1];
                self.counts = vec![0; self.num_bins];
            }
            self.counts[0] += kept;
            return Ok(());
        }
        self.collect_nonzero(x_max, zeros, bin)?;
        self.max_abs = self.max_abs.max(x_max);
        Ok(())
    }

    /// [`HistogramCalibrator::collect_scanned`] of a batch whose largest |x| is `x_max > 0`.
    pub(super) fn collect_nonzero(
        &mut self,
        x_max: f32,
        zeros: u64,
        bin: impl FnOnce(Binner, &mut [u64]) -> Result<()>,
    ) -> Result<()> {
        let zero_width = self.edges.last().is_none_or(|&e| e == 0.0);
        if self.grid == Grid::Dyadic {
            self.collect_dyadic(x_max, zero_width, bin)?;
        } else if zero_width {
            let binner = Binner::new(x_max, self.num_bins)?;
            // Zeros seen so far stay in bin 0 of the real grid.
            let earlier = self.counts.first().copied().unwrap_or(0);
            let mut counts = vec![0; self.num_bins];
            bin(binner, &mut counts)?;
            counts[0] += earlier;
            self.edges = linspace_edges(x_max, self.num_bins);
            self.counts = counts;
        } else {
            let last = self.edges[self.edges.len() - 1];
            if x_max > last {
                let (width, num_bins) = self.grown_bins(x_max)?;
                let binner = Binner::new(num_bins as f32 * width, num_bins)?;
                // Same width and origin: old bin k is new bin k.
                let mut counts = self.counts.clone();
                counts.resize(num_bins, 0);
                bin(binner, &mut counts)?;
                self.edges = (0..=num_bins).map(|k| k as f32 * width).collect();
                self.counts = counts;
            } else {
                let binner = Binner::new(last, self.counts.len())?;
                bin(binner, &mut self.counts)?;
            }
        }
        if self.skip_zeros {
            // Binning put them in bin 0; taking them out again keeps the loop branchless.
            self.counts[0] -= zeros;
        }
        Ok(())
    }

    /// [`HistogramCalibrator::collect_nonzero`] on the dyadic grid: the grid for the
    /// new max, the counts so far summed onto it (exact, see [`dyadic`]), then the batch.
    pub(super) fn collect_dyadic(
        &mut self,
        x_max: f32,
        zero_width: bool,
        bin: impl FnOnce(Binner, &mut [u64]) -> Result<()>,
    ) -> Result<()> {
        let grid = DyadicGrid::for_max(self.max_abs.max(x_max), self.num_bins);
        if !zero_width && DyadicGrid::of_edges(&self.edges) == grid {
            return bin(grid.binner(), &mut self.counts);
        }
        let mut counts = if zero_width {
            // Zeros seen so far go to bin 0.
            let mut c = vec![0; grid.bins];
            c[0] = self.counts.first().copied().unwrap_or(0);
            c
        } else {
            dyadic::coarsen(&self.counts, DyadicGrid::of_edges(&self.edges), grid)
        };
        bin(grid.binner(), &mut counts)?;
        self.edges = grid.edges();
        self.counts = counts;
        Ok(())
    }

    /// Adds one batch given as a tensor (read to the host as float32).
    ///
    /// # Errors
    /// As [`HistogramCalibrator::collect_slice`], or [`Error::Data`] when the tensor
    /// cannot be read as floats.
    ///
    /// On a CUDA device (feature `gpu`) both passes run there and only the counts
    /// come back.
    pub fn collect<const D: usize>(&mut self, x: &Tensor<D>) -> Result<()> {
        #[cfg(feature = "gpu")]
        if let Some(device) = crate::tensor_quant::cuda::DeviceData::of(x) {
            let device = device?;
            let scan = device.abs_scan()?;
            let scan = Scan {
                max_bits: scan.0,
                zeros: scan.1 as usize,
            };
            return self.collect_scanned(device.len(), scan, |binner, counts| {
                match via_histc(binner, counts, |hi, c| device.histogram(hi, c)) {
                    Some(done) => done,
                    // Dyadic bins of data near f32::MAX: on the host.
                    None => {
                        bin_into(&crate::tensor_quant::host_values(x)?, binner, counts);
                        Ok(())
                    }
                }
            });
        }
        let data = crate::tensor_quant::HostValues::of(x)?;
        self.collect_slice(&data)
    }

    /// The grid for a batch whose max exceeds the last edge, as the reference grows
    /// it: `width = edges[1] - edges[0]`, `num_bins = ceil(fl32(x_max / width))`,
    /// `edges[k] = fl32(k * width)`.
    ///
    /// Two guards the reference lacks: at least the current number of bins, and one
    /// more bin when `fl32(num_bins * width)` rounds below `x_max` (the reference's
    /// last edge can then end below `x_max`, and histc drops values above it). Our
    /// edges always number `num_bins + 1`, where the reference's `torch.arange` length
    /// can differ from `num_bins + 1` by rounding.
    pub(super) fn grown_bins(&self, x_max: f32) -> Result<(f32, usize)> {
        let width = self.edges[1] - self.edges[0];
        let too_many = |width: f32| Error::Unsupported {
            what: "growing the histogram past 2^22 bins",
            format: format!(
                "a batch with max {x_max:e} on bins of width {width:e} (collect a representative first batch, or use fewer bins)"
            ),
        };
        if width <= 0.0 {
            // A subnormal first max whose bin width underflowed to 0.
            return Err(Error::Unsupported {
                what: "growing a histogram whose bin width underflowed to 0",
                format: format!(
                    "a first batch with max {:e}",
                    self.edges[self.edges.len() - 1]
                ),
            });
        }
        let bins = (x_max / width).ceil();
        if bins > MAX_BINS as f32 {
            return Err(too_many(width));
        }
        let mut num_bins = (bins as usize).max(self.counts.len());
        while (num_bins as f32) * width < x_max {
            num_bins += 1;
        }
        if num_bins > MAX_BINS {
            return Err(too_many(width));
        }
        Ok((width, num_bins))
    }

    /// amax by `method` from everything collected so far. The histogram is not
    /// modified (the reference's numpy path mutates it in entropy).
    ///
    /// # Errors
    /// [`Error::NoData`] before any data; [`Error::InvalidPercentile`];
    /// [`Error::TooFewBins`] when the histogram has fewer bins than `start_bin`
    /// (entropy: fewer than `start_bin`, MSE: not more than `start_bin`);
    /// [`Error::Unsupported`] for entropy with FP8 E4M3, a `stride` of 0 or an entropy
    /// `start_bin` of 0.
    pub fn compute_amax(&self, method: HistogramMethod) -> Result<Amax> {
        if let HistogramMethod::Percentile(p) = method {
            percentile::check(p)?;
        }
        if self.edges.is_empty() {
            return Err(Error::NoData {
                calibrator: self.to_string(),
            });
        }
        let amax = match method {
            HistogramMethod::Entropy { start_bin, stride }
            | HistogramMethod::Mse { start_bin, stride } => {
                let search = match method {
                    HistogramMethod::Entropy { .. } => entropy::amax,
                    _ => mse::amax,
                };
                let (counts, edges) = (&self.counts, &self.edges);
                search(
                    counts,
                    edges,
                    self.num_bits,
                    self.unsigned,
                    start_bin,
                    stride,
                )?
            }
            HistogramMethod::Percentile(p) => percentile::amax(&self.counts, &self.edges, p),
            HistogramMethod::Max => self.max_abs,
        };
        Ok(Amax::scalar(amax))
    }

    /// Adds another calibrator's histogram to this one (e.g. histograms collected on
    /// several threads or processes).
    ///
    /// Histograms on the same grid add bin by bin. Histograms with the same bin width
    /// (both grown from first batches with the same max) add bin by bin on the longer
    /// grid, as the reference's own growth does. A histogram of only zeros adds to
    /// bin 0 of the other. Settings (`num_bits`, `num_bins`, ...) stay this one's.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when the bin widths differ (re-binning would blur the
    /// counts); this histogram is then unchanged.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if other.edges.is_empty() {
            return Ok(());
        }
        if self.grid != other.grid {
            return Err(Error::Unsupported {
                what: "merging histograms on different grids",
                format: format!(
                    "a {:?} grid into a {:?} one (give both calibrators the same with_grid)",
                    other.grid, self.grid
                ),
            });
        }
        self.merge_counts(other)?;
        self.max_abs = self.max_abs.max(other.max_abs);
        Ok(())
    }

    /// The bin counts part of [`HistogramCalibrator::merge`].
    pub(super) fn merge_counts(&mut self, other: &Self) -> Result<()> {
        if self.edges.is_empty() {
            self.counts = other.counts.clone();
            self.edges = other.edges.clone();
            return Ok(());
        }
        let last = |edges: &[f32]| edges[edges.len() - 1];
        if last(&other.edges) == 0.0 {
            self.counts[0] += other.total();
            return Ok(());
        }
        if last(&self.edges) == 0.0 {
            let zeros = self.total();
            self.counts = other.counts.clone();
            self.edges = other.edges.clone();
            self.counts[0] += zeros;
            return Ok(());
        }
        if self.grid == Grid::Dyadic {
            return self.merge_dyadic(other);
        }
        if self.edges != other.edges {
            let width = |edges: &[f32]| edges[1] - edges[0];
            let (mine, theirs) = (width(&self.edges), width(&other.edges));
            if mine.to_bits() != theirs.to_bits() {
                return Err(Error::Unsupported {
                    what: "merging histograms with different bin widths",
                    format: format!(
                        "widths {mine:e} and {theirs:e} (collect both from the same first batch)"
                    ),
                });
            }
            if last(&other.edges) > last(&self.edges) {
                self.edges = other.edges.clone();
            }
            let bins = self.counts.len().max(other.counts.len());
            self.counts.resize(bins, 0);
        }
        for (a, &b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        Ok(())
    }

    /// Merge of two non-zero dyadic histograms: both summed onto the grid of the larger
    /// max, exactly what collecting both data sets into one histogram gives.
    pub(super) fn merge_dyadic(&mut self, other: &Self) -> Result<()> {
        let mine = DyadicGrid::of_edges(&self.edges);
        let theirs = DyadicGrid::of_edges(&other.edges);
        let grid = DyadicGrid::for_max(self.max_abs.max(other.max_abs), self.num_bins);
        if grid.exp < mine.exp.max(theirs.exp) {
            return Err(Error::Unsupported {
                what: "merging dyadic histograms collected with different num_bins",
                format: format!(
                    "num_bins {} into num_bins {} (give both calibrators the same num_bins)",
                    other.num_bins, self.num_bins
                ),
            });
        }
        let mut counts = dyadic::coarsen(&self.counts, mine, grid);
        for (c, t) in counts
            .iter_mut()
            .zip(dyadic::coarsen(&other.counts, theirs, grid))
        {
            *c += t;
        }
        self.counts = counts;
        self.edges = grid.edges();
        Ok(())
    }

    /// Forgets everything collected.
    pub fn reset(&mut self) {
        self.counts = Vec::new();
        self.edges = Vec::new();
        self.max_abs = 0.0;
    }
}

impl fmt::Display for HistogramCalibrator {
    /// The reference's `__str__`: `HistogramCalibrator(calib_bin_edges=None)` or
    /// `HistogramCalibrator(calib_bin_edges=[0.000, ..., 255.000](2049))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.edges.first(), self.edges.last()) {
            (Some(&lo), Some(&hi)) => write!(
                f,
                "HistogramCalibrator(calib_bin_edges=[{:.3}, ..., {:.3}]({}))",
                f64::from(lo),
                f64::from(hi),
                self.edges.len()
            ),
            _ => f.write_str("HistogramCalibrator(calib_bin_edges=None)"),
        }
    }
}

impl fmt::Debug for HistogramCalibrator {
    /// A summary; the counts themselves are in [`HistogramCalibrator::counts`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistogramCalibrator")
            .field("num_bits", &self.num_bits)
            .field("unsigned", &self.unsigned)
            .field("num_bins", &self.num_bins)
            .field("grid", &self.grid)
            .field("skip_zeros", &self.skip_zeros)
            .field("bins", &self.counts.len())
            .field("total", &self.total())
            .field("max_edge", &self.edges.last())
            .finish()
    }
}
