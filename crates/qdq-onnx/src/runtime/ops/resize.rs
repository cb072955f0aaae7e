//! Resize and Upsample, separably per axis: the output→input coordinate map of each
//! `coordinate_transformation_mode` is computed on the host, then nearest picks rows
//! with `select_float` and linear/cubic blend a few selected rows with broadcast weights.

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::{DynTensor, Value};
use super::elementwise::{Bin, binary};
use super::shape::select_float;
use super::{Ctx, as_float, norm_axis};
use burn::tensor::Float;

struct Mode {
    coord: String,
    nearest: String,
    cubic_a: f64,
    exclude_outside: bool,
}

/// Input coordinate of output index `x` (the ONNX reference uses the unrounded resized
/// length `in_len * scale`).
fn original(m: &Mode, x: usize, scale: f64, in_len: usize) -> RunResult<f64> {
    let x = x as f64;
    let i = in_len as f64;
    let o = i * scale;
    Ok(match m.coord.as_str() {
        "half_pixel" => (x + 0.5) / scale - 0.5,
        "half_pixel_symmetric" => {
            let adj = o / (scale * i);
            let center = i / 2.0;
            center * (1.0 - adj) + (x + 0.5) / scale - 0.5
        }
        "pytorch_half_pixel" => {
            if o > 1.0 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        "align_corners" => {
            if o == 1.0 {
                0.0
            } else {
                x * (i - 1.0) / (o - 1.0)
            }
        }
        "asymmetric" => x / scale,
        "tf_half_pixel_for_nn" => (x + 0.5) / scale,
        other => {
            return Err(op_err(format!(
                "coordinate_transformation_mode `{other}` is not supported"
            )));
        }
    })
}

fn nearest_index(m: &Mode, x: f64, in_len: usize, scale: f64) -> usize {
    let r = match m.nearest.as_str() {
        "round_prefer_ceil" => (x + 0.5).floor(),
        "floor" => x.floor(),
        "ceil" => x.ceil(),
        _ => {
            // round_prefer_floor
            if (x - x.floor() - 0.5).abs() < 1e-12 {
                x.floor()
            } else {
                x.round()
            }
        }
    };
    let _ = scale;
    r.clamp(0.0, in_len as f64 - 1.0) as usize
}

fn cubic_coeffs(a: f64, t: f64) -> [f64; 4] {
    let c = |x: f64| {
        let x = x.abs();
        if x <= 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        } else {
            0.0
        }
    };
    [c(t + 1.0), c(t), c(1.0 - t), c(2.0 - t)]
}

/// Resamples one axis of `x` to `out_len`.
fn resize_axis(
    x: DynTensor<Float>,
    axis: usize,
    out_len: usize,
    scale: f64,
    mode: &str,
    m: &Mode,
) -> RunResult<DynTensor<Float>> {
    let in_len = x.shape[axis];
    let r = x.rank();
    let dev = x.device();
    let coords: Vec<f64> = (0..out_len)
        .map(|o| original(m, o, scale, in_len))
        .collect::<RunResult<_>>()?;
    if mode == "nearest" {
        let idx: Vec<usize> = coords
            .iter()
            .map(|&c| nearest_index(m, c, in_len, scale))
            .collect();
        return select_float(x, axis, &idx);
    }
    let last = in_len as i64 - 1;
    let clamp = |i: i64| i.clamp(0, last) as usize;
    let taps: Vec<(i64, Vec<f64>)> = coords
        .iter()
        .map(|&c| {
            let f = c.floor();
            let t = c - f;
            let f = f as i64;
            if mode == "linear" {
                (f, vec![1.0 - t, t])
            } else {
                let mut w = cubic_coeffs(m.cubic_a, t).to_vec();
                if m.exclude_outside {
                    for (k, wk) in w.iter_mut().enumerate() {
                        let j = f - 1 + k as i64;
                        if j < 0 || j > last {
                            *wk = 0.0;
                        }
                    }
                    let s: f64 = w.iter().sum();
                    if s != 0.0 {
                        w.iter_mut().for_each(|v| *v /= s);
                    }
                }
                (f - 1, w)
            }
        })
        .collect();
    let n_taps = taps.first().map_or(0, |t| t.1.len());
    let mut wshape = vec![1; r];
    wshape[axis] = out_len;
    let mut acc: Option<Value> = None;
    for k in 0..n_taps {
        let idx: Vec<usize> = taps.iter().map(|(b, _)| clamp(b + k as i64)).collect();
        let w: Vec<f32> = taps.iter().map(|(_, w)| w[k] as f32).collect();
        let picked = Value::Float(select_float(x.clone(), axis, &idx)?);
        let term = binary(picked, Value::try_from_f32(w, &wshape, &dev)?, Bin::Mul)?;
        acc = Some(match acc {
            None => term,
            Some(a) => binary(a, term, Bin::Add)?,
        });
    }
    match acc {
        Some(Value::Float(t)) => Ok(t),
        _ => Err(op_err("internal: no taps")),
    }
}

pub(crate) fn resize(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let v = ctx.input(0)?;
    let int_type = match &v {
        Value::Int(_, e) => Some(*e),
        _ => None,
    };
    let x = as_float(v)?;
    let r = x.rank();
    let shape = x.shape.clone();
    let upsample = op == "Upsample";
    let mut mode = ctx.string_attr("mode", "nearest");
    if mode == "bilinear" || mode == "trilinear" {
        mode = "linear".into();
    }
    if !matches!(mode.as_str(), "nearest" | "linear" | "cubic") {
        return Err(op_err(format!("mode `{mode}` is not supported")));
    }
    if ctx.int_attr("antialias", 0) != 0 {
        return Err(op_err("antialias is not supported"));
    }
    let old = upsample || ctx.opset < 11;
    let m = Mode {
        coord: if old {
            "asymmetric".into()
        } else {
            ctx.string_attr("coordinate_transformation_mode", "half_pixel")
        },
        nearest: if old {
            "floor".into()
        } else {
            ctx.string_attr("nearest_mode", "round_prefer_floor")
        },
        cubic_a: ctx.float_attr("cubic_coeff_a", -0.75) as f64,
        exclude_outside: ctx.int_attr("exclude_outside", 0) != 0,
    };
    let axes: Vec<usize> = match ctx.ints_attr("axes") {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&x| norm_axis(x, r))
            .collect::<RunResult<_>>()?,
        _ => (0..r).collect(),
    };
    let (scales, sizes) = if upsample {
        let s = match ctx.floats_attr("scales") {
            Some(s) if !s.is_empty() => s,
            _ => as_float(ctx.input(1)?)?.to_vec()?,
        };
        (Some(s), None)
    } else if ctx.opset < 11 {
        (Some(as_float(ctx.input(1)?)?.to_vec()?), None)
    } else {
        let s = match ctx.opt(2) {
            Some(v) if !v.shape().contains(&0) => Some(as_float(v)?.to_vec()?),
            _ => None,
        };
        let z = match ctx.host_ints(3)? {
            Some(z) if !z.is_empty() => Some(z),
            _ => None,
        };
        (s, z)
    };
    let mut out_len = shape.clone();
    let mut scale: Vec<f64> = vec![1.0; r];
    match (scales, sizes) {
        (Some(s), None) => {
            if s.len() != axes.len() {
                return Err(op_err(format!(
                    "{} scales for {} axes",
                    s.len(),
                    axes.len()
                )));
            }
            for (k, &a) in axes.iter().enumerate() {
                if !(s[k] > 0.0 && s[k].is_finite()) {
                    return Err(op_err(format!("scale {} must be positive", s[k])));
                }
                scale[a] = s[k] as f64;
                out_len[a] = (shape[a] as f64 * s[k] as f64).floor() as usize;
            }
        }
        (None, Some(z)) => {
            if z.len() != axes.len() || z.iter().any(|&d| d < 0) {
                return Err(op_err(format!(
                    "sizes {z:?} invalid for {} axes",
                    axes.len()
                )));
            }
            let policy = ctx.string_attr("keep_aspect_ratio_policy", "stretch");
            let ratios: Vec<f64> = axes
                .iter()
                .enumerate()
                .map(|(k, &a)| z[k] as f64 / shape[a] as f64)
                .collect();
            let common = match policy.as_str() {
                "not_larger" => ratios.iter().copied().fold(f64::INFINITY, f64::min),
                "not_smaller" => ratios.iter().copied().fold(0.0, f64::max),
                _ => 0.0,
            };
            for (k, &a) in axes.iter().enumerate() {
                if policy == "stretch" {
                    out_len[a] = z[k] as usize;
                    scale[a] = ratios[k];
                } else {
                    scale[a] = common;
                    out_len[a] = (shape[a] as f64 * common).round() as usize;
                }
            }
        }
        _ => return Err(op_err("exactly one of scales and sizes must be given")),
    }
    if m.coord == "tf_crop_and_resize" {
        return Err(op_err("tf_crop_and_resize is not supported"));
    }
    if shape.contains(&0) {
        // An empty tensor would let one huge axis pass the size check below.
        return Err(op_err(format!("Resize of an empty tensor {shape:?}")));
    }
    // Axes are resized one at a time: every intermediate shape must fit too.
    for a in 0..=r {
        let mut s = out_len[..a].to_vec();
        s.extend_from_slice(&shape[a..]);
        checked_numel("", "", &s)?;
    }
    let mut y = x;
    for a in 0..r {
        if out_len[a] == shape[a] && scale[a] == 1.0 {
            continue;
        }
        if out_len[a] == 0 || shape[a] == 0 {
            return Err(op_err("Resize to or from an empty axis"));
        }
        y = resize_axis(y, a, out_len[a], scale[a], &mode, &m)?;
    }
    Ok(vec![match int_type {
        Some(e) => super::float_to_int(
            DynTensor::with(
                super::super::value::dyn_map!(y.t, |t, R| t.round()),
                y.shape,
            ),
            e,
        ),
        None => Value::Float(y),
    }])
}
