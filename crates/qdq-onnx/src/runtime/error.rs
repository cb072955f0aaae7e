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
    /// A tensor would hold more than [`super::MAX_ELEMENTS`] elements (or its element
    /// count overflows); refused before anything is allocated.
    #[error(
        "{node}: tensor `{tensor}` of shape {shape:?} would hold more than {limit} elements, the runtime's limit; check the model's shapes, pads and sizes, or feed smaller inputs"
    )]
    TooLarge {
        /// The node computing it, or `initializer`/`input` for a graph tensor.
        node: String,
        /// The tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<u64>,
        /// The limit ([`super::MAX_ELEMENTS`]).
        limit: u64,
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

/// Element count of `shape` if it is within [`super::MAX_ELEMENTS`] (and so is the
/// product of its non-zero dims), else [`RunError::TooLarge`] naming `node`, `tensor`
/// and the shape (no overflow, no panic).
pub(crate) fn checked_numel<D: Copy + TryInto<u64>>(
    node: &str,
    tensor: &str,
    shape: &[D],
) -> RunResult<usize> {
    let dims: Vec<u64> = shape
        .iter()
        .map(|&d| d.try_into().unwrap_or(u64::MAX))
        .collect();
    let limit = super::MAX_ELEMENTS as u64;
    // The product without the zero dims is bounded too: an empty tensor holds nothing,
    // but burn computes its strides, which overflow (a panic) when its other dims are
    // huge (a Pad or Expand of an empty tensor: found by the `runtime_graph` target).
    match dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d.max(1)))
        .filter(|&n| n <= limit)
    {
        Some(n) => Ok(if dims.contains(&0) { 0 } else { n as usize }),
        None => Err(RunError::TooLarge {
            node: node.to_string(),
            tensor: tensor.to_string(),
            shape: dims,
            limit,
        }),
    }
}

/// [`RunError::TooLarge`] for a kernel's output of `shape` (the executor names the
/// node and the tensor).
pub(crate) fn too_large(shape: &[u64]) -> RunError {
    RunError::TooLarge {
        node: String::new(),
        tensor: String::new(),
        shape: shape.to_vec(),
        limit: super::MAX_ELEMENTS as u64,
    }
}

/// Result alias of the runtime.
pub type RunResult<T> = Result<T, RunError>;
