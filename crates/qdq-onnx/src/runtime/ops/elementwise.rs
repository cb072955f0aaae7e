//! Elementwise operators: numpy-style broadcasting binary arithmetic, comparisons and
//! logic, n-ary Sum/Max/Min/Mean, Where, and unary math/activations.

use burn::tensor::activation as act;
use burn::tensor::kind::{Basic, Numeric, Ordered};
use burn::tensor::{Float, Int, Tensor};

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::{Dyn, DynTensor, Value, dyn_map, dyn_zip};
use super::{Ctx, as_bool, to_i64};
use crate::proto::elem::{self as dt, dtype_name};

/// numpy broadcast of two shapes, refused above [`crate::runtime::MAX_ELEMENTS`]
/// (`[n, 1] + [1, n]` grows quadratically).
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> RunResult<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(op_err(format!(
                "shapes {a:?} and {b:?} are not broadcastable"
            )));
        };
    }
    checked_numel("", "", &out)?;
    Ok(out)
}

/// Lifts two tensors to a common rank; returns them and the broadcast logical shape.
pub(crate) fn bcast<K: Basic>(
    a: DynTensor<K>,
    b: DynTensor<K>,
) -> RunResult<(Dyn<K>, Dyn<K>, Vec<usize>)> {
    let out = broadcast_shape(&a.shape, &b.shape)?;
    let r = out.len().max(1);
    Ok((a.lift(r)?.t, b.lift(r)?.t, out))
}

/// Expands a tensor to `shape` (broadcasting).
pub(crate) fn expand_to<K: Basic>(a: DynTensor<K>, shape: &[usize]) -> RunResult<DynTensor<K>> {
    broadcast_shape(&a.shape, shape)
        .ok()
        .filter(|s| s.as_slice() == shape)
        .ok_or_else(|| op_err(format!("cannot expand {:?} to {shape:?}", a.shape)))?;
    if a.shape == shape {
        return Ok(a);
    }
    let b = super::super::value::burn_shape(shape);
    let a = a.lift(b.len())?;
    let t = if shape.contains(&0) {
        // burn's expand refuses a 0 in the target (a panic); the result is empty.
        dyn_map!(a.t, |x, R| {
            let options = (&x.device(), x.dtype());
            Tensor::<R, K>::empty(super::super::value::arr::<R>(&b), options)
        })
    } else {
        dyn_map!(a.t, |x, R| x.expand(super::super::value::arr::<R>(&b)))
    };
    Ok(DynTensor::with(t, shape.to_vec()))
}

#[derive(Clone, Copy)]
pub(crate) enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

fn num_bin<K: Numeric + Ordered>(
    a: DynTensor<K>,
    b: DynTensor<K>,
    op: Bin,
) -> RunResult<DynTensor<K>> {
    let (x, y, shape) = bcast(a, b)?;
    let t = match op {
        Bin::Add => dyn_zip!(x, y, |p, q, R| p.add(q)),
        Bin::Sub => dyn_zip!(x, y, |p, q, R| p.sub(q)),
        Bin::Mul => dyn_zip!(x, y, |p, q, R| p.mul(q)),
        Bin::Div => dyn_zip!(x, y, |p, q, R| p.div(q)),
        Bin::Max => dyn_zip!(x, y, |p, q, R| p.max_pair(q)),
        Bin::Min => dyn_zip!(x, y, |p, q, R| p.min_pair(q)),
    }?;
    Ok(DynTensor::with(t, shape))
}

/// The wrapping i64 form of `op`, where burn's integer kernel can overflow.
fn wrapping(op: Bin) -> Option<fn(i64, i64) -> i64> {
    match op {
        Bin::Add => Some(i64::wrapping_add),
        Bin::Sub => Some(i64::wrapping_sub),
        Bin::Mul => Some(i64::wrapping_mul),
        Bin::Div | Bin::Max | Bin::Min => None,
    }
}

/// Binary arithmetic on two values of the same kind.
pub(crate) fn binary(a: Value, b: Value, op: Bin) -> RunResult<Value> {
    match (a, b) {
        (Value::Float(a), Value::Float(b)) => Ok(Value::Float(num_bin(a, b, op)?)),
        (Value::Int(a, e), Value::Int(b, _)) => {
            if matches!(op, Bin::Div) {
                // integer division truncates toward zero (C semantics, as onnxruntime)
                let (x, y, shape) = bcast(a, b)?;
                let t = dyn_zip!(x, y, |p, q, R| {
                    let pf = p.float();
                    let qf = q.float();
                    let d = pf.div(qf);
                    let neg = d.clone().lower_elem(0.0);
                    to_i64(d.clone().floor().mask_where(neg, d.ceil()).int())
                })?;
                return Ok(Value::Int(DynTensor::with(t, shape), e));
            }
            if let Some(f) = wrapping(op) {
                // burn-flex adds, subtracts and multiplies i64 with plain operators,
                // which panic on overflow where debug assertions are on (found by the
                // `runtime_graph` fuzz target); ONNX wraps, so compute on the host
                // (integer tensors here are shape arithmetic, small).
                let shape = broadcast_shape(&a.shape, &b.shape)?;
                checked_numel("", "", &shape)?;
                let device = a.device();
                let x = expand_to(a, &shape)?.to_vec()?;
                let y = expand_to(b, &shape)?.to_vec()?;
                let v: Vec<i64> = x.iter().zip(&y).map(|(p, q)| f(*p, *q)).collect();
                let Value::Int(r, _) = Value::try_from_i64(v, &shape, &device, e)? else {
                    return Err(op_err("internal: integer arithmetic"));
                };
                return Ok(Value::Int(wrap_int(r, e), e));
            }
            let r = num_bin(a, b, op)?;
            Ok(Value::Int(wrap_int(r, e), e))
        }
        (a, b) => Err(op_err(format!(
            "operands must have the same type, got {} and {}",
            dtype_name(a.elem_type()),
            dtype_name(b.elem_type())
        ))),
    }
}

/// Wraps integer results into the range of narrow ONNX integer types.
fn wrap_int(t: DynTensor<Int>, e: i32) -> DynTensor<Int> {
    let (m, signed) = match e {
        dt::UINT8 => (256i64, false),
        dt::INT8 => (256, true),
        dt::UINT16 => (65536, false),
        dt::INT16 => (65536, true),
        _ => return t,
    };
    let shape = t.shape.clone();
    let r = dyn_map!(t.t, |x, R| {
        let w = x.remainder_scalar(m);
        let w = w.clone().add_scalar(m).remainder_scalar(m);
        if signed {
            let hi = w.clone().greater_equal_elem(m / 2);
            w.clone().mask_where(hi, w.sub_scalar(m))
        } else {
            w
        }
    });
    DynTensor::with(r, shape)
}

fn pow(a: Value, b: Value) -> RunResult<Value> {
    let int_out = match &a {
        Value::Int(_, e) => Some(*e),
        _ => None,
    };
    let x = super::as_float(a)?;
    let y = super::as_float(b)?;
    let (p, q, shape) = bcast(x, y)?;
    let t = dyn_zip!(p, q, |u, v, R| pow_t(u, v))?;
    let out = DynTensor::with(t, shape);
    Ok(match int_out {
        Some(e) => {
            let r = dyn_map!(out.t, |x, R| x.round());
            super::float_to_int(DynTensor::with(r, out.shape), e)
        }
        None => Value::Float(out),
    })
}

/// `x^y` with numpy semantics for negative bases and integral exponents.
fn pow_t<const D: usize>(x: Tensor<D>, y: Tensor<D>) -> Tensor<D> {
    let mag = x.clone().abs().powf(y.clone());
    let neg = x.lower_elem(0.0);
    let odd = y.clone().remainder_scalar(2.0).abs().equal_elem(1.0);
    let integral = y.clone().equal(y.clone().round());
    let nan = neg.clone().bool_and(integral.bool_not());
    let flip = neg.bool_and(odd);
    mag.clone()
        .mask_where(flip, mag.neg())
        .mask_fill(nan, f32::NAN)
}

fn compare(a: Value, b: Value, op: &str) -> RunResult<Value> {
    macro_rules! cmp {
        ($x:expr, $y:expr) => {{
            let (x, y, shape) = bcast($x, $y)?;
            let t = match op {
                "Equal" => dyn_zip!(x, y, |p, q, R| p.equal(q)),
                "Greater" => dyn_zip!(x, y, |p, q, R| p.greater(q)),
                "Less" => dyn_zip!(x, y, |p, q, R| p.lower(q)),
                "GreaterOrEqual" => dyn_zip!(x, y, |p, q, R| p.greater_equal(q)),
                _ => dyn_zip!(x, y, |p, q, R| p.lower_equal(q)),
            }?;
            Ok(Value::Bool(DynTensor::with(t, shape)))
        }};
    }
    match (a, b) {
        (Value::Float(a), Value::Float(b)) => cmp!(a, b),
        (Value::Int(a, _), Value::Int(b, _)) => cmp!(a, b),
        (Value::Bool(a), Value::Bool(b)) if op == "Equal" => {
            let (x, y, shape) = bcast(a, b)?;
            let t = dyn_zip!(x, y, |p, q, R| p.equal(q))?;
            Ok(Value::Bool(DynTensor::with(t, shape)))
        }
        (a, b) => Err(op_err(format!(
            "operands must have the same type, got {} and {}",
            dtype_name(a.elem_type()),
            dtype_name(b.elem_type())
        ))),
    }
}

fn logic(a: Value, b: Value, op: &str) -> RunResult<Value> {
    let (x, y, shape) = bcast(as_bool(a)?, as_bool(b)?)?;
    let t = match op {
        "And" => dyn_zip!(x, y, |p, q, R| p.bool_and(q)),
        "Or" => dyn_zip!(x, y, |p, q, R| p.bool_or(q)),
        _ => dyn_zip!(x, y, |p, q, R| p.bool_xor(q)),
    }?;
    Ok(Value::Bool(DynTensor::with(t, shape)))
}

/// `Where(cond, x, y)` with three-way broadcasting.
pub(crate) fn where_(c: Value, x: Value, y: Value) -> RunResult<Value> {
    let c = as_bool(c)?;
    let shape = broadcast_shape(&c.shape, &broadcast_shape(&x.shape(), &y.shape())?)?;
    let c = expand_to(c, &shape)?;
    macro_rules! sel {
        ($x:expr, $y:expr) => {{
            let xs = expand_to($x, &shape)?;
            let ys = expand_to($y, &shape)?;
            let cc = c.t;
            let t = dyn_zip!(ys.t, xs.t, |q, p, R| {
                q.mask_where(
                    DynTensor::with(cc.clone(), shape.clone()).to_rank::<R>()?,
                    p,
                )
            })?;
            DynTensor::with(t, shape.clone())
        }};
    }
    match (x, y) {
        (Value::Float(a), Value::Float(b)) => Ok(Value::Float(sel!(a, b))),
        (Value::Int(a, e), Value::Int(b, _)) => Ok(Value::Int(sel!(a, b), e)),
        (Value::Bool(a), Value::Bool(b)) => Ok(Value::Bool(sel!(a, b))),
        (a, b) => Err(op_err(format!(
            "Where branches must have the same type, got {} and {}",
            dtype_name(a.elem_type()),
            dtype_name(b.elem_type())
        ))),
    }
}

fn unary_float(t: DynTensor<Float>, op: &str, ctx: &Ctx) -> RunResult<DynTensor<Float>> {
    // On the host in one vectorized pass where it can (burn's CPU backend calls
    // scalar libm).
    if super::host_unary::handles(&t, op, ctx) {
        return super::host_unary::run(t, op);
    }
    let shape = t.shape.clone();
    let x = t.t;
    let alpha = |d: f32| ctx.float_attr("alpha", d) as f64;
    let out = match op {
        "Relu" => dyn_map!(x, |t, R| act::relu(t)),
        "Sigmoid" => dyn_map!(x, |t, R| act::sigmoid(t)),
        "Tanh" => dyn_map!(x, |t, R| t.tanh()),
        "Exp" => dyn_map!(x, |t, R| t.exp()),
        "Log" => dyn_map!(x, |t, R| t.log()),
        "Sqrt" => dyn_map!(x, |t, R| t.sqrt()),
        "Abs" => dyn_map!(x, |t, R| t.abs()),
        "Neg" => dyn_map!(x, |t, R| t.neg()),
        "Reciprocal" => dyn_map!(x, |t, R| t.recip()),
        "Floor" => dyn_map!(x, |t, R| t.floor()),
        "Ceil" => dyn_map!(x, |t, R| t.ceil()),
        "Round" => dyn_map!(x, |t, R| t.round()),
        "Sign" => dyn_map!(x, |t, R| t.sign()),
        "Sin" => dyn_map!(x, |t, R| t.sin()),
        "Cos" => dyn_map!(x, |t, R| t.cos()),
        "Tan" => dyn_map!(x, |t, R| t.tan()),
        "Asin" => dyn_map!(x, |t, R| t.asin()),
        "Acos" => dyn_map!(x, |t, R| t.acos()),
        "Atan" => dyn_map!(x, |t, R| t.atan()),
        "Sinh" => dyn_map!(x, |t, R| t.sinh()),
        "Cosh" => dyn_map!(x, |t, R| t.cosh()),
        "Asinh" => dyn_map!(x, |t, R| t.asinh()),
        "Acosh" => dyn_map!(x, |t, R| t.acosh()),
        "Atanh" => dyn_map!(x, |t, R| t.atanh()),
        "Softplus" => dyn_map!(x, |t, R| {
            // log(1 + e^x), stable for large x
            let big = t.clone().greater_elem(20.0);
            t.clone().exp().log1p().mask_where(big, t)
        }),
        "Softsign" => dyn_map!(x, |t, R| t.clone().div(t.abs().add_scalar(1.0))),
        "LeakyRelu" => {
            let a = alpha(0.01);
            dyn_map!(x, |t, R| act::leaky_relu(t, a))
        }
        "Elu" => {
            let a = alpha(1.0);
            dyn_map!(x, |t, R| elu(t, a))
        }
        "Celu" => {
            let a = alpha(1.0);
            dyn_map!(x, |t, R| {
                let e = t.clone().div_scalar(a).exp().sub_scalar(1.0).mul_scalar(a);
                t.clamp_min(0.0).add(e.clamp_max(0.0))
            })
        }
        "Selu" => {
            let a = ctx.float_attr("alpha", 1.673_263_2) as f64;
            let g = ctx.float_attr("gamma", 1.050_701) as f64;
            dyn_map!(x, |t, R| elu(t, a).mul_scalar(g))
        }
        "ThresholdedRelu" => {
            let a = alpha(1.0);
            dyn_map!(x, |t, R| {
                let m = t.clone().lower_equal_elem(a);
                t.mask_fill(m, 0.0)
            })
        }
        "HardSigmoid" => {
            let a = alpha(0.2);
            let b = ctx.float_attr("beta", 0.5) as f64;
            dyn_map!(x, |t, R| act::hard_sigmoid(t, a, b))
        }
        "HardSwish" => dyn_map!(x, |t, R| act::hard_swish(t)),
        "Erf" => dyn_map!(x, |t, R| t.erf()),
        "Gelu" => match ctx.string_attr("approximate", "none").as_str() {
            "none" => dyn_map!(x, |t, R| act::gelu(t)),
            "tanh" => dyn_map!(x, |t, R| act::gelu_approximate(t)),
            o => return Err(op_err(format!("unknown Gelu approximate `{o}`"))),
        },
        "Identity" => x,
        other => return Err(op_err(format!("{other} is not a float unary op"))),
    };
    Ok(DynTensor::with(out, shape))
}

fn elu<const D: usize>(t: Tensor<D>, a: f64) -> Tensor<D> {
    let neg = t.clone().exp().sub_scalar(1.0).mul_scalar(a);
    let m = t.clone().lower_elem(0.0);
    t.mask_where(m, neg)
}

fn clip(ctx: &Ctx) -> RunResult<Value> {
    let (lo, hi) = if ctx.opset < 11 {
        (
            ctx.has_attr("min")
                .then(|| ctx.float_attr("min", 0.0) as f64),
            ctx.has_attr("max")
                .then(|| ctx.float_attr("max", 0.0) as f64),
        )
    } else {
        (ctx.host_scalar(1)?, ctx.host_scalar(2)?)
    };
    match ctx.input(0)? {
        Value::Float(t) => {
            let mut x = t.t;
            if let Some(l) = lo {
                x = dyn_map!(x, |t, R| t.clamp_min(l));
            }
            if let Some(h) = hi {
                x = dyn_map!(x, |t, R| t.clamp_max(h));
            }
            Ok(Value::Float(DynTensor::with(x, t.shape)))
        }
        Value::Int(t, e) => {
            let mut x = t.t;
            if let Some(l) = lo {
                x = dyn_map!(x, |t, R| t.clamp_min(l as i64));
            }
            if let Some(h) = hi {
                x = dyn_map!(x, |t, R| t.clamp_max(h as i64));
            }
            Ok(Value::Int(DynTensor::with(x, t.shape), e))
        }
        Value::Bool(_) => Err(op_err("Clip of a bool tensor")),
        v => Err(v.not_a_tensor()),
    }
}

fn prelu(x: DynTensor<Float>, slope: DynTensor<Float>) -> RunResult<Value> {
    // PRelu's slope broadcasts unidirectionally to x (numpy rules).
    let (a, s, shape) = bcast(x, slope)?;
    let t = dyn_zip!(a, s, |p, q, R| {
        let m = p.clone().lower_elem(0.0);
        p.clone().mask_where(m, p.mul(q))
    })?;
    Ok(Value::Float(DynTensor::with(t, shape)))
}

/// Runs an elementwise op.
pub(crate) fn run(ctx: &mut Ctx, op: &str) -> RunResult<Vec<Value>> {
    let out = match op {
        "Add" | "Sub" | "Mul" | "Div" => {
            let b = match op {
                "Add" => Bin::Add,
                "Sub" => Bin::Sub,
                "Mul" => Bin::Mul,
                _ => Bin::Div,
            };
            // Taken, not cloned: the result may reuse an operand's buffer.
            binary(ctx.take(0)?, ctx.take(1)?, b)?
        }
        "Pow" => pow(ctx.input(0)?, ctx.input(1)?)?,
        "Sum" | "Max" | "Min" | "Mean" => {
            let b = match op {
                "Max" => Bin::Max,
                "Min" => Bin::Min,
                _ => Bin::Add,
            };
            let vals: Vec<Value> = ctx.inputs.iter().flatten().cloned().collect();
            let n = vals.len();
            let mut it = vals.into_iter();
            let mut acc = it
                .next()
                .ok_or_else(|| op_err(format!("{op} needs at least one input")))?;
            for v in it {
                acc = binary(acc, v, b)?;
            }
            if op == "Mean" {
                match acc {
                    Value::Float(t) => Value::Float(DynTensor::with(
                        dyn_map!(t.t, |x, R| x.div_scalar(n as f32)),
                        t.shape,
                    )),
                    _ => return Err(op_err("Mean of non-float tensors")),
                }
            } else {
                acc
            }
        }
        "Equal" | "Greater" | "Less" | "GreaterOrEqual" | "LessOrEqual" => {
            compare(ctx.input(0)?, ctx.input(1)?, op)?
        }
        "And" | "Or" | "Xor" => logic(ctx.input(0)?, ctx.input(1)?, op)?,
        "Not" => {
            let t = as_bool(ctx.input(0)?)?;
            Value::Bool(DynTensor::with(dyn_map!(t.t, |x, R| x.bool_not()), t.shape))
        }
        "Where" => where_(ctx.input(0)?, ctx.input(1)?, ctx.input(2)?)?,
        "Clip" => clip(ctx)?,
        "PRelu" => prelu(ctx.float(0)?, ctx.float(1)?)?,
        _ => match ctx.take(0)? {
            Value::Float(t) => Value::Float(unary_float(t, op, ctx)?),
            Value::Int(t, e) => {
                let shape = t.shape.clone();
                let x = t.t;
                let r = match op {
                    "Abs" => dyn_map!(x, |t, R| t.abs()),
                    "Neg" => dyn_map!(x, |t, R| t.neg()),
                    "Sign" => dyn_map!(x, |t, R| t.sign()),
                    "Relu" => dyn_map!(x, |t, R| t.clamp_min(0)),
                    "Identity" => x,
                    _ => {
                        return Err(op_err(format!(
                            "{op} of a {} tensor is not supported",
                            dtype_name(e)
                        )));
                    }
                };
                Value::Int(DynTensor::with(r, shape), e)
            }
            Value::Bool(t) if op == "Identity" => Value::Bool(t),
            Value::Bool(_) => return Err(op_err(format!("{op} of a bool tensor"))),
            v => return Err(v.not_a_tensor()),
        },
    };
    Ok(vec![out])
}
