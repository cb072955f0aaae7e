//! `Gather` along an axis.

use super::*;

pub(super) fn gather(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let shape = v.shape();
    let idx_v = ctx.input(1)?;
    let ishape = idx_v.shape();
    let idx = match &idx_v {
        Value::Int(t, _) => t.to_vec()?,
        other => {
            return Err(op_err(format!(
                "Gather indices must be integers, got {}",
                dtype_name(other.elem_type())
            )));
        }
    };
    if shape.is_empty() {
        return Err(op_err("Gather on a scalar"));
    }
    let axis = norm_axis(ctx.int_attr("axis", 0), shape.len())?;
    let d = shape[axis] as i64;
    let flat = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + d } else { i };
            if j < 0 || j >= d {
                Err(op_err(format!(
                    "index {i} out of bounds for axis {axis} of size {d}"
                )))
            } else {
                Ok(j as usize)
            }
        })
        .collect::<RunResult<Vec<_>>>()?;
    let mut out: Vec<usize> = shape[..axis].to_vec();
    out.extend_from_slice(&ishape);
    out.extend_from_slice(&shape[axis + 1..]);
    checked_numel("", "", &out)?;
    let v = map_kind!(v, |t| select(t, axis, &flat)?);
    reshape_value(v, &out)
}
