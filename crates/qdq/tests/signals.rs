//! A write killed half-way (Ctrl-C, `kill`, a closed terminal) leaves the target as
//! it was and no temporary file: the test runs itself as a child that is killed while
//! its write is in progress.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const CHILD: &str = "QDQ_SIGNAL_TEST_DIR";

/// In the child: start a write, say so, and hang until killed.
fn child(dir: &Path) {
    qdq::io::remove_temp_files_on_signals().unwrap();
    let _ = qdq::io::write_with(
        &dir.join("model.onnx"),
        |f| {
            f.write_all(&vec![7u8; 1 << 20])?;
            println!("writing");
            std::io::stdout().flush()?;
            std::thread::sleep(std::time::Duration::from_secs(60));
            Ok(())
        },
        |_| Ok(()),
    );
    unreachable!("the parent kills this process during the write");
}

fn killed_during_write(signal: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.onnx"), b"the only copy").unwrap();
    let name = format!("killed_by_{}", signal.to_lowercase());
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("writing"))),
        "the child started writing"
    );
    // The temporary file exists now, next to the target.
    let during: Vec<String> = names(dir.path());
    assert_eq!(during.len(), 2, "{during:?}");
    assert!(
        during
            .iter()
            .any(|n| n.starts_with(".qdq-") && n.ends_with(".tmp"))
    );
    let status = Command::new("kill")
        .args([format!("-{signal}"), c.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = c.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(code), "{status:?}");
    assert_eq!(names(dir.path()), ["model.onnx"]);
    assert_eq!(
        std::fs::read(dir.path().join("model.onnx")).unwrap(),
        b"the only copy"
    );
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn killed_by_term() {
    match std::env::var_os(CHILD) {
        Some(dir) => child(Path::new(&dir)),
        None => killed_during_write("TERM", 15),
    }
}

#[test]
fn killed_by_int() {
    match std::env::var_os(CHILD) {
        Some(dir) => child(Path::new(&dir)),
        None => killed_during_write("INT", 2),
    }
}
