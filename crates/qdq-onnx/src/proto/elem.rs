//! ONNX element types (`TensorProto.DataType` codes): the crate's one table, with
//! their names for messages and which of them count as real numbers.

/// float32.
pub const FLOAT: i32 = 1;
/// uint8.
pub const UINT8: i32 = 2;
/// int8.
pub const INT8: i32 = 3;
/// uint16.
pub const UINT16: i32 = 4;
/// int16.
pub const INT16: i32 = 5;
/// int32.
pub const INT32: i32 = 6;
/// int64.
pub const INT64: i32 = 7;
/// string.
pub const STRING: i32 = 8;
/// bool.
pub const BOOL: i32 = 9;
/// float16.
pub const FLOAT16: i32 = 10;
/// float64.
pub const DOUBLE: i32 = 11;
/// uint32.
pub const UINT32: i32 = 12;
/// uint64.
pub const UINT64: i32 = 13;
/// bfloat16.
pub const BFLOAT16: i32 = 16;
/// FP8 E4M3 without infinities (opset 19).
pub const FLOAT8E4M3FN: i32 = 17;
/// FP8 E4M3, unsigned zero (opset 19).
pub const FLOAT8E4M3FNUZ: i32 = 18;
/// FP8 E5M2 (opset 19).
pub const FLOAT8E5M2: i32 = 19;
/// FP8 E5M2, unsigned zero (opset 19).
pub const FLOAT8E5M2FNUZ: i32 = 20;
/// 4-bit unsigned integer (opset 21).
pub const UINT4: i32 = 21;
/// 4-bit signed integer (opset 21).
pub const INT4: i32 = 22;
/// FP4 E2M1 (opset 23).
pub const FLOAT4E2M1: i32 = 23;

/// Whether an ONNX element type is a floating-point type that Q/DQ and placement treat
/// as real numbers (float32, float16, bfloat16, double). FP8/FP4 are quantized types.
pub fn is_float(code: i32) -> bool {
    matches!(code, FLOAT | FLOAT16 | BFLOAT16 | DOUBLE)
}

/// Name of an ONNX data type code, for messages (`other` for codes not in the table).
pub fn dtype_name(code: i32) -> &'static str {
    match code {
        FLOAT => "float32",
        UINT8 => "uint8",
        INT8 => "int8",
        UINT16 => "uint16",
        INT16 => "int16",
        INT32 => "int32",
        INT64 => "int64",
        STRING => "string",
        BOOL => "bool",
        FLOAT16 => "float16",
        DOUBLE => "double",
        UINT32 => "uint32",
        UINT64 => "uint64",
        BFLOAT16 => "bfloat16",
        FLOAT8E4M3FN => "float8e4m3fn",
        FLOAT8E4M3FNUZ => "float8e4m3fnuz",
        FLOAT8E5M2 => "float8e5m2",
        FLOAT8E5M2FNUZ => "float8e5m2fnuz",
        UINT4 => "uint4",
        INT4 => "int4",
        FLOAT4E2M1 => "float4e2m1",
        _ => "other",
    }
}

/// The integer range `(min, max)` of a quantized integer type (what `QuantizeLinear`
/// saturates to), or `None` for a type that is not one.
pub fn integer_range(code: i32) -> Option<(f32, f32)> {
    Some(match code {
        UINT4 => (0.0, 15.0),
        INT4 => (-8.0, 7.0),
        UINT8 => (0.0, 255.0),
        INT8 => (-128.0, 127.0),
        UINT16 => (0.0, 65535.0),
        INT16 => (-32768.0, 32767.0),
        INT32 => (i32::MIN as f32, i32::MAX as f32),
        _ => return None,
    })
}
