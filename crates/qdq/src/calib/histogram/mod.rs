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

mod binning;
mod calibrator;
mod dyadic;
mod entropy;
mod method;
mod mse;
mod percentile;
mod state;
#[cfg(test)]
mod tests;

pub use calibrator::{Grid, HistogramCalibrator};
pub use method::HistogramMethod;
pub use state::{HistogramBins, HistogramState};

// The searches and the dyadic grid bin through these (as `super::Binner`, ...).
use binning::*;

/// Which of several equal minima (or NaNs) [`argmin`] picks: each search follows
/// its reference (entropy the last, as its `<=` loop; MSE the first, as `np.argmin`).
#[derive(Clone, Copy)]
enum Ties {
    First,
    Last,
}

/// Index of the first or last minimum of `values`, or of the first or last NaN if
/// there is one.
fn argmin(values: &[f64], ties: Ties) -> usize {
    let nan = match ties {
        Ties::First => values.iter().position(|v| v.is_nan()),
        Ties::Last => values.iter().rposition(|v| v.is_nan()),
    };
    if let Some(k) = nan {
        return k;
    }
    let mut best = 0;
    for (k, &v) in values.iter().enumerate() {
        let tie_wins = matches!(ties, Ties::Last) && v == values[best];
        if v < values[best] || tie_wins {
            best = k;
        }
    }
    best
}
