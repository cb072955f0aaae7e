//! The crate's one error type: every fallible call says which thing is at fault.

/// Errors raised by qdq's numerics, descriptors and calibrators.
///
/// Each variant names the offending value (a quantizer, a shape, a method) and the
/// message says what to change, so a caller can print it as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// `unsigned` quantization was asked for data that has negative values.
    #[error(
        "negative values encountered in unsigned quantization (min = {min}); use a signed format or feed non-negative data"
    )]
    NegativeInputUnsigned {
        /// The most negative input value.
        min: f32,
    },
    /// An amax entry is negative.
    #[error("negative values in amax (min = {min}); amax is an absolute range and must be >= 0")]
    NegativeAmax {
        /// The most negative amax entry.
        min: f32,
    },
    /// An amax entry is NaN (typically a quantizer that never saw data).
    #[error("amax contains NaN; calibrate the quantizer (or set amax) before quantizing with it")]
    NanAmax,
    /// The number of bits is outside what the format supports.
    #[error(
        "num_bits must be in 1..=16 (and >= 2 when signed), got {num_bits} (unsigned = {unsigned})"
    )]
    InvalidNumBits {
        /// Requested bit width.
        num_bits: u32,
        /// Whether unsigned was requested.
        unsigned: bool,
    },
    /// amax cannot be broadcast against the input.
    #[error(
        "amax of shape {amax:?} does not broadcast against input of shape {input:?}; use a per-tensor amax (all dims 1) or keepdims per-channel shape such as [C, 1, 1, 1]"
    )]
    AmaxShape {
        /// Shape of the amax tensor.
        amax: Vec<usize>,
        /// Shape of the input tensor.
        input: Vec<usize>,
    },
    /// An axis is out of range for the input's rank.
    #[error("axis {axis} is out of range for a tensor of rank {rank}")]
    AxisOutOfRange {
        /// The axis as given.
        axis: isize,
        /// Rank of the tensor.
        rank: usize,
    },
    /// A calibrator was fed a tensor whose per-channel amax shape differs from earlier ones.
    #[error("amax shape changed: calibrator collected {previous:?} before, now {current:?}")]
    AmaxShapeChanged {
        /// Shape collected earlier.
        previous: Vec<usize>,
        /// Shape of the new batch's amax.
        current: Vec<usize>,
    },
    /// The calibrator has no data.
    #[error("{calibrator} has collected no data; feed at least one batch before computing amax")]
    NoData {
        /// Calibrator that was asked.
        calibrator: String,
    },
    /// Histogram calibration does not support per-channel axes.
    #[error(
        "histogram calibration is per-tensor only (axis = {axis:?}); use calib_method max for per-channel quantizers"
    )]
    HistogramAxis {
        /// The axis that was requested.
        axis: Vec<isize>,
    },
    /// The calibration method name is not known.
    #[error("unknown calibration method `{0}`; expected one of max, entropy, mse, percentile")]
    UnknownCalibMethod(String),
    /// A percentile outside [0, 100].
    #[error("invalid percentile {0}: must be in range 0 <= percentile <= 100")]
    InvalidPercentile(f64),
    /// A histogram method needs more bins than the histogram has.
    #[error(
        "histogram has {bins} bins but method {method} starts searching at bin {start_bin}; use more bins or a smaller start_bin"
    )]
    TooFewBins {
        /// Method name.
        method: &'static str,
        /// Number of bins.
        bins: usize,
        /// First candidate bin.
        start_bin: usize,
    },
    /// The operation is not defined for this quantization format.
    #[error("{what} is not supported for {format}")]
    Unsupported {
        /// The operation.
        what: &'static str,
        /// The format it was asked for.
        format: String,
    },
    /// A descriptor field is invalid.
    #[error("invalid QuantDescriptor{}: {message}", name.as_deref().map(|n| format!(" `{n}`")).unwrap_or_default())]
    Descriptor {
        /// Descriptor name, if any.
        name: Option<String>,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A quantizer without amax was asked for something that needs a fixed range.
    #[error(
        "no amax (the quantizer was never calibrated); calibrate it (collect_stats + compute_amax) or set amax before exporting"
    )]
    Uncalibrated,
    /// An error raised by one quantizer of a model, with the quantizer's name.
    #[error("quantizer `{name}`: {source}")]
    Quantizer {
        /// Dotted path of the quantizer in the model.
        name: String,
        /// What went wrong.
        source: Box<Error>,
    },
    /// A layer got an input of the wrong rank or size.
    #[error("{layer}: input of shape {got:?}, expected {expected}")]
    InputShape {
        /// The layer (`QuantLSTM`, `QuantInstanceNorm2d`, ...).
        layer: &'static str,
        /// What it expects, e.g. `[batch, 4, length]`.
        expected: String,
        /// The shape it got.
        got: Vec<usize>,
    },
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Data could not be read as float32.
    #[error("expected float data: {0}")]
    Data(String),
    /// A `--device` name qdq does not know.
    #[error("unknown device `{0}`; expected cpu, cuda or cuda:N")]
    UnknownDevice(String),
    /// Calibration statistics that cannot be read or merged (another model, a repeated
    /// or missing shard, an inconsistent calibrator state), saying which.
    #[error("calibration statistics: {0}")]
    Stats(String),
    /// A GPU kernel could not run (no driver, no NVRTC, a failed launch).
    #[error("GPU: {0}")]
    Gpu(String),
}

/// Result alias used throughout qdq.
pub type Result<T> = std::result::Result<T, Error>;
