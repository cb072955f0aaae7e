//! # qdq-onnx
//!
//! ONNX graphs for qdq. Today: [`lint`], TensorRT's rules for explicit-quantization
//! (QDQ) models, checked on any ONNX file, ours or not; and [`qdq`], the Q/DQ pair
//! writer the exporters share. The importer, the placement passes and the exporters
//! come with the issues that build them.
//!
//! ONNX messages are onnx-ir's generated protobuf types ([`onnx_ir::ModelProto`]),
//! read and written with [`onnx_ir::Message`].

mod error;
pub mod export;
mod file;
pub mod lint;
pub mod passes;
mod proto;
pub mod qdq;
pub mod quantize;
pub mod runtime;
mod tensor;

pub use error::{Error, Result};
pub use export::{ExportOptions, Fp8Style, export, export_to_file};
pub use file::read_model;
pub use lint::{LintOptions, Rule, Violation, lint, lint_file, lint_with};
pub use onnx_ir::{Message, ModelProto};
pub use qdq::{QdqFormat, insert_qdq, scales};
