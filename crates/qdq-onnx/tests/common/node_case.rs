//! Cases laid out like ONNX's node test data (`model.onnx`, `test_data_set_0/
//! input_N.pb`, `output_N.pb`): run one with qdq's runtime and measure it against
//! the stored outputs.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use qdq_onnx::Message;
use qdq_onnx::runtime::{OnnxGraph, Value};

/// A serialized `TensorProto` file as a runtime value.
pub fn read_tensor(path: &Path, device: &Device) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t = onnx_ir::TensorProto::parse_from_bytes(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Value::from_tensor_proto(&t, device).map_err(|e| e.to_string())
}

/// `DIR/PREFIX<n>.pb` files in order of `n`.
pub fn numbered(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let n = name
                        .strip_prefix(prefix)?
                        .strip_suffix(".pb")?
                        .parse()
                        .ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// Runs the case in `dir`; per output: its name and the largest |qdq - stored|
/// (an error when shapes or counts differ).
pub fn max_abs_diffs(dir: &Path, device: &Device) -> Result<Vec<(String, f32)>, String> {
    let graph = OnnxGraph::load(dir.join("model.onnx"), device).map_err(|e| e.to_string())?;
    let data = dir.join("test_data_set_0");
    let mut feed = Vec::new();
    for (spec, p) in graph.inputs().iter().zip(numbered(&data, "input_")) {
        feed.push((spec.name.clone(), read_tensor(&p, device)?));
    }
    let outs = graph.run(feed).map_err(|e| e.to_string())?;
    let expected = numbered(&data, "output_");
    if expected.len() != outs.len() {
        return Err(format!(
            "{} outputs, expected {}",
            outs.len(),
            expected.len()
        ));
    }
    let mut diffs = Vec::new();
    for ((name, got), p) in outs.iter().zip(&expected) {
        let want = read_tensor(p, device)?;
        if got.shape() != want.shape() {
            return Err(format!(
                "output `{name}`: shape {:?}, expected {:?}",
                got.shape(),
                want.shape()
            ));
        }
        let (a, b) = (
            got.to_f32().map_err(|e| e.to_string())?,
            want.to_f32().map_err(|e| e.to_string())?,
        );
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        diffs.push((name.clone(), d));
    }
    Ok(diffs)
}
