//! Small models against ONNX Runtime, built by `ort_cases.py`: recurrent layers inside
//! control flow (If branches running a bidirectional LSTM and a reverse GRU on
//! main-graph weights; a Loop stepping an RNN cell with scan outputs feeding a
//! reversed Scan: the pattern of silero-vad and akiki-vad in miniature), Einsum in
//! float32, and `ai.onnx.ml`'s Scaler.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::Device;
use common::node_case::max_abs_diffs;
use common::{Scratch, python, scratch};
use qdq_onnx::passes::{SiteKind, insert_sites, upgrade_opset};
use qdq_onnx::quantize::{QuantizeOptions, prepare};
use qdq_onnx::{Message, QdqFormat, lint, read_model};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ort_cases.py")
}

/// Runs `ort_cases.py` with `args`; panics with its stderr when it fails.
fn py(args: &[&std::ffi::OsStr]) {
    let out = Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ort_cases.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scratch folder holding every case of `ort_cases.py`.
fn cases(name: &str) -> Scratch {
    let dir = scratch(name);
    py(&[dir.as_os_str()]);
    dir
}

#[test]
fn small_models_match_onnx_runtime() {
    let dir = cases("ort_cases");
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
        "ml_scaler",
        "ml_scaler_int",
        "quantize_if",
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

/// A model whose If branches read a main-graph value quantizes with quantizers in the
/// main graph only; the opset upgrade (12 to 13) rewrites the branch's Squeeze and
/// Unsqueeze too; the result passes the lint, and qdq's runtime and ONNX Runtime agree
/// on it.
#[test]
fn model_with_subgraphs_quantizes() {
    let dir = cases("ort_quantize_if");
    let case = dir.join("quantize_if");
    let prepared = prepare(
        &read_model(case.join("model.onnx")).unwrap(),
        &QuantizeOptions::default(),
    )
    .unwrap();
    let mut model = prepared.model.clone();
    let g = model.graph.as_mut().unwrap();
    let mut tensors: Vec<&str> = prepared.sites.iter().map(|s| s.tensor.as_str()).collect();
    tensors.sort();
    assert_eq!(
        tensors,
        ["w", "x"],
        "the MatMul's inputs, nothing in the branches"
    );
    let amaxes: HashMap<String, Vec<f32>> = prepared
        .sites
        .iter()
        .map(|s| {
            let n = match s.kind {
                SiteKind::Weight { axis } => {
                    let w = g.initializer.iter().find(|t| t.name == s.tensor).unwrap();
                    w.dims[axis] as usize
                }
                SiteKind::Activation => 1,
            };
            (s.name.clone(), vec![2.0; n])
        })
        .collect();
    insert_sites(g, &prepared.sites, &amaxes, QdqFormat::Int8, false).unwrap();
    upgrade_opset(&mut model, 13).unwrap();
    let g = model.graph.as_ref().unwrap();
    let branch = g
        .node
        .iter()
        .find(|n| n.op_type == "If")
        .and_then(|n| n.attribute.iter().find(|a| a.name == "then_branch"))
        .and_then(|a| a.g.as_ref())
        .unwrap();
    for n in &branch.node {
        if n.op_type.ends_with("queeze") {
            assert_eq!(n.input.len(), 2, "{} keeps its axes attribute", n.op_type);
            assert!(n.attribute.is_empty());
        }
    }
    assert_eq!(lint(&model), vec![]);
    let q = dir.join("quantized");
    std::fs::create_dir_all(q.join("test_data_set_0")).unwrap();
    std::fs::write(q.join("model.onnx"), model.write_to_bytes().unwrap()).unwrap();
    std::fs::copy(
        case.join("test_data_set_0/input_0.pb"),
        q.join("test_data_set_0/input_0.pb"),
    )
    .unwrap();
    py(&["--judge".as_ref(), q.as_os_str()]);
    let diffs = max_abs_diffs(&q, &Device::flex()).unwrap();
    for (name, d) in diffs {
        println!("quantized {name}: max |qdq - ORT| = {d:e}");
        assert!(
            d <= 1e-5,
            "output `{name}` differs from ONNX Runtime by {d}"
        );
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

/// Every `model.onnx` under `$QDQ_CASES_DIR` quantizes (amax 2 everywhere), passes the
/// lint, and still runs in qdq's runtime on the case's inputs; prints the quantizer
/// count and the largest change of each output (a smoke check of the quantize path on
/// real models with subgraphs, not of accuracy).
#[test]
#[ignore = "needs QDQ_CASES_DIR"]
fn cases_in_dir_quantize() {
    let root = std::env::var("QDQ_CASES_DIR").expect("QDQ_CASES_DIR");
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for d in dirs {
        let name = d
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let res = (|| -> Result<String, String> {
            let src = read_model(d.join("model.onnx")).map_err(|e| e.to_string())?;
            let prepared = prepare(&src, &QuantizeOptions::default()).map_err(|e| e.to_string())?;
            let mut model = prepared.model.clone();
            let g = model.graph.as_mut().ok_or("no graph")?;
            let amaxes: HashMap<String, Vec<f32>> = prepared
                .sites
                .iter()
                .map(|s| {
                    let n = match s.kind {
                        SiteKind::Weight { axis } => g
                            .initializer
                            .iter()
                            .find(|t| t.name == s.tensor)
                            .map_or(1, |w| w.dims[axis] as usize),
                        SiteKind::Activation => 1,
                    };
                    (s.name.clone(), vec![2.0; n])
                })
                .collect();
            insert_sites(g, &prepared.sites, &amaxes, QdqFormat::Int8, false)
                .map_err(|e| e.to_string())?;
            upgrade_opset(&mut model, 13).map_err(|e| e.to_string())?;
            let v = lint(&model);
            if !v.is_empty() {
                return Err(format!("lint: {v:?}"));
            }
            let q = scratch("real-q");
            std::fs::create_dir_all(q.join("test_data_set_0")).unwrap();
            std::fs::write(q.join("model.onnx"), model.write_to_bytes().unwrap()).unwrap();
            for e in std::fs::read_dir(d.join("test_data_set_0"))
                .unwrap()
                .flatten()
            {
                std::fs::copy(e.path(), q.join("test_data_set_0").join(e.file_name())).unwrap();
            }
            let diffs = max_abs_diffs(&q, &Device::flex())?;
            Ok(format!(
                "{} quantizers; change vs float {diffs:?}",
                prepared.sites.len()
            ))
        })();
        println!(
            "{name:<20} {}",
            res.unwrap_or_else(|e| format!("ERROR {e}"))
        );
    }
}
