//! Triangular and identity masks: Trilu (keep the upper or lower triangle of the last two
//! dims, offset `k`) and EyeLike (ones on the `k`-th diagonal of a 2-D shape).

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::host::{Data, Host};
use super::{Ctx, is_int_type};
use crate::proto::elem as dt;

/// Trilu(input `[.., N, M]`, k? scalar = 0; upper = 1): elements with `j - i >= k`
/// (upper) or `j - i <= k` (lower) kept, the rest zero.
pub(crate) fn trilu(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&ctx.input(0)?)?;
    let r = x.shape.len();
    if r < 2 {
        return Err(op_err(format!(
            "input must have rank at least 2, got {:?}",
            x.shape
        )));
    }
    let k = match ctx.host_ints(1)? {
        None => 0,
        Some(v) => *v.first().ok_or_else(|| op_err("k must hold one value"))?,
    };
    let upper = ctx.int_attr("upper", 1) != 0;
    let (n, m) = (x.shape[r - 2], x.shape[r - 1]);
    let idx: Vec<Option<usize>> = (0..x.len())
        .map(|f| {
            let (i, j) = (((f / m.max(1)) % n.max(1)) as i64, (f % m.max(1)) as i64);
            let d = j - i;
            let keep = if upper { d >= k } else { d <= k };
            keep.then_some(f)
        })
        .collect();
    let shape = x.shape.clone();
    Ok(vec![x.take_or_zero(&idx, shape).into_value(ctx.device)?])
}

/// EyeLike(input 2-D; dtype = input's, k = 0): ones where `j - i == k`.
pub(crate) fn eye_like(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = ctx.input(0)?;
    let shape = x.shape();
    if shape.len() != 2 {
        return Err(op_err(format!("input must be 2-D, got {shape:?}")));
    }
    let n = checked_numel("", "", &shape)?;
    let k = ctx.int_attr("k", 0);
    let elem = ctx.attr("dtype").map_or(x.elem_type(), |a| a.i as i32);
    let m = shape[1].max(1);
    let on: Vec<bool> = (0..n)
        .map(|f| (f % m) as i64 - (f / m) as i64 == k)
        .collect();
    let data = match elem {
        dt::FLOAT => Data::F32(on.iter().map(|&b| b as u8 as f32).collect()),
        dt::BOOL => Data::Bool(on),
        e if is_int_type(e) => Data::I64(on.iter().map(|&b| b as i64).collect(), e),
        e => {
            return Err(op_err(format!(
                "dtype {} is not supported",
                dt::dtype_name(e)
            )));
        }
    };
    Ok(vec![Host { data, shape }.into_value(ctx.device)?])
}
