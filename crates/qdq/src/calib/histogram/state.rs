//! A [`HistogramCalibrator`]'s collected state as plain data ([`HistogramState`]): what
//! a statistics file stores per histogram, and the checks that make one read from a
//! file safe to use (bounded bins, a grid consistent with the data's max).

use serde::{Deserialize, Serialize};

use super::binning::MAX_BINS;
use super::calibrator::{Grid, HistogramCalibrator};
use super::dyadic::DyadicGrid;
use crate::error::{Error, Result};
use crate::tensor_quant::{IntRange, NumBits};

/// Everything a histogram calibrator holds: its settings, its bins and their counts.
/// [`HistogramCalibrator::from_state`] of [`HistogramCalibrator::state`] gives back
/// the same calibrator (same counts, same amax for every method).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramState {
    /// Bits of the quantizer calibrated.
    pub num_bits: NumBits,
    /// Whether the quantizer is unsigned.
    pub unsigned: bool,
    /// Bins a first batch is spread over (1 to 2^22).
    pub num_bins: usize,
    /// The bin grid.
    pub grid: Grid,
    /// Whether exact zeros are left out.
    pub skip_zeros: bool,
    /// Largest |x| collected (0 before any data, or while only zeros were seen).
    pub max_abs: f32,
    /// Where the bins lie.
    pub bins: HistogramBins,
    /// Count of every bin: empty for [`HistogramBins::Empty`], one (the zeros) for
    /// [`HistogramBins::Zeros`], else one per bin.
    pub counts: Vec<u64>,
}

/// Where a histogram's bins lie.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistogramBins {
    /// No data collected.
    Empty,
    /// Only zeros collected: they sit in bin 0 of a grid not laid yet.
    Zeros,
    /// [`Grid::Dyadic`]: bins of width `2^exp` from zero; `exp` and the number of bins
    /// follow from `max_abs` and `num_bins` (and are checked against them).
    Dyadic {
        /// Bin width exponent.
        exp: i32,
    },
    /// [`Grid::Reference`]: these edges, one more than the counts.
    Edges(Vec<f32>),
}

fn bad(why: String) -> Error {
    Error::Stats(format!("histogram state: {why}"))
}

impl HistogramCalibrator {
    /// The collected state, for a statistics file.
    pub fn state(&self) -> HistogramState {
        let zero_width = self.edges.last().is_some_and(|&e| e == 0.0);
        let (bins, counts) = if self.edges.is_empty() {
            (HistogramBins::Empty, Vec::new())
        } else if zero_width {
            (HistogramBins::Zeros, vec![self.counts[0]])
        } else if self.grid == Grid::Dyadic {
            let exp = DyadicGrid::of_edges(&self.edges).exp;
            (HistogramBins::Dyadic { exp }, self.counts.clone())
        } else {
            (
                HistogramBins::Edges(self.edges.clone()),
                self.counts.clone(),
            )
        };
        HistogramState {
            num_bits: self.num_bits,
            unsigned: self.unsigned,
            num_bins: self.num_bins,
            grid: self.grid,
            skip_zeros: self.skip_zeros,
            max_abs: self.max_abs,
            bins,
            counts,
        }
    }

    /// The calibrator holding `state` (as [`HistogramCalibrator::state`] gave it).
    ///
    /// # Errors
    /// [`Error::Stats`] naming what is inconsistent: `num_bins` outside 1..=2^22, a
    /// number of bits no quantizer has, more than 2^22 bins, counts whose total
    /// overflows, a `max_abs` that is negative or not finite, bins of a kind the grid
    /// does not use, a dyadic `exp` or bin count other than `max_abs` gives, reference
    /// edges that are not finite, increasing from 0 and one more than the counts.
    pub fn from_state(state: &HistogramState) -> Result<Self> {
        let s = state;
        if !(1..=MAX_BINS).contains(&s.num_bins) {
            return Err(bad(format!("num_bins {} is not in 1..=2^22", s.num_bins)));
        }
        if let NumBits::Int(b) = s.num_bits {
            IntRange::new(b, s.unsigned, false)?;
        }
        if s.counts.len() > MAX_BINS {
            return Err(bad(format!("{} bins (at most 2^22)", s.counts.len())));
        }
        if s.counts
            .iter()
            .try_fold(0u64, |t, &c| t.checked_add(c))
            .is_none()
        {
            return Err(bad("the counts' total overflows 64 bits".into()));
        }
        if !(s.max_abs.is_finite() && s.max_abs >= 0.0) {
            return Err(bad(format!("max_abs {} is not finite and >= 0", s.max_abs)));
        }
        let mut c = HistogramCalibrator::new(s.num_bits, None, s.unsigned)?
            .with_num_bins(s.num_bins)
            .with_grid(s.grid)
            .with_skip_zeros(s.skip_zeros);
        let nonzero = s.max_abs > 0.0;
        match (&s.bins, s.grid) {
            (HistogramBins::Empty, _) if s.counts.is_empty() && !nonzero => {}
            (HistogramBins::Zeros, _) if s.counts.len() == 1 && !nonzero => {
                c.edges = vec![0.0; s.num_bins + 1];
                c.counts = vec![0; s.num_bins];
                c.counts[0] = s.counts[0];
            }
            (&HistogramBins::Dyadic { exp }, Grid::Dyadic) if nonzero => {
                let grid = DyadicGrid::for_max(s.max_abs, s.num_bins);
                if grid.exp != exp || grid.bins != s.counts.len() {
                    return Err(bad(format!(
                        "a dyadic grid of {} bins of width 2^{exp} for max_abs {:e} (it has {} bins of width 2^{})",
                        s.counts.len(),
                        s.max_abs,
                        grid.bins,
                        grid.exp
                    )));
                }
                c.edges = grid.edges();
                c.counts = s.counts.clone();
            }
            (HistogramBins::Edges(edges), Grid::Reference) if nonzero => {
                let increasing = edges.windows(2).all(|w| w[0] < w[1]);
                let ok = edges.len() == s.counts.len() + 1
                    && edges.len() >= 2
                    && edges[0] == 0.0
                    && increasing
                    && edges.iter().all(|e| e.is_finite())
                    && s.max_abs <= edges[edges.len() - 1];
                if !ok {
                    return Err(bad(format!(
                        "{} edges for {} counts must rise from 0, finite, to at least max_abs {:e}",
                        edges.len(),
                        s.counts.len(),
                        s.max_abs
                    )));
                }
                c.edges = edges.clone();
                c.counts = s.counts.clone();
            }
            (bins, grid) => {
                let kind = match bins {
                    HistogramBins::Empty => "empty",
                    HistogramBins::Zeros => "zeros",
                    HistogramBins::Dyadic { .. } => "dyadic",
                    HistogramBins::Edges(_) => "edges",
                };
                return Err(bad(format!(
                    "`{kind}` bins with {} counts and max_abs {:e} on a {grid:?} grid",
                    s.counts.len(),
                    s.max_abs
                )));
            }
        }
        c.max_abs = s.max_abs;
        Ok(c)
    }
}
