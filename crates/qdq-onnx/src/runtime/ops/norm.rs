//! Normalizations (BatchNormalization at inference, InstanceNormalization,
//! LayerNormalization) and Softmax/LogSoftmax with the opset < 13 2-D coercion.

use burn::tensor::Float;
use burn::tensor::activation::{log_softmax, softmax as burn_softmax};

use super::super::error::{RunResult, op_err};
use super::super::value::{DynTensor, Value, dyn_map};
use super::elementwise::{Bin, binary};
use super::{Ctx, norm_axis};

fn f(t: DynTensor<Float>) -> Value {
    Value::Float(t)
}

fn map_f(v: Value, op: impl Fn(DynTensor<Float>) -> DynTensor<Float>) -> RunResult<Value> {
    match v {
        Value::Float(t) => Ok(Value::Float(op(t))),
        _ => Err(op_err("internal: expected float")),
    }
}

/// Mean over `axes` keeping dims.
fn mean_axes(t: DynTensor<Float>, axes: &[usize]) -> DynTensor<Float> {
    let mut shape = t.shape.clone();
    let mut x = t.t;
    for &a in axes {
        x = dyn_map!(x, |v, R| v.mean_dim(a));
        shape[a] = 1;
    }
    DynTensor::with(x, shape)
}

/// Per-channel params `[C]` as `[1, C, 1, ...]` for an input of rank `r`.
fn chan(p: DynTensor<Float>, c: usize, r: usize, what: &str) -> RunResult<DynTensor<Float>> {
    if p.shape != [c] {
        return Err(op_err(format!(
            "{what} has shape {:?}, expected [{c}]",
            p.shape
        )));
    }
    let mut s = vec![1; r];
    s[1] = c;
    p.reshape(&s)
}

pub(crate) fn batch_norm(ctx: &Ctx) -> RunResult<Vec<Value>> {
    if ctx.int_attr("training_mode", 0) != 0
        || ctx.node.output.iter().skip(1).any(|o| !o.is_empty())
    {
        return Err(op_err(
            "BatchNormalization in training mode is not supported",
        ));
    }
    let x = ctx.float(0)?;
    let r = x.rank();
    if r < 2 {
        return Err(op_err(format!("input {:?} has no channel axis", x.shape)));
    }
    let c = x.shape[1];
    let eps = ctx.float_attr("epsilon", 1e-5);
    let scale = chan(ctx.float(1)?, c, r, "scale")?;
    let bias = chan(ctx.float(2)?, c, r, "B")?;
    let mean = chan(ctx.float(3)?, c, r, "mean")?;
    let var = chan(ctx.float(4)?, c, r, "var")?;
    let inv = map_f(f(var), |v| {
        DynTensor::with(
            dyn_map!(v.t, |t, R| t.add_scalar(eps).sqrt().recip()),
            v.shape,
        )
    })?;
    let a = binary(f(scale), inv, Bin::Mul)?;
    let b = binary(f(bias), binary(f(mean), a.clone(), Bin::Mul)?, Bin::Sub)?;
    let y = binary(binary(f(x), a, Bin::Mul)?, b, Bin::Add)?;
    Ok(vec![y])
}

/// (x - mean) / sqrt(var + eps) over `axes`; returns also mean and 1/std.
fn normalize(x: DynTensor<Float>, axes: &[usize], eps: f32) -> RunResult<(Value, Value, Value)> {
    let mean = mean_axes(x.clone(), axes);
    let d = binary(f(x), f(mean.clone()), Bin::Sub)?;
    let Value::Float(dt) = d.clone() else {
        return Err(op_err("internal"));
    };
    let sq = DynTensor::with(dyn_map!(dt.t, |t, R| t.powi_scalar(2)), dt.shape);
    let var = mean_axes(sq, axes);
    let inv = DynTensor::with(
        dyn_map!(var.t, |t, R| t.add_scalar(eps).sqrt().recip()),
        var.shape,
    );
    let y = binary(d, f(inv.clone()), Bin::Mul)?;
    Ok((y, f(mean), f(inv)))
}

pub(crate) fn instance_norm(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = ctx.float(0)?;
    let r = x.rank();
    if r < 3 {
        return Err(op_err(format!("input {:?} needs N x C x spatial", x.shape)));
    }
    let c = x.shape[1];
    let scale = chan(ctx.float(1)?, c, r, "scale")?;
    let bias = chan(ctx.float(2)?, c, r, "B")?;
    let axes: Vec<usize> = (2..r).collect();
    let (y, _, _) = normalize(x, &axes, ctx.float_attr("epsilon", 1e-5))?;
    let y = binary(binary(y, f(scale), Bin::Mul)?, f(bias), Bin::Add)?;
    Ok(vec![y])
}

pub(crate) fn layer_norm(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = ctx.float(0)?;
    let r = x.rank();
    let axis = norm_axis(ctx.int_attr("axis", -1), r)?;
    let axes: Vec<usize> = (axis..r).collect();
    let (mut y, mean, inv) = normalize(x, &axes, ctx.float_attr("epsilon", 1e-5))?;
    y = binary(y, ctx.input(1)?, Bin::Mul)?;
    if let Some(b) = ctx.opt(2) {
        y = binary(y, b, Bin::Add)?;
    }
    let mut outs = vec![y];
    if ctx.wants_output(1) || ctx.wants_output(2) {
        outs.push(mean);
        outs.push(inv);
    }
    Ok(outs)
}

pub(crate) fn softmax(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let x = ctx.float(0)?;
    let shape = x.shape.clone();
    let r = shape.len();
    if r == 0 {
        return Err(op_err(format!("{op} of a scalar")));
    }
    if shape.contains(&0) {
        // Nothing to normalize; burn's max over an empty axis would panic.
        return Ok(vec![Value::Float(x)]);
    }
    let log = op == "LogSoftmax";
    let run = |t: DynTensor<Float>, axis: usize| {
        let s = t.shape.clone();
        let y = if log {
            dyn_map!(t.t, |v, R| log_softmax(v, axis))
        } else {
            dyn_map!(t.t, |v, R| burn_softmax(v, axis))
        };
        DynTensor::with(y, s)
    };
    let y = if ctx.opset < 13 {
        // coerce to 2-D [prod(shape[..axis]), prod(shape[axis..])] and normalize rows
        let axis = norm_axis(ctx.int_attr("axis", 1), r)?;
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis..].iter().product();
        run(x.reshape(&[outer, inner])?, 1).reshape(&shape)?
    } else {
        let axis = norm_axis(ctx.int_attr("axis", -1), r)?;
        run(x, axis)
    };
    Ok(vec![Value::Float(y)])
}
