//! A small BERT-style encoder (2 layers, int64 `input_ids` and `attention_mask`, dynamic
//! `batch` × `sequence`; crates/qdq-onnx/tests/transformer_fixtures.py) through one
//! `qdq quantize` command, judged from outside (tests/transformer.py): onnx.checker's
//! full check, an ONNX Runtime run on every evaluation item, cosine to FP32. Calibration
//! and evaluation items have different sequence lengths (5 to 16, some padded under the
//! mask), so the data loader batches items of equal shape and the written model keeps
//! its dynamic dims.

mod common;
use common::{qdq, run_python, s, scratch};

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Quantizes the post-LN BERT fixture with `flags` and returns the judge's JSON.
fn quantize_and_judge(dir: &Path, flags: &[&str], out_name: &str) -> serde_json::Value {
    let model = dir.join("bert_post_ln.onnx");
    let (out, calib) = (dir.join(out_name), dir.join("calib"));
    let mut args = vec!["quantize", s(&model), "--calib", s(&calib), "-o", s(&out)];
    args.extend(flags);
    let o = qdq(&args);
    assert!(
        o.status.success(),
        "{flags:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let judge = root().join("crates/qdq-cli/tests/transformer.py");
    let row = run_python(
        &[s(&judge), "judge", s(&model), s(&out), s(&dir.join("eval"))],
        "judging",
    );
    let v: serde_json::Value = serde_json::from_str(row.trim()).expect("JSON");
    assert_eq!(v["valid"], "ok", "{flags:?}: {v}");
    // Dynamic dims survive: the names, not the calibration items' lengths.
    assert_eq!(
        v["dims"]["input_ids"],
        serde_json::json!(["batch", "sequence"]),
        "{v}"
    );
    assert_eq!(
        v["dims"]["last_hidden_state"],
        serde_json::json!(["batch", "sequence", 32]),
        "{v}"
    );
    assert_eq!(v["items"], 16, "{v}");
    assert!(v["lengths"].as_u64().unwrap() >= 5, "{v}");
    v
}

// Thresholds (cosine of the quantized to the FP32 `last_hidden_state`, per evaluation
// item): measured 2026-12 on these fixtures, 32 calibration and 16 evaluation items,
// mean / min: INT8 0.9947 / 0.9920, INT8 with attention in float 0.9947 / 0.9914, FP8
// 0.9978 / 0.9961. The bounds sit a little lower so another CPU's float rounding cannot
// flip them, and far above badly clipped scales: `--method percentile=50` gives
// 0.630 / 0.440 on the same items and fails every assertion below.

/// Asserts the judge's mean and minimum cosine.
fn assert_cosine(v: &serde_json::Value, mean: f64, min: f64) {
    let (m, n) = (
        v["cosine_mean"].as_f64().unwrap(),
        v["cosine_min"].as_f64().unwrap(),
    );
    assert!(
        m >= mean && n >= min,
        "cosine to FP32 mean {m} min {n}: {v}"
    );
}

#[test]
fn bert_encoder_quantizes_in_one_command_and_runs_in_onnx_runtime() {
    let dir = scratch("transformer");
    let fixtures = root().join("crates/qdq-onnx/tests/transformer_fixtures.py");
    run_python(&[s(&fixtures), "models", s(&dir)], "writing the fixtures");
    for (folder, n, seed) in [("calib", "32", "1"), ("eval", "16", "2")] {
        run_python(
            &[s(&fixtures), "items", s(&dir.join(folder)), n, seed],
            "writing items",
        );
    }

    // INT8, default method: 2 layers × (6 projections × 2 + 4 attention inputs) = 32
    // quantized inputs on 28 tensors (Q, K, V share their input).
    let v = quantize_and_judge(&dir, &[], "int8.onnx");
    assert_eq!(v["quantize_linear"], 28, "{v}");
    assert_eq!(v["zero_point_types"], serde_json::json!(["INT8"]), "{v}");
    assert_cosine(&v, 0.99, 0.985);

    // Attention left in float: 8 quantizers fewer (the 4 attention inputs of each layer).
    let v = quantize_and_judge(
        &dir,
        &["--keep-attention-float"],
        "int8-float-attention.onnx",
    );
    assert_eq!(v["quantize_linear"], 20, "{v}");
    assert_cosine(&v, 0.99, 0.985);

    // FP8 E4M3 on the same sites, opset 19.
    let v = quantize_and_judge(&dir, &["--format", "fp8"], "fp8.onnx");
    assert_eq!(v["opset"], 19, "{v}");
    assert_eq!(v["quantize_linear"], 28, "{v}");
    assert_eq!(
        v["zero_point_types"],
        serde_json::json!(["FLOAT8E4M3FN"]),
        "{v}"
    );
    assert_cosine(&v, 0.995, 0.99);
}
