//! Q/DQ element types: what ONNX Runtime and the ONNX checker accept.

use super::{Context, Kind, QdqNode};
use crate::lint::{Rule, Violation};
use crate::proto::elem as dtype;
use crate::proto::elem::{dtype_name, is_float};

/// Pushes this rule's violations at one Q/DQ node.
pub(super) fn check(cx: &Context, n: &QdqNode, out: &mut Vec<Violation>) {
    let node = n.node;
    let mut push = |rule, message: String, fix: &str| n.push(out, rule, message, fix);
    let kind = n.kind;
    let ty = |t| cx.typed(t);
    if kind == Kind::Q
        && let Some((x, e)) = ty(node.input.first())
        && !is_float(e)
    {
        push(
            Rule::QdqType,
            format!(
                "QuantizeLinear input `{x}` is {}; only float32, float16, bfloat16 and double tensors can be quantized",
                dtype_name(e)
            ),
            "remove this Q/DQ pair: integer and bool tensors (shapes, indices, masks) stay unquantized",
        );
    }
    if kind == Kind::Dq
        && let Some((y, e)) = ty(node.output.first())
        && !is_float(e)
    {
        push(
            Rule::QdqType,
            format!(
                "DequantizeLinear output `{y}` is {}; it must be floating point",
                dtype_name(e)
            ),
            "give the DequantizeLinear a float32 scale (its output takes the scale's type)",
        );
    }
    if let Some((sc, e)) = ty(node.input.get(1)) {
        if let Some(why) = scale_type_error(e, cx.opset) {
            push(
                Rule::QdqType,
                format!("scale `{sc}` is {}; {why}", dtype_name(e)),
                "store the scale as float32, or in the model's float16/bfloat16 with opset 19 or newer",
            );
        } else if kind == Kind::Q
            && node.domain.is_empty()
            && let Some((x, xe)) = ty(node.input.first())
            && is_float(xe)
            && xe != e
        {
            push(
                Rule::QdqType,
                format!(
                    "QuantizeLinear input `{x}` is {} but its scale `{sc}` is {}; they must be the same type",
                    dtype_name(xe),
                    dtype_name(e)
                ),
                "store the scale in the input's type (opset 19+), or Cast the input to float32 before the pair",
            );
        }
    }
    if let Some((zp, e)) = ty(node.input.get(2))
        && !zero_point_type(e)
    {
        push(
            Rule::QdqType,
            format!(
                "zero point `{zp}` is {}; zero points are int8 or uint8 (int4, uint4, int16, uint16 from opset 21, FP8 from 19, FP4 from 23)",
                dtype_name(e)
            ),
            "store the zero point as int8 (0, symmetric)",
        );
    }
}

/// The zero-point types some opset of Q/DQ allows (the opset itself is checked apart).
fn zero_point_type(e: i32) -> bool {
    matches!(
        e,
        dtype::INT8
            | dtype::UINT8
            | dtype::INT16
            | dtype::UINT16
            | dtype::INT4
            | dtype::UINT4
            | dtype::FLOAT8E4M3FN
            | dtype::FLOAT8E4M3FNUZ
            | dtype::FLOAT8E5M2
            | dtype::FLOAT8E5M2FNUZ
            | dtype::FLOAT4E2M1
    )
}

/// Why a scale of type `e` is refused at `opset` (ONNX's Q/DQ type constraints;
/// TensorRT takes float32, float16 and bfloat16 scales), or `None` when it is fine.
fn scale_type_error(e: i32, opset: i64) -> Option<String> {
    match e {
        dtype::FLOAT => None,
        dtype::FLOAT16 | dtype::BFLOAT16 if opset >= 19 => None,
        dtype::FLOAT16 | dtype::BFLOAT16 => Some(format!(
            "QuantizeLinear/DequantizeLinear take {} scales from opset 19, and the model is opset {opset}",
            dtype_name(e)
        )),
        dtype::DOUBLE => Some("no QuantizeLinear/DequantizeLinear takes double scales".to_string()),
        _ => Some("scales are floating point".to_string()),
    }
}
