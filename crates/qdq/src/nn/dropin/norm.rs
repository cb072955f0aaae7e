//! Drop-in instance norms: `InstanceNorm1d/2d/3d`, replaced only as custom
//! replacements (the reference's `QuantInstanceNorm*d` are not in its default map).
//!
//! burn has one `InstanceNorm` for every rank, so the three configs are one type
//! (burn's `InstanceNormConfig`, wrapped, with burn's defaults: `affine = true`);
//! `init` builds the rank that the receiving field or binding names
//! (`norm: InstanceNorm2d = InstanceNorm2dConfig::new(4).init(&device)`).

use burn::nn::{InstanceNorm, InstanceNormConfig};
use burn::tensor::{Device, Tensor};

use super::layer::{DropIn, DropInConfig, Replaceable, dropin_types, expect_init, forward_setters};
use super::registry::replacement_for;
use crate::error::Result;
use crate::nn::modules::{QuantInstanceNorm1d, QuantInstanceNorm2d, QuantInstanceNorm3d};
use crate::tensor_quant::QuantDescriptor;

dropin_types! {
    pool:
    InstanceNorm1d(InstanceNorm1dConfig) = QuantInstanceNorm1d(InstanceNorm, InstanceNormConfig);
    InstanceNorm2d(InstanceNorm2dConfig) = QuantInstanceNorm2d(InstanceNorm, InstanceNormConfig);
    InstanceNorm3d(InstanceNorm3dConfig) = QuantInstanceNorm3d(InstanceNorm, InstanceNormConfig);
}

/// A quantized instance norm of some rank: what the drop-in config's `init` builds
/// while replacement is on for its kind.
pub trait QuantInstanceNormKind: Replaceable<Float = InstanceNorm> {
    /// The quantized layer around `norm`, its quantizer on `device`.
    ///
    /// # Errors
    /// A `fake_quant = false` descriptor.
    fn quantize_on(
        norm: InstanceNorm,
        desc: Option<QuantDescriptor>,
        device: &Device,
    ) -> Result<Self>;
}

/// The rank-specific half of each drop-in: `QuantInstanceNormKind` and `forward`.
macro_rules! norm_rank {
    ($($quant:ident rank $rank:literal;)*) => {$(
        impl QuantInstanceNormKind for $quant {
            fn quantize_on(norm: InstanceNorm, desc: Option<QuantDescriptor>, device: &Device) -> Result<Self> {
                $quant::from_float(norm, desc, device)
            }
        }

        impl DropIn<$quant> {
            /// The float norm, on the quantized input for the quantized variant.
            pub fn forward(&self, input: Tensor<$rank>) -> Tensor<$rank> {
                match self {
                    Self::Float(norm) => norm.forward(input),
                    Self::Quant(norm) => norm.forward(input),
                }
            }

            #[doc = concat!("[`Self::forward`], returning the quantized layer's errors (see [`", stringify!($quant), "::try_forward`]).")]
            pub fn try_forward(&self, input: Tensor<$rank>) -> Result<Tensor<$rank>> {
                match self {
                    Self::Float(norm) => Ok(norm.forward(input)),
                    Self::Quant(norm) => norm.try_forward(input),
                }
            }
        }
    )*};
}

norm_rank! {
    QuantInstanceNorm1d rank 3;
    QuantInstanceNorm2d rank 4;
    QuantInstanceNorm3d rank 5;
}

impl DropInConfig<InstanceNormConfig> {
    /// A config with the arguments and defaults of burn's `InstanceNormConfig::new`.
    pub fn new(num_channels: usize) -> Self {
        Self {
            layer: InstanceNormConfig::new(num_channels),
        }
    }

    forward_setters!(layer; with_epsilon(epsilon: f64), with_affine(affine: bool));

    /// burn's float norm, or the quantized one of rank `Q` while replacement is on
    /// for its kind.
    ///
    /// # Errors
    /// What the quantized layer's `from_float` reports.
    pub fn try_init<Q: QuantInstanceNormKind>(&self, device: &Device) -> Result<DropIn<Q>> {
        let norm = self.layer.init(device);
        Ok(match replacement_for(Q::KIND) {
            None => DropIn::Float(norm),
            Some(r) => DropIn::Quant(Q::quantize_on(norm, r.quant_desc_input, device)?),
        })
    }

    /// [`Self::try_init`].
    ///
    /// # Panics
    /// Where [`Self::try_init`] fails.
    #[track_caller]
    pub fn init<Q: QuantInstanceNormKind>(&self, device: &Device) -> DropIn<Q> {
        expect_init(self.try_init(device), Q::KIND)
    }
}
