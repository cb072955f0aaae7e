//! Calibrators: collect statistics of a tensor over batches and derive its amax
//! (`calib/` of the reference, one file per calibrator).
//!
//! Both consume host `f32` data in one streaming pass (no activations are stored),
//! count exactly, and can be asked for amax repeatedly.

mod histogram;
mod max;
pub mod stats;

pub use histogram::{Grid, HistogramBins, HistogramCalibrator, HistogramMethod, HistogramState};
pub use max::{MaxCalibrator, MaxState};
pub use stats::{CalibratorState, ModelStats, QuantizerStats, Shards};

use burn::prelude::*;

use crate::error::Result;
use crate::tensor_quant::{Amax, CalibMethod, NumBits};

/// The calibrator a quantizer owns, chosen by its descriptor's `calib_method`.
#[derive(Clone, Debug)]
pub enum Calibrator {
    /// Running max.
    Max(MaxCalibrator),
    /// Histogram.
    Histogram(HistogramCalibrator),
}

impl Calibrator {
    /// The calibrator for a descriptor's method, axis and format.
    ///
    /// # Errors
    /// Histogram calibration with a per-channel axis.
    pub fn new(
        method: CalibMethod,
        num_bits: NumBits,
        axis: Option<Vec<isize>>,
        unsigned: bool,
    ) -> Result<Self> {
        Ok(match method {
            CalibMethod::Max => Calibrator::Max(MaxCalibrator::new(num_bits, axis, unsigned)),
            CalibMethod::Histogram => {
                Calibrator::Histogram(HistogramCalibrator::new(num_bits, axis, unsigned)?)
            }
        })
    }

    /// Feeds one batch.
    pub fn collect<const D: usize>(&mut self, x: &Tensor<D>) -> Result<()> {
        match self {
            Calibrator::Max(c) => c.collect(x),
            Calibrator::Histogram(c) => c.collect(x),
        }
    }

    /// Amax by the calibrator's own rule: running max, or `method` on the histogram
    /// (`method` is ignored by a max calibrator, as the seed's `compute_amax` does).
    /// `Ok(None)` when no data was collected.
    pub fn compute_amax(&self, method: Option<HistogramMethod>) -> Result<Option<Amax>> {
        match self {
            Calibrator::Max(c) => Ok(c.compute_amax()),
            Calibrator::Histogram(c) if c.counts().is_empty() => Ok(None),
            Calibrator::Histogram(c) => match method {
                Some(m) => c.compute_amax(m).map(Some),
                None => Err(crate::Error::Unsupported {
                    what: "load_calib_amax without a method",
                    format: "a histogram calibrator (use load_calib_amax_with(entropy | mse | percentile))".into(),
                }),
            },
        }
    }

    /// Forgets the collected data.
    pub fn reset(&mut self) {
        match self {
            Calibrator::Max(c) => c.reset(),
            Calibrator::Histogram(c) => c.reset(),
        }
    }

    /// Type name, as the reference prints it (`MaxCalibrator`, `HistogramCalibrator`).
    pub fn kind(&self) -> &'static str {
        match self {
            Calibrator::Max(_) => "MaxCalibrator",
            Calibrator::Histogram(_) => "HistogramCalibrator",
        }
    }
}
