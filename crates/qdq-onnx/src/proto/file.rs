//! Reading an ONNX file, with errors that name it: the one reader the linter, the
//! runtime and the command line share.

use std::io::Read;
use std::path::Path;

use onnx_ir::{Message, ModelProto};

/// Why [`read_model`] failed; both variants name the file. The crate's top error
/// wraps them under the same names and messages.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A tensor's external data could not be read (tensor and location named).
    #[error("{path}: {source}")]
    External {
        /// The model file.
        path: String,
        /// What is wrong, with the tensor and its location.
        source: super::external::ExternalError,
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

/// Largest `.onnx` file read: 2 GiB, protobuf's own limit for one message (bigger
/// models keep their weights in external data files, which [`read_model`] reads).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Reads and parses the ONNX model at `path`.
///
/// # Errors
/// [`ReadError::Io`] when the file cannot be read, is not a regular file (a FIFO or a
/// device would never end) or is over [`MAX_MODEL_BYTES`]; [`ReadError::Parse`] when it is
/// not an ONNX model (e.g. truncated); [`ReadError::External`] when a tensor's external
/// data cannot be read. All name the file.
pub fn read_model(path: impl AsRef<Path>) -> Result<ModelProto, ReadError> {
    read_model_with_data(path.as_ref(), None)
}

/// [`read_model`], reading the external data file the model names `location` from
/// `file` (`renamed = Some((location, file))`): how a model written next to its data
/// file is checked while both are still temporary files.
///
/// # Errors
/// As [`read_model`].
pub fn read_model_with_data(
    path: &Path,
    renamed: Option<(&str, &Path)>,
) -> Result<ModelProto, ReadError> {
    let io = |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    };
    // Look before opening: opening a FIFO blocks until someone writes to it.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file; give the path of an .onnx file",
        )));
    }
    let too_big = || {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {MAX_MODEL_BYTES} bytes, protobuf's limit for one ONNX file; save big models with their weights as external data (onnx.save_model(m, path, save_as_external_data=True))"
            ),
        ))
    };
    if meta.len() > MAX_MODEL_BYTES {
        return Err(too_big());
    }
    let file = std::fs::File::open(path).map_err(io)?;
    // The file may grow while it is read: read at most one byte past the limit.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_MODEL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(too_big());
    }
    let mut model = ModelProto::parse_from_bytes(&bytes).map_err(|e| ReadError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    drop(bytes);
    // Weights in external files next to the model are read in now, confined to its
    // folder (see `external`).
    if let Some(graph) = model.graph.as_mut()
        && graph.initializer.iter().any(super::external::is_external)
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        super::external::load_external_from(graph, dir, renamed).map_err(|source| {
            ReadError::External {
                path: path.display().to_string(),
                source,
            }
        })?;
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_devices_are_refused_by_name() {
        for path in [std::env::temp_dir(), "/dev/zero".into()] {
            if !path.exists() {
                continue;
            }
            let err = read_model(&path).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(&err, ReadError::Io { .. }) && text.contains("not a regular file"),
                "{text}"
            );
            assert!(text.starts_with(&path.display().to_string()), "{text}");
        }
    }
}
