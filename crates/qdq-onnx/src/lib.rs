//! # qdq-onnx
//!
//! ONNX graphs for qdq: [`export`] (a burn model's forward pass to QDQ ONNX),
//! [`runtime`] (any ONNX graph run on burn), [`passes`] (constant folding, TensorRT
//! placement, Q/DQ insertion, opset upgrade), [`quantize`] (calibrating an FP32 ONNX
//! model into a QDQ one), [`finetune`] (QAT of that QDQ graph), [`lint`] (TensorRT's
//! rules for QDQ models, on any file), [`qdq`] (the one Q/DQ pair writer) and
//! [`verify`] (the check a written model passes before it is called done).
//!
//! ONNX messages are onnx-ir's generated protobuf types ([`onnx_ir::ModelProto`]),
//! read and written with [`onnx_ir::Message`].

mod error;
pub mod export;
pub mod finetune;
#[doc(hidden)]
pub mod fuzz;
pub mod lint;
pub mod passes;
pub mod proto;
pub mod qdq;
pub mod quantize;
pub mod runtime;
pub mod verify;

#[cfg(test)]
mod test_models;

/// The element-type table under the name `qdq.rs` and the exporter's trace use.
mod tensor {
    pub(crate) use crate::proto::elem as dtype;
}

pub use error::{Error, Result};
pub use export::{ExportOptions, Fp8Style, export, export_to_file};
pub use lint::{LintOptions, Rule, Violation, lint, lint_file, lint_with};
pub use onnx_ir::{Message, ModelProto};
pub use proto::{MAX_MODEL_BYTES, ReadError, initializer_elements, read_model};
pub use qdq::{QdqFormat, insert_qdq, scales};
