//! The quantized layers (`Quant*`) and the helpers to write new ones.
//!
//! Each layer is burn's float op applied to fake-quantized inputs (and weights):
//! `forward` equals the float op on `_input_quantizer.forward(x)` and
//! `_weight_quantizer.forward(weight)` bit for bit, bias unquantized, gradients by
//! straight-through estimation. Layers are built burn-style from a config
//! (`QuantConv2dConfig::new([3, 8], [3, 3]).init(&device)?`) or from a trained float
//! layer (`QuantConv2d::from_float(conv, None, None)?`); a descriptor left as
//! `None` takes the class default, which
//! [`QuantInputMixin::set_default_quant_desc_input`] and
//! [`QuantMixin::set_default_quant_desc_weight`] change per class.
//!
//! | layer | input default | weight default |
//! |---|---|---|
//! | `QuantConv1d/2d/3d` | 8-bit per tensor | 8-bit per output channel (axis 0 of `[C_out, C_in/g, k...]`) |
//! | `QuantConvTranspose1d/2d/3d` | 8-bit per tensor | 8-bit per input channel (axis 0 of `[C_in, C_out/g, k...]`) |
//! | `QuantLinear` | 8-bit per tensor | 8-bit per output feature (axis 0 of `[d_output, d_input]`) |
//! | `Quant{Max,Avg,AdaptiveAvg}Pool1d/2d/3d` | 8-bit per tensor | — |
//! | `QuantInstanceNorm1d/2d/3d` | 8-bit per tensor | — |
//! | `QuantLSTM`, `QuantLSTMCell`, `QuantGRU`, `QuantRNN` | 8-bit per tensor, over `cat([x, h], 1)` | 8-bit per gate row (axis 0 of `cat([W_ih, W_hh], 1)`) |
//! | `QuantMultiHeadAttention` | 8-bit per tensor (projections and both matmuls' operands) | as `QuantLinear` |

mod macros;
pub mod mixin;
mod padding;
pub mod pool3d;
mod quant_conv;
mod quant_conv_transpose;
mod quant_instancenorm;
mod quant_linear;
mod quant_mha;
mod quant_pooling;
mod quant_rnn;
pub mod rnn_cell;
pub mod rnn_names;

pub use mixin::{
    DefaultQuantDesc, QuantInputMixin, QuantMixin, check_fake_quant, init_input_quantizer,
    init_quantizers, init_weight_quantizer, pop_quant_desc_in_kwargs, pop_quant_desc_input,
};
pub use pool3d::{FloatAvgPool3d, FloatAvgPool3dConfig, FloatMaxPool3d, FloatMaxPool3dConfig};
// Former names of the float 3-D pools, at their old paths (`qdq::nn::AvgPool3d` is the
// drop-in, which `nn` re-exports explicitly over these).
#[doc(hidden)]
pub use pool3d::{AvgPool3d, AvgPool3dConfig, MaxPool3d, MaxPool3dConfig};
pub use quant_conv::{
    QuantConv1d, QuantConv1dConfig, QuantConv2d, QuantConv2dConfig, QuantConv3d, QuantConv3dConfig,
};
pub use quant_conv_transpose::{
    QuantConvTranspose1d, QuantConvTranspose1dConfig, QuantConvTranspose2d,
    QuantConvTranspose2dConfig, QuantConvTranspose3d, QuantConvTranspose3dConfig,
};
pub use quant_instancenorm::{
    QuantInstanceNorm1d, QuantInstanceNorm1dConfig, QuantInstanceNorm2d, QuantInstanceNorm2dConfig,
    QuantInstanceNorm3d, QuantInstanceNorm3dConfig,
};
pub use quant_linear::{QuantLinear, QuantLinearConfig};
pub use quant_mha::{
    QuantMhaInput, QuantMhaOutput, QuantMultiHeadAttention, QuantMultiHeadAttentionConfig,
};
pub use quant_pooling::{
    QuantAdaptiveAvgPool1d, QuantAdaptiveAvgPool1dConfig, QuantAdaptiveAvgPool2d,
    QuantAdaptiveAvgPool2dConfig, QuantAdaptiveAvgPool3d, QuantAdaptiveAvgPool3dConfig,
    QuantAvgPool1d, QuantAvgPool1dConfig, QuantAvgPool2d, QuantAvgPool2dConfig, QuantAvgPool3d,
    QuantAvgPool3dConfig, QuantMaxPool1d, QuantMaxPool1dConfig, QuantMaxPool2d,
    QuantMaxPool2dConfig, QuantMaxPool3d, QuantMaxPool3dConfig,
};
pub use quant_rnn::{
    FloatRecurrent, QuantGRU, QuantGRUConfig, QuantLSTM, QuantLSTMCell, QuantLSTMCellConfig,
    QuantLSTMConfig, QuantRNN, QuantRNNConfig, RecurrentState,
};
pub use rnn_cell::{RnnCellWeights, RnnMode};
