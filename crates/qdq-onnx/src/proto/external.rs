//! External data: models over protobuf's 2 GiB limit keep their weights in files next
//! to the `.onnx` (`TensorProto.external_data` keys `location`, `offset`, `length`,
//! `checksum`). [`load_external`] reads them into the tensors, so every later floor
//! sees ordinary raw data. Paths stay inside the model's folder (no absolute path, no
//! `..`, no symlink out of it) and every range is checked against the file and the
//! tensor's size before a byte is read.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use onnx_ir::{GraphProto, TensorProto};

use super::elem;

/// Why a tensor's external data could not be read; names the tensor and the path.
#[derive(Debug, thiserror::Error)]
#[error("tensor `{tensor}` keeps its values in `{location}`: {message}")]
pub struct ExternalError {
    /// The tensor.
    pub tensor: String,
    /// The `location` it names (as written in the model).
    pub location: String,
    /// What is wrong.
    pub message: String,
}

/// Bytes per element of a fixed-width type (`None` for strings and sub-byte types).
pub(crate) fn byte_width(code: i32) -> Option<u64> {
    Some(match code {
        elem::BOOL | elem::INT8 | elem::UINT8 => 1,
        elem::FLOAT8E4M3FN | elem::FLOAT8E4M3FNUZ | elem::FLOAT8E5M2 | elem::FLOAT8E5M2FNUZ => 1,
        elem::INT16 | elem::UINT16 | elem::FLOAT16 | elem::BFLOAT16 => 2,
        elem::FLOAT | elem::INT32 | elem::UINT32 => 4,
        elem::DOUBLE | elem::INT64 | elem::UINT64 => 8,
        _ => return None,
    })
}

/// Whether a tensor's values live in an external file.
pub(crate) fn is_external(t: &TensorProto) -> bool {
    t.data_location.value() == 1 || !t.external_data.is_empty()
}

/// The external data files the model at `path` names (resolved in its folder),
/// without reading them: what a command must not overwrite. Empty when the file
/// cannot be read or parsed (reading the model later reports why).
pub fn data_files(path: &Path) -> Vec<PathBuf> {
    use onnx_ir::Message;
    let bytes = match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() <= super::file::MAX_MODEL_BYTES => std::fs::read(path),
        _ => return Vec::new(),
    };
    let Some(model) = bytes
        .ok()
        .and_then(|b| onnx_ir::ModelProto::parse_from_bytes(&b).ok())
    else {
        return Vec::new();
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut files: Vec<PathBuf> = model
        .graph
        .initializer
        .iter()
        .filter(|t| is_external(t))
        .filter_map(|t| t.external_data.iter().find(|e| e.key == "location"))
        .map(|e| dir.join(&e.value))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Reads the external data of every initializer of `graph` (the model was read from
/// `dir`) into its `raw_data`, leaving the tensor as if it had been stored inline.
///
/// # Errors
/// [`ExternalError`] naming the tensor and its location: an absolute path, a `..`
/// component, a path leaving `dir` through a symlink, a missing or non-regular file, a
/// bad or out-of-range offset/length, a length that is not the tensor's size, or a type
/// of no fixed width.
pub fn load_external(graph: &mut GraphProto, dir: &Path) -> Result<(), ExternalError> {
    load_external_from(graph, dir, None)
}

/// [`load_external`], reading the data file named `location` from `file` instead
/// (`renamed = Some((location, file))`): a model being written refers to its data
/// file by its final name while both still lie in temporary files.
///
/// # Errors
/// As [`load_external`].
pub fn load_external_from(
    graph: &mut GraphProto,
    dir: &Path,
    renamed: Option<(&str, &Path)>,
) -> Result<(), ExternalError> {
    let root = dir.canonicalize().map_err(|e| ExternalError {
        tensor: String::new(),
        location: dir.display().to_string(),
        message: format!("the model's folder cannot be resolved: {e}"),
    })?;
    for t in graph.initializer.iter_mut().filter(|t| is_external(t)) {
        let bytes = read_one(t, &root, renamed)?;
        t.raw_data = bytes.into();
        t.external_data.clear();
        t.data_location = Default::default();
    }
    Ok(())
}

fn read_one(
    t: &TensorProto,
    root: &Path,
    renamed: Option<(&str, &Path)>,
) -> Result<Vec<u8>, ExternalError> {
    let key = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.as_str())
    };
    let location = key("location").unwrap_or_default();
    let fail = |message: String| ExternalError {
        tensor: t.name.clone(),
        location: location.to_string(),
        message,
    };
    let file = match renamed {
        Some((name, file)) if name == location => file.to_path_buf(),
        _ => confined(location, root).map_err(fail)?,
    };
    let number = |k: &str| -> Result<Option<u64>, ExternalError> {
        key(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| fail(format!("{k} `{v}` is not a non-negative integer")))
            })
            .transpose()
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    // The tensor's size, computed without overflow: what must be read, no more.
    let width = byte_width(t.data_type).ok_or_else(|| {
        fail(format!(
            "element type {} cannot be stored externally here",
            elem::dtype_name(t.data_type)
        ))
    })?;
    let expected = t
        .dims
        .iter()
        .try_fold(width, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
        .ok_or_else(|| {
            fail(format!(
                "shape {:?} has a negative or overflowing dim",
                t.dims
            ))
        })?;
    if let Some(len) = length
        && len != expected
    {
        return Err(fail(format!(
            "length {len} is not the {expected} bytes of shape {:?}",
            t.dims
        )));
    }
    let mut f = std::fs::File::open(&file).map_err(|e| fail(e.to_string()))?;
    let size = f.metadata().map_err(|e| fail(e.to_string()))?.len();
    match offset.checked_add(expected) {
        Some(end) if end <= size => {}
        _ => {
            return Err(fail(format!(
                "bytes {offset}..{offset}+{expected} lie past the end of the {size}-byte file"
            )));
        }
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::with_capacity(expected as usize);
    f.take(expected)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 != expected {
        return Err(fail("the file changed while it was read".into()));
    }
    Ok(bytes)
}

/// The data file `location` inside `root` (canonical), or why it is refused.
fn confined(location: &str, root: &Path) -> Result<PathBuf, String> {
    let rel = Path::new(location);
    if location.is_empty() {
        return Err("no location given".into());
    }
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(
            "external data must be a relative path inside the model's folder (no absolute path, no `..`)".into(),
        );
    }
    let path = root
        .join(rel)
        .canonicalize()
        .map_err(|e| format!("cannot open it: {e}"))?;
    if !path.starts_with(root) {
        return Err("it resolves (through a symlink) outside the model's folder".into());
    }
    if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
        return Err("not a regular file".into());
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph with one external float tensor `w` of `dims` at `location`.
    fn graph(location: &str, dims: &[i64], extra: &[(&str, &str)]) -> GraphProto {
        let mut t = TensorProto::new();
        t.name = "w".into();
        t.data_type = elem::FLOAT;
        t.dims = dims.to_vec();
        // `data_location` stays DEFAULT: the keys alone mark the tensor external.
        for (k, v) in [("location", location)].iter().chain(extra) {
            t.external_data.push(Default::default());
            let e = t.external_data.last_mut().unwrap();
            e.key = k.to_string();
            e.value = v.to_string();
        }
        let mut g = GraphProto::new();
        g.initializer.push(t);
        g
    }

    #[test]
    fn external_data_is_read_inside_the_folder_and_refused_outside_it() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("model");
        std::fs::create_dir(&dir).unwrap();
        let values: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(dir.join("model.onnx.data"), &values).unwrap();
        std::fs::write(top.path().join("outside.data"), &values).unwrap();
        // Offset 4, two floats: -2.0, 3.25.
        let mut g = graph("model.onnx.data", &[2], &[("offset", "4"), ("length", "8")]);
        load_external(&mut g, &dir).unwrap();
        let t = &g.initializer[0];
        assert!(!is_external(t) && t.external_data.is_empty());
        assert_eq!(crate::proto::decode::floats(t).unwrap(), vec![-2.0, 3.25]);
        // Refused, each naming the tensor and the location.
        #[cfg(unix)]
        std::os::unix::fs::symlink(top.path().join("outside.data"), dir.join("link.data")).unwrap();
        let outside = top.path().join("outside.data").display().to_string();
        let cases: Vec<(GraphProto, &str)> = vec![
            (graph("../outside.data", &[4], &[]), "no `..`"),
            (graph(&outside, &[4], &[]), "no absolute path"),
            #[cfg(unix)]
            (graph("link.data", &[4], &[]), "outside the model's folder"),
            (graph("missing.data", &[4], &[]), "cannot open it"),
            (
                graph("model.onnx.data", &[4], &[("offset", "8")]),
                "past the end",
            ),
            (
                graph(
                    "model.onnx.data",
                    &[2],
                    &[("offset", &u64::MAX.to_string())],
                ),
                "past the end",
            ),
            (
                graph("model.onnx.data", &[2], &[("length", "12")]),
                "is not the 8 bytes",
            ),
            (graph("model.onnx.data", &[1 << 62, 8], &[]), "overflowing"),
            (
                graph("model.onnx.data", &[2], &[("offset", "-4")]),
                "not a non-negative",
            ),
        ];
        for (mut g, want) in cases {
            let location = g.initializer[0].external_data[0].value.clone();
            let err = load_external(&mut g, &dir).unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains("tensor `w`") && err.contains(&location),
                "{err}"
            );
        }
    }
}
