//! Scratch folders for integration tests, shared by qdq-onnx's and qdq-cli's tests
//! (included by `#[path]`: integration tests of two crates cannot share a module).

use std::path::Path;

/// A fresh scratch folder named after `prefix` and test `name`, removed when the
/// value is dropped (also when the test fails), so no run leaves models behind in the
/// temp folder.
pub fn scratch_in(prefix: &str, name: &str) -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{prefix}-{name}-"))
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
