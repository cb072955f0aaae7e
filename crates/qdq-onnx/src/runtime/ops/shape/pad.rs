//! `Pad` (constant, edge, reflect and wrap modes; negative pads crop).

use super::*;

pub(super) fn pad(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let shape = v.shape();
    let r = shape.len();
    let mode = ctx.string_attr("mode", "constant");
    let (pads, value, axes) = if ctx.opset < 11 {
        (
            ctx.ints_attr("pads")
                .or(ctx.ints_attr("paddings"))
                .unwrap_or_default(),
            ctx.float_attr("value", 0.0) as f64,
            None,
        )
    } else {
        (
            ctx.host_ints(1)?.ok_or_else(|| op_err("missing pads"))?,
            ctx.host_scalar(2)?.unwrap_or(0.0),
            ctx.host_ints(3)?,
        )
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&x| norm_axis(x, r))
            .collect::<RunResult<_>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(op_err(format!(
            "pads {pads:?} must have 2 entries per padded axis ({} axes)",
            axes.len()
        )));
    }
    let n = axes.len();
    let mut v = v;
    for (k, &axis) in axes.iter().enumerate() {
        let (b, e) = (pads[k], pads[k + n]);
        if b == 0 && e == 0 {
            continue;
        }
        let mut grown = v.shape();
        grown[axis] = padded_len(grown[axis], b, e)?;
        checked_numel("", "", &grown)?;
        // negative pads crop
        let (cb, ce) = (crop(b), crop(e));
        if cb > 0 || ce > 0 {
            let dim = v.shape()[axis];
            let len = dim.saturating_sub(cb).saturating_sub(ce);
            let start = cb.min(dim);
            v = map_kind!(v, |t| narrow(t, axis, start, len)?);
        }
        let (b, e) = (b.max(0) as usize, e.max(0) as usize);
        if b == 0 && e == 0 {
            continue;
        }
        let d = v.shape()[axis];
        match mode.as_str() {
            "constant" => {
                let dev = device_of(&v)?;
                let mut s = v.shape();
                let mut parts = |len: usize| -> RunResult<Option<Value>> {
                    if len == 0 {
                        return Ok(None);
                    }
                    s[axis] = len;
                    Ok(Some(full_like_kind(&v, &s, value, &dev)?))
                };
                let pre = parts(b)?;
                let post = parts(e)?;
                let mut all = Vec::new();
                all.extend(pre);
                all.push(v);
                all.extend(post);
                v = concat_values(all, axis, &dev)?;
            }
            "edge" | "reflect" | "wrap" => {
                if d == 0 || (mode == "reflect" && d < 2 && b + e > 0) {
                    return Err(op_err(format!("cannot {mode}-pad an axis of size {d}")));
                }
                let di = d as i64;
                let idx: Vec<usize> = (-(b as i64)..di + e as i64)
                    .map(|i| {
                        let j = match mode.as_str() {
                            "edge" => i.clamp(0, di - 1),
                            "wrap" => i.rem_euclid(di),
                            _ => {
                                let p = 2 * (di - 1);
                                let m = i.rem_euclid(p);
                                if m >= di { p - m } else { m }
                            }
                        };
                        j as usize
                    })
                    .collect();
                v = map_kind!(v, |t| select(t, axis, &idx)?);
            }
            m => return Err(op_err(format!("unknown Pad mode `{m}`"))),
        }
    }
    Ok(v)
}

/// Entries a negative pad removes (0 for a positive one).
pub(crate) fn crop(pad: i64) -> usize {
    usize::try_from(pad.saturating_neg()).unwrap_or(0)
}

/// Length of an axis of `dim` entries padded by `b` before and `e` after (negative
/// pads crop, down to 0); refused when it overflows.
pub(crate) fn padded_len(dim: usize, b: i64, e: i64) -> RunResult<usize> {
    i64::try_from(dim)
        .ok()
        .and_then(|d| d.checked_add(b)?.checked_add(e))
        .map(|n| n.max(0) as usize)
        .ok_or_else(|| op_err(format!("pads {b} and {e} overflow an axis of {dim}")))
}

/// A tensor of `shape` filled with `value`, of the same kind and type as `like`.
pub(super) fn full_like_kind(
    like: &Value,
    shape: &[usize],
    value: f64,
    dev: &Device,
) -> RunResult<Value> {
    let n = checked_numel("", "", shape)?;
    match like {
        Value::Float(_) => Value::try_from_f32(vec![value as f32; n], shape, dev),
        Value::Int(_, e) => Value::try_from_i64(vec![value as i64; n], shape, dev, *e),
        Value::Bool(_) => Value::try_from_bool(vec![value != 0.0; n], shape, dev),
        v => Err(v.not_a_tensor()),
    }
}
