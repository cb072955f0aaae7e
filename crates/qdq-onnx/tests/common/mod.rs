//! Shared helpers: deterministic data, and ONNX Runtime as the outside judge.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::prelude::*;
use burn::tensor::TensorData;
use qdq_onnx::{Message, ModelProto};

/// A deterministic generator (64-bit LCG): tests need no RNG crate and never flake.
pub struct Lcg(pub u64);

impl Lcg {
    /// `n` values uniform in [lo, hi).
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                lo + (hi - lo) * ((self.0 >> 40) as f32 / (1u64 << 24) as f32)
            })
            .collect()
    }
}

pub fn dev() -> Device {
    Device::flex()
}

pub fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), &dev())
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

pub mod node_case;
mod scratch_dir;
pub use scratch_dir::Scratch;

/// A fresh scratch folder for test `name` (see [`Scratch`]).
pub fn scratch(name: &str) -> Scratch {
    scratch_dir::scratch_in("qdq-onnx", name)
}

/// The Python with `onnx` and `onnxruntime`: `$QDQ_PYTHON`, else the workspace's
/// `.venv` (which `.ci/run` creates).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("QDQ_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "ONNX Runtime tests need Python with onnx and onnxruntime: run .ci/run once, or \
         `python3 -m venv .venv && .venv/bin/pip install -r crates/qdq-onnx/tests/requirements.txt`, \
         or set QDQ_PYTHON"
    );
    venv
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ort_run.py")
}

fn save(model: &ModelProto, dir: &Path) -> PathBuf {
    let path = dir.join("model.onnx");
    std::fs::write(&path, model.write_to_bytes().unwrap()).unwrap();
    path
}

/// Runs the ONNX checker (full check) on `model`; panics with its message if it fails.
pub fn onnx_check(model: &ModelProto, dir: &Path) {
    let out = Command::new(python())
        .arg(script())
        .arg(save(model, dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "onnx checker: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks `model` and runs it with ONNX Runtime on `x`; returns the output.
pub fn ort_run<const D: usize>(model: &ModelProto, x: &Tensor<D>, dir: &Path) -> Vec<f32> {
    let path = save(model, dir);
    let input = dir.join("input.bin");
    let output = dir.join("output.bin");
    let data = values(x.clone());
    std::fs::write(
        &input,
        data.iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let dims: Vec<String> = x.dims().iter().map(|d| d.to_string()).collect();
    let out = Command::new(python())
        .arg(script())
        .arg(&path)
        .arg(&input)
        .arg(dims.join(","))
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ONNX Runtime: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&output)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Asserts ORT's output matches qdq's: every element within `step`, and at least
/// `exact_share` of them equal to 1e-5 relative.
pub fn assert_close(ours: &[f32], ort: &[f32], step: f32, exact_share: f64) {
    assert_eq!(ours.len(), ort.len(), "output sizes differ");
    let mut exact = 0;
    for (i, (a, b)) in ours.iter().zip(ort).enumerate() {
        let d = (a - b).abs();
        assert!(
            d <= step,
            "element {i}: qdq {a} vs ONNX Runtime {b} (step {step})"
        );
        if d <= 1e-5 * a.abs().max(1.0) {
            exact += 1;
        }
    }
    let share = exact as f64 / ours.len() as f64;
    assert!(
        share >= exact_share,
        "only {:.1}% of elements agree exactly",
        share * 100.0
    );
}
