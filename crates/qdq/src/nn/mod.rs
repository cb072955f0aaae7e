//! Quantized modules for burn: `TensorQuantizer`, the `Quant*` layers, and walks over
//! a model's quantizers (`nn/` of the reference).

mod calibration;
mod checkpoint;
mod handle;
pub mod modules;
mod tensor_quantizer;

pub use calibration::{
    check_quantizers, collect_stats, compute_amax, disable_calibration, enable_calibration,
    load_amaxes, quantizer_summary,
};
pub use checkpoint::{load_safetensors, save_safetensors};
pub use handle::{NamedQuantizer, QuantizerConfig, QuantizerHandle, named_quantizers};
pub use modules::*;
pub use tensor_quantizer::{LearnableClip, TensorQuantizer};
