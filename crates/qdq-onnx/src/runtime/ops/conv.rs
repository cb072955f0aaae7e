//! Convolutions: Conv (1/2/3-D, groups, dilations, explicit or auto pads) and
//! ConvTranspose (output_padding, output_shape). Shapes are validated first because
//! burn panics on mismatched weights.

use burn::tensor::Float;
use burn::tensor::module::{
    conv_transpose1d, conv_transpose2d, conv_transpose3d, conv1d, conv2d, conv3d,
};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

use super::super::error::{RunError, RunResult, checked_numel, op_err};
use super::super::value::{DynTensor, Value, arr};
use super::Ctx;
use super::conv_host::{Geometry2d, conv2d_host};
use super::elementwise::{Bin, binary};
use super::shape::{cat, crop, narrow, padded_len};

/// Zero-pads (or crops, for negative amounts) `axis` by `b` before and `e` after.
pub(crate) fn pad_axis(
    t: DynTensor<Float>,
    axis: usize,
    b: i64,
    e: i64,
) -> RunResult<DynTensor<Float>> {
    let mut t = t;
    let mut grown = t.shape.clone();
    grown[axis] = padded_len(grown[axis], b, e)?;
    checked_numel("", "", &grown)?;
    let d = t.shape[axis];
    let (cb, ce) = (crop(b), crop(e));
    if cb > 0 || ce > 0 {
        t = narrow(t, axis, cb.min(d), d.saturating_sub(cb).saturating_sub(ce))?;
    }
    let dev = t.device();
    let mut parts = Vec::new();
    let zeros = |n: i64, like: &DynTensor<Float>| -> RunResult<DynTensor<Float>> {
        let mut s = like.shape.clone();
        s[axis] = n as usize;
        let len = checked_numel("", "", &s)?;
        match Value::try_from_f32(vec![0.0; len], &s, &dev)? {
            Value::Float(z) => Ok(z),
            _ => Err(op_err("internal")),
        }
    };
    if b > 0 {
        parts.push(zeros(b, &t)?);
    }
    let pe = if e > 0 { Some(zeros(e, &t)?) } else { None };
    parts.push(t);
    parts.extend(pe);
    if parts.len() == 1 {
        return Ok(parts.pop().unwrap_or_else(|| unreachable!()));
    }
    cat(parts, axis, &dev)
}

struct Geo {
    strides: Vec<usize>,
    dil: Vec<usize>,
    kernel: Vec<usize>,
    pads: Vec<(i64, i64)>,
}

/// Strides, dilations and begin/end pads of a window op.
pub(crate) type Geometry = (Vec<usize>, Vec<usize>, Vec<(i64, i64)>);

/// Stride, dilation, kernel and begin/end pads of a Conv/pool node over `spatial` dims.
pub(crate) fn geometry(
    ctx: &Ctx,
    spatial: &[usize],
    kernel: Vec<usize>,
    ceil_mode: bool,
) -> RunResult<Geometry> {
    let n = spatial.len();
    let ints = |name: &str, d: usize| -> RunResult<Vec<usize>> {
        match ctx.ints_attr(name) {
            Some(v) if !v.is_empty() => {
                if v.len() != n || v.iter().any(|&x| x < 1) {
                    return Err(op_err(format!("{name} {v:?} invalid for {n} spatial dims")));
                }
                Ok(v.into_iter().map(|x| x as usize).collect())
            }
            _ => Ok(vec![d; n]),
        }
    };
    let strides = ints("strides", 1)?;
    let dil = ints("dilations", 1)?;
    let auto = ctx.string_attr("auto_pad", "NOTSET");
    let pads: Vec<(i64, i64)> = match auto.as_str() {
        "SAME_UPPER" | "SAME_LOWER" => (0..n)
            .map(|i| {
                let out = spatial[i].div_ceil(strides[i]);
                let total = out
                    .saturating_sub(1)
                    .checked_mul(strides[i])
                    .zip(effective(kernel[i], dil[i]).ok())
                    .and_then(|(a, b)| a.checked_add(b))
                    .map(|t| t.saturating_sub(spatial[i]))
                    .and_then(|t| i64::try_from(t).ok())
                    .ok_or_else(|| {
                        op_err(format!(
                            "strides {strides:?}, dilations {dil:?} and kernel {kernel:?} overflow"
                        ))
                    })?;
                let small = total / 2;
                Ok(if auto == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                })
            })
            .collect::<RunResult<_>>()?,
        "VALID" => vec![(0, 0); n],
        "NOTSET" | "" => match ctx.ints_attr("pads") {
            Some(p) if !p.is_empty() => {
                if p.len() != 2 * n || p.iter().any(|&x| x < 0) {
                    return Err(op_err(format!("pads {p:?} invalid for {n} spatial dims")));
                }
                (0..n).map(|i| (p[i], p[i + n])).collect()
            }
            _ => vec![(0, 0); n],
        },
        o => return Err(op_err(format!("unknown auto_pad `{o}`"))),
    };
    let _ = ceil_mode;
    Ok((strides, dil, pads))
}

/// Span of a kernel of `k` taps with dilation `dil`: `(k - 1) * dil + 1`, checked.
pub(crate) fn effective(k: usize, dil: usize) -> RunResult<usize> {
    k.checked_sub(1)
        .and_then(|k| k.checked_mul(dil))
        .and_then(|k| k.checked_add(1))
        .ok_or_else(|| op_err(format!("kernel size {k} with dilation {dil} is invalid")))
}

/// Output length of each spatial axis of a window op (floor, or ceil with
/// `ceil_mode`), every step checked: pads, kernels and dilations come from the file.
pub(crate) fn window_out(
    spatial: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dil: &[usize],
    pads: &[(i64, i64)],
    ceil_mode: bool,
) -> RunResult<Vec<usize>> {
    (0..spatial.len())
        .map(|i| {
            let eff = effective(kernel[i], dil[i])?;
            let padded = padded_len(spatial[i], pads[i].0, pads[i].1)?;
            if padded < eff {
                return Err(op_err(format!(
                    "kernel {kernel:?} (dilations {dil:?}) larger than padded input {spatial:?}"
                )));
            }
            let span = padded - eff;
            let steps = if ceil_mode {
                span.div_ceil(strides[i])
            } else {
                span / strides[i]
            };
            Ok(steps + 1)
        })
        .collect()
}

/// Refuses a window op (a convolution or a pool) whose padded input, output or work
/// (every output element times its window) would exceed the size limit: burn's
/// kernels allocate buffers of those sizes (a MaxPool with a 2^31 window asked for
/// 32 GiB: found by the `runtime_graph` fuzz target).
pub(crate) fn check_window_sizes(
    x: &[usize],
    channels_out: usize,
    kernel: &[usize],
    strides: &[usize],
    dil: &[usize],
    pads: &[(i64, i64)],
    ceil_mode: bool,
) -> RunResult<()> {
    let spatial = &x[2..];
    let mut padded = x.to_vec();
    for (i, p) in padded[2..].iter_mut().enumerate() {
        *p = padded_len(spatial[i], pads[i].0, pads[i].1)?;
    }
    checked_numel("", "", &padded)?;
    let mut out = vec![x[0], channels_out];
    out.extend(window_out(spatial, kernel, strides, dil, pads, ceil_mode)?);
    checked_numel("", "", &out)?;
    out.extend(kernel);
    checked_numel("", "", &out)?;
    Ok(())
}

/// What Conv and ConvTranspose read: input and weight of one rank (3-D to 5-D), the
/// optional bias, and `group` (at least 1).
type ConvInputs = (
    DynTensor<Float>,
    DynTensor<Float>,
    Option<DynTensor<Float>>,
    usize,
);

/// Reads [`ConvInputs`] for `op`, refusing ranks the kernels do not run.
fn conv_inputs(ctx: &Ctx, op: &str) -> RunResult<ConvInputs> {
    let x = ctx.float(0)?;
    let w = ctx.float(1)?;
    let bias = ctx.opt(2).map(super::as_float).transpose()?;
    let r = x.rank();
    if !(3..=5).contains(&r) || w.rank() != r {
        return Err(op_err(format!(
            "{op} needs 3-D to 5-D input and weight of the same rank, got {:?} and {:?}",
            x.shape, w.shape
        )));
    }
    let group = usize::try_from(ctx.int_attr("group", 1).max(1)).unwrap_or(usize::MAX);
    // More groups than input channels is no grouping ONNX defines; burn loops once per
    // group, so 2^31 groups over an empty input ran for minutes (found by the
    // `runtime_graph` fuzz target).
    if group > x.shape[1].max(1) {
        return Err(op_err(format!(
            "{op} with group {group} over {} input channels",
            x.shape[1]
        )));
    }
    Ok((x, w, bias, group))
}

fn group_mismatch(w: &[usize], x: &[usize], group: usize) -> RunError {
    op_err(format!(
        "weight {w:?} with group {group} does not match input {x:?}"
    ))
}

/// A bias must be `[m]`, one value per output channel.
fn check_bias(bias: Option<&DynTensor<Float>>, m: usize) -> RunResult<()> {
    match bias {
        Some(b) if b.shape != [m] => Err(op_err(format!("bias {:?} should be [{m}]", b.shape))),
        _ => Ok(()),
    }
}

pub(crate) fn conv(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let (x, w, bias, group) = conv_inputs(ctx, "Conv")?;
    let r = x.rank();
    let (c, m) = (x.shape[1], w.shape[0]);
    if w.shape[1].checked_mul(group) != Some(c) || m % group != 0 {
        return Err(group_mismatch(&w.shape, &x.shape, group));
    }
    check_bias(bias.as_ref(), m)?;
    let spatial = x.shape[2..].to_vec();
    let kernel = w.shape[2..].to_vec();
    if let Some(k) = ctx.ints_attr("kernel_shape").filter(|k| !k.is_empty())
        && k.iter().map(|&v| v as usize).collect::<Vec<_>>() != kernel
    {
        return Err(op_err(format!(
            "kernel_shape {k:?} differs from weight {kernel:?}"
        )));
    }
    let (strides, dil, pads) = geometry(ctx, &spatial, kernel.clone(), false)?;
    let g = Geo {
        strides,
        dil,
        kernel,
        pads,
    };
    check_window_sizes(&x.shape, m, &g.kernel, &g.strides, &g.dil, &g.pads, false)?;
    let b1 = |b: Option<DynTensor<Float>>| b.map(|b| b.to_rank::<1>()).transpose();
    let pairs = |n: usize| -> Vec<(usize, usize)> {
        (0..n)
            .map(|i| (g.pads[i].0 as usize, g.pads[i].1 as usize))
            .collect()
    };
    let out = match r {
        3 => {
            let p = pairs(1);
            let o = ConvOptions::new_with_padding(
                arr::<1>(&g.strides),
                [p[0]],
                arr::<1>(&g.dil),
                group,
            );
            DynTensor::from_tensor(conv1d(x.to_rank::<3>()?, w.to_rank::<3>()?, b1(bias)?, o))
        }
        4 => {
            let p = pairs(2);
            let geo = Geometry2d {
                strides: [g.strides[0], g.strides[1]],
                dil: [g.dil[0], g.dil[1]],
                pads: [p[0], p[1]],
                group,
            };
            let out = window_out(&spatial, &g.kernel, &g.strides, &g.dil, &g.pads, false)?;
            if let Some(y) = conv2d_host(&x, &w, bias.as_ref(), &geo, [out[0], out[1]])? {
                return Ok(vec![Value::Float(y)]);
            }
            let o = ConvOptions::new_with_padding(
                arr::<2>(&g.strides),
                [p[0], p[1]],
                arr::<2>(&g.dil),
                group,
            );
            DynTensor::from_tensor(conv2d(x.to_rank::<4>()?, w.to_rank::<4>()?, b1(bias)?, o))
        }
        _ => {
            // conv3d needs symmetric padding: pre-pad the input explicitly when asymmetric
            let mut x = x;
            let mut sym = [0usize; 3];
            for (i, s) in sym.iter_mut().enumerate() {
                let (pb, pe) = g.pads[i];
                if pb == pe {
                    *s = pb as usize;
                } else {
                    x = pad_axis(x, 2 + i, pb, pe)?;
                }
            }
            let o = ConvOptions::new(arr::<3>(&g.strides), sym, arr::<3>(&g.dil), group);
            DynTensor::from_tensor(conv3d(x.to_rank::<5>()?, w.to_rank::<5>()?, b1(bias)?, o))
        }
    };
    Ok(vec![Value::Float(out)])
}

pub(crate) fn conv_transpose(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let (x, w, bias, group) = conv_inputs(ctx, "ConvTranspose")?;
    let r = x.rank();
    let c = x.shape[1];
    let m = w.shape[1].checked_mul(group);
    let Some(m) = m.filter(|_| w.shape[0] == c && c % group == 0) else {
        return Err(group_mismatch(&w.shape, &x.shape, group));
    };
    check_bias(bias.as_ref(), m)?;
    let n = r - 2;
    let spatial = x.shape[2..].to_vec();
    let kernel = w.shape[2..].to_vec();
    if spatial.contains(&0) || kernel.contains(&0) {
        // burn's output size is `(in - 1) * stride + ...` in usize: an underflow (a
        // panic; found by the `runtime_graph` fuzz target). ONNX gives no meaning to it.
        return Err(op_err(format!(
            "ConvTranspose of an empty spatial axis or kernel: input {:?}, weight {:?}",
            x.shape, w.shape
        )));
    }
    let list = |name: &str, d: i64| -> Vec<i64> {
        match ctx.ints_attr(name) {
            Some(v) if v.len() == n => v,
            _ => vec![d; n],
        }
    };
    let strides: Vec<usize> = list("strides", 1)
        .iter()
        .map(|&v| v.max(1) as usize)
        .collect();
    let dil: Vec<usize> = list("dilations", 1)
        .iter()
        .map(|&v| v.max(1) as usize)
        .collect();
    let out_pad = list("output_padding", 0);
    let auto = ctx.string_attr("auto_pad", "NOTSET");
    // Full output length per axis: stride * (in - 1) + (k - 1) * dil + 1, checked.
    let overflow = || op_err("strides, dilations or kernel overflow the output size");
    let full: Vec<i64> = (0..n)
        .map(|i| {
            spatial[i]
                .saturating_sub(1)
                .checked_mul(strides[i])
                .zip(effective(kernel[i], dil[i]).ok())
                .and_then(|(a, b)| a.checked_add(b))
                .and_then(|f| i64::try_from(f).ok())
                .ok_or_else(overflow)
        })
        .collect::<RunResult<_>>()?;
    let mut full_shape = vec![x.shape[0], m];
    full_shape.extend(full.iter().map(|&f| f as usize));
    checked_numel("", "", &full_shape)?;
    let out_shape: Option<Vec<i64>> = ctx
        .ints_attr("output_shape")
        .filter(|v| v.len() >= n)
        .map(|v| v[v.len() - n..].to_vec())
        .or_else(|| {
            (auto == "SAME_UPPER" || auto == "SAME_LOWER").then(|| {
                (0..n)
                    .map(|i| spatial[i].saturating_mul(strides[i]) as i64)
                    .collect()
            })
        });
    let pads: Vec<(i64, i64)> = match out_shape {
        Some(os) => (0..n)
            .map(|i| {
                let total = full[i].saturating_add(out_pad[i]).saturating_sub(os[i]);
                // floor division, as the ONNX reference (negative totals extend the end)
                let half = total.div_euclid(2);
                if auto == "SAME_UPPER" {
                    (half, total - half)
                } else {
                    (total - half, half)
                }
            })
            .collect(),
        None => match ctx.ints_attr("pads") {
            Some(p) if p.len() == 2 * n => (0..n).map(|i| (p[i], p[i + n])).collect(),
            _ => vec![(0, 0); n],
        },
    };
    let y = match r {
        3 => DynTensor::from_tensor(conv_transpose1d(
            x.to_rank::<3>()?,
            w.to_rank::<3>()?,
            None,
            ConvTransposeOptions::new(arr::<1>(&strides), [0], [0], arr::<1>(&dil), group),
        )),
        4 => DynTensor::from_tensor(conv_transpose2d(
            x.to_rank::<4>()?,
            w.to_rank::<4>()?,
            None,
            ConvTransposeOptions::new(arr::<2>(&strides), [0; 2], [0; 2], arr::<2>(&dil), group),
        )),
        _ => DynTensor::from_tensor(conv_transpose3d(
            x.to_rank::<5>()?,
            w.to_rank::<5>()?,
            None,
            ConvTransposeOptions::new(arr::<3>(&strides), [0; 3], [0; 3], arr::<3>(&dil), group),
        )),
    };
    // crop the pads and append output_padding (zeros before the bias)
    let mut y = y;
    for i in 0..n {
        let (pb, pe) = pads[i];
        y = pad_axis(y, 2 + i, pb.saturating_neg(), out_pad[i].saturating_sub(pe))?;
    }
    let mut out = Value::Float(y);
    if let Some(b) = bias {
        let mut s = vec![1; r];
        s[1] = m;
        out = binary(out, Value::Float(b.reshape(&s)?), Bin::Add)?;
    }
    Ok(vec![out])
}
