//! Integer arithmetic ops: Mod (numpy's sign-of-divisor remainder, or C's `fmod`) and
//! BitShift, with numpy broadcasting, on the host; results keep the ONNX element type.

use super::super::error::{RunResult, op_err};
use super::super::value::Value;
use super::Ctx;
use super::elementwise::broadcast_shape;
use super::host::{Data, Host};
use crate::proto::elem as dt;

/// Both inputs read and broadcast to their common shape.
fn operands(ctx: &Ctx) -> RunResult<(Host, Host, Vec<usize>)> {
    let a = Host::read(&ctx.input(0)?)?;
    let b = Host::read(&ctx.input(1)?)?;
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    Ok((a.broadcast_to(&shape)?, b.broadcast_to(&shape)?, shape))
}

/// Mod(A, B; fmod = 0): `fmod = 0` takes the sign of the divisor (integers only),
/// `fmod = 1` the sign of the dividend. An integer division by zero is an error.
pub(crate) fn modulo(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let fmod = ctx.int_attr("fmod", 0) != 0;
    let (a, b, shape) = operands(ctx)?;
    let data = match (a.data, b.data) {
        (Data::F32(x), Data::F32(y)) => {
            if !fmod {
                return Err(op_err("float Mod needs fmod = 1"));
            }
            Data::F32(x.iter().zip(&y).map(|(p, q)| p % q).collect())
        }
        (Data::I64(x, e), Data::I64(y, _)) => {
            if y.contains(&0) {
                return Err(op_err("integer Mod by zero"));
            }
            let f = |p: i64, q: i64| {
                let r = p.wrapping_rem(q);
                if !fmod && r != 0 && ((r < 0) != (q < 0)) {
                    r + q
                } else {
                    r
                }
            };
            Data::I64(x.iter().zip(&y).map(|(&p, &q)| f(p, q)).collect(), e)
        }
        _ => return Err(op_err("operands must have the same numeric type")),
    };
    Ok(vec![Host { data, shape }.into_value(ctx.device)?])
}

/// Bit width of an unsigned ONNX integer type.
fn uint_bits(e: i32) -> Option<u32> {
    match e {
        dt::UINT8 => Some(8),
        dt::UINT16 => Some(16),
        dt::UINT32 => Some(32),
        dt::UINT64 => Some(64),
        _ => None,
    }
}

/// BitShift(X, Y; direction "LEFT" | "RIGHT") on unsigned integers; bits shifted past
/// the type's width are dropped (a shift by the width or more gives 0).
pub(crate) fn bit_shift(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let left = match ctx.string_attr("direction", "").as_str() {
        "LEFT" => true,
        "RIGHT" => false,
        d => {
            return Err(op_err(format!(
                "direction must be LEFT or RIGHT, got `{d}`"
            )));
        }
    };
    let (a, b, shape) = operands(ctx)?;
    let (Data::I64(x, e), Data::I64(y, _)) = (a.data, b.data) else {
        return Err(op_err("BitShift needs unsigned integer inputs"));
    };
    let bits = uint_bits(e).ok_or_else(|| {
        op_err(format!(
            "BitShift needs an unsigned integer type, got {}",
            dt::dtype_name(e)
        ))
    })?;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let v = x
        .iter()
        .zip(&y)
        .map(|(&p, &q)| {
            let (p, q) = (p as u64 & mask, q as u64 & mask);
            let r = match q {
                q if q >= bits as u64 => 0,
                q if left => (p << q) & mask,
                q => p >> q,
            };
            r as i64
        })
        .collect();
    Ok(vec![Host::i64(v, e, shape).into_value(ctx.device)?])
}
