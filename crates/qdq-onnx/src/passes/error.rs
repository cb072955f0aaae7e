//! Errors of the graph passes. The crate's top error wraps them under the same variant
//! names and messages, so callers of the tools see one error type.

/// Why a pass refused a graph.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// An opset outside what a step can write (1 to [`crate::proto::version::MAX_OPSET`]
    /// for the passes).
    #[error("opset {opset} is not supported by {what}; choose {min} to {max}{note}")]
    OpsetRange {
        /// The opset asked for.
        opset: i64,
        /// The step that refused it (`quantize`, `the opset upgrade`...).
        what: &'static str,
        /// Lowest accepted.
        min: i64,
        /// Highest accepted.
        max: i64,
        /// More on the range.
        note: &'static str,
    },
    /// The graph cannot be processed as asked (named node or tensor, and why).
    #[error("{0}")]
    Graph(String),
}

/// Result alias of the passes.
pub type PassResult<T> = Result<T, PassError>;
