//! 3-D average and max pooling, which burn 0.22 lacks, built from its 2-D pools.
//!
//! Both pools are separable: a box max is the max over depth of the max over
//! (H, W), and a box average is the average over depth of the average over
//! (H, W), the divisor being the product of per-dim window sizes (PyTorch's
//! `AvgPool3d` divisor, with or without padding counted, as long as both stages
//! count the same way). So: a 2-D pool over (H, W) with the depth folded into the
//! channels, then a 2-D pool with a `[k_d, 1]` kernel over (D, H'·W'). Results
//! equal the direct definition exactly for max, and up to summation order for
//! average.

use burn::module::{Content, ModuleDisplay, ModuleDisplayDefault};
use burn::nn::PaddingConfig3d;
use burn::prelude::*;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

use super::padding::pairs_3d;

/// Configuration of a [`FloatAvgPool3d`] (fields and defaults as burn's `AvgPool2dConfig`).
#[derive(Config, Debug)]
pub struct FloatAvgPool3dConfig {
    /// Window `[k_d, k_h, k_w]`.
    pub kernel_size: [usize; 3],
    /// Strides (default: the kernel size).
    #[config(default = "kernel_size")]
    pub strides: [usize; 3],
    /// Padding (`Same` may pad asymmetrically).
    #[config(default = "PaddingConfig3d::Valid")]
    pub padding: PaddingConfig3d,
    /// Whether padded positions count in the divisor.
    #[config(default = "true")]
    pub count_include_pad: bool,
    /// Ceil instead of floor for the output size.
    #[config(default = "false")]
    pub ceil_mode: bool,
}

/// 3-D average pooling over `[batch, channels, d, h, w]` (PyTorch's `AvgPool3d`
/// without `divisor_override`).
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct FloatAvgPool3d {
    /// Strides.
    pub stride: [usize; 3],
    /// Window.
    pub kernel_size: [usize; 3],
    /// Padding.
    #[module(skip)]
    pub padding: PaddingConfig3d,
    /// Whether padded positions count in the divisor.
    pub count_include_pad: bool,
    /// Ceil instead of floor for the output size.
    pub ceil_mode: bool,
}

impl FloatAvgPool3dConfig {
    /// The pool.
    pub fn init(&self) -> FloatAvgPool3d {
        FloatAvgPool3d {
            stride: self.strides,
            kernel_size: self.kernel_size,
            padding: self.padding.clone(),
            count_include_pad: self.count_include_pad,
            ceil_mode: self.ceil_mode,
        }
    }
}

impl FloatAvgPool3d {
    /// Pools `input` (`[batch, channels, d, h, w]`).
    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        let [k, s] = [self.kernel_size, self.stride];
        let options = |kernel, stride, pads| {
            AvgPoolOptions::new(kernel)
                .with_stride(stride)
                .with_padding_pairs(pads)
                .with_count_include_pad(self.count_include_pad)
                .with_ceil_mode(self.ceil_mode)
        };
        separable(
            input,
            &self.padding,
            k,
            s,
            |x, pads| avg_pool2d(x, options([k[1], k[2]], [s[1], s[2]], pads)),
            |x, pad| avg_pool2d(x, options([k[0], 1], [s[0], 1], [pad, (0, 0)])),
        )
    }
}

/// Configuration of a [`FloatMaxPool3d`] (fields and defaults as burn's `MaxPool2dConfig`).
#[derive(Config, Debug)]
pub struct FloatMaxPool3dConfig {
    /// Window `[k_d, k_h, k_w]`.
    pub kernel_size: [usize; 3],
    /// Strides (default: the kernel size).
    #[config(default = "kernel_size")]
    pub strides: [usize; 3],
    /// Padding (`Same` may pad asymmetrically).
    #[config(default = "PaddingConfig3d::Valid")]
    pub padding: PaddingConfig3d,
    /// Dilation.
    #[config(default = "[1, 1, 1]")]
    pub dilation: [usize; 3],
    /// Ceil instead of floor for the output size.
    #[config(default = "false")]
    pub ceil_mode: bool,
}

/// 3-D max pooling over `[batch, channels, d, h, w]` (PyTorch's `MaxPool3d`
/// without indices).
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct FloatMaxPool3d {
    /// Strides.
    pub stride: [usize; 3],
    /// Window.
    pub kernel_size: [usize; 3],
    /// Padding.
    #[module(skip)]
    pub padding: PaddingConfig3d,
    /// Dilation.
    pub dilation: [usize; 3],
    /// Ceil instead of floor for the output size.
    pub ceil_mode: bool,
}

impl FloatMaxPool3dConfig {
    /// The pool.
    pub fn init(&self) -> FloatMaxPool3d {
        FloatMaxPool3d {
            stride: self.strides,
            kernel_size: self.kernel_size,
            padding: self.padding.clone(),
            dilation: self.dilation,
            ceil_mode: self.ceil_mode,
        }
    }
}

impl FloatMaxPool3d {
    /// Pools `input` (`[batch, channels, d, h, w]`).
    pub fn forward(&self, input: Tensor<5>) -> Tensor<5> {
        let [k, s, dl] = [self.kernel_size, self.stride, self.dilation];
        let options = |kernel, stride, pads, dilation| {
            MaxPoolOptions::new(kernel)
                .with_stride(stride)
                .with_padding_pairs(pads)
                .with_dilation(dilation)
                .with_ceil_mode(self.ceil_mode)
        };
        separable(
            input,
            &self.padding,
            k,
            s,
            |x, pads| max_pool2d(x, options([k[1], k[2]], [s[1], s[2]], pads, [dl[1], dl[2]])),
            |x, pad| max_pool2d(x, options([k[0], 1], [s[0], 1], [pad, (0, 0)], [dl[0], 1])),
        )
    }
}

/// Runs `pool_hw` over (H, W) with the depth folded into the channels, then
/// `pool_d` over (D, H'·W') with a unit kernel on the second dim.
fn separable(
    input: Tensor<5>,
    padding: &PaddingConfig3d,
    kernel: [usize; 3],
    stride: [usize; 3],
    pool_hw: impl FnOnce(Tensor<4>, [(usize, usize); 2]) -> Tensor<4>,
    pool_d: impl FnOnce(Tensor<4>, (usize, usize)) -> Tensor<4>,
) -> Tensor<5> {
    let [n, c, d, h, w] = input.dims();
    let [pad_d, pad_h, pad_w] = pairs_3d(padding, [d, h, w], kernel, stride);
    let hw = pool_hw(input.reshape([n, c * d, h, w]), [pad_h, pad_w]);
    let [_, _, h_out, w_out] = hw.dims();
    let out = pool_d(hw.reshape([n, c, d, h_out * w_out]), pad_d);
    let d_out = out.dims()[2];
    out.reshape([n, c, d_out, h_out, w_out])
}

// Named `Float*` in Rust so that `qdq::nn::AvgPool3d` (the drop-in) is the only
// `AvgPool3d`; printed under PyTorch's name, as model summaries always showed them.
impl ModuleDisplay for FloatAvgPool3d {
    fn custom_content(&self, content: Content) -> Option<Content> {
        self.content(content)
            .map(|c| c.set_top_level_type("AvgPool3d"))
    }
}

impl ModuleDisplay for FloatMaxPool3d {
    fn custom_content(&self, content: Content) -> Option<Content> {
        self.content(content)
            .map(|c| c.set_top_level_type("MaxPool3d"))
    }
}

/// The former name of [`FloatAvgPool3d`], kept so that existing paths build.
pub type AvgPool3d = FloatAvgPool3d;
/// The former name of [`FloatAvgPool3dConfig`], kept so that existing paths build.
pub type AvgPool3dConfig = FloatAvgPool3dConfig;
/// The former name of [`FloatMaxPool3d`], kept so that existing paths build.
pub type MaxPool3d = FloatMaxPool3d;
/// The former name of [`FloatMaxPool3dConfig`], kept so that existing paths build.
pub type MaxPool3dConfig = FloatMaxPool3dConfig;
