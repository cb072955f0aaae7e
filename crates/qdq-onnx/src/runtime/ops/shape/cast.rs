//! `Cast` and `CastLike`.

use super::*;

/// Cast to ONNX type `to`. The runtime holds every float type as f32 (see
/// [`Value`]): a cast to double is a cast to float32, and one to float16 or bfloat16
/// rounds each value to that type (nearest, ties to even, as ONNX Runtime does) and
/// keeps it as f32, so it equals what the real cast gives.
pub(crate) fn cast(v: Value, to: i32) -> RunResult<Value> {
    Ok(match to {
        dt::FLOAT16 | dt::BFLOAT16 => {
            let x = as_float_value(v)?;
            let shape = x.shape().to_vec();
            let device = x.device();
            let values = crate::proto::decode::round_to_half(to, x.to_vec()?);
            Value::try_from_f32(values, &shape, &device)?
        }
        dt::FLOAT | dt::DOUBLE => Value::Float(as_float_value(v)?),
        dt::BOOL => Value::Bool(as_bool(v)?),
        t if is_int_type(t) => match v {
            Value::Int(x, _) => Value::Int(x, t),
            Value::Bool(x) => Value::Int(
                DynTensor::with(dyn_map!(x.t, |b, R| to_i64(b.int())), x.shape),
                t,
            ),
            Value::Float(x) => super::super::float_to_int(x, t),
            v => return Err(v.not_a_tensor()),
        },
        other => {
            return Err(op_err(format!(
                "Cast to {} ({other}) is not supported",
                dtype_name(other)
            )));
        }
    })
}

/// The float view of a value for a cast to a float type (FP8 bit patterns refused).
fn as_float_value(v: Value) -> RunResult<DynTensor<Float>> {
    match v {
        Value::Int(_, dt::FLOAT8E4M3FN) => Err(op_err("Cast from float8 is not supported")),
        v => as_float(v),
    }
}
