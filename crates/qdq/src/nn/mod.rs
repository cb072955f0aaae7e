//! Quantized modules for burn: `TensorQuantizer`, the `Quant*` layers, and walks over
//! a model's quantizers (`nn/` of the reference).
//!
//! Layering, bottom up (no module imports one above it): `handle` (a quantizer's
//! shared switches) → `scope` (the thread's walk or pass mode) → `walk` (paths,
//! `named_quantizers`) → `tensor_quantizer` → `modules` (the `Quant*` layers) →
//! `dropin` (float-or-quantized layers) → `calibration`, `checkpoint` (model-wide
//! workflows); `crate::quant_modules` sits on top.

mod calibration;
mod calibration_stats;
mod checkpoint;
pub mod dropin;
mod handle;
pub mod lowering;
pub mod modules;
pub(crate) mod scope;
mod tensor_quantizer;
pub mod walk;

pub use calibration::{
    check_quantizers, collect_stats, compute_amax, disable_calibration, enable_calibration,
    load_amaxes, quantizer_summary,
};
pub use calibration_stats::{
    calibration_stats, load_calibration_stats, model_fingerprint, set_histogram_grid,
};
pub use checkpoint::{load_safetensors, save_safetensors};
// Explicit, so they take precedence over `modules::*`'s former names of the float
// 3-D pools (`FloatAvgPool3d`, `FloatMaxPool3d`).
pub use dropin::{
    AdaptiveAvgPool1d, AdaptiveAvgPool1dConfig, AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig,
    AdaptiveAvgPool3d, AdaptiveAvgPool3dConfig, AvgPool1d, AvgPool1dConfig, AvgPool2d,
    AvgPool2dConfig, AvgPool3d, AvgPool3dConfig, Conv1d, Conv1dConfig, Conv2d, Conv2dConfig,
    Conv3d, Conv3dConfig, ConvTranspose1d, ConvTranspose1dConfig, ConvTranspose2d,
    ConvTranspose2dConfig, ConvTranspose3d, ConvTranspose3dConfig, DropIn, DropInConfig,
    InstanceNorm1d, InstanceNorm1dConfig, InstanceNorm2d, InstanceNorm2dConfig, InstanceNorm3d,
    InstanceNorm3dConfig, Linear, LinearConfig, Lstm, LstmConfig, MaxPool1d, MaxPool1dConfig,
    MaxPool2d, MaxPool2dConfig, MaxPool3d, MaxPool3dConfig, QuantInstanceNormKind, Replaceable,
};
pub use handle::{QuantizerConfig, QuantizerHandle, QuantizerId};
pub use modules::*;
pub use tensor_quantizer::{LearnableClip, TensorQuantizer};
pub use walk::{NamedQuantizer, named_quantizers};
