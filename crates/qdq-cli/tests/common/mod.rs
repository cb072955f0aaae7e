//! What the CLI's integration tests share: running the binary, a scratch folder, paths
//! as arguments.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `qdq` binary with `args`.
pub fn qdq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qdq"))
        .args(args)
        .output()
        .expect("the qdq binary runs")
}

/// An empty folder for test `name`, unique to this process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qdq-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `p` as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
