//! Integer convolution and quantized linear ops: ConvInteger, QLinearConv and
//! QLinearMatMul. Operands minus zero points run through the float32 Conv / MatMul
//! kernels (exact for int8 sums below 2^24, see [`check_exact`]); requantization follows
//! ONNX's reference (multiplier `x_scale * w_scale / y_scale` in float32, round half to
//! even, saturate to the output type).

use super::super::error::{RunResult, op_err};
use super::super::value::{DynTensor, Value};
use super::host::Host;
use super::integer_quant::{centered, check_exact};
use super::linalg::matmul_t;
use super::{Ctx, conv};
use crate::proto::elem as dt;
use burn::tensor::Float;

/// Runs the float Conv kernel of `ctx`'s node on `x`, `w` and an optional bias.
fn conv_float(
    ctx: &Ctx,
    x: DynTensor<Float>,
    w: DynTensor<Float>,
    bias: Option<Value>,
) -> RunResult<Host> {
    let per_output: usize = w.shape.iter().skip(1).product();
    check_exact(per_output)?;
    let sub = Ctx {
        node: ctx.node,
        opset: ctx.opset,
        inputs: vec![Some(Value::Float(x)), Some(Value::Float(w)), bias],
        device: ctx.device,
    };
    let y = conv::conv(&sub)?
        .into_iter()
        .next()
        .ok_or_else(|| op_err("internal: conv output"))?;
    Host::read(&y)
}

/// ConvInteger(x, w, x_zero_point?, w_zero_point?) → int32, Conv's attributes.
pub(crate) fn conv_integer(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = centered(ctx.input(0)?, ctx.opt(2), usize::MAX, ctx.device)?;
    let w = centered(ctx.input(1)?, ctx.opt(3), 0, ctx.device)?;
    let y = conv_float(ctx, x, w, None)?;
    let v = y.to_f64().iter().map(|&p| p.round() as i64).collect();
    Ok(vec![
        Host::i64(v, dt::INT32, y.shape).into_value(ctx.device)?,
    ])
}

/// One float32 scale, or one per index of the output's channel dim.
fn scales(v: &Value, what: &str) -> RunResult<Vec<f32>> {
    let s = Host::read(v)?.to_f64();
    if s.is_empty() {
        return Err(op_err(format!("{what} is empty")));
    }
    Ok(s.iter().map(|&p| p as f32).collect())
}

/// Requantizes integer accumulators `acc` (channel of element `i` = `chan(i)`) to the
/// type of `y_zp` (uint8 or int8).
fn requantize(
    acc: &[f64],
    mult: &[f32],
    chan: impl Fn(usize) -> usize,
    y_zp: &Value,
    shape: Vec<usize>,
    ctx: &Ctx,
) -> RunResult<Vec<Value>> {
    let e = y_zp.elem_type();
    let (lo, hi) = match e {
        dt::UINT8 => (0.0, 255.0),
        dt::INT8 => (-128.0, 127.0),
        _ => {
            return Err(op_err(format!(
                "output type {} is not supported (int8 or uint8)",
                dt::dtype_name(e)
            )));
        }
    };
    let zp = Host::read(y_zp)?.to_f64().first().copied().unwrap_or(0.0);
    let v = acc
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let m = mult[chan(i) % mult.len()] as f64;
            ((a * m + zp).round_ties_even().clamp(lo, hi)) as i64
        })
        .collect();
    Ok(vec![Host::i64(v, e, shape).into_value(ctx.device)?])
}

/// QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp) (per-tensor).
pub(crate) fn qlinear_matmul(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let a = ctx.input(0)?;
    check_exact(a.shape().last().copied().unwrap_or(0))?;
    let a = centered(a, ctx.opt(2), usize::MAX, ctx.device)?;
    let b = centered(ctx.input(3)?, ctx.opt(5), usize::MAX, ctx.device)?;
    let (sa, sb, sy) = (
        scales(&ctx.input(1)?, "a_scale")?,
        scales(&ctx.input(4)?, "b_scale")?,
        scales(&ctx.input(6)?, "y_scale")?,
    );
    if sa.len() != 1 || sb.len() != 1 || sy.len() != 1 {
        return Err(op_err("only per-tensor scales are supported"));
    }
    let mult = [sa[0] * sb[0] / sy[0]];
    let y = Host::read(&Value::Float(matmul_t(a, b)?))?;
    requantize(&y.to_f64(), &mult, |_| 0, &ctx.input(7)?, y.shape, ctx)
}

/// QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B? int32): `w_scale`
/// and `w_zp` per tensor or per output channel.
pub(crate) fn qlinear_conv(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = centered(ctx.input(0)?, ctx.opt(2), usize::MAX, ctx.device)?;
    let w = centered(ctx.input(3)?, ctx.opt(5), 0, ctx.device)?;
    let m = w.shape.first().copied().unwrap_or(0);
    let (sx, sw, sy) = (
        scales(&ctx.input(1)?, "x_scale")?,
        scales(&ctx.input(4)?, "w_scale")?,
        scales(&ctx.input(6)?, "y_scale")?,
    );
    if sx.len() != 1 || sy.len() != 1 || !(sw.len() == 1 || sw.len() == m) {
        return Err(op_err(format!(
            "scales must be per tensor (w_scale may have one per output channel, {m})"
        )));
    }
    let mult: Vec<f32> = sw.iter().map(|&s| sx[0] * s / sy[0]).collect();
    let bias = match ctx.opt(8) {
        None => None,
        Some(b) => Some(
            Host::f32(
                Host::read(&b)?.to_f64().iter().map(|&v| v as f32).collect(),
                b.shape(),
            )
            .into_value(ctx.device)?,
        ),
    };
    let y = conv_float(ctx, x, w, bias)?;
    let plane: usize = y.shape.iter().skip(2).product();
    let chan = |i: usize| (i / plane.max(1)) % m.max(1);
    requantize(&y.to_f64(), &mult, chan, &ctx.input(7)?, y.shape, ctx)
}
