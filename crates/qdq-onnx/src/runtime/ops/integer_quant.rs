//! Integer quantization ops outside the QDQ pair: DynamicQuantizeLinear (uint8 with
//! scale and zero point from the data's range) and MatMulInteger (int8/uint8 operands
//! minus zero points, int32 products).

use burn::tensor::{Device, Float};

use super::super::error::{RunResult, op_err};
use super::super::value::{DynTensor, Value};
use super::Ctx;
use super::host::Host;
use super::linalg::matmul_t;
use crate::proto::elem as dt;

/// DynamicQuantizeLinear(x) → (y uint8, y_scale scalar, y_zero_point uint8 scalar):
/// the range `[min(0, x), max(0, x)]` mapped onto `[0, 255]`, in float32 arithmetic
/// with round half to even (as the ONNX reference).
pub(crate) fn dynamic_quantize(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = ctx.float(0)?;
    let shape = x.shape.clone();
    let v = x.to_vec()?;
    let lo = v.iter().copied().fold(0f32, f32::min);
    let hi = v.iter().copied().fold(0f32, f32::max);
    if !lo.is_finite() || !hi.is_finite() {
        return Err(op_err("input holds a non-finite value"));
    }
    let scale = (hi - lo) / 255.0;
    let q = |f: f32| f.round_ties_even().clamp(0.0, 255.0) as i64;
    let zp = if scale == 0.0 { 0 } else { q(-lo / scale) };
    let y = v
        .iter()
        .map(|&p| {
            if scale == 0.0 {
                zp
            } else {
                ((p / scale).round_ties_even() as i64 + zp).clamp(0, 255)
            }
        })
        .collect();
    Ok(vec![
        Host::i64(y, dt::UINT8, shape).into_value(ctx.device)?,
        Host::f32(vec![scale], vec![]).into_value(ctx.device)?,
        Host::i64(vec![zp], dt::UINT8, vec![]).into_value(ctx.device)?,
    ])
}

/// An int8/uint8 operand minus its zero point (one value, or one per index of `axis`:
/// rows of A, columns of B, output channels of a conv weight), as float32 for burn's
/// matmul and conv, which are exact while the sums stay below 2^24.
pub(crate) fn centered(
    v: Value,
    zp: Option<Value>,
    axis: usize,
    device: &Device,
) -> RunResult<DynTensor<Float>> {
    let e = v.elem_type();
    if e != dt::INT8 && e != dt::UINT8 {
        return Err(op_err(format!(
            "operands must be int8 or uint8, got {}",
            dt::dtype_name(e)
        )));
    }
    let x = Host::read(&v)?;
    let mut f = x.to_f64();
    if let Some(z) = zp {
        let z = Host::read(&z)?.to_f64();
        let r = x.shape.len();
        match z.len() {
            1 => f.iter_mut().for_each(|p| *p -= z[0]),
            n if axis < r && n == x.shape[axis] => {
                let inner: usize = x.shape[axis + 1..].iter().product();
                f.iter_mut()
                    .enumerate()
                    .for_each(|(i, p)| *p -= z[(i / inner.max(1)) % n]);
            }
            n => {
                return Err(op_err(format!(
                    "zero point of {n} values does not fit operand {:?}",
                    x.shape
                )));
            }
        }
    }
    let Value::Float(t) =
        Host::f32(f.iter().map(|&p| p as f32).collect(), x.shape).into_value(device)?
    else {
        return Err(op_err("internal: float operand"));
    };
    Ok(t)
}

/// Refuses reductions of `k` int8 products, past which float32 sums are not exact.
pub(crate) fn check_exact(k: usize) -> RunResult<()> {
    if k > 258 {
        return Err(op_err(format!(
            "reduction over {k} products exceeds 258, past which float32 sums are not exact"
        )));
    }
    Ok(())
}

/// MatMulInteger(A, B, a_zero_point?, b_zero_point?) → int32 `(A - a_zp) @ (B - b_zp)`.
pub(crate) fn matmul_integer(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let a = ctx.input(0)?;
    let ra = a.shape().len();
    check_exact(a.shape().last().copied().unwrap_or(0))?;
    let a = centered(a, ctx.opt(2), ra.saturating_sub(2), ctx.device)?;
    let b = ctx.input(1)?;
    let rb = b.shape().len();
    let b = centered(b, ctx.opt(3), rb.saturating_sub(1), ctx.device)?;
    let y = Host::read(&Value::Float(matmul_t(a, b)?))?;
    let v = y.to_f64().iter().map(|&p| p as i64).collect();
    Ok(vec![
        Host::i64(v, dt::INT32, y.shape).into_value(ctx.device)?,
    ])
}
