//! Errors of the ONNX runtime: one type so callers (the calibration CLI) can report
//! which node, input or operator is at fault without digging through burn panics.

/// Errors loading or running an ONNX graph.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The model file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model.
    #[error("{path}: not a valid ONNX model ({message})")]
    Parse {
        /// The file.
        path: String,
        /// The protobuf decoder's message.
        message: String,
    },
    /// The graph uses operators the runtime cannot execute; all are listed with counts.
    #[error(
        "the model uses {} unsupported operator type(s): {}",
        .0.len(),
        .0.iter().map(|(op, n)| format!("{op} (x{n})")).collect::<Vec<_>>().join(", ")
    )]
    UnsupportedOps(Vec<(String, usize)>),
    /// The graph itself is malformed (undefined tensor, bad initializer, ...).
    #[error("invalid graph: {0}")]
    Graph(String),
    /// A runtime input is missing, unknown, or of the wrong shape or dtype.
    #[error("input `{name}`: {message}")]
    Input {
        /// The input name.
        name: String,
        /// What is wrong, with expected vs given.
        message: String,
    },
    /// A node failed while executing.
    #[error("node `{node}` ({op}): {message}")]
    Node {
        /// Node name, or its first output when unnamed.
        node: String,
        /// Operator type.
        op: String,
        /// What went wrong.
        message: String,
    },
    /// A value has a data type the runtime does not handle here.
    #[error("unsupported data type {0}")]
    Dtype(String),
    /// Reading a tensor back to the host failed.
    #[error("reading tensor data: {0}")]
    Read(String),
    /// An operator-level failure (bad attribute, shape mismatch); wrapped into
    /// [`RunError::Node`] by the executor.
    #[error("{0}")]
    Op(String),
    /// An error raised by an observer callback of [`super::OnnxGraph::run_with`].
    #[error("observer: {0}")]
    Observer(String),
}

/// An operator-level error with a message.
pub(crate) fn op_err(msg: impl Into<String>) -> RunError {
    RunError::Op(msg.into())
}

/// Result alias of the runtime.
pub type RunResult<T> = Result<T, RunError>;
