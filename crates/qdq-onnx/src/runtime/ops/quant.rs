//! QuantizeLinear / DequantizeLinear: int8/uint8/int16/uint16/int32 per-tensor and
//! per-axis (round half to even, saturation) as burn ops, and FP8 E4M3FN through the
//! `qdq` crate's E4M3 rounding (values kept as their bit patterns).

use qdq::tensor_quant::E4M3_MAX;
use qdq::tensor_quant::kernel::e4m3_round;

use super::super::error::{RunResult, op_err};
use super::super::value::{DynTensor, Value, dyn_apply, dyn_map};
use super::elementwise::{Bin, binary};
use super::quant_fused::{fake_quantize_host, takes};
use super::{Ctx, as_float, float_to_int, norm_axis};
use crate::proto::elem::{self as dt, dtype_name};
use burn::tensor::Float;

/// Integer range of a quantized type ([`dt::integer_range`]), or an error naming it.
fn range(code: i32) -> RunResult<(f32, f32)> {
    dt::integer_range(code).ok_or_else(|| {
        op_err(format!(
            "quantized type {} ({code}) is not supported",
            dtype_name(code)
        ))
    })
}

/// Reshapes a per-axis parameter `[C]` to broadcast against `shape` at `axis`.
fn param(
    p: DynTensor<Float>,
    shape: &[usize],
    axis: i64,
    what: &str,
) -> RunResult<DynTensor<Float>> {
    if p.rank() == 0 || p.numel() == 1 && p.rank() == 1 {
        return p.reshape(&[]);
    }
    if p.rank() != 1 {
        return Err(op_err(format!(
            "{what} of shape {:?}: blocked quantization is not supported",
            p.shape
        )));
    }
    let a = norm_axis(axis, shape.len())?;
    if p.shape[0] != shape[a] {
        return Err(op_err(format!(
            "{what} has {} entries but axis {a} of input {shape:?} has {}",
            p.shape[0], shape[a]
        )));
    }
    let mut s = vec![1; shape.len()];
    s[a] = shape[a];
    p.reshape(&s)
}

/// f32 → FP8 E4M3FN bits of an exactly representable (already rounded) value.
pub(crate) fn e4m3_bits(v: f32) -> u8 {
    if v.is_nan() {
        return 0x7F;
    }
    let sign = if v.is_sign_negative() { 0x80 } else { 0 };
    let a = v.abs();
    if a == 0.0 {
        return sign;
    }
    let e = ((a.to_bits() >> 23) as i32) - 127;
    if e < -6 {
        // subnormal: a = m * 2^-9
        return sign | ((a * 512.0).round() as u8 & 0x7);
    }
    let m = ((a / 2f32.powi(e) - 1.0) * 8.0).round() as u8;
    sign | (((e + 7) as u8) << 3) | (m & 0x7)
}

/// FP8 E4M3FN bits → f32.
pub(crate) fn e4m3_value(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((b >> 3) & 0xF) as i32;
    let m = (b & 0x7) as f32;
    if e == 0xF && (b & 0x7) == 0x7 {
        return f32::NAN;
    }
    if e == 0 {
        return sign * m / 512.0;
    }
    sign * (1.0 + m / 8.0) * 2f32.powi(e - 7)
}

pub(crate) fn quantize(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = ctx.float(0)?;
    let shape = x.shape.clone();
    let axis = ctx.int_attr("axis", 1);
    if ctx.int_attr("block_size", 0) != 0 {
        return Err(op_err("blocked quantization is not supported"));
    }
    let zp = ctx.opt(2);
    let out_type = match &zp {
        Some(z) => z.elem_type(),
        None => match ctx.int_attr("output_dtype", 0) as i32 {
            0 => dt::UINT8,
            t => t,
        },
    };
    let scale = param(ctx.float(1)?, &shape, axis, "y_scale")?;
    let scaled = binary(Value::Float(x), Value::Float(scale), Bin::Div)?;
    if out_type == dt::FLOAT8E4M3FN {
        let saturate = ctx.int_attr("saturate", 1) != 0;
        let v = scaled.to_f32()?;
        let bits: Vec<i64> = v
            .into_iter()
            .map(|s| {
                let r = if !saturate && (s.is_infinite() || s.abs() > E4M3_MAX) {
                    f32::NAN
                } else {
                    e4m3_round(s)
                };
                i64::from(e4m3_bits(r))
            })
            .collect();
        return Ok(vec![Value::try_from_i64(
            bits, &shape, ctx.device, out_type,
        )?]);
    }
    let (lo, hi) = range(out_type)?;
    let Value::Float(s) = scaled else {
        return Err(op_err("internal"));
    };
    let rounded = Value::Float(DynTensor::with(dyn_map!(s.t, |t, R| t.round()), s.shape));
    let shifted = match zp {
        Some(z) => {
            let z = param(as_float(z)?, &shape, axis, "y_zero_point")?;
            binary(rounded, Value::Float(z), Bin::Add)?
        }
        None => rounded,
    };
    let Value::Float(q) = shifted else {
        return Err(op_err("internal"));
    };
    let q = DynTensor::with(dyn_map!(q.t, |t, R| t.clamp(lo, hi)), q.shape);
    Ok(vec![float_to_int(q, out_type)])
}

pub(crate) fn dequantize(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let xv = ctx.input(0)?;
    let shape = xv.shape();
    let axis = ctx.int_attr("axis", 1);
    if ctx.int_attr("block_size", 0) != 0 {
        return Err(op_err("blocked quantization is not supported"));
    }
    let x = match xv {
        Value::Int(t, dt::FLOAT8E4M3FN) => {
            let v: Vec<f32> = t
                .to_vec()?
                .into_iter()
                .map(|b| e4m3_value(b as u8))
                .collect();
            Value::try_from_f32(v, &shape, ctx.device)?
        }
        Value::Int(t, e) => Value::Float(as_float(Value::Int(t, e))?),
        o => {
            return Err(op_err(format!(
                "DequantizeLinear input must be quantized, got {}",
                dtype_name(o.elem_type())
            )));
        }
    };
    let scale = param(ctx.float(1)?, &shape, axis, "x_scale")?;
    let x = match ctx.opt(2) {
        Some(Value::Int(z, dt::FLOAT8E4M3FN)) => {
            let zf: Vec<f32> = z
                .to_vec()?
                .into_iter()
                .map(|b| e4m3_value(b as u8))
                .collect();
            let zs = z.shape.clone();
            let zv = as_float(Value::try_from_f32(zf, &zs, ctx.device)?)?;
            binary(
                x,
                Value::Float(param(zv, &shape, axis, "x_zero_point")?),
                Bin::Sub,
            )?
        }
        Some(z) => {
            let z = param(as_float(z)?, &shape, axis, "x_zero_point")?;
            binary(x, Value::Float(z), Bin::Sub)?
        }
        None => x,
    };
    Ok(vec![binary(x, Value::Float(scale), Bin::Mul)?])
}

/// Internal op (domain [`INTERNAL_DOMAIN`]) for fine-tuning: a `QuantizeLinear` →
/// `DequantizeLinear` pair with one scale and a zero zero-point, as one node (inputs
/// `x`, `scale`, `zero_point`; the pair's `axis`, `output_dtype` and `saturate`).
///
/// The value is exactly the pair's: untracked 8- and 16-bit codes take one host pass
/// ([`super::quant_fused`], bit for bit the pair), anything else runs the same two
/// kernels on the detached input.
/// The gradient is the reference's straight-through estimator: passed where
/// `|x| <= qmax * scale` (the amax the scale was made from), zero elsewhere.
pub(crate) fn fake_quantize(ctx: &mut Ctx) -> RunResult<Vec<Value>> {
    let x = ctx.float(0)?;
    let zero_point = ctx.opt(2);
    if let Some(z) = &zero_point {
        let zeros = match z {
            // FP8 bits 0x80 are -0.0
            Value::Int(t, dt::FLOAT8E4M3FN) => t.to_vec()?.iter().all(|&v| v == 0 || v == 0x80),
            Value::Int(t, _) => t.to_vec()?.iter().all(|&v| v == 0),
            _ => false,
        };
        if !zeros {
            return Err(op_err(
                "fine-tuning needs symmetric quantizers (zero point 0); this pair is asymmetric",
            ));
        }
    }
    let pair = |first: Value| Ctx {
        node: ctx.node,
        opset: ctx.opset,
        inputs: vec![Some(first), ctx.opt(1), zero_point.clone()],
        device: ctx.device,
    };
    let tracked = dyn_apply!(&x.t, |t, R| t.is_tracked());
    let block = ctx.int_attr("block_size", 0) != 0;
    let out_type = match &zero_point {
        Some(z) => z.elem_type(),
        None => match ctx.int_attr("output_dtype", 0) as i32 {
            0 => dt::UINT8,
            t => t,
        },
    };
    if let Some(r) = dt::integer_range(out_type).filter(|&r| !tracked && !block && takes(r)) {
        // Nothing trains through it: the pair in one host pass.
        let axis = ctx.int_attr("axis", 1);
        let scale = param(ctx.float(1)?, &x.shape, axis, "y_scale")?;
        // `x` alone (the node's copy dropped) is read back without a copy when the
        // executor handed over the last reference.
        ctx.inputs[0] = None;
        return Ok(vec![fake_quantize_host(x, &scale, r)?]);
    }
    let detached = DynTensor::with(dyn_map!(x.t.clone(), |t, R| t.detach()), x.shape.clone());
    let q = quantize(&pair(Value::Float(detached)))?.remove(0);
    let qmax = match q.elem_type() {
        dt::FLOAT8E4M3FN => E4M3_MAX,
        code => range(code)?.1,
    };
    let forward = dequantize(&pair(q))?.remove(0);
    if !tracked {
        return Ok(vec![forward]);
    }
    let axis = ctx.int_attr("axis", 1);
    let scale = param(ctx.float(1)?, &x.shape, axis, "y_scale")?;
    let scale = if scale.shape.is_empty() {
        scale.reshape(&vec![1; x.shape.len()])?
    } else {
        scale
    };
    let bound = DynTensor::with(dyn_map!(scale.t, |t, R| t.mul_scalar(qmax)), scale.shape);
    let Value::Float(forward) = forward else {
        return Err(op_err("internal: DequantizeLinear gave no float"));
    };
    let out = dyn_apply!(x.t, |t, R| {
        let ste = qdq::tensor_quant::ops::ste(t, bound.to_rank::<R>()?, forward.to_rank::<R>()?);
        DynTensor::<Float>::from_tensor_as(ste, x.shape.clone())
    })?;
    Ok(vec![Value::Float(out)])
}

/// Domain of the runtime's internal ops (never written to a file).
pub const INTERNAL_DOMAIN: &str = "qdq.internal";
