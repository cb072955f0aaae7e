//! Errors of the ONNX layer; each names the file at fault.

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
}

/// Result alias of the ONNX layer.
pub type Result<T> = std::result::Result<T, Error>;
