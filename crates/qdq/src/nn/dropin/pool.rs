//! Drop-in pools: `AvgPool1d/2d/3d`, `AdaptiveAvgPool1d/2d/3d` (in the default map)
//! and `MaxPool1d/2d/3d` (replaced only as custom replacements, as in the
//! reference). The 3-D average and max pools, which burn lacks, are qdq's
//! [`pool3d`](crate::nn::modules::pool3d) ones.
//!
//! Pools have no parameters: the quantized variant's record holds only its input
//! quantizer (`pool._input_quantizer._amax`).

use burn::nn::pool;

use super::layer::dropin_types;
use crate::nn::modules::pool3d;
use crate::nn::modules::{
    QuantAdaptiveAvgPool1d, QuantAdaptiveAvgPool2d, QuantAdaptiveAvgPool3d, QuantAvgPool1d,
    QuantAvgPool2d, QuantAvgPool3d, QuantMaxPool1d, QuantMaxPool2d, QuantMaxPool3d,
};

dropin_types! {
    pool:
    AvgPool1d(AvgPool1dConfig) = QuantAvgPool1d(pool::AvgPool1d, pool::AvgPool1dConfig);
    AvgPool2d(AvgPool2dConfig) = QuantAvgPool2d(pool::AvgPool2d, pool::AvgPool2dConfig);
    AvgPool3d(AvgPool3dConfig) = QuantAvgPool3d(pool3d::FloatAvgPool3d, pool3d::FloatAvgPool3dConfig);
    AdaptiveAvgPool1d(AdaptiveAvgPool1dConfig) =
        QuantAdaptiveAvgPool1d(pool::AdaptiveAvgPool1d, pool::AdaptiveAvgPool1dConfig);
    AdaptiveAvgPool2d(AdaptiveAvgPool2dConfig) =
        QuantAdaptiveAvgPool2d(pool::AdaptiveAvgPool2d, pool::AdaptiveAvgPool2dConfig);
    AdaptiveAvgPool3d(AdaptiveAvgPool3dConfig) =
        QuantAdaptiveAvgPool3d(pool::AdaptiveAvgPool3d, pool::AdaptiveAvgPool3dConfig);
    MaxPool1d(MaxPool1dConfig) = QuantMaxPool1d(pool::MaxPool1d, pool::MaxPool1dConfig);
    MaxPool2d(MaxPool2dConfig) = QuantMaxPool2d(pool::MaxPool2d, pool::MaxPool2dConfig);
    MaxPool3d(MaxPool3dConfig) = QuantMaxPool3d(pool3d::FloatMaxPool3d, pool3d::FloatMaxPool3dConfig);
}
