//! Shape and data-movement operators (Reshape, Transpose, Concat, Slice, Gather, Pad, ...)
//! and constants. They are generic over the tensor kind, so int shape tensors
//! (Shape → Gather → Concat → Reshape) flow through the same code as activations;
//! shape arguments are read on the host.

use burn::tensor::kind::Basic;
use burn::tensor::{Bool, Device, Float, Int, Tensor};

use super::super::error::{RunResult, checked_numel, op_err, too_large};
use super::super::value::{DynTensor, MAX_RANK, Value, arr, burn_shape, dyn_map};
use super::elementwise::{broadcast_shape, expand_to};
use super::{Ctx, as_bool, as_float, index_tensor, is_int_type, norm_axis, to_i64, with_rank};
use crate::proto::elem::{self as dt, dtype_name};

/// Applies a kind-generic tensor function to a value, keeping its element type.
macro_rules! map_kind {
    ($v:expr, |$t:ident| $body:expr) => {
        match $v {
            Value::Float($t) => Value::Float($body),
            Value::Int($t, e) => Value::Int($body, e),
            Value::Bool($t) => Value::Bool($body),
        }
    };
}

/// An empty tensor (some dim is 0).
pub(crate) fn empty<K: Basic>(shape: Vec<usize>, device: &Device) -> RunResult<DynTensor<K>> {
    let b = burn_shape(&shape);
    with_rank!(b.len(), |R| Ok(DynTensor::from_tensor(
        Tensor::<R, K>::empty(arr::<R>(&b), device)
    )))
    .map(|t: DynTensor<K>| DynTensor::with(t.t, shape))
}

/// Permutes axes.
pub(crate) fn permute<K: Basic>(t: DynTensor<K>, perm: &[usize]) -> RunResult<DynTensor<K>> {
    let r = t.rank();
    let mut seen = vec![false; r];
    if perm.len() != r
        || perm
            .iter()
            .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
    {
        return Err(op_err(format!(
            "perm {perm:?} is not a permutation of {r} axes"
        )));
    }
    if r <= 1 {
        return Ok(t);
    }
    let shape: Vec<usize> = perm.iter().map(|&p| t.shape[p]).collect();
    let x = dyn_map!(t.t, |x, R| x
        .permute(std::array::from_fn::<isize, R, _>(|i| perm[i] as isize)));
    Ok(DynTensor::with(x, shape))
}

/// Concatenates same-rank tensors along `axis`.
pub(crate) fn cat<K: Basic>(
    ts: Vec<DynTensor<K>>,
    axis: usize,
    device: &Device,
) -> RunResult<DynTensor<K>> {
    let first = ts.first().ok_or_else(|| op_err("Concat needs inputs"))?;
    let rank = first.rank();
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for t in &ts {
        if t.rank() != rank
            || t.shape
                .iter()
                .enumerate()
                .any(|(i, &d)| i != axis && d != shape[i])
        {
            return Err(op_err(format!(
                "cannot concatenate {:?} with {:?} on axis {axis}",
                first.shape, t.shape
            )));
        }
        shape[axis] += t.shape[axis];
    }
    let ts: Vec<DynTensor<K>> = ts.into_iter().filter(|t| t.numel() > 0).collect();
    if ts.is_empty() || shape.contains(&0) {
        return empty(shape, device);
    }
    if ts.len() == 1 {
        return Ok(ts.into_iter().next().unwrap_or_else(|| unreachable!()));
    }
    with_rank!(rank, |R| {
        let v = ts
            .into_iter()
            .map(|t| t.to_rank::<R>())
            .collect::<RunResult<Vec<_>>>()?;
        DynTensor::from_tensor_as(Tensor::cat(v, axis), shape.clone())
    })
}

/// `len` entries from `start` along `axis`.
pub(crate) fn narrow<K: Basic>(
    t: DynTensor<K>,
    axis: usize,
    start: usize,
    len: usize,
) -> RunResult<DynTensor<K>> {
    let mut shape = t.shape.clone();
    if start.checked_add(len).is_none_or(|end| end > shape[axis]) {
        return Err(op_err(format!(
            "{len} entries from {start} out of bounds for axis {axis} of {shape:?}"
        )));
    }
    if start == 0 && len == shape[axis] {
        return Ok(t);
    }
    shape[axis] = len;
    if len == 0 {
        let dev = t.device();
        return empty(shape, &dev);
    }
    let x = dyn_map!(t.t, |x, R| x.narrow(axis, start, len));
    Ok(DynTensor::with(x, shape))
}

/// Picks entries `idx` along `axis` (any order, repeats allowed).
pub(crate) fn select<K: Basic>(
    t: DynTensor<K>,
    axis: usize,
    idx: &[usize],
) -> RunResult<DynTensor<K>> {
    let mut shape = t.shape.clone();
    if let Some(&bad) = idx.iter().find(|&&i| i >= shape[axis]) {
        return Err(op_err(format!(
            "index {bad} out of bounds for axis {axis} of size {}",
            shape[axis]
        )));
    }
    shape[axis] = idx.len();
    let dev = t.device();
    if idx.is_empty() || shape.contains(&0) {
        return empty(shape, &dev);
    }
    let it = index_tensor(idx, &dev);
    let x = dyn_map!(t.t, |x, R| x.select(axis, it.clone()));
    Ok(DynTensor::with(x, shape))
}

fn reshape_target(input: &[usize], spec: &[i64], allowzero: bool) -> RunResult<Vec<usize>> {
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

fn reshape_value(v: Value, shape: &[usize]) -> RunResult<Value> {
    if shape.len() > MAX_RANK {
        return Err(op_err(format!("shape {shape:?} exceeds rank {MAX_RANK}")));
    }
    if shape.contains(&0) {
        let dev = device_of(&v);
        return Ok(map_kind!(v, |_t| empty(shape.to_vec(), &dev)?));
    }
    Ok(map_kind!(v, |t| t.reshape(shape)?))
}

fn device_of(v: &Value) -> Device {
    match v {
        Value::Float(t) => t.device(),
        Value::Int(t, _) => t.device(),
        Value::Bool(t) => t.device(),
    }
}

/// ONNX Slice bounds for one axis: the selected indices.
pub(crate) fn slice_indices(dim: usize, start: i64, end: i64, step: i64) -> Vec<usize> {
    let d = dim as i64;
    let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (fix(start), fix(end));
    let mut out = Vec::new();
    if step > 0 {
        let (s, e) = (s.clamp(0, d), e.clamp(0, d));
        let mut i = s;
        while i < e {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
    } else {
        let (s, e) = (s.clamp(0, d - 1), e.clamp(-1, d - 1));
        let mut i = s;
        while i > e {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
    }
    out
}

fn slice(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let shape = v.shape();
    let (starts, ends, axes, steps) = if ctx.opset < 10 {
        (
            ctx.ints("starts").unwrap_or_default(),
            ctx.ints("ends").unwrap_or_default(),
            ctx.ints("axes"),
            None,
        )
    } else {
        (
            ctx.host_ints(1)?.ok_or_else(|| op_err("missing starts"))?,
            ctx.host_ints(2)?.ok_or_else(|| op_err("missing ends"))?,
            ctx.host_ints(3)?,
            ctx.host_ints(4)?,
        )
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(op_err(
            "starts, ends, axes and steps must have the same length",
        ));
    }
    let mut v = v;
    for i in 0..starts.len() {
        let axis = norm_axis(axes[i], shape.len())?;
        if steps[i] == 0 {
            return Err(op_err("slice step 0"));
        }
        let idx = slice_indices(shape[axis], starts[i], ends[i], steps[i]);
        let contiguous = steps[i] == 1 || idx.len() <= 1;
        v = if contiguous {
            let start = idx.first().copied().unwrap_or(0);
            map_kind!(v, |t| narrow(t, axis, start, idx.len())?)
        } else {
            map_kind!(v, |t| select(t, axis, &idx)?)
        };
    }
    Ok(v)
}

fn gather(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let shape = v.shape();
    let idx_v = ctx.input(1)?;
    let ishape = idx_v.shape();
    let idx = match &idx_v {
        Value::Int(t, _) => t.to_vec()?,
        other => {
            return Err(op_err(format!(
                "Gather indices must be integers, got {}",
                dtype_name(other.elem_type())
            )));
        }
    };
    if shape.is_empty() {
        return Err(op_err("Gather on a scalar"));
    }
    let axis = norm_axis(ctx.i("axis", 0), shape.len())?;
    let d = shape[axis] as i64;
    let flat = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + d } else { i };
            if j < 0 || j >= d {
                Err(op_err(format!(
                    "index {i} out of bounds for axis {axis} of size {d}"
                )))
            } else {
                Ok(j as usize)
            }
        })
        .collect::<RunResult<Vec<_>>>()?;
    let mut out: Vec<usize> = shape[..axis].to_vec();
    out.extend_from_slice(&ishape);
    out.extend_from_slice(&shape[axis + 1..]);
    checked_numel("", "", &out)?;
    let v = map_kind!(v, |t| select(t, axis, &flat)?);
    reshape_value(v, &out)
}

fn split(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let v = ctx.input(0)?;
    let shape = v.shape();
    let axis = norm_axis(ctx.i("axis", 0), shape.len())?;
    let dim = shape[axis];
    let n_out = ctx.node.output.len();
    let sizes: Vec<usize> = match if ctx.opset < 13 {
        ctx.ints("split").filter(|s| !s.is_empty())
    } else {
        ctx.host_ints(1)?
    } {
        Some(s) => s.into_iter().map(|x| x.max(0) as usize).collect(),
        None => {
            let n = if ctx.has("num_outputs") {
                ctx.i("num_outputs", 1) as usize
            } else {
                n_out
            };
            if n == 0 || n > n_out.max(1) {
                return Err(op_err(format!(
                    "Split into {n} outputs, but the node has {n_out}"
                )));
            }
            let chunk = dim.div_ceil(n);
            (0..n)
                .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
                .collect()
        }
    };
    if sizes.iter().try_fold(0usize, |a, &b| a.checked_add(b)) != Some(dim) {
        return Err(op_err(format!(
            "split sizes {sizes:?} do not sum to dim {dim} of axis {axis}"
        )));
    }
    let mut start = 0;
    let mut outs = Vec::new();
    for s in sizes {
        let p = v.clone();
        outs.push(map_kind!(p, |t| narrow(t, axis, start, s)?));
        start += s;
    }
    Ok(outs)
}

fn pad(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let shape = v.shape();
    let r = shape.len();
    let mode = ctx.s("mode", "constant");
    let (pads, value, axes) = if ctx.opset < 11 {
        (
            ctx.ints("pads")
                .or(ctx.ints("paddings"))
                .unwrap_or_default(),
            ctx.f("value", 0.0) as f64,
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
                let dev = device_of(&v);
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
fn full_like_kind(like: &Value, shape: &[usize], value: f64, dev: &Device) -> RunResult<Value> {
    let n = checked_numel("", "", shape)?;
    match like {
        Value::Float(_) => Value::try_from_f32(vec![value as f32; n], shape, dev),
        Value::Int(_, e) => Value::try_from_i64(vec![value as i64; n], shape, dev, *e),
        Value::Bool(_) => Value::try_from_bool(vec![value != 0.0; n], shape, dev),
    }
}

/// Concatenates values of one kind.
pub(crate) fn concat_values(vals: Vec<Value>, axis: usize, dev: &Device) -> RunResult<Value> {
    let first = vals.first().ok_or_else(|| op_err("Concat needs inputs"))?;
    let kind = first.elem_type();
    macro_rules! collect {
        ($variant:ident) => {
            vals.into_iter()
                .map(|v| match v {
                    Value::$variant(t, ..) => Ok(t),
                    o => Err(op_err(format!(
                        "Concat inputs must share a type: {} and {}",
                        dtype_name(kind),
                        dtype_name(o.elem_type())
                    ))),
                })
                .collect::<RunResult<Vec<_>>>()?
        };
    }
    Ok(match first {
        Value::Float(_) => Value::Float(cat(collect!(Float), axis, dev)?),
        Value::Int(_, e) => {
            let e = *e;
            Value::Int(cat(collect!(Int), axis, dev)?, e)
        }
        Value::Bool(_) => Value::Bool(cat(collect!(Bool), axis, dev)?),
    })
}

/// Cast to ONNX type `to`.
pub(crate) fn cast(v: Value, to: i32) -> RunResult<Value> {
    Ok(match to {
        dt::FLOAT => match v {
            Value::Int(_, dt::FLOAT8E4M3FN) => {
                return Err(op_err("Cast from float8 is not supported"));
            }
            v => Value::Float(as_float(v)),
        },
        dt::BOOL => Value::Bool(as_bool(v)),
        t if is_int_type(t) => match v {
            Value::Int(x, _) => Value::Int(x, t),
            Value::Bool(x) => Value::Int(
                DynTensor::with(dyn_map!(x.t, |b, R| to_i64(b.int())), x.shape),
                t,
            ),
            Value::Float(x) => super::float_to_int(x, t),
        },
        other => {
            return Err(op_err(format!(
                "Cast to {} ({other}) is not supported",
                dtype_name(other)
            )));
        }
    })
}

fn constant_of_shape(ctx: &Ctx) -> RunResult<Value> {
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

fn constant(ctx: &Ctx) -> RunResult<Value> {
    let dev = ctx.device;
    if let Some(t) = ctx.attr("value").and_then(|a| a.t.as_ref()) {
        return Value::from_tensor_proto(t, dev);
    }
    if ctx.has("value_float") {
        return Value::try_from_f32(vec![ctx.f("value_float", 0.0)], &[], dev);
    }
    if let Some(f) = ctx.floats("value_floats") {
        let n = f.len();
        return Value::try_from_f32(f, &[n], dev);
    }
    if ctx.has("value_int") {
        return Value::try_from_i64(vec![ctx.i("value_int", 0)], &[], dev, dt::INT64);
    }
    if let Some(i) = ctx.ints("value_ints") {
        let n = i.len();
        return Value::try_from_i64(i, &[n], dev, dt::INT64);
    }
    Err(op_err(
        "Constant without a supported value attribute (sparse and string values are not supported)",
    ))
}

fn range(ctx: &Ctx) -> RunResult<Value> {
    let s = ctx.host_scalar(0)?.ok_or_else(|| op_err("missing start"))?;
    let l = ctx.host_scalar(1)?.ok_or_else(|| op_err("missing limit"))?;
    let d = ctx.host_scalar(2)?.ok_or_else(|| op_err("missing delta"))?;
    if d == 0.0 {
        return Err(op_err("Range delta 0"));
    }
    let count = ((l - s) / d).ceil().max(0.0);
    if !count.is_finite() || count > super::super::MAX_ELEMENTS as f64 {
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
        Value::Int(_, e) => Value::try_from_i64(
            (0..n).map(|i| s as i64 + i as i64 * d as i64).collect(),
            &[n],
            ctx.device,
            e,
        ),
        Value::Bool(_) => Err(op_err("Range of bool")),
    }
}

fn host_usizes(v: Vec<i64>, what: &str) -> RunResult<Vec<usize>> {
    v.into_iter()
        .map(|d| usize::try_from(d).map_err(|_| op_err(format!("negative {what} {d}"))))
        .collect()
}

/// Runs a shape op.
pub(crate) fn run(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let out = match op {
        "Identity" => ctx.input(0)?,
        "Dropout" => {
            let v = ctx.input(0)?;
            if ctx.opset >= 12 && ctx.host_scalar(2)?.unwrap_or(0.0) != 0.0 {
                return Err(op_err("Dropout in training mode is not supported"));
            }
            let mut outs = vec![v.clone()];
            if ctx.wants_output(1) {
                let s = v.shape();
                let n = checked_numel("", "", &s)?;
                outs.push(Value::try_from_bool(vec![true; n], &s, ctx.device)?);
            }
            return Ok(outs);
        }
        "Constant" => constant(ctx)?,
        "ConstantOfShape" => constant_of_shape(ctx)?,
        "Range" => range(ctx)?,
        "Shape" => {
            let s = ctx.input(0)?.shape();
            let r = s.len() as i64;
            let fix = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let a = fix(ctx.i("start", 0));
            let b = fix(ctx.i("end", r));
            let vals: Vec<i64> = s[a..b.max(a)].iter().map(|&d| d as i64).collect();
            let n = vals.len();
            Value::try_from_i64(vals, &[n], ctx.device, dt::INT64)?
        }
        "Size" => {
            let n: usize = ctx.input(0)?.shape().iter().product();
            Value::try_from_i64(vec![n as i64], &[], ctx.device, dt::INT64)?
        }
        "Cast" => cast(ctx.input(0)?, ctx.i("to", 0) as i32)?,
        "CastLike" => cast(ctx.input(0)?, ctx.input(1)?.elem_type())?,
        "Reshape" => {
            let v = ctx.input(0)?;
            let spec = if ctx.opset < 5 {
                ctx.ints("shape").unwrap_or_default()
            } else {
                ctx.host_ints(1)?.ok_or_else(|| op_err("missing shape"))?
            };
            let s = reshape_target(&v.shape(), &spec, ctx.i("allowzero", 0) != 0)?;
            reshape_value(v, &s)?
        }
        "Flatten" => {
            let v = ctx.input(0)?;
            let s = v.shape();
            let r = s.len() as i64;
            let a = ctx.i("axis", 1);
            let a = if a < 0 { a + r } else { a };
            if a < 0 || a > r {
                return Err(op_err(format!("axis {a} out of range for rank {r}")));
            }
            let a = a as usize;
            let outer: usize = s[..a].iter().product();
            let inner: usize = s[a..].iter().product();
            reshape_value(v, &[outer, inner])?
        }
        "Squeeze" => {
            let v = ctx.input(0)?;
            let s = v.shape();
            let axes = if ctx.opset < 13 {
                ctx.ints("axes")
            } else {
                ctx.host_ints(1)?
            };
            let axes: Vec<usize> = match axes {
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
            reshape_value(v, &out)?
        }
        "Unsqueeze" => {
            let v = ctx.input(0)?;
            let s = v.shape();
            let axes = if ctx.opset < 13 {
                ctx.ints("axes")
            } else {
                ctx.host_ints(1)?
            }
            .ok_or_else(|| op_err("missing axes"))?;
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
            reshape_value(v, &out)?
        }
        "Transpose" => {
            let v = ctx.input(0)?;
            let r = v.shape().len();
            let perm: Vec<usize> = match ctx.ints("perm") {
                Some(p) if !p.is_empty() => host_usizes(p, "perm")?,
                _ => (0..r).rev().collect(),
            };
            map_kind!(v, |t| permute(t, &perm)?)
        }
        "Concat" => {
            let vals: Vec<Value> = ctx.inputs.iter().flatten().cloned().collect();
            let r = vals.first().map(|v| v.shape().len()).unwrap_or(0);
            let axis = norm_axis(ctx.i("axis", 0), r)?;
            concat_values(vals, axis, ctx.device)?
        }
        "Split" => return split(ctx),
        "Slice" => slice(ctx)?,
        "Gather" => gather(ctx)?,
        "Expand" => {
            let v = ctx.input(0)?;
            let spec = host_usizes(
                ctx.host_ints(1)?.ok_or_else(|| op_err("missing shape"))?,
                "dim",
            )?;
            let out = broadcast_shape(&v.shape(), &spec)?;
            if out.contains(&0) {
                return Ok(vec![reshape_value(v, &out)?]);
            }
            map_kind!(v, |t| expand_to(t, &out)?)
        }
        "Tile" => {
            let v = ctx.input(0)?;
            let reps = host_usizes(
                ctx.host_ints(1)?.ok_or_else(|| op_err("missing repeats"))?,
                "repeat",
            )?;
            let s = v.shape();
            if reps.len() != s.len() {
                return Err(op_err(format!("repeats {reps:?} for shape {s:?}")));
            }
            let out: Vec<usize> = s
                .iter()
                .zip(&reps)
                .map(|(a, b)| a.checked_mul(*b).unwrap_or(usize::MAX))
                .collect();
            checked_numel("", "", &out)?;
            if out.contains(&0) {
                let dev = ctx.device;
                return Ok(vec![map_kind!(v, |_t| empty(out.clone(), dev)?)]);
            }
            map_kind!(v, |t| DynTensor::with(
                dyn_map!(t.t, |x, R| x.repeat(&reps)),
                out.clone()
            ))
        }
        "Pad" => pad(ctx)?,
        other => return Err(op_err(format!("{other} is not a shape op"))),
    };
    Ok(vec![out])
}
