//! Ops that make a tensor from attributes or shapes: Constant, ConstantOfShape, Range,
//! Shape and Size.

use super::*;

pub(super) fn constant(ctx: &Ctx) -> RunResult<Value> {
    let dev = ctx.device;
    if let Some(t) = ctx.attr("value").and_then(|a| a.t.as_ref()) {
        return Value::from_tensor_proto(t, dev);
    }
    if ctx.has_attr("value_float") {
        return Value::try_from_f32(vec![ctx.float_attr("value_float", 0.0)], &[], dev);
    }
    if let Some(f) = ctx.floats_attr("value_floats") {
        let n = f.len();
        return Value::try_from_f32(f, &[n], dev);
    }
    if ctx.has_attr("value_int") {
        return Value::try_from_i64(vec![ctx.int_attr("value_int", 0)], &[], dev, dt::INT64);
    }
    if let Some(i) = ctx.ints_attr("value_ints") {
        let n = i.len();
        return Value::try_from_i64(i, &[n], dev, dt::INT64);
    }
    Err(op_err(
        "Constant without a supported value attribute (sparse and string values are not supported)",
    ))
}

pub(super) fn constant_of_shape(ctx: &Ctx) -> RunResult<Value> {
    let shape: Vec<usize> = ctx
        .host_ints(0)?
        .unwrap_or_default()
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| op_err(format!("negative dim {d}"))))
        .collect::<RunResult<_>>()?;
    let (code, val) = match ctx.attr("value").and_then(|a| a.t.as_ref()) {
        Some(t) => {
            let v = Value::from_tensor_proto(t, ctx.device)?;
            (
                v.elem_type(),
                v.to_f32()?.first().copied().unwrap_or(0.0) as f64,
            )
        }
        None => (dt::FLOAT, 0.0),
    };
    let n = checked_numel("", "", &shape)?;
    if n == 0 {
        let s = shape.clone();
        return Ok(match code {
            dt::FLOAT => Value::Float(empty::<Float>(s, ctx.device)?),
            dt::BOOL => Value::Bool(empty::<Bool>(s, ctx.device)?),
            e => Value::Int(empty::<Int>(s, ctx.device)?, e),
        });
    }
    match code {
        dt::FLOAT => Value::try_from_f32(vec![val as f32; n], &shape, ctx.device),
        dt::BOOL => Value::try_from_bool(vec![val != 0.0; n], &shape, ctx.device),
        e => Value::try_from_i64(vec![val as i64; n], &shape, ctx.device, e),
    }
}

pub(super) fn range(ctx: &Ctx) -> RunResult<Value> {
    if let Value::Int(_, e) = ctx.input(0)? {
        return int_range(ctx, e);
    }
    let s = ctx.host_scalar(0)?.ok_or_else(|| op_err("missing start"))?;
    let l = ctx.host_scalar(1)?.ok_or_else(|| op_err("missing limit"))?;
    let d = ctx.host_scalar(2)?.ok_or_else(|| op_err("missing delta"))?;
    if d == 0.0 {
        return Err(op_err("Range delta 0"));
    }
    let count = ((l - s) / d).ceil().max(0.0);
    if !count.is_finite() || count > crate::runtime::MAX_ELEMENTS as f64 {
        // NaN and infinite counts too: no loop may run without end.
        return Err(too_large(&[count as u64]));
    }
    let n = count as usize;
    match ctx.input(0)? {
        Value::Float(_) => Value::try_from_f32(
            (0..n).map(|i| (s + i as f64 * d) as f32).collect(),
            &[n],
            ctx.device,
        ),
        _ => Err(op_err("Range of bool")),
    }
}

/// Integer Range, exact: through f64, starts near i64's ends lost their low bits and
/// `start + i * delta` overflowed (a panic in debug; found by the `runtime_graph` fuzz
/// target). In i128 every element lies between start and limit, so none overflows.
fn int_range(ctx: &Ctx, e: i32) -> RunResult<Value> {
    let scalar = |i: usize, what: &str| -> RunResult<i128> {
        match ctx.host_ints(i)?.as_deref() {
            Some([v]) => Ok(i128::from(*v)),
            _ => Err(op_err(format!("Range {what} must be one integer"))),
        }
    };
    let (s, l, d) = (
        scalar(0, "start")?,
        scalar(1, "limit")?,
        scalar(2, "delta")?,
    );
    if d == 0 {
        return Err(op_err("Range delta 0"));
    }
    let span = l - s;
    let count = if span != 0 && (span > 0) == (d > 0) {
        (span.abs() + d.abs() - 1) / d.abs()
    } else {
        0
    };
    if count > crate::runtime::MAX_ELEMENTS as i128 {
        return Err(too_large(&[u64::try_from(count).unwrap_or(u64::MAX)]));
    }
    let n = count as usize;
    let v = (0..n as i128).map(|i| (s + i * d) as i64).collect();
    Value::try_from_i64(v, &[n], ctx.device, e)
}

/// `Shape`, optionally a `start..end` part of it.
pub(super) fn shape_of(ctx: &Ctx) -> RunResult<Value> {
    let s = ctx.input(0)?.shape();
    let r = s.len() as i64;
    let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let a = fix(ctx.int_attr("start", 0));
    let b = fix(ctx.int_attr("end", r));
    let vals: Vec<i64> = s[a..b.max(a)].iter().map(|&d| d as i64).collect();
    let n = vals.len();
    Value::try_from_i64(vals, &[n], ctx.device, dt::INT64)
}

/// `Size`: the element count as an int64 scalar.
pub(super) fn size(ctx: &Ctx) -> RunResult<Value> {
    let n: usize = ctx.input(0)?.shape().iter().product();
    Value::try_from_i64(vec![n as i64], &[], ctx.device, dt::INT64)
}
