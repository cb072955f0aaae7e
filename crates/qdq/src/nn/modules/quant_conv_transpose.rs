//! `QuantConvTranspose1d/2d/3d`: burn's transposed convolutions on a
//! fake-quantized input and weight.
//!
//! The weight is `[C_in, C_out/groups, k...]`. Its default descriptor is per
//! channel on axis 0, i.e. per *input* channel: the scales TensorRT's
//! deconvolution expects (pytorch-quantization 2.2.1 uses axis 1, the output
//! channel; pass an axis-1 weight descriptor for that).

use burn::nn::Initializer;
use burn::nn::conv::{
    ConvTranspose1d, ConvTranspose1dConfig, ConvTranspose2d, ConvTranspose2dConfig,
    ConvTranspose3d, ConvTranspose3dConfig,
};
use burn::tensor::Tensor;
use burn::tensor::module::{conv_transpose1d, conv_transpose2d, conv_transpose3d};
use burn::tensor::ops::ConvTransposeOptions;

use super::macros::quant_weighted_layer;
use super::quant_conv::check_groups;

/// Declares one transposed-convolution class; `$k` is the per-dim option type.
macro_rules! quant_conv_transpose {
    ($name:ident($float:ident, $config:ident($float_config:ident)) rank $rank:literal, k = $k:ty,
     new($($arg:ident: $arg_ty:ty),*), default = $wdefault:path, op = $op:ident, wrap = $wrap:tt) => {
        quant_weighted_layer! {
            #[doc = concat!("Applies a transposed convolution to a fake-quantized input with a fake-quantized weight (`", stringify!($name), "`): `", stringify!($op), "(q_in(x), q_w(weight)) + bias`, burn's `", stringify!($float), "` arithmetic bit for bit.")]
            ///
            #[doc = concat!("Should be created with [`", stringify!($config), "`] or [`", stringify!($name), "::from_float`].")]
            ///
            /// # Fields
            /// - `weight`: `[channels_in, channels_out / groups, kernel...]`, quantized
            ///   per input channel (axis 0) by default (TensorRT's deconvolution scales)
            /// - `bias`: `[channels_out]`, added unquantized (present by default)
            /// - `stride`, `kernel_size`, `dilation`, `groups`, `padding`,
            ///   `padding_out`, `channels`: as burn's (defaults stride 1, dilation 1,
            ///   groups 1, padding 0, padding_out 0)
            /// - `_input_quantizer`: 8-bit per tensor by default, dynamic amax until
            ///   calibrated
            /// - `_weight_quantizer`: see `weight`
            ///
            /// # Shapes (`forward`)
            /// - input: `[batch_size, channels_in, spatial_in...]` (one spatial dim per
            ///   kernel dim)
            /// - output: `[batch_size, channels_out, spatial_out...]`, each
            ///   `(in - 1)·stride - 2·padding + dilation·(kernel - 1) + padding_out + 1`
            $name($float) rank $rank;
            #[doc = concat!("Configuration to create a [`", stringify!($name), "`] with `init`: burn's [`", stringify!($float_config), "`] (same `new`, `with_*` setters and defaults) plus the input and weight descriptors (`None`: the class defaults).")]
            config $config($float_config) {
                new($($arg: $arg_ty),*);
                setters {
                    with_stride(stride: $k),
                    with_dilation(dilation: $k),
                    with_groups(groups: usize),
                    with_padding(padding: $k),
                    with_padding_out(padding_out: $k),
                    with_bias(bias: bool),
                    with_initializer(initializer: Initializer),
                }
                check(c) = check_groups(stringify!($name), c.channels, c.groups);
                init(c, device) = c.init(device);
            }
            fields {
                /// Stride.
                stride: $k,
                /// Kernel size.
                kernel_size: $k,
                /// Dilation.
                dilation: $k,
                /// Groups.
                groups: usize,
                /// Padding (removed from each side of the full output).
                padding: $k,
                /// Extra size added to one side of the output.
                padding_out: $k,
                /// `[C_in, C_out]`.
                channels: [usize; 2],
            }
            weight_default = $wdefault;
        }

        impl $name {
            fn apply(&self, input: Tensor<$rank>, weight: Tensor<$rank>) -> Tensor<$rank> {
                let options = ConvTransposeOptions::new(
                    quant_conv_transpose!(@wrap $wrap self.stride),
                    quant_conv_transpose!(@wrap $wrap self.padding),
                    quant_conv_transpose!(@wrap $wrap self.padding_out),
                    quant_conv_transpose!(@wrap $wrap self.dilation),
                    self.groups,
                );
                $op(input, weight, self.bias.as_ref().map(|b| b.val()), options)
            }
        }
    };
    // burn's 1-D layer stores scalars; the op takes `[usize; 1]`.
    (@wrap scalar $v:expr) => { [$v] };
    (@wrap array $v:expr) => { $v };
}

quant_conv_transpose!(QuantConvTranspose1d(ConvTranspose1d, QuantConvTranspose1dConfig(ConvTranspose1dConfig)) rank 3,
    k = usize, new(channels: [usize; 2], kernel_size: usize),
    default = crate::tensor_quant::QUANT_DESC_8BIT_CONVTRANSPOSE1D_WEIGHT_PER_CHANNEL, op = conv_transpose1d, wrap = scalar);
quant_conv_transpose!(QuantConvTranspose2d(ConvTranspose2d, QuantConvTranspose2dConfig(ConvTranspose2dConfig)) rank 4,
    k = [usize; 2], new(channels: [usize; 2], kernel_size: [usize; 2]),
    default = crate::tensor_quant::QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL, op = conv_transpose2d, wrap = array);
quant_conv_transpose!(QuantConvTranspose3d(ConvTranspose3d, QuantConvTranspose3dConfig(ConvTranspose3dConfig)) rank 5,
    k = [usize; 3], new(channels: [usize; 2], kernel_size: [usize; 3]),
    default = crate::tensor_quant::QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL, op = conv_transpose3d, wrap = array);
