//! Quantized modules: each equals the float op on manually fake-quantized input and
//! weight bit for bit; STE gradients; per-class defaults; real quant rejected;
//! `from_float`; records; the separable 3-D pools against a direct definition.

mod common;

use burn::module::Module;
use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
use burn::nn::pool::{
    AdaptiveAvgPool1dConfig, AdaptiveAvgPool2dConfig, AdaptiveAvgPool3dConfig, AvgPool1dConfig,
    AvgPool2dConfig, MaxPool1dConfig, MaxPool2dConfig,
};
use burn::nn::{LinearConfig, PaddingConfig1d, PaddingConfig2d, PaddingConfig3d};
use burn::prelude::*;
use burn::tensor::module::{
    conv_transpose1d, conv_transpose2d, conv_transpose3d, conv1d, conv2d, conv3d, linear,
};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode};
use common::{Lcg, bits, desc, dev, tensor, values};
use qdq::nn::modules::pool3d::{AvgPool3dConfig, MaxPool3dConfig};
use qdq::nn::*;
use qdq::tensor_quant::{
    NumBits, QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL,
    QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL, QUANT_DESC_8BIT_PER_TENSOR,
    QuantDescriptor, fake_tensor_quant,
};
use qdq::{Amax, Error};

// ---------------------------------------------------------------- helpers

/// Fake quantization as the descriptors configure it (signed, full range).
fn fq<const D: usize>(x: Tensor<D>, amax: Tensor<D>, num_bits: u32) -> Tensor<D> {
    fake_tensor_quant(x, amax, num_bits, false, false).unwrap()
}

/// The dynamic per-tensor amax: max |x|.
fn tensor_amax<const D: usize>(x: &Tensor<D>) -> Tensor<D> {
    x.clone().abs().max().reshape([1; D])
}

/// The dynamic per-channel amax on `axis`, keepdims.
fn axis_amax<const D: usize>(x: &Tensor<D>, axis: usize) -> Tensor<D> {
    let dims = x.dims();
    let c = dims[axis];
    let rest = dims.iter().product::<usize>() / c;
    let per = x
        .clone()
        .abs()
        .swap_dims(0, axis)
        .reshape([c, rest])
        .max_dim(1);
    let mut shape = [1; D];
    shape[axis] = c;
    per.reshape(shape)
}

fn rand<const D: usize>(
    seed: u64,
    shape: [usize; D],
    lo: f32,
    hi: f32,
    device: &Device,
) -> Tensor<D> {
    let n = shape.iter().product();
    tensor(Lcg(seed).vec(n, lo, hi), shape, device)
}

fn assert_bits<const D: usize>(got: Tensor<D>, want: Tensor<D>) {
    assert_eq!(got.dims(), want.dims());
    assert_eq!(bits(&values(got)), bits(&values(want)));
}

fn bias_of(b: &Option<burn::module::Param<Tensor<1>>>) -> Option<Tensor<1>> {
    b.as_ref().map(|b| b.val())
}

// ------------------------------------------------------- convolutions

#[test]
fn conv1d_per_tensor_4bit_static_amax_no_bias() {
    let d = dev();
    let mut m = QuantConv1dConfig::new(4, 6, 3)
        .with_stride(2)
        .with_padding(PaddingConfig1d::Explicit(1, 2))
        .with_bias(false)
        .with_quant_desc_input(desc(4, None))
        .with_quant_desc_weight(desc(4, None))
        .init(&d)
        .unwrap();
    m._input_quantizer.set_amax(&Amax::scalar(1.5)).unwrap();
    m._weight_quantizer.set_amax(&Amax::scalar(0.3)).unwrap();
    let x = rand(1, [2, 4, 11], -2.0, 2.0, &d);
    let w = m.weight.val();
    let want = conv1d(
        fq(x.clone(), tensor(vec![1.5], [1, 1, 1], &d), 4),
        fq(w, tensor(vec![0.3], [1, 1, 1], &d), 4),
        None,
        ConvOptions::new_with_padding([2], [(1, 2)], [1], 1),
    );
    assert!(m.bias.is_none());
    assert_bits(m.forward(x), want);
}

#[test]
fn conv2d_default_per_channel_groups_same_padding() {
    let d = dev();
    let m = QuantConv2dConfig::new([4, 6], [3, 2])
        .with_stride([2, 1])
        .with_groups(2)
        .with_padding(PaddingConfig2d::Same)
        .init(&d)
        .unwrap();
    let x = rand(2, [2, 4, 7, 6], -3.0, 3.0, &d);
    let w = m.weight.val();
    assert_eq!(w.dims(), [6, 2, 3, 2]);
    // Same: H 7 stride 2 -> pads (1, 1); W 6 kernel 2 -> (0, 1).
    let want = conv2d(
        fq(x.clone(), tensor_amax(&x), 8),
        fq(w.clone(), axis_amax(&w, 0), 8),
        bias_of(&m.bias),
        ConvOptions::new_with_padding([2, 1], [(1, 1), (0, 1)], [1, 1], 2),
    );
    assert_bits(m.forward(x), want);
    assert_eq!(m.weight_quantizer().config().axis, Some(vec![0]));
    // One unset amax per output channel, so a calibrated record loads.
    assert_eq!(m._weight_quantizer._amax.dims(), [6]);
}

#[test]
fn conv3d_per_channel_4bit_static_amax_dilation() {
    let d = dev();
    let mut m = QuantConv3dConfig::new([2, 3], [2, 3, 2])
        .with_dilation([1, 2, 1])
        .with_padding(PaddingConfig3d::Explicit(1, 0, 1))
        .with_quant_desc_weight(desc(4, Some(0)))
        .init(&d)
        .unwrap();
    let amax_w = vec![0.1, 0.25, 0.05];
    m._weight_quantizer
        .set_amax(&Amax::new(amax_w.clone(), vec![3, 1, 1, 1, 1]).unwrap())
        .unwrap();
    let x = rand(3, [1, 2, 4, 7, 5], -1.0, 1.0, &d);
    let w = m.weight.val();
    let want = conv3d(
        fq(x.clone(), tensor_amax(&x), 8),
        fq(w, tensor(amax_w, [3, 1, 1, 1, 1], &d), 4),
        bias_of(&m.bias),
        ConvOptions::new([1, 1, 1], [1, 0, 1], [1, 2, 1], 1),
    );
    assert_bits(m.forward(x), want);
}

#[test]
fn conv3d_same_padding_with_even_kernel_pads_the_input() {
    let d = dev();
    // burn's Conv3d refuses this configuration; the quantized layer zero-pads first.
    let m = QuantConv3dConfig::new([2, 2], [2, 3, 2])
        .with_padding(PaddingConfig3d::Same)
        .init(&d)
        .unwrap();
    let x = rand(4, [1, 2, 3, 4, 5], -1.0, 1.0, &d);
    let w = m.weight.val();
    let padded =
        fq(x.clone(), tensor_amax(&x), 8).pad([(0, 1), (1, 1), (0, 1)], PadMode::Constant(0.0));
    let want = conv3d(
        padded,
        fq(w.clone(), axis_amax(&w, 0), 8),
        bias_of(&m.bias),
        ConvOptions::new([1; 3], [0; 3], [1; 3], 1),
    );
    let got = m.forward(x);
    assert_eq!(got.dims(), [1, 2, 3, 4, 5]);
    assert_bits(got, want);
}

#[test]
fn conv_groups_error_instead_of_panic() {
    let err = QuantConv2dConfig::new([3, 4], [3, 3])
        .with_groups(2)
        .init(&dev())
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("groups = 2"), "{err}");
}

// ------------------------------------------------- transposed convolutions

#[test]
fn conv_transpose1d_default_axis0_is_per_input_channel() {
    let d = dev();
    let m = QuantConvTranspose1dConfig::new([3, 4], 3)
        .with_stride(2)
        .with_padding(1)
        .with_padding_out(1)
        .init(&d)
        .unwrap();
    let x = rand(5, [2, 3, 6], -2.0, 2.0, &d);
    let w = m.weight.val();
    assert_eq!(w.dims(), [3, 4, 3]);
    assert_eq!(m._weight_quantizer._amax.dims(), [3]);
    let want = conv_transpose1d(
        fq(x.clone(), tensor_amax(&x), 8),
        fq(w.clone(), axis_amax(&w, 0), 8),
        bias_of(&m.bias),
        ConvTransposeOptions::new([2], [1], [1], [1], 1),
    );
    assert_bits(m.forward(x), want);
}

#[test]
fn conv_transpose2d_axis1_per_output_channel_groups_no_bias() {
    let d = dev();
    let m = QuantConvTranspose2dConfig::new([4, 6], [2, 3])
        .with_groups(2)
        .with_stride([2, 1])
        .with_dilation([1, 2])
        .with_bias(false)
        .with_quant_desc_weight(desc(8, Some(1)))
        .init(&d)
        .unwrap();
    let x = rand(6, [1, 4, 3, 4], -1.0, 1.0, &d);
    let w = m.weight.val();
    assert_eq!(w.dims(), [4, 3, 2, 3]);
    assert_eq!(m._weight_quantizer._amax.dims(), [3]);
    let want = conv_transpose2d(
        fq(x.clone(), tensor_amax(&x), 8),
        fq(w.clone(), axis_amax(&w, 1), 8),
        None,
        ConvTransposeOptions::new([2, 1], [0, 0], [0, 0], [1, 2], 2),
    );
    assert_bits(m.forward(x), want);
}

#[test]
fn conv_transpose3d_per_tensor_4bit() {
    let d = dev();
    let m = QuantConvTranspose3dConfig::new([2, 3], [2, 2, 3])
        .with_padding([1, 0, 1])
        .with_quant_desc_input(desc(4, None))
        .with_quant_desc_weight(desc(4, None))
        .init(&d)
        .unwrap();
    let x = rand(7, [2, 2, 3, 3, 4], -1.0, 1.0, &d);
    let w = m.weight.val();
    let want = conv_transpose3d(
        fq(x.clone(), tensor_amax(&x), 4),
        fq(w.clone(), tensor_amax(&w), 4),
        bias_of(&m.bias),
        ConvTransposeOptions::new([1; 3], [1, 0, 1], [0; 3], [1; 3], 1),
    );
    assert_bits(m.forward(x), want);
}

// ----------------------------------------------------------------- linear

#[test]
fn linear_per_row_default_rank3_input() {
    let d = dev();
    let m = QuantLinearConfig::new(5, 4).init(&d).unwrap();
    let x = rand(8, [2, 3, 5], -2.0, 2.0, &d);
    let w = m.weight.val();
    assert_eq!(w.dims(), [4, 5]);
    assert_eq!(m._weight_quantizer._amax.dims(), [4]);
    let wq = fq(w.clone(), axis_amax(&w, 0), 8);
    let want = linear(
        fq(x.clone(), tensor_amax(&x), 8),
        wq.transpose(),
        bias_of(&m.bias),
    );
    assert_bits(m.forward(x), want);
}

#[test]
fn linear_per_tensor_4bit_no_bias_static_amax() {
    let d = dev();
    let mut m = QuantLinearConfig::new(6, 3)
        .with_bias(false)
        .with_quant_desc_input(desc(4, None))
        .with_quant_desc_weight(desc(4, None))
        .init(&d)
        .unwrap();
    m._input_quantizer.set_amax(&Amax::scalar(1.0)).unwrap();
    m._weight_quantizer.set_amax(&Amax::scalar(0.2)).unwrap();
    let x = rand(9, [4, 6], -2.0, 2.0, &d);
    let w = m.weight.val();
    let want = fq(x.clone(), tensor(vec![1.0], [1, 1], &d), 4)
        .matmul(fq(w, tensor(vec![0.2], [1, 1], &d), 4).transpose());
    assert_bits(m.forward(x), want);
}

// ---------------------------------------------------------------- pooling

#[test]
fn pools_equal_float_pools_on_quantized_input() {
    let d = dev();
    let x3 = rand(10, [2, 3, 9], -2.0, 2.0, &d);
    let x4 = rand(11, [2, 3, 7, 8], -2.0, 2.0, &d);
    let x5 = rand(12, [1, 2, 5, 6, 7], -2.0, 2.0, &d);
    let q3 = fq(x3.clone(), tensor_amax(&x3), 8);
    let q4 = fq(x4.clone(), tensor_amax(&x4), 8);
    let q5 = fq(x5.clone(), tensor_amax(&x5), 8);

    let m = QuantMaxPool1dConfig::new(3)
        .with_stride(2)
        .with_padding(PaddingConfig1d::Explicit(1, 1))
        .init(&d)
        .unwrap();
    let f = MaxPool1dConfig::new(3)
        .with_stride(2)
        .with_padding(PaddingConfig1d::Explicit(1, 1))
        .init();
    assert_bits(m.forward(x3.clone()), f.forward(q3.clone()));

    let m = QuantMaxPool2dConfig::new([3, 2])
        .with_dilation([2, 1])
        .with_ceil_mode(true)
        .init(&d)
        .unwrap();
    let f = MaxPool2dConfig::new([3, 2])
        .with_dilation([2, 1])
        .with_ceil_mode(true)
        .init();
    assert_bits(m.forward(x4.clone()), f.forward(q4.clone()));

    let m = QuantMaxPool3dConfig::new([2, 3, 2])
        .with_strides([1, 2, 2])
        .init(&d)
        .unwrap();
    let f = MaxPool3dConfig::new([2, 3, 2])
        .with_strides([1, 2, 2])
        .init();
    assert_bits(m.forward(x5.clone()), f.forward(q5.clone()));

    // An explicit input descriptor: `QuantAvgPool1d`'s default is changed by another test.
    let m = QuantAvgPool1dConfig::new(2)
        .with_count_include_pad(false)
        .with_padding(PaddingConfig1d::Explicit(1, 0))
        .with_quant_desc_input(QUANT_DESC_8BIT_PER_TENSOR.clone())
        .init(&d)
        .unwrap();
    let f = AvgPool1dConfig::new(2)
        .with_count_include_pad(false)
        .with_padding(PaddingConfig1d::Explicit(1, 0))
        .init();
    assert_bits(m.forward(x3.clone()), f.forward(q3.clone()));

    let m = QuantAvgPool2dConfig::new([2, 3])
        .with_strides([1, 2])
        .init(&d)
        .unwrap();
    let f = AvgPool2dConfig::new([2, 3]).with_strides([1, 2]).init();
    assert_bits(m.forward(x4.clone()), f.forward(q4.clone()));

    let m = QuantAvgPool3dConfig::new([3, 2, 2])
        .with_padding(PaddingConfig3d::Explicit(1, 1, 0))
        .init(&d)
        .unwrap();
    let f = AvgPool3dConfig::new([3, 2, 2])
        .with_padding(PaddingConfig3d::Explicit(1, 1, 0))
        .init();
    assert_bits(m.forward(x5.clone()), f.forward(q5.clone()));

    let m = QuantAdaptiveAvgPool1dConfig::new(4).init(&d).unwrap();
    assert_bits(
        m.forward(x3),
        AdaptiveAvgPool1dConfig::new(4).init().forward(q3),
    );
    let m = QuantAdaptiveAvgPool2dConfig::new([3, 3]).init(&d).unwrap();
    assert_bits(
        m.forward(x4),
        AdaptiveAvgPool2dConfig::new([3, 3]).init().forward(q4),
    );
    let m = QuantAdaptiveAvgPool3dConfig::new([2, 3, 3])
        .init(&d)
        .unwrap();
    assert_bits(
        m.forward(x5),
        AdaptiveAvgPool3dConfig::new([2, 3, 3]).init().forward(q5),
    );
}

#[test]
fn pool_with_static_4bit_amax_clips() {
    let d = dev();
    let mut m = QuantMaxPool2dConfig::new([2, 2])
        .with_quant_desc_input(desc(4, None))
        .init(&d)
        .unwrap();
    m.input_quantizer_mut()
        .set_amax(&Amax::scalar(0.7))
        .unwrap();
    let x = rand(13, [1, 2, 4, 4], -2.0, 2.0, &d);
    let want = MaxPool2dConfig::new([2, 2]).init().forward(fq(
        x.clone(),
        tensor(vec![0.7], [1, 1, 1, 1], &d),
        4,
    ));
    let got = m.forward(x);
    assert!(values(got.clone()).iter().all(|v| v.abs() <= 0.7 + 1e-6));
    assert_bits(got, want);
}

// ---------------------------------------------------- 3-D pools vs definition

#[derive(Clone, Copy)]
enum Mode {
    Max,
    Avg { include_pad: bool },
}

/// PyTorch's output size (`pooling_output_shape`) with begin/end padding.
fn out_size(
    len: usize,
    k: usize,
    s: usize,
    (pb, pe): (usize, usize),
    dil: usize,
    ceil: bool,
) -> usize {
    let num = len + pb + pe - dil * (k - 1) - 1;
    let mut o = if ceil {
        num.div_ceil(s) + 1
    } else {
        num / s + 1
    };
    if ceil && (o - 1) * s >= len + pb {
        o -= 1;
    }
    o
}

/// Direct 3-D pooling with loops (PyTorch's CPU kernels' definition).
#[allow(clippy::too_many_arguments)]
fn naive_pool3d(
    x: &[f32],
    [n, c, dd, hh, ww]: [usize; 5],
    k: [usize; 3],
    s: [usize; 3],
    pads: [(usize, usize); 3],
    dil: [usize; 3],
    ceil: bool,
    mode: Mode,
) -> (Vec<f32>, [usize; 5]) {
    let size = [dd, hh, ww];
    let o: [usize; 3] =
        std::array::from_fn(|i| out_size(size[i], k[i], s[i], pads[i], dil[i], ceil));
    let mut out = Vec::new();
    for b in 0..n * c {
        let plane = &x[b * dd * hh * ww..(b + 1) * dd * hh * ww];
        for od in 0..o[0] {
            for oh in 0..o[1] {
                for ow in 0..o[2] {
                    let idx = [od, oh, ow];
                    // Per-dim window [start, end) in input coordinates (may be negative).
                    let start: [isize; 3] =
                        std::array::from_fn(|i| (idx[i] * s[i]) as isize - pads[i].0 as isize);
                    let value = match mode {
                        Mode::Max => {
                            let mut m = f32::NEG_INFINITY;
                            for i in 0..k[0] {
                                for j in 0..k[1] {
                                    for l in 0..k[2] {
                                        let p = [i, j, l];
                                        let pos: [isize; 3] = std::array::from_fn(|a| {
                                            start[a] + (p[a] * dil[a]) as isize
                                        });
                                        if (0..3)
                                            .all(|a| pos[a] >= 0 && (pos[a] as usize) < size[a])
                                        {
                                            let v = plane[(pos[0] as usize * hh + pos[1] as usize)
                                                * ww
                                                + pos[2] as usize];
                                            m = m.max(v);
                                        }
                                    }
                                }
                            }
                            m
                        }
                        Mode::Avg { include_pad } => {
                            let end: [isize; 3] = std::array::from_fn(|a| {
                                (start[a] + k[a] as isize).min((size[a] + pads[a].1) as isize)
                            });
                            let pool_size: isize = (0..3).map(|a| end[a] - start[a]).product();
                            let lo: [usize; 3] = std::array::from_fn(|a| start[a].max(0) as usize);
                            let hi: [usize; 3] =
                                std::array::from_fn(|a| (end[a].min(size[a] as isize)) as usize);
                            let mut sum = 0.0f64;
                            for i in lo[0]..hi[0] {
                                for j in lo[1]..hi[1] {
                                    for l in lo[2]..hi[2] {
                                        sum += plane[(i * hh + j) * ww + l] as f64;
                                    }
                                }
                            }
                            let valid: usize = (0..3).map(|a| hi[a] - lo[a]).product();
                            let divisor = if include_pad {
                                pool_size as f64
                            } else {
                                valid as f64
                            };
                            (sum / divisor) as f32
                        }
                    };
                    out.push(value);
                }
            }
        }
    }
    (out, [n, c, o[0], o[1], o[2]])
}

fn same_pairs(size: [usize; 3], k: [usize; 3], s: [usize; 3]) -> [(usize, usize); 3] {
    std::array::from_fn(|i| {
        let out = size[i].div_ceil(s[i]);
        let total = ((out - 1) * s[i] + k[i]).saturating_sub(size[i]);
        (total / 2, total - total / 2)
    })
}

/// (kernel, stride, padding, dilation, ceil mode)
type PoolCase = ([usize; 3], [usize; 3], PaddingConfig3d, [usize; 3], bool);

#[test]
fn float_3d_pools_keep_their_pytorch_names_in_print() {
    use burn::module::{DisplaySettings, ModuleDisplay};
    let avg = AvgPool3dConfig::new([2, 2, 2]).init();
    let max = FloatMaxPool3dConfig::new([2, 2, 2]).init();
    let shown = |m: &dyn Fn(DisplaySettings) -> String| m(DisplaySettings::default());
    assert!(shown(&|s| avg.format(s)).starts_with("AvgPool3d {"));
    assert!(shown(&|s| max.format(s)).starts_with("MaxPool3d {"));
}

#[test]
fn pool3d_equals_direct_definition() {
    let d = dev();
    let shape = [2, 3, 5, 6, 7];
    let data = Lcg(14).vec(shape.iter().product(), -2.0, 2.0);
    let x = tensor(data.clone(), shape, &d);
    let spatial = [5, 6, 7];
    let cases: Vec<PoolCase> = vec![
        (
            [2, 3, 2],
            [1, 2, 2],
            PaddingConfig3d::Explicit(1, 1, 0),
            [1, 1, 1],
            false,
        ),
        (
            [3, 3, 3],
            [2, 2, 2],
            PaddingConfig3d::Explicit(1, 1, 1),
            [1, 1, 1],
            true,
        ),
        (
            [2, 2, 3],
            [2, 1, 2],
            PaddingConfig3d::Same,
            [1, 1, 1],
            false,
        ),
        (
            [3, 2, 2],
            [3, 2, 2],
            PaddingConfig3d::Valid,
            [1, 1, 1],
            true,
        ),
        (
            [3, 3, 2],
            [2, 2, 1],
            PaddingConfig3d::Explicit(1, 1, 1),
            [2, 1, 2],
            true,
        ),
    ];
    for (k, s, padding, dil, ceil) in cases {
        let pads = match padding {
            PaddingConfig3d::Explicit(a, b, c) => [(a, a), (b, b), (c, c)],
            PaddingConfig3d::Same => same_pairs(spatial, k, s),
            PaddingConfig3d::Valid => [(0, 0); 3],
        };
        let label = format!("k={k:?} s={s:?} pads={pads:?} dil={dil:?} ceil={ceil}");
        let max = MaxPool3dConfig::new(k)
            .with_strides(s)
            .with_padding(padding.clone())
            .with_dilation(dil)
            .with_ceil_mode(ceil)
            .init();
        let (want, want_shape) = naive_pool3d(&data, shape, k, s, pads, dil, ceil, Mode::Max);
        let got = max.forward(x.clone());
        assert_eq!(got.dims(), want_shape, "max {label}");
        assert_eq!(bits(&values(got)), bits(&want), "max {label}");
        if dil != [1, 1, 1] {
            continue; // average pooling has no dilation
        }
        for include_pad in [true, false] {
            let avg = AvgPool3dConfig::new(k)
                .with_strides(s)
                .with_padding(padding.clone())
                .with_count_include_pad(include_pad)
                .with_ceil_mode(ceil)
                .init();
            let (want, want_shape) = naive_pool3d(
                &data,
                shape,
                k,
                s,
                pads,
                dil,
                ceil,
                Mode::Avg { include_pad },
            );
            let got = avg.forward(x.clone());
            assert_eq!(
                got.dims(),
                want_shape,
                "avg {label} include_pad={include_pad}"
            );
            for (g, w) in values(got).iter().zip(&want) {
                // Summation order differs from the direct sum: a few ulps.
                assert!(
                    (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                    "avg {label} include_pad={include_pad}: {g} vs {w}"
                );
            }
        }
    }
}

// -------------------------------------------------------------- gradients

#[test]
fn conv2d_gradients_are_straight_through_and_masked() {
    let ad = dev().autodiff();
    let mut m = QuantConv2dConfig::new([2, 3], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_quant_desc_weight(desc(8, None))
        .init(&ad)
        .unwrap();
    m._input_quantizer.set_amax(&Amax::scalar(1.0)).unwrap();
    m._weight_quantizer.set_amax(&Amax::scalar(0.2)).unwrap();
    let x = rand(15, [2, 2, 5, 5], -2.0, 2.0, &ad).require_grad();
    let g = m.forward(x.clone()).sum().backward();
    let gx = values(x.grad(&g).unwrap());
    let gw = values(m.weight.grad(&g).unwrap());
    let gb = values(m.bias.as_ref().unwrap().grad(&g).unwrap());

    // Reference: the float op on leaves holding the quantized values.
    // (`detach` keeps `require_grad`, so fresh tensors are built from the data.)
    let leaf = |t: Tensor<4>| Tensor::<4>::from_data(t.into_data(), &ad).require_grad();
    let xq = leaf(fq(x.clone(), tensor(vec![1.0], [1; 4], &ad), 8));
    let wq = leaf(fq(m.weight.val(), tensor(vec![0.2], [1; 4], &ad), 8));
    let b = Tensor::<1>::from_data(m.bias.as_ref().unwrap().val().into_data(), &ad).require_grad();
    let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let gr = conv2d(xq.clone(), wq.clone(), Some(b.clone()), opts)
        .sum()
        .backward();
    let mask = |v: &[f32], amax: f32| {
        v.iter()
            .map(|x| if x.abs() <= amax { 1.0 } else { 0.0 })
            .collect::<Vec<f32>>()
    };
    let masked =
        |g: Vec<f32>, m: Vec<f32>| g.iter().zip(&m).map(|(g, m)| g * m).collect::<Vec<f32>>();
    let xv = values(x.detach());
    let wv = values(m.weight.val().detach());
    assert_eq!(gx, masked(values(xq.grad(&gr).unwrap()), mask(&xv, 1.0)));
    assert_eq!(gw, masked(values(wq.grad(&gr).unwrap()), mask(&wv, 0.2)));
    assert_eq!(gb, values(b.grad(&gr).unwrap()));
    // Both regions occur: clipped entries get zero, the others a gradient.
    assert!(xv.iter().zip(&gx).any(|(x, g)| x.abs() > 1.0 && *g == 0.0));
    assert!(xv.iter().zip(&gx).any(|(x, g)| x.abs() <= 1.0 && *g != 0.0));
    assert!(wv.iter().zip(&gw).any(|(w, g)| w.abs() > 0.2 && *g == 0.0));
    assert!(wv.iter().zip(&gw).any(|(w, g)| w.abs() <= 0.2 && *g != 0.0));
}

#[test]
fn linear_and_pool_gradients_reach_input_weight_and_bias() {
    let ad = dev().autodiff();
    let mut fc = QuantLinearConfig::new(4, 3).init(&ad).unwrap();
    fc._input_quantizer.set_amax(&Amax::scalar(0.5)).unwrap();
    let pool = QuantAvgPool2dConfig::new([2, 2]).init(&ad).unwrap();
    let x = tensor(
        vec![0.1, -0.4, 0.9, 0.3, -0.7, 0.2, 0.05, -0.5],
        [2, 4],
        &ad,
    )
    .require_grad();
    let g = fc.forward(x.clone()).sum().backward();
    let gx = values(x.grad(&g).unwrap());
    // Clipped inputs (|x| > 0.5) get no gradient; the others sum a weight column
    // of the quantized weight.
    let w = values(fc.weight.val().detach());
    let wq_t = fq(
        fc.weight.val().detach(),
        axis_amax(&fc.weight.val().detach(), 0),
        8,
    );
    let col_sums = values(wq_t.sum_dim(0));
    for (i, x) in [0.1f32, -0.4, 0.9, 0.3, -0.7, 0.2, 0.05, -0.5]
        .iter()
        .enumerate()
    {
        let want = if x.abs() <= 0.5 { col_sums[i % 4] } else { 0.0 };
        assert_eq!(gx[i], want, "x[{i}] = {x}");
    }
    assert_eq!(
        values(fc.bias.as_ref().unwrap().grad(&g).unwrap()),
        vec![2.0; 3]
    );
    assert!(
        values(fc.weight.grad(&g).unwrap())
            .iter()
            .any(|v| *v != 0.0)
    );
    assert_eq!(w.len(), 12);

    // A float layer quantized on an autodiff device stays trainable.
    let fc = QuantLinear::from_float(LinearConfig::new(4, 3).init(&ad), None, None).unwrap();
    let g = fc
        .forward(rand(17, [2, 4], -1.0, 1.0, &ad))
        .sum()
        .backward();
    assert_eq!(fc.weight.grad(&g).unwrap().dims(), [3, 4]);
    assert!(fc.bias.as_ref().unwrap().grad(&g).is_some());

    let y = rand(16, [1, 1, 4, 4], -1.0, 1.0, &ad).require_grad();
    let g = pool.forward(y.clone()).sum().backward();
    assert_eq!(values(y.grad(&g).unwrap()), vec![0.25; 16]);
}

// ------------------------------------------------ defaults and validation

#[test]
fn default_descriptors_are_per_class() {
    let d = dev();
    // Classes no other test initializes with default descriptors.
    let custom = QuantDescriptor::builder()
        .num_bits(4)
        .name("conv_t3d_w")
        .build()
        .unwrap();
    assert_eq!(
        QuantConvTranspose3d::default_quant_desc_weight(),
        *QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL
    );
    QuantConvTranspose3d::set_default_quant_desc_weight(custom.clone());
    assert_eq!(QuantConvTranspose3d::default_quant_desc_weight(), custom);
    assert_eq!(
        QuantConvTranspose2d::default_quant_desc_weight().axis(),
        Some(&[0][..])
    );
    assert_eq!(
        QuantConv3d::default_quant_desc_weight(),
        QuantConv2d::default_quant_desc_weight()
    );
    let m = QuantConvTranspose3dConfig::new([2, 2], [1, 1, 1])
        .init(&d)
        .unwrap();
    assert_eq!(m.weight_quantizer().config().num_bits, NumBits::Int(4));
    assert_eq!(m.weight_quantizer().config().axis, None);
    // An explicit descriptor wins over the class default.
    let m = QuantConvTranspose3dConfig::new([2, 2], [1, 1, 1])
        .with_quant_desc_weight(desc(8, Some(0)))
        .init(&d)
        .unwrap();
    assert_eq!(m.weight_quantizer().config().num_bits, NumBits::Int(8));
    QuantConvTranspose3d::weight_default().reset();
    assert_eq!(
        QuantConvTranspose3d::default_quant_desc_weight(),
        *QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL
    );

    let unsigned = QuantDescriptor::builder().unsigned(true).build().unwrap();
    QuantAvgPool1d::set_default_quant_desc_input(unsigned.clone());
    assert!(
        QuantAvgPool1dConfig::new(2)
            .init(&d)
            .unwrap()
            .input_quantizer()
            .config()
            .unsigned
    );
    assert!(!QuantAvgPool2d::default_quant_desc_input().unsigned());
    assert!(!QuantMaxPool1d::default_quant_desc_input().unsigned());
    QuantAvgPool1d::input_default().reset();
    assert_eq!(
        QuantAvgPool1d::default_quant_desc_input(),
        *QUANT_DESC_8BIT_PER_TENSOR
    );
    assert_eq!(
        pop_quant_desc_in_kwargs::<QuantConv2d>(None, Some(unsigned.clone())),
        (QUANT_DESC_8BIT_PER_TENSOR.clone(), unsigned)
    );
    assert_eq!(
        QuantConv2d::default_quant_desc_weight(),
        *QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL
    );
}

#[test]
fn real_quantization_is_rejected() {
    let d = dev();
    let real = QuantDescriptor::builder()
        .fake_quant(false)
        .name("real")
        .build()
        .unwrap();
    let errs = [
        QuantConv2dConfig::new([2, 2], [1, 1])
            .with_quant_desc_weight(real.clone())
            .init(&d)
            .err(),
        QuantConvTranspose1dConfig::new([2, 2], 1)
            .with_quant_desc_input(real.clone())
            .init(&d)
            .err(),
        QuantLinearConfig::new(2, 2)
            .with_quant_desc_input(real.clone())
            .init(&d)
            .err(),
        QuantMaxPool2dConfig::new([2, 2])
            .with_quant_desc_input(real.clone())
            .init(&d)
            .err(),
        QuantLinear::from_float(LinearConfig::new(2, 2).init(&d), None, real.clone()).err(),
    ];
    for err in errs {
        let err = err.expect("real quantization must be rejected");
        assert!(matches!(err, Error::Descriptor { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("Only fake quantization is supported"),
            "{err}"
        );
        assert!(err.to_string().contains("`real`"), "{err}");
    }
}

#[test]
fn bad_axis_and_forward_errors() {
    let d = dev();
    let err = QuantLinearConfig::new(2, 2)
        .with_quant_desc_weight(desc(8, Some(2)))
        .init(&d)
        .unwrap_err();
    assert!(
        matches!(err, Error::AxisOutOfRange { axis: 2, rank: 2 }),
        "{err}"
    );
    // Negative axes count from the end: -1 of a conv weight is the kernel's last dim.
    let m = QuantConv2dConfig::new([2, 2], [1, 3])
        .with_quant_desc_weight(desc(8, Some(-1)))
        .init(&d)
        .unwrap();
    assert_eq!(m._weight_quantizer._amax.dims(), [3]);
    // An unsigned input quantizer fed negative values: try_forward reports it,
    // forward passes the input through and records the error.
    let m = QuantLinearConfig::new(2, 1)
        .with_quant_desc_input(QuantDescriptor::builder().unsigned(true).build().unwrap())
        .init(&d)
        .unwrap();
    let x = tensor(vec![0.5, -0.5], [1, 2], &d);
    assert!(matches!(
        m.try_forward(x.clone()),
        Err(Error::NegativeInputUnsigned { .. })
    ));
    let w = m.weight.val();
    let want = linear(
        x.clone(),
        fq(w.clone(), axis_amax(&w, 0), 8).transpose(),
        bias_of(&m.bias),
    );
    assert_bits(m.forward(x), want);
    assert!(matches!(
        m.input_quantizer().handle.take_error(),
        Some(Error::NegativeInputUnsigned { .. })
    ));
}

// ------------------------------------------------- from_float and records

#[test]
fn from_float_keeps_weights_and_matches_burn_when_disabled() {
    let d = dev();
    let float = Conv2dConfig::new([3, 4], [3, 2])
        .with_stride([2, 1])
        .with_padding(PaddingConfig2d::Same)
        .init(&d);
    let x = rand(17, [1, 3, 6, 5], -1.0, 1.0, &d);
    let want = float.forward(x.clone());
    let id = float.weight.id;
    let w = values(float.weight.val());
    let q = QuantConv2d::from_float(float, None, None).unwrap();
    assert_eq!(q.weight.id, id);
    assert_eq!(values(q.weight.val()), w);
    q.input_quantizer().disable();
    q.weight_quantizer().disable();
    assert_bits(q.forward(x.clone()), want);
    q.input_quantizer().enable();
    q.weight_quantizer().enable();
    let wt = q.weight.val();
    let quantized = conv2d(
        fq(x.clone(), tensor_amax(&x), 8),
        fq(wt.clone(), axis_amax(&wt, 0), 8),
        bias_of(&q.bias),
        // Same on [6, 5] with kernel [3, 2], stride [2, 1]: (0, 1) on both dims.
        ConvOptions::new_with_padding([2, 1], [(0, 1), (0, 1)], [1, 1], 1),
    );
    assert_bits(q.forward(x), quantized);

    // Transposed convolution: a move, options included.
    let float = ConvTranspose2dConfig::new([2, 3], [2, 2])
        .with_stride([2, 2])
        .init(&d);
    let x = rand(18, [1, 2, 3, 3], -1.0, 1.0, &d);
    let want = float.forward(x.clone());
    let q = QuantConvTranspose2d::from_float(float, None, None).unwrap();
    assert_eq!(q.stride, [2, 2]);
    q.input_quantizer().disable();
    q.weight_quantizer().disable();
    assert_bits(q.forward(x), want);

    // Linear: burn's [d_input, d_output] weight becomes [d_output, d_input].
    let float = LinearConfig::new(5, 3).init(&d);
    let x = rand(19, [4, 5], -1.0, 1.0, &d);
    let want = float.forward(x.clone());
    let w = float.weight.val();
    let q = QuantLinear::from_float(float, None, None).unwrap();
    assert_eq!(values(q.weight.val()), values(w.transpose()));
    q.input_quantizer().disable();
    q.weight_quantizer().disable();
    assert_bits(q.forward(x), want);
}

#[derive(Module, Debug)]
struct Net {
    conv1: QuantConv2d,
    pool: QuantMaxPool2d,
    fc: QuantLinear,
}

fn net(device: &Device) -> Net {
    Net {
        conv1: QuantConv2dConfig::new([2, 4], [3, 3]).init(device).unwrap(),
        pool: QuantMaxPool2dConfig::new([2, 2]).init(device).unwrap(),
        fc: QuantLinearConfig::new(4, 2).init(device).unwrap(),
    }
}

#[test]
fn calibrated_record_round_trip_with_reference_names() {
    let d = dev();
    let mut model = net(&d);
    let names: Vec<String> = named_quantizers(&model)
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(
        names,
        [
            "conv1._input_quantizer",
            "conv1._weight_quantizer",
            "pool._input_quantizer",
            "fc._input_quantizer",
            "fc._weight_quantizer"
        ]
    );
    // Calibrate conv1 with max calibration on full-precision data.
    let x = rand(20, [2, 2, 6, 6], -3.0, 3.0, &d);
    for q in [
        &model.conv1._input_quantizer,
        &model.conv1._weight_quantizer,
    ] {
        q.disable_quant();
        q.enable_calib();
    }
    let _ = model.conv1.forward(x.clone());
    for q in [
        &mut model.conv1._input_quantizer,
        &mut model.conv1._weight_quantizer,
    ] {
        q.load_calib_amax().unwrap();
        q.disable_calib();
        q.enable_quant();
    }
    let w = model.conv1.weight.val();
    assert_eq!(
        model.conv1._input_quantizer.amax(),
        Some(values(tensor_amax(&x)))
    );
    assert_eq!(
        model.conv1._weight_quantizer.amax(),
        Some(values(axis_amax(&w, 0)))
    );
    let want = model.conv1.forward(x.clone());

    let fresh = net(&d).load_record(model.clone().into_record());
    assert_eq!(
        fresh.conv1._input_quantizer.amax(),
        model.conv1._input_quantizer.amax()
    );
    assert_eq!(
        fresh.conv1._weight_quantizer.amax(),
        model.conv1._weight_quantizer.amax()
    );
    assert_eq!(fresh.fc._weight_quantizer.amax(), None);
    assert_bits(fresh.conv1.forward(x), want);
}

#[test]
fn configs_serialize_with_descriptors() {
    use burn::config::Config;
    let cfg = QuantConv2dConfig::new([3, 8], [3, 3])
        .with_stride([2, 2])
        .with_quant_desc_weight(desc(4, Some(0)));
    let json = serde_json::to_string(&cfg).unwrap();
    let back: QuantConv2dConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back.layer.stride, [2, 2]);
    assert_eq!(back.quant_desc_weight, Some(desc(4, Some(0))));
    assert_eq!(back.quant_desc_input, None);
    // The configs are burn `Config`s (save/load as JSON files).
    fn is_config<C: Config>(_: &C) {}
    is_config(&QuantLinearConfig::new(2, 3));
    is_config(&QuantAdaptiveAvgPool2dConfig::new([3, 3]));
}
