//! Convolutions: Conv (1/2/3-D, groups, dilations, explicit or auto pads) and
//! ConvTranspose (output_padding, output_shape). Shapes are validated first because
//! burn panics on mismatched weights.

use burn::tensor::Float;
use burn::tensor::module::{
    conv_transpose1d, conv_transpose2d, conv_transpose3d, conv1d, conv2d, conv3d,
};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

use super::super::error::{RunResult, op_err};
use super::super::value::{DynTensor, Value, arr};
use super::Ctx;
use super::elementwise::{Bin, binary};
use super::shape::{cat, narrow};

/// Zero-pads (or crops, for negative amounts) `axis` by `b` before and `e` after.
pub(crate) fn pad_axis(
    t: DynTensor<Float>,
    axis: usize,
    b: i64,
    e: i64,
) -> RunResult<DynTensor<Float>> {
    let mut t = t;
    let d = t.shape[axis] as i64;
    let (cb, ce) = ((-b).max(0), (-e).max(0));
    if cb + ce > 0 {
        t = narrow(t, axis, cb as usize, (d - cb - ce).max(0) as usize)?;
    }
    let dev = t.device();
    let mut parts = Vec::new();
    let zeros = |n: i64, like: &DynTensor<Float>| -> RunResult<DynTensor<Float>> {
        let mut s = like.shape.clone();
        s[axis] = n as usize;
        let len = s.iter().product();
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
        match ctx.ints(name) {
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
    let auto = ctx.s("auto_pad", "NOTSET");
    let pads: Vec<(i64, i64)> = match auto.as_str() {
        "SAME_UPPER" | "SAME_LOWER" => (0..n)
            .map(|i| {
                let out = spatial[i].div_ceil(strides[i]);
                let total = ((out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1)
                    .saturating_sub(spatial[i]) as i64;
                let small = total / 2;
                if auto == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                }
            })
            .collect(),
        "VALID" => vec![(0, 0); n],
        "NOTSET" | "" => match ctx.ints("pads") {
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

fn check_out(spatial: &[usize], g: &Geo) -> RunResult<()> {
    for i in 0..spatial.len() {
        let eff = (g.kernel[i] - 1) * g.dil[i] + 1;
        let padded = spatial[i] as i64 + g.pads[i].0 + g.pads[i].1;
        if padded < eff as i64 {
            return Err(op_err(format!(
                "kernel {:?} (dilations {:?}) larger than padded input {spatial:?}",
                g.kernel, g.dil
            )));
        }
    }
    Ok(())
}

pub(crate) fn conv(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = ctx.float(0)?;
    let w = ctx.float(1)?;
    let bias = ctx.opt(2).map(super::as_float);
    let r = x.rank();
    if !(3..=5).contains(&r) || w.rank() != r {
        return Err(op_err(format!(
            "Conv needs 3-D to 5-D input and weight of the same rank, got {:?} and {:?}",
            x.shape, w.shape
        )));
    }
    let group = ctx.i("group", 1).max(1) as usize;
    let (c, m) = (x.shape[1], w.shape[0]);
    if w.shape[1] * group != c || m % group != 0 {
        return Err(op_err(format!(
            "weight {:?} with group {group} does not match input {:?}",
            w.shape, x.shape
        )));
    }
    if let Some(b) = &bias
        && b.shape != [m]
    {
        return Err(op_err(format!("bias {:?} should be [{m}]", b.shape)));
    }
    let spatial = x.shape[2..].to_vec();
    let kernel = w.shape[2..].to_vec();
    if let Some(k) = ctx.ints("kernel_shape").filter(|k| !k.is_empty())
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
    check_out(&spatial, &g)?;
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
    let x = ctx.float(0)?;
    let w = ctx.float(1)?;
    let bias = ctx.opt(2).map(super::as_float);
    let r = x.rank();
    if !(3..=5).contains(&r) || w.rank() != r {
        return Err(op_err(format!(
            "ConvTranspose needs 3-D to 5-D input and weight of the same rank, got {:?} and {:?}",
            x.shape, w.shape
        )));
    }
    let group = ctx.i("group", 1).max(1) as usize;
    let c = x.shape[1];
    if w.shape[0] != c || c % group != 0 {
        return Err(op_err(format!(
            "weight {:?} with group {group} does not match input {:?}",
            w.shape, x.shape
        )));
    }
    let m = w.shape[1] * group;
    if let Some(b) = &bias
        && b.shape != [m]
    {
        return Err(op_err(format!("bias {:?} should be [{m}]", b.shape)));
    }
    let n = r - 2;
    let spatial = x.shape[2..].to_vec();
    let kernel = w.shape[2..].to_vec();
    let list = |name: &str, d: i64| -> Vec<i64> {
        match ctx.ints(name) {
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
    let auto = ctx.s("auto_pad", "NOTSET");
    let full: Vec<i64> = (0..n)
        .map(|i| (strides[i] * (spatial[i] - 1) + (kernel[i] - 1) * dil[i] + 1) as i64)
        .collect();
    let out_shape: Option<Vec<i64>> = ctx
        .ints("output_shape")
        .filter(|v| !v.is_empty())
        .map(|v| v[v.len().saturating_sub(n)..].to_vec())
        .or_else(|| {
            (auto == "SAME_UPPER" || auto == "SAME_LOWER")
                .then(|| (0..n).map(|i| (spatial[i] * strides[i]) as i64).collect())
        });
    let pads: Vec<(i64, i64)> = match out_shape {
        Some(os) => (0..n)
            .map(|i| {
                let total = full[i] + out_pad[i] - os[i];
                // floor division, as the ONNX reference (negative totals extend the end)
                let half = total.div_euclid(2);
                if auto == "SAME_UPPER" {
                    (half, total - half)
                } else {
                    (total - half, half)
                }
            })
            .collect(),
        None => match ctx.ints("pads") {
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
        y = pad_axis(y, 2 + i, -pb, out_pad[i] - pe)?;
    }
    let mut out = Value::Float(y);
    if let Some(b) = bias {
        let mut s = vec![1; r];
        s[1] = m;
        out = binary(out, Value::Float(b.reshape(&s)?), Bin::Add)?;
    }
    Ok(vec![out])
}
