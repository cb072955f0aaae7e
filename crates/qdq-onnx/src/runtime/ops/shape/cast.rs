//! `Cast` and `CastLike`.

use super::*;

/// Cast to ONNX type `to`.
pub(crate) fn cast(v: Value, to: i32) -> RunResult<Value> {
    Ok(match to {
        dt::FLOAT => match v {
            Value::Int(_, dt::FLOAT8E4M3FN) => {
                return Err(op_err("Cast from float8 is not supported"));
            }
            v => Value::Float(as_float(v)),
        },
        dt::BOOL => Value::Bool(as_bool(v)),
        t if is_int_type(t) => match v {
            Value::Int(x, _) => Value::Int(x, t),
            Value::Bool(x) => Value::Int(
                DynTensor::with(dyn_map!(x.t, |b, R| to_i64(b.int())), x.shape),
                t,
            ),
            Value::Float(x) => super::super::float_to_int(x, t),
        },
        other => {
            return Err(op_err(format!(
                "Cast to {} ({other}) is not supported",
                dtype_name(other)
            )));
        }
    })
}
