//! Lowering quantizers for exporters: while [`record_quantizers`] runs a forward
//! pass, every quantizing `TensorQuantizer` emits a marker op instead of the fake
//! quant arithmetic and records what a `QuantizeLinear → DequantizeLinear` pair
//! needs ([`QuantLowering`]). An exporter (qdq-onnx) captures the pass on burn's
//! capture device and turns each marker into that pair, so a fake quant never lowers
//! to Round/Clip.
//!
//! The pass is a mode of `nn::scope` (the one home of quantizer modes); this module
//! names its public parts.

pub use super::scope::{QuantRecord, Recording, record_quantizers};
pub use crate::tensor_quant::QuantLowering;
