//! Small models against ONNX Runtime, built by `ort_cases.py`: recurrent layers inside
//! control flow (If branches running a bidirectional LSTM and a reverse GRU on
//! main-graph weights; a Loop stepping an RNN cell with scan outputs feeding a
//! reversed Scan: the pattern of silero-vad and akiki-vad in miniature), and Einsum
//! in float32.

mod common;

use std::process::Command;

use burn::tensor::Device;
use common::node_case::max_abs_diffs;
use common::{python, scratch};

#[test]
fn small_models_match_onnx_runtime() {
    let dir = scratch("ort_cases");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ort_cases.py");
    let out = Command::new(python())
        .arg(script)
        .arg(&*dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ort_cases.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let device = Device::flex();
    let cases = [
        "if_lstm",
        "if_gru",
        "loop_rnn_scan",
        "einsum_batch_diag",
        "einsum_bmm",
        "einsum_ellipsis_bcast",
        "einsum_implicit",
        "einsum_sum",
        "einsum_outer",
        "einsum_chain",
        "einsum_trace_t",
    ];
    for case in cases {
        let diffs =
            max_abs_diffs(&dir.join(case), &device).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(!diffs.is_empty(), "{case}: no outputs");
        for (name, d) in diffs {
            println!("{case} {name}: max |qdq - ORT| = {d:e}");
            assert!(
                d <= 1e-5,
                "{case}: output `{name}` differs from ONNX Runtime by {d}"
            );
        }
    }
}

/// Every case under `$QDQ_CASES_DIR` (written by `ort_cases.py --real`),
/// with the largest difference per output; how the real models are measured.
#[test]
#[ignore = "needs QDQ_CASES_DIR"]
fn cases_in_dir() {
    let root = std::env::var("QDQ_CASES_DIR").expect("QDQ_CASES_DIR");
    let device = Device::flex();
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        let t0 = std::time::Instant::now();
        let r = max_abs_diffs(&d, &device);
        let name = d
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        match r {
            Ok(diffs) => {
                for (o, v) in diffs {
                    println!(
                        "{name:<20} {o:<16} max|diff| {v:.3e}  ({:.2}s)",
                        t0.elapsed().as_secs_f32()
                    );
                }
            }
            Err(e) => println!("{name:<20} ERROR {e}"),
        }
    }
}
