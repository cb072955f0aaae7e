//! Drop-in layers: burn's layer names, constructor arguments and setters, built
//! float or quantized as [`quant_modules`](crate::quant_modules) says at `init`.
//!
//! `qdq::nn::Conv2dConfig::new([3, 8], [3, 3]).with_stride([2, 2]).init(&device)`
//! reads exactly as burn's; it returns a [`Conv2d`], which is
//! `Conv2d::Float(burn::nn::conv::Conv2d)` while replacement is off and
//! `Conv2d::Quant(QuantConv2d)` while it is on. So importing these names instead of
//! burn's is the whole adoption:
//!
//! ```rust,standalone_crate
//! use burn::prelude::*;
//! use qdq::nn::{Conv2d, Conv2dConfig, Linear, LinearConfig};
//!
//! #[derive(Module, Debug)]
//! struct Net {
//!     conv: Conv2d,
//!     fc: Linear,
//! }
//!
//! fn net(device: &Device) -> Net {
//!     Net {
//!         conv: Conv2dConfig::new([1, 4], [3, 3]).init(device),
//!         fc: LinearConfig::new(4, 2).init(device),
//!     }
//! }
//!
//! let device = Device::flex();
//! assert!(!net(&device).conv.is_quantized());
//! qdq::quant_modules::initialize();
//! let quantized = net(&device);
//! assert!(quantized.conv.is_quantized() && quantized.fc.is_quantized());
//! let names: Vec<_> = qdq::nn::named_quantizers(&quantized).into_iter().map(|q| q.name).collect();
//! assert_eq!(names[..2], ["conv._input_quantizer", "conv._weight_quantizer"]);
//! ```
//!
//! A drop-in is a [`DropIn`] enum whose `Module` impl is written by hand so that the
//! variant adds no path segment (burn's derive would insert `Float` / `Quant`):
//! record keys and quantizer names are those of the plain layer (`conv.weight`,
//! `conv._input_quantizer`). A float checkpoint of convolutions and pools therefore
//! loads into the quantized model with `record.allow_partial(true)` (it lacks only
//! the quantizers' `_amax`). `Linear` is the exception: burn stores its weight as
//! `[d_input, d_output]`, `QuantLinear` as PyTorch's `[d_output, d_input]`, under the
//! same key; burn's shape check refuses the float record (and a square weight would
//! load transposed), so load the checkpoint into the float build and convert it with
//! [`quant_modules::quantize`](crate::quant_modules::quantize), which works for every kind.
//!
//! The drop-in configs are burn's configs wrapped ([`DropInConfig::layer`]); their
//! `new` and setters are generated from the same declarations as the `Quant*`
//! configs', so the two cannot drift apart.

mod conv;
mod conv_transpose;
pub(crate) mod layer;
mod linear;
mod norm;
mod pool;
mod recurrent;
pub(crate) mod registry;

pub use layer::{DropIn, DropInConfig, Replaceable};

pub use conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, Conv3d, Conv3dConfig};
pub use conv_transpose::{
    ConvTranspose1d, ConvTranspose1dConfig, ConvTranspose2d, ConvTranspose2dConfig,
    ConvTranspose3d, ConvTranspose3dConfig,
};
pub use linear::{Linear, LinearConfig};
pub use norm::{
    InstanceNorm1d, InstanceNorm1dConfig, InstanceNorm2d, InstanceNorm2dConfig, InstanceNorm3d,
    InstanceNorm3dConfig, QuantInstanceNormKind,
};
pub use pool::{
    AdaptiveAvgPool1d, AdaptiveAvgPool1dConfig, AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig,
    AdaptiveAvgPool3d, AdaptiveAvgPool3dConfig, AvgPool1d, AvgPool1dConfig, AvgPool2d,
    AvgPool2dConfig, AvgPool3d, AvgPool3dConfig, MaxPool1d, MaxPool1dConfig, MaxPool2d,
    MaxPool2dConfig, MaxPool3d, MaxPool3dConfig,
};
pub use recurrent::{Lstm, LstmConfig};
