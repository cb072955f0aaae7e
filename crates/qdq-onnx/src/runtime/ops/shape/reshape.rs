//! Ops that change a shape but not the values: Reshape, Flatten, Squeeze, Unsqueeze.

use super::*;

pub(super) fn reshape_target(
    input: &[usize],
    spec: &[i64],
    allowzero: bool,
) -> RunResult<Vec<usize>> {
    let n: usize = input.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &s) in spec.iter().enumerate() {
        out.push(match s {
            0 if !allowzero => *input
                .get(i)
                .ok_or_else(|| op_err(format!("shape {spec:?}: 0 at {i} has no input dim")))?,
            -1 => {
                if infer.replace(i).is_some() {
                    return Err(op_err(format!("shape {spec:?} has more than one -1")));
                }
                1
            }
            s if s < 0 => return Err(op_err(format!("invalid shape {spec:?}"))),
            s => s as usize,
        });
    }
    let known = checked_numel("", "", &out)?;
    if let Some(i) = infer {
        if known == 0 || !n.is_multiple_of(known) {
            return Err(op_err(format!(
                "cannot reshape {input:?} ({n} elements) to {spec:?}"
            )));
        }
        out[i] = n / known;
    } else if known != n {
        return Err(op_err(format!(
            "cannot reshape {input:?} ({n} elements) to {spec:?}"
        )));
    }
    Ok(out)
}

pub(super) fn reshape_value(v: Value, shape: &[usize]) -> RunResult<Value> {
    if shape.len() > MAX_RANK {
        return Err(op_err(format!("shape {shape:?} exceeds rank {MAX_RANK}")));
    }
    if shape.contains(&0) {
        let dev = device_of(&v)?;
        return Ok(map_kind!(v, |_t| empty(shape.to_vec(), &dev)?));
    }
    Ok(map_kind!(v, |t| t.reshape(shape)?))
}

/// `Reshape` (shape from the `shape` attribute before opset 5, an input after).
pub(super) fn reshape(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let spec = if ctx.opset < 5 {
        ctx.ints_attr("shape").unwrap_or_default()
    } else {
        ctx.host_ints(1)?.ok_or_else(|| op_err("missing shape"))?
    };
    let s = reshape_target(&v.shape(), &spec, ctx.int_attr("allowzero", 0) != 0)?;
    reshape_value(v, &s)
}

/// `Flatten` to 2-D around `axis`.
pub(super) fn flatten(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let s = v.shape();
    let r = s.len() as i64;
    let a = ctx.int_attr("axis", 1);
    let a = if a < 0 { a + r } else { a };
    if a < 0 || a > r {
        return Err(op_err(format!("axis {a} out of range for rank {r}")));
    }
    let a = a as usize;
    let outer: usize = s[..a].iter().product();
    let inner: usize = s[a..].iter().product();
    reshape_value(v, &[outer, inner])
}

/// `Squeeze` of the given (or every size-1) axes.
pub(super) fn squeeze(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let s = v.shape();
    let axes: Vec<usize> = match axes_arg(ctx)? {
        Some(a) => a
            .iter()
            .map(|&x| norm_axis(x, s.len()))
            .collect::<RunResult<_>>()?,
        None => (0..s.len()).filter(|&i| s[i] == 1).collect(),
    };
    if let Some(&a) = axes.iter().find(|&&a| s[a] != 1) {
        return Err(op_err(format!("cannot squeeze axis {a} of shape {s:?}")));
    }
    let out: Vec<usize> = (0..s.len())
        .filter(|i| !axes.contains(i))
        .map(|i| s[i])
        .collect();
    reshape_value(v, &out)
}

/// `Unsqueeze`: size-1 axes inserted at `axes`.
pub(super) fn unsqueeze(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let s = v.shape();
    let axes = axes_arg(ctx)?.ok_or_else(|| op_err("missing axes"))?;
    let r = s.len() + axes.len();
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&x| norm_axis(x, r))
        .collect::<RunResult<_>>()?;
    axes.sort_unstable();
    axes.dedup();
    let mut out = Vec::with_capacity(r);
    let mut it = s.iter();
    for i in 0..r {
        if axes.contains(&i) {
            out.push(1);
        } else {
            out.push(*it.next().ok_or_else(|| op_err("duplicate axes"))?);
        }
    }
    reshape_value(v, &out)
}

/// Squeeze's and Unsqueeze's axes: an attribute before opset 13, an input after.
fn axes_arg(ctx: &Ctx) -> RunResult<Option<Vec<i64>>> {
    if ctx.opset < 13 {
        Ok(ctx.ints_attr("axes"))
    } else {
        ctx.host_ints(1)
    }
}
