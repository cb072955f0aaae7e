//! TopK: the `K` largest (or smallest) entries along `axis`, with their int64 indices.
//! On the host, with a stable sort, because ONNX orders equal values by lower index
//! and burn's sorts are unstable. `sorted = 0` also returns them sorted (allowed: the
//! order is then unspecified).

use std::cmp::Ordering;

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::{Ctx, norm_axis};
use crate::proto::elem as dt;

/// Positions along one line of length `n`, best first; `cmp` orders values.
fn best<T: Copy>(line: &[T], k: usize, cmp: impl Fn(&T, &T) -> Ordering) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..line.len()).collect();
    // stable: equal values keep the lower index first
    idx.sort_by(|&a, &b| cmp(&line[a], &line[b]));
    idx.truncate(k);
    idx
}

/// Picks `k` entries along `axis` of row-major `data` shaped `shape`: (values, indices).
fn take_k<T: Copy>(
    data: &[T],
    shape: &[usize],
    axis: usize,
    k: usize,
    cmp: impl Fn(&T, &T) -> Ordering,
) -> (Vec<T>, Vec<i64>) {
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let mut vals = Vec::with_capacity(outer * k * inner);
    let mut idxs = Vec::with_capacity(outer * k * inner);
    let mut out_v = vec![Vec::new(); inner];
    let mut out_i = vec![Vec::new(); inner];
    let mut line = Vec::with_capacity(n);
    for o in 0..outer {
        for i in 0..inner {
            line.clear();
            line.extend((0..n).map(|j| data[(o * n + j) * inner + i]));
            let picked = best(&line, k, &cmp);
            out_v[i] = picked.iter().map(|&j| line[j]).collect();
            out_i[i] = picked.iter().map(|&j| j as i64).collect();
        }
        for j in 0..k {
            for i in 0..inner {
                vals.push(out_v[i][j]);
                idxs.push(out_i[i][j]);
            }
        }
    }
    (vals, idxs)
}

/// TopK (opset 1's `k` attribute, 10+'s `K` input; `largest`, `sorted` from 11).
pub(crate) fn topk(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = ctx.input(0)?;
    let shape = x.shape();
    if shape.is_empty() {
        return Err(op_err("TopK of a scalar"));
    }
    let axis = norm_axis(ctx.int_attr("axis", -1), shape.len())?;
    let k = match ctx.host_ints(1)? {
        Some(v) if v.len() == 1 => v[0],
        Some(v) => return Err(op_err(format!("K must hold one value, got {v:?}"))),
        None => ctx.int_attr("k", -1),
    };
    if k < 0 || k as usize > shape[axis] {
        return Err(op_err(format!(
            "K = {k} is out of range for axis {axis} of size {}",
            shape[axis]
        )));
    }
    let k = k as usize;
    let largest = ctx.int_attr("largest", 1) != 0;
    let mut out_shape = shape.clone();
    out_shape[axis] = k;
    checked_numel("", "", &out_shape)?;
    let dev = ctx.device;
    // NaN counts as the largest value (as numpy and ONNX Runtime order it)
    let order = |a: &f32, b: &f32| match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    };
    let (values, idx) = match &x {
        Value::Float(t) => {
            let data = t.to_vec()?;
            let (v, i) = match largest {
                true => take_k(&data, &shape, axis, k, |a, b| order(b, a)),
                false => take_k(&data, &shape, axis, k, order),
            };
            (Value::try_from_f32(v, &out_shape, dev)?, i)
        }
        Value::Int(t, e) => {
            let data = t.to_vec()?;
            let (v, i) = match largest {
                true => take_k(&data, &shape, axis, k, |a, b| b.cmp(a)),
                false => take_k(&data, &shape, axis, k, |a, b| a.cmp(b)),
            };
            (Value::try_from_i64(v, &out_shape, dev, *e)?, i)
        }
        Value::Bool(_) => return Err(op_err("TopK of a bool tensor")),
        v => return Err(v.not_a_tensor()),
    };
    let indices = Value::try_from_i64(idx, &out_shape, dev, dt::INT64)?;
    Ok(vec![values, indices])
}
