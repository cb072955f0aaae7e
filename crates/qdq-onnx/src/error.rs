//! The crate's top error: what the tools on top (export, quantize, finetune) return.
//! It composes the lower floors' errors ([`crate::proto::ReadError`],
//! [`crate::passes::PassError`], [`crate::runtime::RunError`], lint violations), which
//! never import it.

use crate::passes::PassError;
use crate::proto::ReadError;

/// Errors reading or writing ONNX files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model.
    #[error(
        "{path}: not a valid ONNX model ({message}); is the file complete and an .onnx protobuf?"
    )]
    Parse {
        /// The file.
        path: String,
        /// The protobuf decoder's message.
        message: String,
    },
    /// A quantizer cannot be exported; the inner error names it.
    #[error(transparent)]
    Quantizer(qdq::Error),
    /// The forward pass uses operations the exporter cannot lower; all are listed.
    #[error(
        "cannot export {} operation(s) to ONNX:\n{}\nreplace them in forward, or open an issue naming the op",
        .0.len(),
        .0.iter().map(|o| format!("  - {o}")).collect::<Vec<_>>().join("\n")
    )]
    UnsupportedOps(Vec<crate::export::UnsupportedOp>),
    /// The model holds a layer that export refuses as a whole (a quantized
    /// recurrent layer: ONNX has no quantized LSTM, GRU or RNN).
    #[error("cannot export layer `{layer}`: {why}")]
    UnsupportedLayer {
        /// Dotted path of the layer in the model.
        layer: String,
        /// Why, and what to do instead.
        why: String,
    },
    /// A quantizer needs a newer opset than the one asked for.
    #[error(
        "quantizer `{quantizer}`: {what} needs opset {needed} or newer, but export asked for opset {opset}; set ExportOptions::opset to {needed} or more"
    )]
    Opset {
        /// Dotted path of the quantizer.
        quantizer: String,
        /// What needs the opset.
        what: String,
        /// Lowest opset that has it.
        needed: i64,
        /// Opset asked for.
        opset: i64,
    },
    /// An opset outside what a step can write: the exporter's 10 to 21, or the
    /// opsets the ONNX standard defines (1 to `proto::version::MAX_OPSET`).
    #[error("opset {opset} is not supported by {what}; choose {min} to {max}{note}")]
    OpsetRange {
        /// The opset asked for.
        opset: i64,
        /// The step that refused it (`export`, `quantize`...).
        what: &'static str,
        /// Lowest accepted.
        min: i64,
        /// Highest accepted.
        max: i64,
        /// More on the range (defaults, what needs which opset).
        note: &'static str,
    },
    /// Recording the forward pass failed.
    #[error("capturing the forward pass: {0}")]
    Capture(String),
    /// Running the model failed (the runtime's error names the node or input).
    #[error(transparent)]
    Run(crate::runtime::RunError),
    /// The graph cannot be processed as asked (named node or quantizer, and why).
    #[error("{0}")]
    Graph(String),
    /// The exported model breaks TensorRT rules (listed).
    #[error(
        "the exported model breaks {} TensorRT rule(s):\n{}",
        .0.len(),
        .0.iter().map(|v| format!("  - {v}")).collect::<Vec<_>>().join("\n")
    )]
    Lint(Vec<crate::lint::Violation>),
}

/// Result alias of the ONNX layer.
pub type Result<T> = std::result::Result<T, Error>;

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io { path, source } => Error::Io { path, source },
            ReadError::Parse { path, message } => Error::Parse { path, message },
            e @ ReadError::External { .. } => Error::Graph(e.to_string()),
        }
    }
}

impl From<PassError> for Error {
    fn from(e: PassError) -> Self {
        match e {
            PassError::OpsetRange {
                opset,
                what,
                min,
                max,
                note,
            } => Error::OpsetRange {
                opset,
                what,
                min,
                max,
                note,
            },
            PassError::Graph(message) => Error::Graph(message),
        }
    }
}
