//! `QuantConv1d/2d/3d` (`nn/modules/quant_conv.py` of the reference): burn's
//! convolutions on a fake-quantized input and weight.

use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, Conv3d, Conv3dConfig};
use burn::nn::{Initializer, PaddingConfig1d, PaddingConfig2d, PaddingConfig3d};
use burn::tensor::Tensor;
use burn::tensor::module::{conv1d, conv2d, conv3d};
use burn::tensor::ops::{ConvOptions, PadMode};

use super::macros::quant_weighted_layer;
use super::padding::{pair_1d, pairs_2d, pairs_3d};
use crate::error::{Error, Result};

/// `groups` must divide both channel counts (burn's config panics otherwise).
pub(crate) fn check_groups(class: &str, channels: [usize; 2], groups: usize) -> Result<()> {
    if groups > 0 && channels.iter().all(|c| c.is_multiple_of(groups)) {
        return Ok(());
    }
    Err(Error::Unsupported {
        what: "channel counts not divisible by groups",
        format: format!("{class} with channels {channels:?} and groups = {groups}"),
    })
}

quant_weighted_layer! {
    /// Applies a 1-D convolution to a fake-quantized input with a fake-quantized
    /// weight (`QuantConv1d` of the reference): `conv1d(q_in(x), q_w(weight)) + bias`,
    /// burn's `Conv1d` arithmetic bit for bit.
    ///
    /// Should be created with [`QuantConv1dConfig`] or [`QuantConv1d::from_float`].
    ///
    /// # Fields
    /// - `weight`: `[channels_out, channels_in / groups, kernel_size]`, quantized per output channel (axis 0) by default
    ///   (`QUANT_DESC_8BIT_CONV1D_WEIGHT_PER_CHANNEL`)
    /// - `bias`: `[channels_out]`, added unquantized (present by default)
    /// - `stride`, `kernel_size`, `dilation`, `groups`, `padding`: as burn's
    ///   `Conv1d` (defaults stride 1, dilation 1, groups 1, `Valid` padding)
    /// - `_input_quantizer`: 8-bit per tensor by default, dynamic amax until calibrated
    /// - `_weight_quantizer`: see `weight`
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels_in, length_in]`
    /// - output: `[batch_size, channels_out, length_out]`
    QuantConv1d(Conv1d) rank 3;
    /// Configuration to create a [`QuantConv1d`] with [`init`](QuantConv1dConfig::init):
    /// burn's [`Conv1dConfig`] (`new(channels_in, channels_out, kernel_size)`, same `with_*` setters and
    /// defaults) plus the input and weight descriptors (`None`: the class defaults).
    config QuantConv1dConfig(Conv1dConfig) {
        new(channels_in: usize, channels_out: usize, kernel_size: usize);
        setters {
            with_stride(stride: usize),
            with_dilation(dilation: usize),
            with_groups(groups: usize),
            with_padding(padding: PaddingConfig1d),
            with_bias(bias: bool),
            with_initializer(initializer: Initializer),
        }
        check(c) = check_groups("QuantConv1d", [c.channels_in, c.channels_out], c.groups);
        init(c, device) = c.init(device);
    }
    fields {
        /// Stride.
        stride: usize,
        /// Kernel size.
        kernel_size: usize,
        /// Dilation.
        dilation: usize,
        /// Groups.
        groups: usize,
        /// Padding.
        #[module(skip)]
        padding: PaddingConfig1d,
    }
    weight_default = crate::tensor_quant::QUANT_DESC_8BIT_CONV1D_WEIGHT_PER_CHANNEL;
}

impl QuantConv1d {
    fn apply(&self, input: Tensor<3>, weight: Tensor<3>) -> Tensor<3> {
        let pad = pair_1d(
            &self.padding,
            input.dims()[2],
            self.kernel_size,
            self.stride,
        );
        let options =
            ConvOptions::new_with_padding([self.stride], [pad], [self.dilation], self.groups);
        conv1d(input, weight, self.bias.as_ref().map(|b| b.val()), options)
    }
}

quant_weighted_layer! {
    /// Applies a 2-D convolution to a fake-quantized input with a fake-quantized
    /// weight (`QuantConv2d` of the reference): `conv2d(q_in(x), q_w(weight)) + bias`,
    /// burn's `Conv2d` arithmetic bit for bit.
    ///
    /// Should be created with [`QuantConv2dConfig`] or [`QuantConv2d::from_float`].
    ///
    /// # Fields
    /// - `weight`: `[channels_out, channels_in / groups, kernel_h, kernel_w]`, quantized per output channel (axis 0) by default
    ///   (`QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL`)
    /// - `bias`: `[channels_out]`, added unquantized (present by default)
    /// - `stride`, `kernel_size`, `dilation`, `groups`, `padding`: as burn's
    ///   `Conv2d` (defaults stride 1, dilation 1, groups 1, `Valid` padding)
    /// - `_input_quantizer`: 8-bit per tensor by default, dynamic amax until calibrated
    /// - `_weight_quantizer`: see `weight`
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels_in, height_in, width_in]`
    /// - output: `[batch_size, channels_out, height_out, width_out]`
    ///
    /// ```
    /// use burn::prelude::*;
    /// use qdq::nn::{QuantConv2dConfig, QuantMixin};
    ///
    /// let device = Device::flex();
    /// let conv = QuantConv2dConfig::new([3, 8], [3, 3]).with_stride([2, 2]).init(&device).unwrap();
    /// let y = conv.forward(Tensor::<4>::ones([1, 3, 9, 9], &device));
    /// assert_eq!(y.dims(), [1, 8, 4, 4]);
    /// assert_eq!(conv.weight_quantizer().amax(), None); // per channel, dynamic until calibrated
    /// ```
    QuantConv2d(Conv2d) rank 4;
    /// Configuration to create a [`QuantConv2d`] with [`init`](QuantConv2dConfig::init):
    /// burn's [`Conv2dConfig`] (`new([channels_in, channels_out], kernel_size)`, same `with_*` setters and
    /// defaults) plus the input and weight descriptors (`None`: the class defaults).
    config QuantConv2dConfig(Conv2dConfig) {
        new(channels: [usize; 2], kernel_size: [usize; 2]);
        setters {
            with_stride(stride: [usize; 2]),
            with_dilation(dilation: [usize; 2]),
            with_groups(groups: usize),
            with_padding(padding: PaddingConfig2d),
            with_bias(bias: bool),
            with_initializer(initializer: Initializer),
        }
        check(c) = check_groups("QuantConv2d", c.channels, c.groups);
        init(c, device) = c.init(device);
    }
    fields {
        /// Stride.
        stride: [usize; 2],
        /// Kernel size.
        kernel_size: [usize; 2],
        /// Dilation.
        dilation: [usize; 2],
        /// Groups.
        groups: usize,
        /// Padding.
        #[module(skip)]
        padding: PaddingConfig2d,
    }
    weight_default = crate::tensor_quant::QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL;
}

impl QuantConv2d {
    fn apply(&self, input: Tensor<4>, weight: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = input.dims();
        let pads = pairs_2d(&self.padding, [h, w], self.kernel_size, self.stride);
        let options = ConvOptions::new_with_padding(self.stride, pads, self.dilation, self.groups);
        conv2d(input, weight, self.bias.as_ref().map(|b| b.val()), options)
    }
}

quant_weighted_layer! {
    /// Applies a 3-D convolution to a fake-quantized input with a fake-quantized
    /// weight (`QuantConv3d` of the reference): `conv3d(q_in(x), q_w(weight)) + bias`,
    /// burn's `Conv3d` arithmetic bit for bit.
    ///
    /// Should be created with [`QuantConv3dConfig`] or [`QuantConv3d::from_float`].
    ///
    /// # Fields
    /// - `weight`: `[channels_out, channels_in / groups, kernel_d, kernel_h, kernel_w]`, quantized per output channel (axis 0) by default
    ///   (`QUANT_DESC_8BIT_CONV3D_WEIGHT_PER_CHANNEL`)
    /// - `bias`: `[channels_out]`, added unquantized (present by default)
    /// - `stride`, `kernel_size`, `dilation`, `groups`, `padding`: as burn's
    ///   `Conv3d` (defaults stride 1, dilation 1, groups 1, `Valid` padding)
    /// - `_input_quantizer`: 8-bit per tensor by default, dynamic amax until calibrated
    /// - `_weight_quantizer`: see `weight`
    ///
    /// # Shapes (`forward`)
    /// - input: `[batch_size, channels_in, depth_in, height_in, width_in]`
    /// - output: `[batch_size, channels_out, depth_out, height_out, width_out]`
    ///
    /// Unlike burn's `Conv3d`, `Same` padding that comes out asymmetric (even
    /// kernels, strides) works: the input is zero-padded first.
    QuantConv3d(Conv3d) rank 5;
    /// Configuration to create a [`QuantConv3d`] with [`init`](QuantConv3dConfig::init):
    /// burn's [`Conv3dConfig`] (`new([channels_in, channels_out], kernel_size)`, same `with_*` setters and
    /// defaults) plus the input and weight descriptors (`None`: the class defaults).
    config QuantConv3dConfig(Conv3dConfig) {
        new(channels: [usize; 2], kernel_size: [usize; 3]);
        setters {
            with_stride(stride: [usize; 3]),
            with_dilation(dilation: [usize; 3]),
            with_groups(groups: usize),
            with_padding(padding: PaddingConfig3d),
            with_bias(bias: bool),
            with_initializer(initializer: Initializer),
        }
        check(c) = check_groups("QuantConv3d", c.channels, c.groups);
        // burn's init refuses `Same` with an even kernel; the weight does not depend
        // on padding, which `apply` handles.
        init(c, device) = {
            let mut layer = c.clone().with_padding(PaddingConfig3d::Valid).init(device);
            layer.padding = c.padding.clone();
            layer
        };
    }
    fields {
        /// Stride.
        stride: [usize; 3],
        /// Kernel size.
        kernel_size: [usize; 3],
        /// Dilation.
        dilation: [usize; 3],
        /// Groups.
        groups: usize,
        /// Padding.
        #[module(skip)]
        padding: PaddingConfig3d,
    }
    weight_default = crate::tensor_quant::QUANT_DESC_8BIT_CONV3D_WEIGHT_PER_CHANNEL;
}

impl QuantConv3d {
    fn apply(&self, input: Tensor<5>, weight: Tensor<5>) -> Tensor<5> {
        let [_, _, d, h, w] = input.dims();
        let pads = pairs_3d(&self.padding, [d, h, w], self.kernel_size, self.stride);
        let bias = self.bias.as_ref().map(|b| b.val());
        if pads.iter().all(|(begin, end)| begin == end) {
            let options =
                ConvOptions::new(self.stride, pads.map(|p| p.0), self.dilation, self.groups);
            return conv3d(input, weight, bias, options);
        }
        // burn's conv3d takes symmetric padding only: pad with zeros up front.
        let input = input.pad(pads, PadMode::Constant(0.0));
        conv3d(
            input,
            weight,
            bias,
            ConvOptions::new(self.stride, [0; 3], self.dilation, self.groups),
        )
    }
}
