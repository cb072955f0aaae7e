//! What the CLI's integration tests share: running the binary, a scratch folder, paths
//! as arguments, the test Python and its scripts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `qdq` binary with `args`.
pub fn qdq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qdq"))
        .args(args)
        .output()
        .expect("the qdq binary runs")
}

#[path = "../../../qdq-onnx/tests/common/scratch_dir.rs"]
mod scratch_dir;
pub use scratch_dir::Scratch;

/// A fresh scratch folder for test `name` (see [`Scratch`]).
pub fn scratch(name: &str) -> Scratch {
    scratch_dir::scratch_in("qdq-cli", name)
}

/// `p` as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The Python with the tests' packages (onnx, onnxruntime, numpy, Pillow): `$QDQ_PYTHON`,
/// else the workspace's `.venv`, which `.ci/run` makes; it must exist.
#[allow(dead_code)] // not every test file runs Python
pub fn python() -> PathBuf {
    let python = qdq_vision::ort::default_python();
    assert!(
        python.exists(),
        "this test needs Python with onnx, onnxruntime, numpy and Pillow: run .ci/run once, or set QDQ_PYTHON"
    );
    python
}

/// Runs [`python`] with `args`, which must succeed (`what` it was doing names the
/// failure); its stdout.
#[allow(dead_code)] // not every test file runs Python
pub fn run_python(args: &[&str], what: &str) -> String {
    let out = Command::new(python())
        .args(args)
        .output()
        .expect("python runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{what} failed:\n{stdout}{stderr}");
    stdout
}
