//! What the CLI's integration tests share: running the binary, a scratch folder, paths
//! as arguments.

use std::path::Path;
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
