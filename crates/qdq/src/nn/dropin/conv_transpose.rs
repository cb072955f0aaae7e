//! Drop-in `ConvTranspose1d/2d/3d`: burn's transposed convolutions, or
//! `QuantConvTranspose1d/2d/3d`.
//!
//! Record keys are burn's (`weight` `[C_in, C_out/groups, k...]`, `bias`) in both
//! variants, so a float checkpoint loads into the quantized layer.

use burn::nn::conv;

use super::layer::dropin_types;
use crate::nn::modules::{QuantConvTranspose1d, QuantConvTranspose2d, QuantConvTranspose3d};

dropin_types! {
    weighted:
    ConvTranspose1d(ConvTranspose1dConfig) =
        QuantConvTranspose1d(conv::ConvTranspose1d, conv::ConvTranspose1dConfig);
    ConvTranspose2d(ConvTranspose2dConfig) =
        QuantConvTranspose2d(conv::ConvTranspose2d, conv::ConvTranspose2dConfig);
    ConvTranspose3d(ConvTranspose3dConfig) =
        QuantConvTranspose3d(conv::ConvTranspose3d, conv::ConvTranspose3dConfig);
}
