//! Calibrators: collect statistics of a tensor over batches and derive its amax
//! (`calib/` of the reference, one file per calibrator).
//!
//! Both consume host `f32` data in one streaming pass (no activations are stored),
//! count exactly, and can be asked for amax repeatedly.

mod histogram;
mod max;

pub use histogram::{HistogramCalibrator, HistogramMethod};
pub use max::MaxCalibrator;
