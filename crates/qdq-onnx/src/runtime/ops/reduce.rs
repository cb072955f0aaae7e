//! Reductions (Reduce* with axes as attribute or input depending on opset, keepdims,
//! noop_with_empty_axes) and ArgMax/ArgMin.

use super::super::error::{RunResult, op_err};
use super::super::value::{DynTensor, Value, dyn_map};
use super::{Ctx, as_float, float_to_int, norm_axis, to_i64};
use crate::proto::elem as dt;

pub(crate) fn reduce(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let v = ctx.input(0)?;
    let int_type = match &v {
        Value::Int(_, e) => Some(*e),
        Value::Float(_) => None,
        Value::Bool(_) => return Err(op_err(format!("{op} of a bool tensor"))),
        v => return Err(v.not_a_tensor()),
    };
    let x = as_float(v)?;
    let r = x.rank();
    let axes_as_input = if op == "ReduceSum" {
        ctx.opset >= 13
    } else {
        ctx.opset >= 18
    };
    let axes = if axes_as_input {
        ctx.host_ints(1)?
    } else {
        ctx.ints_attr("axes")
    };
    let keep = ctx.int_attr("keepdims", 1) != 0;
    let axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => {
            let mut v = a
                .iter()
                .map(|&x| norm_axis(x, r))
                .collect::<RunResult<Vec<_>>>()?;
            v.sort_unstable();
            v.dedup();
            v
        }
        _ => {
            if ctx.int_attr("noop_with_empty_axes", 0) != 0 {
                return Ok(vec![match int_type {
                    Some(e) => float_to_int(x, e),
                    None => Value::Float(x),
                }]);
            }
            (0..r).collect()
        }
    };
    if axes.iter().any(|&a| x.shape[a] == 0) {
        return Err(op_err(format!("{op} over an empty axis is not supported")));
    }
    let mut shape = x.shape.clone();
    let mut t = x.t;
    // pre-map
    t = match op {
        "ReduceL1" => dyn_map!(t, |v, R| v.abs()),
        "ReduceL2" | "ReduceSumSquare" => dyn_map!(t, |v, R| v.powi_scalar(2)),
        _ => t,
    };
    let mut lse_max = None;
    if op == "ReduceLogSumExp" {
        let mut m = t.clone();
        for &a in &axes {
            m = dyn_map!(m, |v, R| v.max_dim(a));
        }
        let m = DynTensor::with(m, {
            let mut s = shape.clone();
            for &a in &axes {
                s[a] = 1;
            }
            s
        });
        let (xt, mt, _) = super::elementwise::bcast(DynTensor::with(t, shape.clone()), m.clone())?;
        t = super::super::value::dyn_zip!(xt, mt, |p, q, R| p.sub(q).exp())?;
        lse_max = Some(m);
    }
    for &a in &axes {
        t = match op {
            "ReduceMean" => dyn_map!(t, |v, R| v.mean_dim(a)),
            "ReduceMax" => dyn_map!(t, |v, R| v.max_dim(a)),
            "ReduceMin" => dyn_map!(t, |v, R| v.min_dim(a)),
            "ReduceProd" => dyn_map!(t, |v, R| v.prod_dim(a)),
            _ => dyn_map!(t, |v, R| v.sum_dim(a)),
        };
        shape[a] = 1;
    }
    t = match op {
        "ReduceL2" => dyn_map!(t, |v, R| v.sqrt()),
        "ReduceLogSum" => dyn_map!(t, |v, R| v.log()),
        "ReduceLogSumExp" => {
            let m = lse_max.ok_or_else(|| op_err("internal"))?;
            super::super::value::dyn_zip!(t, m.t, |p, q, R| p.log().add(q))?
        }
        _ => t,
    };
    let mut y = DynTensor::with(t, shape.clone());
    if !keep {
        let s: Vec<usize> = (0..r)
            .filter(|i| !axes.contains(i))
            .map(|i| shape[i])
            .collect();
        y = y.reshape(&s)?;
    }
    Ok(vec![match int_type {
        Some(e) => float_to_int(DynTensor::with(dyn_map!(y.t, |v, R| v.round()), y.shape), e),
        None => Value::Float(y),
    }])
}

pub(crate) fn arg(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let x = as_float(ctx.input(0)?)?;
    let r = x.rank();
    let axis = norm_axis(ctx.int_attr("axis", 0), r)?;
    let keep = ctx.int_attr("keepdims", 1) != 0;
    let last = ctx.int_attr("select_last_index", 0) != 0;
    let d = x.shape[axis];
    if d == 0 {
        // No element to point at: ONNX leaves it undefined, burn's kernel panics.
        return Err(op_err(format!(
            "{op} over axis {axis} of size 0 (shape {:?}) has no index to return",
            x.shape
        )));
    }
    let mut shape = x.shape.clone();
    let mut t = x.t;
    if last {
        t = dyn_map!(t, |v, R| v.flip([axis as isize]));
    }
    let idx = if op == "ArgMax" {
        dyn_map!(t, |v, R| to_i64(v.argmax(axis)))
    } else {
        dyn_map!(t, |v, R| to_i64(v.argmin(axis)))
    };
    let idx = if last {
        dyn_map!(idx, |v, R| v.neg().add_scalar(d as i64 - 1))
    } else {
        idx
    };
    shape[axis] = 1;
    let mut y = DynTensor::with(idx, shape.clone());
    if !keep {
        let s: Vec<usize> = (0..r).filter(|&i| i != axis).map(|i| shape[i]).collect();
        y = y.reshape(&s)?;
    }
    Ok(vec![Value::Int(y, dt::INT64)])
}
