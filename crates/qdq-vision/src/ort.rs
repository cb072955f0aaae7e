//! Scores an ONNX classifier with ONNX Runtime (the outside runtime that checks
//! qdq's exported files), through `crates/qdq-onnx/tests/ort_run.py` and a Python
//! with `onnx` and `onnxruntime` (the `.venv` that `.ci/run` creates).

use std::path::{Path, PathBuf};
use std::process::Command;

use qdq_data::Dataset;

/// The script that checks a model with the ONNX checker and runs it in ONNX Runtime.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../qdq-onnx/tests/ort_run.py");

/// `QDQ_PYTHON` if set, else the repository's `.venv` Python (as the export tests).
pub fn default_python() -> PathBuf {
    std::env::var_os("QDQ_PYTHON").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../.venv/bin/python"
            ))
        },
        PathBuf::from,
    )
}

/// ONNX Runtime could not score the file.
#[derive(Debug, thiserror::Error)]
pub enum OrtError {
    /// Python or the script could not run, or failed.
    #[error(
        "ONNX Runtime via {python} failed: {why} (create the environment with \
         `python3 -m venv .venv && .venv/bin/pip install -r crates/qdq-onnx/tests/requirements.txt`)"
    )]
    Run {
        /// The Python used.
        python: String,
        /// What went wrong.
        why: String,
    },
}

/// Top-1 accuracy of `model` (one float input `[batch, C, H, W]`, logits out) on
/// the labelled images of `data`, computed by ONNX Runtime.
///
/// # Errors
/// Python, onnx or onnxruntime missing; the checker or the runtime refusing the file.
///
/// # Panics
/// Unlabelled data.
pub fn accuracy(python: &Path, model: &Path, data: &Dataset) -> Result<f64, OrtError> {
    let fail = |why: String| fail(python, why);
    let dir = temp_dir(data)?;
    let input = dir.join("x.bin");
    let written = write_items(data, &input).map_err(fail);
    let mut dims = vec![data.len()];
    if data.item_shape().len() == 2 {
        dims.push(1); // [H, W] images are single-channel
    }
    dims.extend(data.item_shape());
    let logits = written.and_then(|()| run_file(python, model, &input, &dims));
    let _ = std::fs::remove_dir_all(&dir);
    let logits = logits?;
    let labels = data.labels().expect("labelled data");
    let classes = logits.len() / labels.len().max(1);
    let correct = logits
        .chunks(classes)
        .zip(labels)
        .filter(|&(row, &label)| {
            let arg = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0;
            arg as i64 == label
        })
        .count();
    Ok(correct as f64 / labels.len() as f64)
}

/// The output of `model` (one float input, one float output) on `input` of shape
/// `dims` (row-major), computed by ONNX Runtime.
///
/// # Errors
/// As [`accuracy`].
pub fn run(
    python: &Path,
    model: &Path,
    input: &[f32],
    dims: &[usize],
) -> Result<Vec<f32>, OrtError> {
    let dir = temp_dir(&input)?;
    let path = dir.join("x.bin");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    let out = std::fs::write(&path, bytes)
        .map_err(|e| fail(python, format!("{}: {e}", path.display())))
        .and_then(|()| run_file(python, model, &path, dims));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn fail(python: &Path, why: String) -> OrtError {
    OrtError::Run {
        python: python.display().to_string(),
        why,
    }
}

/// A fresh folder for one run (named by process and `key`'s address, so concurrent
/// runs do not collide).
fn temp_dir<T: ?Sized>(key: &T) -> Result<PathBuf, OrtError> {
    let dir = std::env::temp_dir().join(format!("qdq-ort-{}-{:p}", std::process::id(), key));
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail(Path::new("python"), format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

/// Runs the script on `input` (raw f32 of shape `dims`); returns the raw f32 output.
fn run_file(
    python: &Path,
    model: &Path,
    input: &Path,
    dims: &[usize],
) -> Result<Vec<f32>, OrtError> {
    let output = input.with_file_name("y.bin");
    let dims: Vec<String> = dims.iter().map(ToString::to_string).collect();
    let out = Command::new(python)
        .arg(SCRIPT)
        .arg(model)
        .arg(input)
        .arg(dims.join(","))
        .arg(&output)
        .output()
        .map_err(|e| fail(python, e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            python,
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let bytes = std::fs::read(&output).map_err(|e| fail(python, e.to_string()))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Writes `data`'s items to `path` as little-endian f32, a batch at a time.
fn write_items(data: &Dataset, path: &Path) -> Result<(), String> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for from in (0..data.len()).step_by(256) {
        let values = data.read(from, 256).map_err(|e| e.to_string())?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.write_all(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    w.flush().map_err(|e| format!("{}: {e}", path.display()))
}
