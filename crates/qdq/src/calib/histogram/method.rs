//! [`HistogramMethod`]: which amax search `compute_amax` runs on a histogram.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::percentile;
use crate::error::{Error, Result};

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
    /// The largest |x| collected, exactly as a [`MaxCalibrator`](crate::calib::MaxCalibrator) would give it,
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

    /// Percentile `p` (checked by [`HistogramCalibrator::compute_amax`](super::HistogramCalibrator::compute_amax)).
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
