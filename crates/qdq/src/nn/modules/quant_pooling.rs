//! Quantized pooling (`nn/modules/quant_pooling.py` of the reference): a float
//! pool on the fake-quantized input, for max, average and adaptive average
//! pooling in 1, 2 and 3 dims.

use burn::nn::pool::{
    AdaptiveAvgPool1d, AdaptiveAvgPool1dConfig, AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig,
    AdaptiveAvgPool3d, AdaptiveAvgPool3dConfig, AvgPool1d, AvgPool1dConfig, AvgPool2d,
    AvgPool2dConfig, MaxPool1d, MaxPool1dConfig, MaxPool2d, MaxPool2dConfig,
};
use burn::nn::{PaddingConfig1d, PaddingConfig2d, PaddingConfig3d};

use super::pool3d::{FloatAvgPool3d, FloatAvgPool3dConfig, FloatMaxPool3d, FloatMaxPool3dConfig};

/// Declares one quantized pool: the module (`pool`, `_input_quantizer`), its
/// config wrapping the float pool's, `from_float`, `forward`, and the mixin.
macro_rules! quant_pool {
    ($(#[$doc:meta])* $name:ident($pool:ty) rank $rank:literal;
     config $config:ident($pool_config:ty) {
         new($($arg:ident: $arg_ty:ty),*);
         setters { $($setter:ident($sfield:ident: $sty:ty)),* $(,)? }
     }) => {
        $(#[$doc])*
        ///
        #[doc = concat!("Should be created with [`", stringify!($config), "`] or [`", stringify!($name), "::from_float`].")]
        ///
        /// # Fields
        /// - `pool`: the float pool (its options as the float pool's config set them)
        /// - `_input_quantizer`: 8-bit per tensor by default
        ///   (`QUANT_DESC_8BIT_PER_TENSOR`), dynamic amax until calibrated
        #[derive(burn::module::Module, Debug)]
        pub struct $name {
            /// The float pool.
            pub pool: $pool,
            /// Quantizes the input (per tensor by default).
            pub _input_quantizer: $crate::nn::tensor_quantizer::TensorQuantizer,
        }

        #[doc = concat!("Configuration to create a [`", stringify!($name), "`] with `init`: the float pool's config (same `new`, `with_*` setters and defaults) plus the input descriptor (`None`: the class default).")]
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        pub struct $config {
            /// The float pool's configuration.
            pub pool: $pool_config,
            /// Input descriptor; `None` takes the class default at `init`.
            pub quant_desc_input: Option<$crate::tensor_quant::QuantDescriptor>,
        }

        impl burn::config::Config for $config {}

        impl $config {
            #[doc = concat!("A config with the arguments and defaults of `", stringify!($pool_config), "::new`.")]
            pub fn new($($arg: $arg_ty),*) -> Self {
                Self { pool: <$pool_config>::new($($arg),*), quant_desc_input: None }
            }

            $crate::nn::dropin::layer::forward_setters!(pool; $($setter($sfield: $sty)),*);
            super::macros::quant_desc_setters!(input);

            #[doc = concat!("Initializes a [`", stringify!($name), "`] with its quantizer on `device`.")]
            ///
            /// # Errors
            /// A `fake_quant = false` descriptor.
            pub fn init(&self, device: &burn::tensor::Device) -> $crate::Result<$name> {
                $name::from_float(self.pool.init(), self.quant_desc_input.clone(), device)
            }
        }

        impl $name {
            /// Wraps a float pool; a descriptor given as `None` takes the class default.
            ///
            /// # Errors
            /// A `fake_quant = false` descriptor.
            pub fn from_float(
                pool: $pool,
                quant_desc_input: impl Into<Option<$crate::tensor_quant::QuantDescriptor>>,
                device: &burn::tensor::Device,
            ) -> $crate::Result<Self> {
                let desc = super::mixin::pop_quant_desc_input::<Self>(quant_desc_input.into());
                Ok(Self { pool, _input_quantizer: super::mixin::init_input_quantizer(&desc, device)? })
            }

            /// The float pool on the quantized input. Never panics on a quantizer
            /// error (see [`TensorQuantizer::forward`](crate::nn::tensor_quantizer::TensorQuantizer::forward)).
            pub fn forward(&self, input: burn::tensor::Tensor<$rank>) -> burn::tensor::Tensor<$rank> {
                self.pool.forward(self._input_quantizer.forward(input))
            }

            /// [`Self::forward`], returning the quantizer's error.
            pub fn try_forward(&self, input: burn::tensor::Tensor<$rank>) -> $crate::Result<burn::tensor::Tensor<$rank>> {
                Ok(self.pool.forward(self._input_quantizer.try_forward(input)?))
            }
        }

        super::macros::impl_input_mixin!($name, $crate::tensor_quant::QUANT_DESC_8BIT_PER_TENSOR);

        // The drop-in (`qdq::nn::AvgPool2dConfig` ...), from the same declaration.
        $crate::nn::dropin::layer::dropin_pool! {
            $name($pool) rank $rank;
            config $config($pool_config) {
                new($($arg: $arg_ty),*);
                setters { $($setter($sfield: $sty)),* }
            }
        }
    };
}

quant_pool!(
    /// Applies 1-D max pooling to a fake-quantized input (`QuantMaxPool1d` of the reference):
    /// the float pool (burn's) on `q_in(x)`.
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels, length_in]`
    /// - output: `[batch_size, channels, length_out]`
    QuantMaxPool1d(MaxPool1d) rank 3; config QuantMaxPool1dConfig(MaxPool1dConfig) {
    new(kernel_size: usize);
    setters { with_stride(stride: usize), with_padding(padding: PaddingConfig1d), with_dilation(dilation: usize), with_ceil_mode(ceil_mode: bool) }
});
quant_pool!(
    /// Applies 2-D max pooling to a fake-quantized input (`QuantMaxPool2d` of the reference):
    /// the float pool (burn's) on `q_in(x)`.
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels, height_in, width_in]`
    /// - output: `[batch_size, channels, height_out, width_out]`
    QuantMaxPool2d(MaxPool2d) rank 4; config QuantMaxPool2dConfig(MaxPool2dConfig) {
    new(kernel_size: [usize; 2]);
    setters { with_strides(strides: [usize; 2]), with_padding(padding: PaddingConfig2d), with_dilation(dilation: [usize; 2]), with_ceil_mode(ceil_mode: bool) }
});
quant_pool!(
    /// Applies 3-D max pooling to a fake-quantized input (`QuantMaxPool3d` of the reference):
    /// the float pool (qdq's [`pool3d`](super::pool3d), burn 0.22 having none) on `q_in(x)`.
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels, depth_in, height_in, width_in]`
    /// - output: `[batch_size, channels, depth_out, height_out, width_out]`
    QuantMaxPool3d(FloatMaxPool3d) rank 5; config QuantMaxPool3dConfig(FloatMaxPool3dConfig) {
    new(kernel_size: [usize; 3]);
    setters { with_strides(strides: [usize; 3]), with_padding(padding: PaddingConfig3d), with_dilation(dilation: [usize; 3]), with_ceil_mode(ceil_mode: bool) }
});
quant_pool!(
    /// Applies 1-D average pooling to a fake-quantized input (`QuantAvgPool1d` of the reference):
    /// the float pool (burn's) on `q_in(x)`.
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels, length_in]`
    /// - output: `[batch_size, channels, length_out]`
    QuantAvgPool1d(AvgPool1d) rank 3; config QuantAvgPool1dConfig(AvgPool1dConfig) {
    new(kernel_size: usize);
    setters { with_stride(stride: usize), with_padding(padding: PaddingConfig1d), with_count_include_pad(count_include_pad: bool), with_ceil_mode(ceil_mode: bool) }
});
quant_pool!(
    /// Applies 2-D average pooling to a fake-quantized input (`QuantAvgPool2d` of the reference):
    /// the float pool (burn's) on `q_in(x)`.
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels, height_in, width_in]`
    /// - output: `[batch_size, channels, height_out, width_out]`
    QuantAvgPool2d(AvgPool2d) rank 4; config QuantAvgPool2dConfig(AvgPool2dConfig) {
    new(kernel_size: [usize; 2]);
    setters { with_strides(strides: [usize; 2]), with_padding(padding: PaddingConfig2d), with_count_include_pad(count_include_pad: bool), with_ceil_mode(ceil_mode: bool) }
});
quant_pool!(
    /// Applies 3-D average pooling to a fake-quantized input (`QuantAvgPool3d` of the reference):
    /// the float pool (qdq's [`pool3d`](super::pool3d), burn 0.22 having none) on `q_in(x)`.
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels, depth_in, height_in, width_in]`
    /// - output: `[batch_size, channels, depth_out, height_out, width_out]`
    QuantAvgPool3d(FloatAvgPool3d) rank 5; config QuantAvgPool3dConfig(FloatAvgPool3dConfig) {
    new(kernel_size: [usize; 3]);
    setters { with_strides(strides: [usize; 3]), with_padding(padding: PaddingConfig3d), with_count_include_pad(count_include_pad: bool), with_ceil_mode(ceil_mode: bool) }
});
quant_pool!(
    /// Applies 1-D adaptive average pooling to a fake-quantized input (`QuantAdaptiveAvgPool1d` of the reference):
    /// the float pool (burn's) on `q_in(x)`.
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels, length_in]`
    /// - output: `[batch_size, channels, length_out]` (`output_size`)
    QuantAdaptiveAvgPool1d(AdaptiveAvgPool1d) rank 3; config QuantAdaptiveAvgPool1dConfig(AdaptiveAvgPool1dConfig) {
    new(output_size: usize);
    setters {}
});
quant_pool!(
    /// Applies 2-D adaptive average pooling to a fake-quantized input (`QuantAdaptiveAvgPool2d` of the reference):
    /// the float pool (burn's) on `q_in(x)`.
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels, height_in, width_in]`
    /// - output: `[batch_size, channels, height_out, width_out]` (`output_size`)
    QuantAdaptiveAvgPool2d(AdaptiveAvgPool2d) rank 4; config QuantAdaptiveAvgPool2dConfig(AdaptiveAvgPool2dConfig) {
    new(output_size: [usize; 2]);
    setters {}
});
quant_pool!(
    /// Applies 3-D adaptive average pooling to a fake-quantized input (`QuantAdaptiveAvgPool3d` of the reference):
    /// the float pool (burn's) on `q_in(x)`.
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels, depth_in, height_in, width_in]`
    /// - output: `[batch_size, channels, depth_out, height_out, width_out]` (`output_size`)
    QuantAdaptiveAvgPool3d(AdaptiveAvgPool3d) rank 5; config QuantAdaptiveAvgPool3dConfig(AdaptiveAvgPool3dConfig) {
    new(output_size: [usize; 3]);
    setters {}
});
