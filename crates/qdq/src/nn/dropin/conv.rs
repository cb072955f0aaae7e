//! Drop-in `Conv1d/2d/3d`: burn's convolutions, or `QuantConv1d/2d/3d`.
//!
//! Record keys are burn's (`weight` `[C_out, C_in/groups, k...]`, `bias`) in both
//! variants, so a float checkpoint loads into the quantized layer.

use burn::nn::conv;

use super::layer::dropin_types;
use crate::nn::modules::{QuantConv1d, QuantConv2d, QuantConv3d};

dropin_types! {
    weighted:
    Conv1d(Conv1dConfig) = QuantConv1d(conv::Conv1d, conv::Conv1dConfig);
    Conv2d(Conv2dConfig) = QuantConv2d(conv::Conv2d, conv::Conv2dConfig);
    Conv3d(Conv3dConfig) = QuantConv3d(conv::Conv3d, conv::Conv3dConfig);
}
