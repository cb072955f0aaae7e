//! Quantized instance normalization (`nn/modules/quant_instancenorm.py` of the
//! reference): burn's `InstanceNorm` on the fake-quantized input, in 1, 2 and 3 dims.
//!
//! The reference subclasses `torch.nn.InstanceNorm{1,2,3}d`, whose defaults are
//! `affine = False`, `track_running_stats = False`; the configs here start from those
//! (burn's `InstanceNormConfig` defaults to `affine = true`). burn keeps no running
//! statistics, so `track_running_stats = True` has no counterpart: every forward
//! normalizes with the instance's own mean and variance, as torch does in training and
//! with `track_running_stats = False`.

use burn::nn::{InstanceNorm, InstanceNormConfig};

use crate::error::{Error, Result};

/// `Err(InputShape)` unless `dims` is `[batch, channels, ...]` with `channels` as given.
fn check_channels(layer: &'static str, dims: &[usize], channels: usize) -> Result<()> {
    if dims.get(1) == Some(&channels) {
        return Ok(());
    }
    Err(Error::InputShape {
        layer,
        expected: format!("[batch, {channels}, ...] (rank {})", dims.len()),
        got: dims.to_vec(),
    })
}

/// Declares one quantized instance norm: the module (`norm`, `_input_quantizer`), its
/// config, `from_float`, `forward`, and the mixin.
macro_rules! quant_instance_norm {
    ($(#[$doc:meta])* $name:ident rank $rank:literal; config $config:ident) => {
        $(#[$doc])*
        ///
        #[doc = concat!("Should be created with [`", stringify!($config), "`] or [`", stringify!($name), "::from_float`].")]
        ///
        /// # Fields
        /// - `norm`: burn's float `InstanceNorm` (`gamma`, `beta` `[channels]` when affine)
        /// - `_input_quantizer`: 8-bit per tensor by default
        ///   (`QUANT_DESC_8BIT_PER_TENSOR`), dynamic amax until calibrated
        #[derive(burn::module::Module, Debug)]
        pub struct $name {
            /// The float normalization.
            pub norm: InstanceNorm,
            /// Quantizes the input (per tensor by default).
            pub _input_quantizer: $crate::nn::tensor_quantizer::TensorQuantizer,
        }

        #[doc = concat!("Configuration to create a [`", stringify!($name), "`]: burn's `InstanceNormConfig` with torch's defaults (`affine = false`, `epsilon = 1e-5`) plus the input descriptor (`None`: the class default).")]
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        pub struct $config {
            /// The float normalization's configuration.
            pub norm: InstanceNormConfig,
            /// Input descriptor; `None` takes the class default at `init`.
            pub quant_desc_input: Option<$crate::tensor_quant::QuantDescriptor>,
        }

        impl burn::config::Config for $config {}

        impl $config {
            /// A config for `num_channels` channels, `affine = false` as torch's default.
            pub fn new(num_channels: usize) -> Self {
                Self {
                    norm: InstanceNormConfig::new(num_channels).with_affine(false),
                    quant_desc_input: None,
                }
            }

            $crate::nn::dropin::layer::forward_setters!(norm; with_epsilon(epsilon: f64), with_affine(affine: bool));
            super::macros::quant_desc_setters!(input);

            #[doc = concat!("Initializes a [`", stringify!($name), "`] (`gamma` ones, `beta` zeros when affine).")]
            ///
            /// # Errors
            /// A `fake_quant = false` descriptor.
            pub fn init(&self, device: &burn::tensor::Device) -> $crate::Result<$name> {
                $name::from_float(self.norm.init(device), self.quant_desc_input.clone(), device)
            }
        }

        impl $name {
            /// Wraps a float `InstanceNorm`; a descriptor given as `None` takes the class default.
            ///
            /// # Errors
            /// A `fake_quant = false` descriptor.
            pub fn from_float(
                norm: InstanceNorm,
                quant_desc_input: impl Into<Option<$crate::tensor_quant::QuantDescriptor>>,
                device: &burn::tensor::Device,
            ) -> $crate::Result<Self> {
                let desc = super::mixin::pop_quant_desc_input::<Self>(quant_desc_input.into());
                Ok(Self { norm, _input_quantizer: super::mixin::init_input_quantizer(&desc, device)? })
            }

            /// Instance normalization of the quantized input. Never panics on a
            /// quantizer error; panics as burn's `InstanceNorm` on a channel count
            /// other than `num_channels` ([`Self::try_forward`] reports it).
            pub fn forward(&self, input: burn::tensor::Tensor<$rank>) -> burn::tensor::Tensor<$rank> {
                self.norm.forward(self._input_quantizer.forward(input))
            }

            /// [`Self::forward`], returning the quantizer's error or
            /// [`Error::InputShape`] for a wrong channel count.
            pub fn try_forward(&self, input: burn::tensor::Tensor<$rank>) -> $crate::Result<burn::tensor::Tensor<$rank>> {
                check_channels(stringify!($name), &input.dims(), self.norm.num_channels)?;
                Ok(self.norm.forward(self._input_quantizer.try_forward(input)?))
            }
        }

        super::macros::impl_input_mixin!($name, $crate::tensor_quant::QUANT_DESC_8BIT_PER_TENSOR);
    };
}

quant_instance_norm!(
    /// Applies instance normalization to a fake-quantized 1-D input
    /// (`QuantInstanceNorm1d` of the reference): `norm(q_in(x))`.
    ///
    /// # Shapes (`forward`)
    /// - input, output: `[batch_size, channels, length]`
    QuantInstanceNorm1d rank 3; config QuantInstanceNorm1dConfig
);
quant_instance_norm!(
    /// Applies instance normalization to a fake-quantized 2-D input
    /// (`QuantInstanceNorm2d` of the reference): `norm(q_in(x))`.
    ///
    /// # Shapes (`forward`)
    /// - input, output: `[batch_size, channels, height, width]`
    QuantInstanceNorm2d rank 4; config QuantInstanceNorm2dConfig
);
quant_instance_norm!(
    /// Applies instance normalization to a fake-quantized 3-D input
    /// (`QuantInstanceNorm3d` of the reference): `norm(q_in(x))`.
    ///
    /// # Shapes (`forward`)
    /// - input, output: `[batch_size, channels, depth, height, width]`
    QuantInstanceNorm3d rank 5; config QuantInstanceNorm3dConfig
);
