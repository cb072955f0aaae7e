//! # qdq-onnx
//!
//! ONNX graphs for qdq, in floors; each imports only from the floors below it:
//!
//! 1. [`proto`]: reading, decoding and building ONNX messages, the element types and
//!    the opset/IR versions. Imports nothing from the crate.
//! 2. [`runtime`]: any ONNX graph run on burn. Imports the proto floor.
//! 3. [`passes`] (constant folding, element types, TensorRT placement, Q/DQ insertion
//!    with [`qdq`], opset upgrade) and [`lint`](mod@lint) (TensorRT's rules for QDQ models, on
//!    any file). Import the floors below.
//! 4. The tools: [`export`](mod@export) (a burn model's forward pass to QDQ ONNX), [`quantize`]
//!    (calibrating an FP32 ONNX model into a QDQ one), [`finetune`] (QAT of that QDQ
//!    graph), [`verify`] (the check a written model passes before it is called done)
//!    and the crate's [`Error`], which wraps the lower floors' errors.
//!
//! ONNX messages are onnx-ir's generated protobuf types ([`onnx_ir::ModelProto`]),
//! read and written with [`onnx_ir::Message`].

#![deny(missing_docs)]

// Floor 1: protobuf messages.
pub mod proto;
// Floor 2: the interpreter.
pub mod runtime;
// Floor 3: graph passes, the Q/DQ writer and the linter.
pub mod lint;
pub mod passes;
pub mod qdq;
// Floor 4: the tools and the crate's error.
mod error;
pub mod export;
pub mod finetune;
#[doc(hidden)]
pub mod fuzz;
pub mod quantize;
pub mod verify;

#[cfg(test)]
mod test_models;

pub use error::{Error, Result};
pub use export::{ExportOptions, Fp8Style, export, export_to_file};
pub use lint::{LintOptions, Rule, Violation, lint, lint_file, lint_with};
pub use onnx_ir::{Message, ModelProto};
pub use proto::{MAX_MODEL_BYTES, ReadError, read_model, read_model_with_data, weight_elements};
pub use qdq::{FloatForm, QdqFormat, insert_qdq, insert_qdq_as, scales};
