//! Recurrent layers load a torch state dict by name: a 2-layer bidirectional LSTM, GRU
//! and RNN (tanh) written in torch's layout by `rnn_torch_checkpoint.py` load into
//! `QuantLSTM` / `QuantGRU` / `QuantRNN`, and with their quantizers disabled the float
//! output equals ONNX Runtime's `LSTM` / `GRU` (`linear_before_reset=1`) / `RNN` on the
//! same weights in ONNX's gate order: the outside judge of the names, the layouts, the
//! gate orders and the recurrence.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use burn::prelude::*;
use common::{dev, python, scratch, tensor, values};
use qdq::nn::*;

fn floats(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The tensor names in a safetensors file (its JSON header's keys).
fn names(path: &Path) -> BTreeSet<String> {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k != "__metadata__")
        .collect()
}

/// Writes the torch checkpoint of `mode` and ONNX Runtime's output; returns
/// (checkpoint, x `[5, 2, 3]`, ONNX Runtime's y `[5, 2, 8]`).
fn judge(mode: &str, dir: &Path) -> (std::path::PathBuf, Tensor<3>, Vec<f32>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rnn_torch_checkpoint.py");
    let out = Command::new(python())
        .arg(script)
        .arg(mode)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let x = tensor(floats(&dir.join("x.bin")), [5, 2, 3]);
    (
        dir.join(format!("{mode}.safetensors")),
        x,
        floats(&dir.join("y.bin")),
    )
}

fn torch_names() -> BTreeSet<String> {
    let mut want = BTreeSet::new();
    for layer in 0..2 {
        for sfx in ["", "_reverse"] {
            for p in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
                want.insert(format!("{p}_l{layer}{sfx}"));
            }
        }
    }
    want
}

/// Loads `file` into `model`, checks the names it saves are torch's (plus the
/// calibrated amaxes none here), and returns the largest difference of its float
/// output to ONNX Runtime's.
fn compare<M: burn::module::Module>(
    model: M,
    quantizers: impl Fn(&M) -> Vec<TensorQuantizer>,
    forward: impl Fn(&M, Tensor<3>) -> Tensor<3>,
    (file, x, want): (std::path::PathBuf, Tensor<3>, Vec<f32>),
    dir: &Path,
) -> f32 {
    let model = load_safetensors(model, &file).unwrap();
    quantizers(&model).iter().for_each(|q| q.disable());
    let saved = dir.join("saved.safetensors");
    save_safetensors(&model, &saved).unwrap();
    assert_eq!(names(&saved), torch_names());
    assert_eq!(names(&file), torch_names());
    let got = values(forward(&model, x));
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn torch_state_dicts_load_by_name_and_match_onnx_runtime() {
    let dir = scratch("rnn-torch");
    let d = dev();
    let all = |i: &[TensorQuantizer], w: &[TensorQuantizer]| [i, w].concat();

    let lstm = QuantLSTMConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&d)
        .unwrap();
    let lstm = compare(
        lstm,
        |m| all(&m._input_quantizers, &m._weight_quantizers),
        |m, x| m.forward(x, None).0,
        judge("lstm", &dir),
        &dir,
    );

    let gru = QuantGRUConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&d)
        .unwrap();
    let gru = compare(
        gru,
        |m| all(&m._input_quantizers, &m._weight_quantizers),
        |m, x| m.forward(x, None).0,
        judge("gru", &dir),
        &dir,
    );

    let rnn = QuantRNNConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&d)
        .unwrap();
    let rnn = compare(
        rnn,
        |m| all(&m._input_quantizers, &m._weight_quantizers),
        |m, x| m.forward(x, None).0,
        judge("rnn", &dir),
        &dir,
    );

    // float32 on both sides, summed in other orders over five steps: a few ulps.
    for (mode, diff) in [("lstm", lstm), ("gru", gru), ("rnn", rnn)] {
        eprintln!("{mode}: max |diff| {diff:.2e} to ONNX Runtime");
        assert!(diff <= 1e-6, "{mode}: max |diff| {diff} to ONNX Runtime");
    }
}
