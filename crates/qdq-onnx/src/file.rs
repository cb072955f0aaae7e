//! Reading an ONNX file, with errors that name it: the one reader the linter, the
//! runtime and the command line share.

use std::path::Path;

use onnx_ir::{Message, ModelProto};

use crate::error::{Error, Result};

/// Reads and parses the ONNX model at `path`.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Parse`] when it is not an ONNX
/// model (e.g. truncated); both name the file.
pub fn read_model(path: impl AsRef<Path>) -> Result<ModelProto> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    ModelProto::parse_from_bytes(&bytes).map_err(|e| Error::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
