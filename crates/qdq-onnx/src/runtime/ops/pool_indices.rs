//! MaxPool's optional Indices output (2-D): the flat position in X of each window's
//! maximum, row-major (`storage_order = 0`) or column-major per plane (`1`), as
//! onnxruntime numbers them. Runs on the host only when the node asks for Indices; the
//! values output matches the burn MaxPool kernel.

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::Ctx;
use super::host::Host;
use crate::proto::elem as dt;

/// Most window comparisons one node may make (2^32): kernel and pads come from the model.
const MAX_WORK: u64 = 1 << 32;

/// MaxPool(X `[N, C, H, W]`; kernel_shape, pads, strides, dilations; auto_pad NOTSET,
/// ceil_mode 0) → (Y, Indices int64).
pub(crate) fn max_pool_with_indices(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    let &[n, c, h, w] = x.shape.as_slice() else {
        return Err(op_err(format!(
            "Indices are supported for 2-D pooling of [N, C, H, W], got {:?}",
            x.shape
        )));
    };
    if ctx.string_attr("auto_pad", "NOTSET") != "NOTSET" || ctx.int_attr("ceil_mode", 0) != 0 {
        return Err(op_err(
            "Indices are supported with explicit pads and ceil_mode 0",
        ));
    }
    let two = |name: &str, default: i64, len: usize| -> RunResult<Vec<usize>> {
        let v = ctx.ints_attr(name).unwrap_or_else(|| vec![default; len]);
        if v.len() != len {
            return Err(op_err(format!("{name} must have {len} values")));
        }
        v.iter()
            .map(|&p| {
                usize::try_from(p)
                    .ok()
                    .filter(|&p| p <= 1 << 31)
                    .ok_or_else(|| op_err(format!("{name} value {p} is out of range")))
            })
            .collect()
    };
    let k = two("kernel_shape", 0, 2)?;
    let pads = two("pads", 0, 4)?;
    let s = two("strides", 1, 2)?;
    let d = two("dilations", 1, 2)?;
    if k.contains(&0) || s.contains(&0) || d.contains(&0) {
        return Err(op_err(
            "kernel_shape, strides and dilations must be positive",
        ));
    }
    let out_dim = |i: usize, len: usize| -> RunResult<usize> {
        let span = (k[i] - 1) * d[i] + 1;
        let padded = len + pads[i] + pads[i + 2];
        padded
            .checked_sub(span)
            .map(|r| r / s[i] + 1)
            .ok_or_else(|| op_err(format!("window {span} exceeds padded dim {padded}")))
    };
    let (oh, ow) = (out_dim(0, h)?, out_dim(1, w)?);
    let shape = vec![n, c, oh, ow];
    checked_numel("", "", &shape)?;
    let work = [n, c, oh, ow, k[0], k[1]]
        .iter()
        .try_fold(1u64, |a, &v| a.checked_mul(v as u64))
        .filter(|&w| w <= MAX_WORK);
    if work.is_none() {
        return Err(op_err(format!(
            "pooling {shape:?} with a {k:?} window is more than {MAX_WORK} comparisons"
        )));
    }
    let col_major = ctx.int_attr("storage_order", 0) != 0;
    let v = x.to_f64();
    let (mut ys, mut is) = (Vec::new(), Vec::new());
    for plane in 0..n * c {
        let base = plane * h * w;
        for py in 0..oh {
            for px in 0..ow {
                let mut best: Option<(f64, usize, usize)> = None;
                for ky in 0..k[0] {
                    let Some(iy) = (py * s[0] + ky * d[0])
                        .checked_sub(pads[0])
                        .filter(|&y| y < h)
                    else {
                        continue;
                    };
                    for kx in 0..k[1] {
                        let Some(ix) = (px * s[1] + kx * d[1])
                            .checked_sub(pads[1])
                            .filter(|&x| x < w)
                        else {
                            continue;
                        };
                        let val = v[base + iy * w + ix];
                        if best.is_none_or(|(b, _, _)| val > b) {
                            best = Some((val, iy, ix));
                        }
                    }
                }
                let (val, iy, ix) = best.ok_or_else(|| op_err("a window covers only padding"))?;
                ys.push(val as f32);
                let at = if col_major { ix * h + iy } else { iy * w + ix };
                is.push((base + at) as i64);
            }
        }
    }
    Ok(vec![
        Host::f32(ys, shape.clone()).into_value(ctx.device)?,
        Host::i64(is, dt::INT64, shape).into_value(ctx.device)?,
    ])
}
