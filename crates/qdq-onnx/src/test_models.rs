//! Models the unit tests of several floors share.

use onnx_ir::{ModelProto, ValueInfoProto};

use crate::proto::{attr_int, attr_ints, model, node, tensor_f32};

/// `x` -> Conv(2x1x3x3, pad 1) -> Relu -> Flatten -> Gemm(32 -> 3) -> `logits`, opset
/// 13, with fixed weights; `x` (declared by the caller) is `[N, 1, 4, 4]`.
pub(crate) fn conv_relu_gemm(x: ValueInfoProto) -> ModelProto {
    let w: Vec<f32> = (0..18)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
        .collect();
    let fc: Vec<f32> = (0..96)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) / 20.0)
        .collect();
    let mut conv = node("Conv", "conv", &["x", "conv.weight", "conv.bias"], &["c"]);
    conv.attribute.push(attr_ints("pads", [1, 1, 1, 1]));
    let mut gemm = node("Gemm", "fc", &["f", "fc.weight", "fc.bias"], &["logits"]);
    gemm.attribute.push(attr_int("transB", 1));
    model(
        vec![
            conv,
            node("Relu", "relu", &["c"], &["r"]),
            node("Flatten", "flatten", &["r"], &["f"]),
            gemm,
        ],
        vec![x],
        &["logits"],
        vec![
            tensor_f32("conv.weight", &[2, 1, 3, 3], &w),
            tensor_f32("conv.bias", &[2], &[0.1, -0.1]),
            tensor_f32("fc.weight", &[3, 32], &fc),
            tensor_f32("fc.bias", &[3], &[0.0, 0.05, -0.05]),
        ],
        13,
    )
}
