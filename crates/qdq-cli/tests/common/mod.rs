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

/// A fresh scratch folder for test `name`, removed when the value is dropped (also
/// when the test fails), so no run leaves models behind in the temp folder.
pub fn scratch(name: &str) -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix(&format!("qdq-cli-{name}-"))
        .tempdir()
        .unwrap();
    Scratch(dir)
}

/// A temporary folder that derefs to its path.
pub struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// `p` as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
