//! Opset and IR versions: which default-domain opset a model imports, the newest the
//! standard defines, and the IR version each opset needs.

use onnx_ir::ModelProto;

/// The default-domain opset of `model` (0 when it declares none).
pub fn model_opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(0)
}

/// The newest default-domain opset the ONNX standard defines (onnx 1.23.2's
/// `onnx.defs.onnx_opset_version()`). The linter refuses models beyond it, and
/// the opset upgrade and `quantize::apply` refuse to write one.
pub const MAX_OPSET: i64 = 28;

/// The IR version each opset shipped with: the first IR version that can hold it
/// (`onnx.helper.VERSION_TABLE`). The exporter and the opset upgrade both use it.
pub fn ir_version_for(opset: i64) -> i64 {
    match opset {
        ..=8 => 3,
        9 => 4,
        10 => 5,
        11 => 6,
        12..=14 => 7,
        15..=18 => 8,
        19 | 20 => 9,
        21 | 22 => 10,
        23 => 11,
        24 => 12,
        25..=27 => 13,
        _ => 14,
    }
}
