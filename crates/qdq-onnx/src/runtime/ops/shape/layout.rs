//! Ops that move or repeat values: Transpose, Concat, Expand, Tile, and the
//! tensor helpers (permute, cat, narrow, select) other kernels share.

use super::*;

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

/// [`select`] of float values, by row copies on the host when the values are a CPU
/// tensor read in place: burn-flex's select computes every element's source index
/// through a closure, and Resize's nearest and linear taps on a detector's largest maps
/// were 6 % of its calibration.
pub(crate) fn select_float(
    t: DynTensor<Float>,
    axis: usize,
    idx: &[usize],
) -> RunResult<DynTensor<Float>> {
    // Only a tensor read in place: anything else (another backend, a gradient, a
    // strided view) keeps burn's select rather than being copied to be discarded.
    let shared = match t.shape.contains(&0) {
        true => None,
        false => t.shared_host(),
    };
    let Some(host) = shared else {
        return select(t, axis, idx);
    };
    let len = t.shape[axis];
    if let Some(&bad) = idx.iter().find(|&&i| i >= len) {
        return Err(op_err(format!(
            "index {bad} out of bounds for axis {axis} of size {len}"
        )));
    }
    let inner: usize = t.shape[axis + 1..].iter().product();
    let mut shape = t.shape.clone();
    shape[axis] = idx.len();
    let n = checked_numel("", "", &shape)?;
    let block = idx.len() * inner;
    let mut out = vec![0f32; n];
    if block > 0 {
        let src: &[f32] = &host;
        out.par_chunks_mut(block)
            .zip(src.par_chunks(len * inner))
            .for_each(|(dst, from)| {
                if inner == 1 {
                    dst.iter_mut().zip(idx).for_each(|(d, &i)| *d = from[i]);
                } else {
                    for (d, &i) in dst.chunks_mut(inner).zip(idx) {
                        d.copy_from_slice(&from[i * inner..(i + 1) * inner]);
                    }
                }
            });
    }
    match Value::try_from_f32(out, &shape, &t.device())? {
        Value::Float(f) => Ok(f),
        v => Err(v.not_a_tensor()),
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
        v => return Err(v.not_a_tensor()),
    })
}

/// `Transpose` by `perm` (reversed axes by default).
pub(super) fn transpose(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let r = v.shape().len();
    let perm: Vec<usize> = match ctx.ints_attr("perm") {
        Some(p) if !p.is_empty() => host_usizes(p, "perm")?,
        _ => (0..r).rev().collect(),
    };
    Ok(map_kind!(v, |t| permute(t, &perm)?))
}

/// `Concat` of every input along `axis`.
pub(super) fn concat(ctx: &Ctx) -> RunResult<Value> {
    let vals: Vec<Value> = ctx.inputs.iter().flatten().cloned().collect();
    let r = vals.first().map(|v| v.shape().len()).unwrap_or(0);
    let axis = norm_axis(ctx.int_attr("axis", 0), r)?;
    concat_values(vals, axis, ctx.device)
}

/// `Expand`: numpy broadcast to the given shape.
pub(super) fn expand(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let spec = host_usizes(
        ctx.host_ints(1)?.ok_or_else(|| op_err("missing shape"))?,
        "dim",
    )?;
    let out = broadcast_shape(&v.shape(), &spec)?;
    if out.contains(&0) {
        return reshape_value(v, &out);
    }
    Ok(map_kind!(v, |t| expand_to(t, &out)?))
}

/// `Tile`: each axis repeated.
pub(super) fn tile(ctx: &Ctx) -> RunResult<Value> {
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
        return Ok(map_kind!(v, |_t| empty(out.clone(), dev)?));
    }
    Ok(map_kind!(v, |t| DynTensor::with(
        dyn_map!(t.t, |x, R| x.repeat(&reps)),
        out.clone()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: Vec<f32>, shape: &[usize]) -> DynTensor<Float> {
        match Value::from_f32(v, shape, &Device::flex()) {
            Value::Float(t) => t,
            _ => unreachable!(),
        }
    }

    /// The host copy agrees with burn's select on every axis, with repeats, reversed
    /// and dropped entries, and refuses an index past the axis by name.
    #[test]
    fn select_float_equals_select_on_every_axis() {
        let shape = [2, 3, 4];
        let x = float((0..24).map(|i| i as f32 * 0.5 - 3.0).collect(), &shape);
        for (axis, &n) in shape.iter().enumerate() {
            for idx in [
                vec![0],
                vec![n - 1, 0, 0, n - 1],
                (0..n).rev().collect(),
                vec![],
            ] {
                let want = select(x.clone(), axis, &idx).unwrap();
                let got = select_float(x.clone(), axis, &idx).unwrap();
                assert_eq!(got.shape, want.shape, "axis {axis} {idx:?}");
                assert_eq!(
                    got.to_vec().unwrap(),
                    want.to_vec().unwrap(),
                    "axis {axis} {idx:?}"
                );
            }
            let e = select_float(x.clone(), axis, &[n]).unwrap_err().to_string();
            assert!(
                e.contains(&format!("index {n} out of bounds for axis {axis}")),
                "{e}"
            );
        }
    }
}
