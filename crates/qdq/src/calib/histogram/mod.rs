//! `HistogramCalibrator`: a histogram of |x| over batches, and the entropy, MSE and
//! percentile amax searches on it (pytorch-quantization's `calib/histogram.py`,
//! default `torch_hist=True` path).
//!
//! Collection reproduces the reference's bin grid and bin assignment exactly
//! (`torch.linspace` edges, `torch.histc` arithmetic, growth that keeps the bin width),
//! but counts in `u64`, so no bin saturates at 2^24 as the reference's float32 counts
//! do. The searches live in one file each: [`entropy`], [`mse`], [`percentile`].
//!
//! A second grid, [`Grid::Dyadic`] ([`dyadic`]), makes the counts independent of how
//! the data is split into batches; the searches run unchanged on either.

mod dyadic;
mod entropy;
mod mse;
mod percentile;

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tensor_quant::{Amax, IntRange, NumBits};
use dyadic::DyadicGrid;

/// Bins of a new histogram unless [`HistogramCalibrator::with_num_bins`] says otherwise.
const DEFAULT_NUM_BINS: usize = 2048;

/// Most bins a histogram may have, first or grown (4 Mi). It keeps a runaway growth
/// (a tiny first batch followed by a huge one) from allocating without bound, keeps
/// the searches' cost sane (entropy is quadratic in the bins), and lets
/// [`Binner::bin`] convert bin numbers with exact float tricks (valid below 2^22).
const MAX_BINS: usize = 1 << 22;

/// Bit pattern of +Inf: every |x| pattern at or above it is Inf or NaN.
const INF_BITS: u32 = 0x7f80_0000;

/// `1.5 * 2^23`: adding it to `0 <= y < 2^22` rounds `y` to an integer in the binade
/// where the float's bits count in units.
const FLOOR_MAGIC: f32 = 12_582_912.0;

/// Batches up to this size are scanned and binned on the calling thread.
const SERIAL_LEN: usize = 1 << 16;

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
    /// shards [`merge`](HistogramCalibrator::merge) exactly. See [`dyadic`].
    Dyadic,
}

/// How amax is derived from the collected histogram (the `method` argument of the
/// reference's `compute_amax`, with its keyword arguments).
///
/// Parses from `"entropy"`, `"mse"`, `"percentile"` (99.99) or `"percentile=99.9"`,
/// and prints the same way.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistogramMethod {
    /// The amax whose 2^(bits-1+unsigned)-level quantized histogram has the least KL
    /// divergence from the collected one (TensorRT-style entropy calibration).
    Entropy {
        /// Smallest number of kept bins tried (reference default 128).
        start_bin: usize,
        /// Step between the numbers of kept bins tried (reference default 1).
        stride: usize,
    },
    /// The bin center whose fake quantization of the histogram has the least mean
    /// squared error.
    Mse {
        /// First bin center tried (reference default 128).
        start_bin: usize,
        /// Step between the bin centers tried (reference default 1).
        stride: usize,
    },
    /// The left edge of the bin where the cumulative distribution of |x| reaches
    /// this percentile (0 to 100).
    Percentile(f64),
    /// The largest |x| collected, exactly as a [`super::MaxCalibrator`] would give it,
    /// so one collection serves max calibration too (the reference needs a second
    /// pass with a max calibrator).
    Max,
}

impl HistogramMethod {
    /// The reference's default `start_bin`.
    pub const DEFAULT_START_BIN: usize = 128;
    /// The reference's default percentile.
    pub const DEFAULT_PERCENTILE: f64 = 99.99;

    /// Entropy with the reference's defaults (`start_bin` 128, `stride` 1).
    pub fn entropy() -> Self {
        Self::Entropy {
            start_bin: Self::DEFAULT_START_BIN,
            stride: 1,
        }
    }

    /// MSE with the reference's defaults (`start_bin` 128, `stride` 1).
    pub fn mse() -> Self {
        Self::Mse {
            start_bin: Self::DEFAULT_START_BIN,
            stride: 1,
        }
    }

    /// Percentile `p` (checked by [`HistogramCalibrator::compute_amax`]).
    pub fn percentile(p: f64) -> Self {
        Self::Percentile(p)
    }

    /// `"entropy"`, `"mse"` or `"percentile"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Entropy { .. } => "entropy",
            Self::Mse { .. } => "mse",
            Self::Percentile(_) => "percentile",
            Self::Max => "max",
        }
    }
}

impl fmt::Display for HistogramMethod {
    /// The method name, with the percentile: `entropy`, `mse`, `percentile=99.99`.
    /// `start_bin` and `stride` are not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Percentile(p) => write!(f, "percentile={p}"),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for HistogramMethod {
    type Err = Error;

    /// `entropy`, `mse`, `percentile` or `percentile=P`, with default parameters.
    ///
    /// # Errors
    /// [`Error::UnknownCalibMethod`] for other names (or an unreadable number),
    /// [`Error::InvalidPercentile`] for a percentile outside [0, 100].
    fn from_str(s: &str) -> Result<Self> {
        let unknown = || Error::UnknownCalibMethod(s.to_string());
        match s.trim() {
            "entropy" => Ok(Self::entropy()),
            "max" => Ok(Self::Max),
            "mse" => Ok(Self::mse()),
            "percentile" => Ok(Self::percentile(Self::DEFAULT_PERCENTILE)),
            other => {
                let p = other
                    .strip_prefix("percentile=")
                    .and_then(|p| p.trim().parse::<f64>().ok())
                    .ok_or_else(unknown)?;
                percentile::check(p)?;
                Ok(Self::percentile(p))
            }
        }
    }
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
    num_bits: NumBits,
    unsigned: bool,
    num_bins: usize,
    grid: Grid,
    skip_zeros: bool,
    /// Count of every bin; empty before any data.
    counts: Vec<u64>,
    /// `counts.len() + 1` edges; empty before any data, all zero while only zeros
    /// were seen.
    edges: Vec<f32>,
    /// Largest |x| collected (0 before any data).
    max_abs: f32,
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
    fn collect_scanned(
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
    fn collect_nonzero(
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
    fn collect_dyadic(
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
        let data = crate::tensor_quant::host_values(x)?;
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
    fn grown_bins(&self, x_max: f32) -> Result<(f32, usize)> {
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
            HistogramMethod::Entropy { start_bin, stride } => entropy::amax(
                &self.counts,
                &self.edges,
                self.num_bits,
                self.unsigned,
                start_bin,
                stride,
            )?,
            HistogramMethod::Mse { start_bin, stride } => mse::amax(
                &self.counts,
                &self.edges,
                self.num_bits,
                self.unsigned,
                start_bin,
                stride,
            )?,
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
    fn merge_counts(&mut self, other: &Self) -> Result<()> {
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
    fn merge_dyadic(&mut self, other: &Self) -> Result<()> {
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

/// `torch.linspace(0, e, num_bins + 1)` in float32 as ATen's CPU kernel computes it:
/// `step = fl32(e / num_bins)`; the first half `fl32(step * i)`, the second half
/// `fl32(e - fl32(step * (num_bins - i)))`, so the last edge is exactly `e`.
fn linspace_edges(e: f32, num_bins: usize) -> Vec<f32> {
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
struct Scan {
    /// Bit pattern of max |x| (>= `INF_BITS` when the batch holds Inf or NaN).
    max_bits: u32,
    /// Number of zeros (either sign).
    zeros: usize,
}

fn scan(data: &[f32]) -> Scan {
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
fn scan_serial(data: &[f32]) -> Scan {
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
struct Binner {
    n: f32,
    /// Right edge of the last bin.
    hi: f32,
    last: f32,
}

impl Binner {
    /// The dyadic grid's binner: `floor(|x| / 2^exp)` (`n = 1`, `hi = 2^exp`; dividing
    /// by a power of two is exact, and no product can overflow), at most `bins - 1`.
    fn dyadic(exp: i32, bins: usize) -> Self {
        Self {
            n: 1.0,
            hi: dyadic::pow2(exp),
            last: bins.saturating_sub(1) as f32,
        }
    }

    fn new(hi: f32, num_bins: usize) -> Result<Self> {
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
    fn bin(self, x: f32) -> u32 {
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
fn via_histc(
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
fn bin_into(data: &[f32], binner: Binner, counts: &mut [u64]) {
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

fn bin_serial(data: &[f32], binner: Binner, counts: &mut [u64]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic uniform [0, 1) values (64-bit LCG, top 24 bits).
    pub(super) fn uniform(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (s >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    fn hist(data: &[f32]) -> HistogramCalibrator {
        let mut c = HistogramCalibrator::new(8, None, false).unwrap();
        c.collect_slice(data).unwrap();
        c
    }

    fn amax(c: &HistogramCalibrator, m: HistogramMethod) -> f32 {
        c.compute_amax(m).unwrap().values()[0]
    }

    /// The binning step can fail (on a GPU); the batch then leaves no trace, whether it
    /// would have laid the first grid, grown it or filled it.
    #[test]
    fn a_failed_binning_leaves_the_histogram_unchanged() {
        let fail =
            |_: Binner, _: &mut [u64]| -> Result<()> { Err(Error::Gpu("launch failed".into())) };
        let mut c = HistogramCalibrator::new(8, None, false).unwrap();
        let first = uniform(1, 1000);
        let e = c
            .collect_scanned(first.len(), scan(&first), fail)
            .unwrap_err();
        assert_eq!(e, Error::Gpu("launch failed".into()));
        assert!(c.counts().is_empty() && c.edges().is_empty() && c.total() == 0);
        c.collect_slice(&first).unwrap();
        let (counts, edges) = (c.counts().to_vec(), c.edges().to_vec());
        for scale in [3.0f32, 0.5] {
            // 3.0 grows the grid, 0.5 fills the existing one.
            let batch: Vec<f32> = uniform(2, 1000).iter().map(|v| v * scale).collect();
            assert!(c.collect_scanned(batch.len(), scan(&batch), fail).is_err());
            assert_eq!((c.counts(), c.edges()), (&counts[..], &edges[..]));
            assert_eq!(
                c.compute_amax(HistogramMethod::Max).unwrap().values(),
                &[edges[2048]]
            );
        }
        // After the failures, the batch that grows the grid collects as if they never were.
        let grown: Vec<f32> = uniform(2, 1000).iter().map(|v| v * 3.0).collect();
        c.collect_scanned(grown.len(), scan(&grown), |b, counts| {
            bin_into(&grown, b, counts);
            Ok(())
        })
        .unwrap();
        let mut direct = HistogramCalibrator::new(8, None, false).unwrap();
        direct.collect_slice(&first).unwrap();
        direct.collect_slice(&grown).unwrap();
        assert!(c.counts().len() > 2048);
        assert_eq!((c.counts(), c.edges()), (direct.counts(), direct.edges()));
    }

    #[test]
    fn max_method_is_the_max_calibrators_amax_through_growth_and_merge() {
        let batches: Vec<Vec<f32>> = (0..3)
            .map(|k| {
                uniform(k, 500)
                    .into_iter()
                    .map(|v| (v - 0.5) * (k + 1) as f32)
                    .collect()
            })
            .collect();
        let mut hist = HistogramCalibrator::new(8, None, false).unwrap();
        let mut max = crate::calib::MaxCalibrator::new(8, None, false);
        for b in &batches[..2] {
            hist.collect_slice(b).unwrap();
            max.collect_slice(b, &[b.len()]).unwrap();
        }
        let mut other = HistogramCalibrator::new(8, None, false).unwrap();
        other.collect_slice(&batches[2]).unwrap();
        max.collect_slice(&batches[2], &[500]).unwrap();
        hist.merge(&other).unwrap_err(); // different first maxima: different widths
        hist.collect_slice(&batches[2]).unwrap();
        let want = max.compute_amax().unwrap();
        assert_eq!(hist.compute_amax(HistogramMethod::Max).unwrap(), want);
        // Exact: the largest |x| itself, not a bin edge.
        let largest = batches.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_eq!(want.values(), [largest]);
        assert!(hist.edges().last().unwrap() > &largest);
        let mut merged = HistogramCalibrator::new(8, None, false).unwrap();
        merged.merge(&hist).unwrap();
        assert_eq!(
            merged.compute_amax(HistogramMethod::Max).unwrap().values(),
            [largest]
        );
        assert_eq!(
            "max".parse::<HistogramMethod>().unwrap(),
            HistogramMethod::Max
        );
        merged.reset();
        assert!(merged.compute_amax(HistogramMethod::Max).is_err());
    }

    #[test]
    fn grow_keeps_width_and_adds_counts_index_wise() {
        // calibrator_test "grow": x1 = [0, 255 x5], x2 = [0, 255 x4, 256].
        let mut c = hist(&[0.0, 255.0, 255.0, 255.0, 255.0, 255.0]);
        let width = 255.0f32 / 2048.0;
        assert_eq!(c.edges().len(), 2049);
        assert_eq!((c.counts()[0], c.counts()[2047]), (1, 5));
        c.collect_slice(&[0.0, 255.0, 255.0, 255.0, 255.0, 256.0])
            .unwrap();
        // ceil(256 / (255/2048)) = 2057 bins, edges k * width.
        assert_eq!(c.counts().len(), 2057);
        assert_eq!(c.edges()[1] - c.edges()[0], width);
        assert_eq!(c.edges()[2057], 2057.0 * width);
        assert_eq!(c.edges()[2048], 255.0);
        // 255 is now the left edge of bin 2048; the old 255s stay in bin 2047.
        let nonzero: Vec<(usize, u64)> = c
            .counts()
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(k, &n)| (k, n))
            .collect();
        assert_eq!(nonzero, vec![(0, 2), (2047, 5), (2048, 4), (2056, 1)]);

        let e = amax(&c, HistogramMethod::entropy());
        assert!((e - 255.0).abs() < (e - 256.0).abs(), "entropy {e}");
        // Every candidate up to 2047 sees no data below it (bin 0 := bin 1 = 0), the
        // last NaN one wins.
        assert_eq!(e, 2047.0 * width);
        let m = amax(&c, HistogramMethod::mse());
        assert!((m - 255.0).abs() < 0.5, "mse {m}");
    }

    #[test]
    fn skip_zeros_percentile() {
        // calibrator_test: [0 x5, 1..5], [0 x5, 6..10], skip_zeros -> p50 ~ 5.
        let mut c = HistogramCalibrator::new(8, None, false)
            .unwrap()
            .with_skip_zeros(true);
        c.collect_slice(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
            .unwrap();
        c.collect_slice(&[0.0, 0.0, 0.0, 0.0, -0.0, 6.0, 7.0, 8.0, 9.0, 10.0])
            .unwrap();
        assert_eq!(c.total(), 10);
        assert_eq!(c.counts()[0], 0);
        let p = amax(&c, HistogramMethod::percentile(50.0));
        assert!((p - 5.0).abs() < 10.0 / 2048.0, "{p}");
        // An all-zero batch is ignored (the reference fails on max() of nothing).
        c.collect_slice(&[0.0; 7]).unwrap();
        assert_eq!(c.total(), 10);
        let mut fresh = HistogramCalibrator::new(8, None, false)
            .unwrap()
            .with_skip_zeros(true);
        fresh.collect_slice(&[0.0, -0.0]).unwrap();
        assert!(fresh.edges().is_empty());
        assert!(matches!(
            fresh.compute_amax(HistogramMethod::mse()),
            Err(Error::NoData { .. })
        ));
    }

    #[test]
    fn percentile_of_arange() {
        // calibrator_test: arange(100) p90 ~ 89, unsigned p80 ~ 79, + arange(0,50,.5) p99 ~ 97.
        let x: Vec<f32> = (0..100).map(|v| v as f32).collect();
        let tol = 100.0 / 1024.0;
        let mut c = hist(&x);
        assert!((amax(&c, HistogramMethod::percentile(90.0)) - 89.0).abs() < tol);
        let mut u = HistogramCalibrator::new(8, None, true).unwrap();
        u.collect_slice(&x).unwrap();
        assert!((amax(&u, HistogramMethod::percentile(80.0)) - 79.0).abs() < tol);
        let halves: Vec<f32> = (0..100).map(|v| v as f32 * 0.5).collect();
        c.collect_slice(&halves).unwrap();
        assert!((amax(&c, HistogramMethod::percentile(99.0)) - 97.0).abs() < tol);
        // Left edge of the bin: value 89 sits in bin trunc(89 * 2048 / 99) = 1841.
        let c = hist(&x);
        assert_eq!(amax(&c, HistogramMethod::percentile(90.0)), c.edges()[1841]);
    }

    #[test]
    fn mse_prefers_the_bulk_over_one_outlier() {
        // calibrator_test: ones * 255 with one 256 -> closer to 255; unsigned 512/513.
        let mut x = vec![255.0f32; 11 * 7 * 3 * 3];
        x[0] = 256.0;
        let m = amax(&hist(&x), HistogramMethod::mse());
        assert!((m - 255.0).abs() < (m - 256.0).abs(), "{m}");
        let mut x = vec![512.0f32; 11 * 7 * 3 * 3];
        x[0] = 513.0;
        let mut u = HistogramCalibrator::new(8, None, true).unwrap();
        u.collect_slice(&x).unwrap();
        let m = amax(&u, HistogramMethod::mse());
        assert!((m - 512.0).abs() < (m - 513.0).abs(), "{m}");
    }

    #[test]
    fn entropy_ignores_one_outlier() {
        // calibrator_test: U(0,1) with one 10 -> amax < 1.1 (signed, unsigned, two batches).
        let mut x = uniform(1234, 31 * 7 * 3 * 3);
        x[0] = 10.0;
        for unsigned in [false, true] {
            let mut c = HistogramCalibrator::new(8, None, unsigned).unwrap();
            c.collect_slice(&x).unwrap();
            let e = amax(&c, HistogramMethod::entropy());
            assert!(e < 1.1 && e > 0.5, "unsigned={unsigned}: {e}");
        }
        let mut c = hist(&uniform(7, 5000));
        c.collect_slice(&x).unwrap();
        let e = amax(&c, HistogramMethod::entropy());
        assert!(e < 1.1 && e > 0.5, "two batches: {e}");
    }

    #[test]
    fn entropy_nan_rule_picks_the_bottom_of_data_far_from_zero() {
        // Data only in [0.9, 1.0]: every candidate below 0.9 keeps no data (NaN), and
        // the last NaN candidate wins, so amax is about the data's minimum.
        let x: Vec<f32> = uniform(99, 20_000).iter().map(|u| 0.9 + 0.1 * u).collect();
        let c = hist(&x);
        let first = c.counts().iter().position(|&n| n > 0).unwrap();
        let e = amax(&c, HistogramMethod::entropy());
        assert_eq!(e, c.edges()[first]);
        assert!((e - 0.9).abs() < 1e-3, "{e}");
    }

    #[test]
    fn linspace_edges_for_a_non_dyadic_max() {
        let e = 0.1f32;
        let c = hist(&[0.05, e]);
        let edges = c.edges();
        let step = e / 2048.0;
        assert_eq!(edges.len(), 2049);
        assert_eq!(edges[2048], e);
        for (i, &v) in edges.iter().enumerate() {
            let want = if i < 1024 {
                step * i as f32
            } else {
                e - step * (2048 - i) as f32
            };
            assert_eq!(v.to_bits(), want.to_bits(), "edge {i}");
        }
        // The two halves really differ from a plain i * step somewhere.
        assert!((1024..2048).any(|i| edges[i] != step * i as f32));
        // histc: multiply, then divide, in float32.
        let x = uniform(3, 5000).iter().map(|u| u * e).collect::<Vec<_>>();
        let mut c = HistogramCalibrator::new(8, None, false).unwrap();
        c.collect_slice(&[e]).unwrap();
        c.collect_slice(&x).unwrap();
        let mut want = vec![0u64; 2048];
        want[2047] += 1;
        for &v in &x {
            want[(((v * 2048.0) / e) as usize).min(2047)] += 1;
        }
        assert_eq!(c.counts(), &want[..]);
    }

    #[test]
    fn binner_matches_the_histc_formula_up_to_max_bins() {
        for n in [1usize, 7, 2048, 100_003, MAX_BINS] {
            for hi in [1.0f32, 0.1, 255.0, 3.3e-3, 6.02e23] {
                let b = Binner::new(hi, n).unwrap();
                let want = |v: f32| ((((v * n as f32) / hi) as usize).min(n - 1)) as u32;
                let edges = [0, 1, n / 3, n / 2, n.saturating_sub(1), n]
                    .map(|k| k as f32 * (hi / n as f32));
                let values = uniform(n as u64, 2000).into_iter().map(|u| u * hi);
                for v in values.chain(edges).chain([0.0, -0.0, hi, -hi]) {
                    assert_eq!(b.bin(v), want(v.abs()), "n={n} hi={hi} v={v}");
                }
            }
        }
        // Integer-valued data on a unit grid: every value on a left edge.
        let x: Vec<f32> = (0..=2048).map(|v| v as f32).collect();
        let mut want = vec![1u64; 2048];
        want[2047] = 2;
        assert_eq!(hist(&x).counts(), &want[..]);
    }

    #[test]
    fn first_batch_of_zeros_then_data() {
        let mut c = hist(&[0.0, 0.0, -0.0]);
        assert_eq!(c.counts()[0], 3);
        assert!(c.edges().iter().all(|&e| e == 0.0));
        for m in [
            HistogramMethod::entropy(),
            HistogramMethod::mse(),
            HistogramMethod::percentile(99.0),
        ] {
            assert_eq!(amax(&c, m), 0.0, "{m}");
        }
        c.collect_slice(&[0.0; 4]).unwrap();
        c.collect_slice(&[1.0, 2.0]).unwrap();
        // The grid is laid by the first non-zero batch; the 7 zeros stay in bin 0.
        let mut want = hist(&[1.0, 2.0]);
        want.counts[0] += 7;
        assert_eq!((c.counts(), c.edges()), (want.counts(), want.edges()));
    }

    #[test]
    fn non_finite_batch_is_rejected_and_leaves_the_histogram() {
        let mut c = hist(&[1.0, 2.0]);
        let before = (c.counts().to_vec(), c.edges().to_vec());
        for (bad, name) in [
            (f32::NAN, "NaN"),
            (f32::INFINITY, "Inf"),
            (f32::NEG_INFINITY, "Inf"),
        ] {
            let err = c.collect_slice(&[0.5, bad, 3.0]).unwrap_err();
            assert!(matches!(&err, Error::Data(m) if m.contains(name)), "{err}");
        }
        // NaN wins over Inf in the message, as it is the worse news.
        let err = c.collect_slice(&[f32::INFINITY, -f32::NAN]).unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
        assert_eq!((c.counts(), c.edges()), (&before.0[..], &before.1[..]));
        let err = c.collect_slice(&[1e37]).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert_eq!(c.counts(), &before.0[..]);
        // Tiny first batch, huge second one: refuse instead of allocating billions of bins.
        let mut c = hist(&[1e-3]);
        let err = c.collect_slice(&[1e6]).unwrap_err();
        assert!(err.to_string().contains("2^22"), "{err}");
        assert_eq!(c.counts().len(), 2048);
    }

    #[test]
    fn counts_do_not_saturate_at_2_pow_24() {
        let n = (1usize << 24) + 5;
        let c = hist(&vec![1.0f32; n]);
        assert_eq!(c.counts()[2047], n as u64);
        let mut m = c.clone();
        m.merge(&c).unwrap();
        assert_eq!(m.counts()[2047], 2 * n as u64);
    }

    #[test]
    fn parallel_binning_equals_serial() {
        let x: Vec<f32> = uniform(5, 1 << 20)
            .iter()
            .map(|u| (u - 0.5) * 6.0)
            .collect();
        let c = hist(&x);
        let hi = c.edges()[2048];
        let mut want = vec![0u64; 2048];
        for &v in &x {
            want[((v.abs() * 2048.0 / hi) as usize).min(2047)] += 1;
        }
        assert_eq!(c.counts(), &want[..]);
        assert_eq!(c.total(), 1 << 20);
    }

    #[test]
    fn merge_same_grid_grown_grid_and_mismatch() {
        let x1 = [0.0, 255.0, 255.0, 255.0, 255.0, 255.0];
        let x2 = [0.0, 255.0, 255.0, 255.0, 255.0, 256.0];
        let (a, mut b) = (hist(&x1), hist(&x1));
        b.collect_slice(&x2).unwrap();
        // a on the first grid, b grown from it: merging gives x1 twice plus x2.
        let mut want = hist(&x1);
        want.collect_slice(&x1).unwrap();
        want.collect_slice(&x2).unwrap();
        for (mut l, r) in [(a.clone(), &b), (b.clone(), &a)] {
            l.merge(r).unwrap();
            assert_eq!((l.counts(), l.edges()), (want.counts(), want.edges()));
        }
        let mut d = hist(&[1.0]);
        let err = d.merge(&a).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert_eq!(d.counts(), hist(&[1.0]).counts());
        // Empty and zeros-only histograms merge anywhere.
        let mut e = HistogramCalibrator::new(8, None, false).unwrap();
        e.merge(&a).unwrap();
        assert_eq!(e.counts(), a.counts());
        let mut z = hist(&[0.0, 0.0]);
        z.merge(&a).unwrap();
        assert_eq!(z.counts()[0], a.counts()[0] + 2);
        let mut a2 = a.clone();
        a2.merge(&hist(&[0.0])).unwrap();
        assert_eq!(a2.counts()[0], a.counts()[0] + 1);
    }

    #[test]
    fn repeated_compute_amax_matches_fresh_calibrators() {
        let mut x: Vec<f32> = uniform(11, 50_000).iter().map(|u| u * u * 4.0).collect();
        x.extend(uniform(12, 100).iter().map(|u| 8.0 + u));
        let methods = [
            HistogramMethod::entropy(),
            HistogramMethod::mse(),
            HistogramMethod::percentile(99.9),
            HistogramMethod::Entropy {
                start_bin: 64,
                stride: 3,
            },
            HistogramMethod::Mse {
                start_bin: 200,
                stride: 7,
            },
        ];
        let fresh: Vec<f32> = methods.iter().map(|&m| amax(&hist(&x), m)).collect();
        let c = hist(&x);
        let counts = c.counts().to_vec();
        for _ in 0..2 {
            for (&m, &want) in methods.iter().zip(&fresh) {
                assert_eq!(amax(&c, m).to_bits(), want.to_bits(), "{m}");
            }
        }
        assert_eq!(c.counts(), &counts[..]);
    }

    #[test]
    fn errors() {
        let err = HistogramCalibrator::new(8, Some(vec![0]), false).unwrap_err();
        assert_eq!(err, Error::HistogramAxis { axis: vec![0] });
        assert!(matches!(
            HistogramCalibrator::new(1, None, false),
            Err(Error::InvalidNumBits { .. })
        ));
        let c = HistogramCalibrator::new(8, None, false).unwrap();
        let err = c.compute_amax(HistogramMethod::entropy()).unwrap_err();
        assert!(
            matches!(&err, Error::NoData { calibrator } if calibrator.contains("HistogramCalibrator"))
        );
        for p in [-0.1, 100.5, f64::NAN] {
            assert!(matches!(
                c.compute_amax(HistogramMethod::percentile(p)),
                Err(Error::InvalidPercentile(_))
            ));
        }
        assert_eq!(
            "maximum".parse::<HistogramMethod>(),
            Err(Error::UnknownCalibMethod("maximum".into()))
        );
        assert!(matches!(
            "percentile=abc".parse::<HistogramMethod>(),
            Err(Error::UnknownCalibMethod(_))
        ));
        assert!(matches!(
            "percentile=101".parse::<HistogramMethod>(),
            Err(Error::InvalidPercentile(_))
        ));

        let mut c = HistogramCalibrator::new(8, None, false)
            .unwrap()
            .with_num_bins(100);
        c.collect_slice(&[1.0, 2.0]).unwrap();
        assert_eq!(
            c.compute_amax(HistogramMethod::entropy()),
            Err(Error::TooFewBins {
                method: "entropy",
                bins: 100,
                start_bin: 128
            })
        );
        assert!(matches!(
            c.compute_amax(HistogramMethod::Mse {
                start_bin: 100,
                stride: 1
            }),
            Err(Error::TooFewBins { method: "mse", .. })
        ));
        // start_bin == bins is one candidate for entropy (inclusive), none for MSE.
        assert!(
            c.compute_amax(HistogramMethod::Entropy {
                start_bin: 100,
                stride: 1
            })
            .is_ok()
        );
        for m in [
            HistogramMethod::Entropy {
                start_bin: 8,
                stride: 0,
            },
            HistogramMethod::Mse {
                start_bin: 8,
                stride: 0,
            },
        ] {
            assert!(
                matches!(c.compute_amax(m), Err(Error::Unsupported { .. })),
                "{m}"
            );
        }
        let mut f = HistogramCalibrator::new(NumBits::FP8_E4M3, None, false).unwrap();
        f.collect_slice(&uniform(1, 1000)).unwrap();
        assert!(matches!(
            f.compute_amax(HistogramMethod::entropy()),
            Err(Error::Unsupported { .. })
        ));
        let m = amax(&f, HistogramMethod::mse());
        assert!(m > 0.5 && m <= 1.0, "{m}");
        c.reset();
        assert!(c.counts().is_empty() && c.edges().is_empty());
        assert!(matches!(
            c.compute_amax(HistogramMethod::mse()),
            Err(Error::NoData { .. })
        ));
    }

    #[test]
    fn method_names_parse_print_and_serde() {
        for (s, m) in [
            ("entropy", HistogramMethod::entropy()),
            ("mse", HistogramMethod::mse()),
            ("percentile", HistogramMethod::percentile(99.99)),
            ("percentile=99.9", HistogramMethod::percentile(99.9)),
        ] {
            assert_eq!(s.parse::<HistogramMethod>().unwrap(), m);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<HistogramMethod>(&json).unwrap(), m);
        }
        assert_eq!(
            HistogramMethod::percentile(99.99).to_string(),
            "percentile=99.99"
        );
        assert_eq!(HistogramMethod::entropy().to_string(), "entropy");
        assert_eq!(HistogramMethod::mse().to_string(), "mse");
        assert_eq!(
            serde_json::to_string(&HistogramMethod::entropy()).unwrap(),
            r#"{"entropy":{"start_bin":128,"stride":1}}"#
        );
    }

    #[test]
    fn display_and_tensor_collect() {
        let mut c = HistogramCalibrator::new(8, None, false).unwrap();
        assert_eq!(c.to_string(), "HistogramCalibrator(calib_bin_edges=None)");
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[0.0f32, -255.0], [3.0, 1.0]], &device);
        c.collect(&x).unwrap();
        assert_eq!(
            c.to_string(),
            "HistogramCalibrator(calib_bin_edges=[0.000, ..., 255.000](2049))"
        );
        assert_eq!(c.counts(), hist(&[0.0, 255.0, 3.0, 1.0]).counts());
        assert!(format!("{c:?}").contains("total: 4"));
    }
}
