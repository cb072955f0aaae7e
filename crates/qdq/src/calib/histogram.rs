//! `HistogramCalibrator` — being written (placeholder so the crate compiles).

use crate::error::{Error, Result};
use crate::tensor_quant::{Amax, NumBits};

/// How amax is derived from a histogram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HistogramMethod {
    /// KL divergence (TensorRT entropy calibration).
    Entropy {
        /// First candidate bin.
        start_bin: usize,
        /// Candidate stride.
        stride: usize,
    },
    /// Mean squared error.
    Mse {
        /// First candidate bin.
        start_bin: usize,
        /// Candidate stride.
        stride: usize,
    },
    /// Percentile of |x|.
    Percentile(f64),
}

/// Histogram of |x| over batches.
#[derive(Clone, Debug)]
pub struct HistogramCalibrator {
    num_bits: NumBits,
}

impl HistogramCalibrator {
    /// New calibrator.
    pub fn new(
        num_bits: impl Into<NumBits>,
        axis: Option<Vec<isize>>,
        _unsigned: bool,
    ) -> Result<Self> {
        if let Some(axis) = axis {
            return Err(Error::HistogramAxis { axis });
        }
        Ok(Self {
            num_bits: num_bits.into(),
        })
    }
    /// Placeholder.
    pub fn compute_amax(&self, _method: HistogramMethod) -> Result<Amax> {
        Err(Error::NoData {
            calibrator: format!("HistogramCalibrator({})", self.num_bits),
        })
    }
}
