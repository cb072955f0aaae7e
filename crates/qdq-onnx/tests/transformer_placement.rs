//! Placement on transformer encoders written as PyTorch's exporter writes them
//! (`transformer_fixtures.py`): BERT post-LN with a decomposed LayerNorm, BERT pre-LN with
//! opset 17's LayerNormalization, and a ViT. Each test lists exactly which node inputs
//! get a quantizer (docs/transformer-placement.md gives each rule's reason and source):
//! every linear projection's activation and weight (axis 1 for MatMul [K, N], 0 for the
//! transB Gemm and the Conv), both inputs of Q·Kᵀ and probabilities·V unless attention
//! stays float, and nothing else: no LayerNorm, Softmax, Erf, embedding Gather, mask,
//! residual Add, shape Concat, or the ViT's class-token Concat.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Scratch, python, scratch};
use qdq_onnx::passes::{PlacementOptions, SiteKind, place};
use qdq_onnx::{ModelProto, read_model};

/// A scratch folder with the three fixture models.
fn fixtures(name: &str) -> Scratch {
    let dir = scratch(name);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transformer_fixtures.py");
    let out = Command::new(python())
        .arg(script)
        .arg("models")
        .arg(dir.as_os_str())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "transformer_fixtures.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn model(dir: &Path, name: &str) -> ModelProto {
    let path: PathBuf = dir.join(format!("{name}.onnx"));
    read_model(&path).unwrap()
}

/// Every quantized node input as `node name:slot:kind` (kind `A` activation, `W<axis>`
/// weight), sorted.
fn quantized_inputs(m: &ModelProto, options: &PlacementOptions) -> Vec<String> {
    let g = m.graph.as_ref().unwrap();
    let sites = place(g, options).unwrap();
    let mut out: Vec<String> = sites
        .iter()
        .flat_map(|s| {
            s.consumers.iter().map(move |&(n, k)| {
                let kind = match s.kind {
                    SiteKind::Activation => "A".to_string(),
                    SiteKind::Weight { axis } => format!("W{axis}"),
                };
                format!("{}:{k}:{kind}", g.node[n].name)
            })
        })
        .collect();
    out.sort();
    out
}

/// What one encoder layer `i` quantizes: the six linear projections (activation and
/// weight [K, N] on axis 1) and, unless `float_attention`, both inputs of the two
/// attention MatMuls.
fn layer(i: usize, float_attention: bool) -> Vec<String> {
    let p = format!("/encoder/layer.{i}");
    let mut v = Vec::new();
    for linear in [
        "attention/self/query",
        "attention/self/key",
        "attention/self/value",
        "attention/output/dense",
        "intermediate/dense",
        "output/dense",
    ] {
        v.push(format!("{p}/{linear}/MatMul:0:A"));
        v.push(format!("{p}/{linear}/MatMul:1:W1"));
    }
    if !float_attention {
        for bmm in ["MatMul", "MatMul_1"] {
            v.push(format!("{p}/attention/self/{bmm}:0:A"));
            v.push(format!("{p}/attention/self/{bmm}:1:A"));
        }
    }
    v
}

fn expected(layers: usize, float_attention: bool, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = (0..layers)
        .flat_map(|i| layer(i, float_attention))
        .chain(extra.iter().map(|s| s.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn bert_encoders_quantize_projections_and_attention_only() {
    let dir = fixtures("tfm_bert");
    let default = PlacementOptions::default();
    for name in ["bert_post_ln", "bert_pre_ln"] {
        let m = model(&dir, name);
        assert_eq!(
            quantized_inputs(&m, &default),
            expected(2, false, &[]),
            "{name}"
        );
        // Q, K and V read one tensor: one quantizer with three consumers, so the
        // three projections share one scale, as TensorRT fuses them.
        let g = m.graph.as_ref().unwrap();
        let sites = place(g, &default).unwrap();
        assert_eq!(sites.len(), 2 * (1 + 4 + 3 + 6), "{name}");
        let qkv = sites
            .iter()
            .find(|s| s.name == "/encoder/layer.0/attention/self/query/MatMul._input_quantizer")
            .expect("the Q/K/V input quantizer");
        assert_eq!(qkv.consumers.len(), 3, "{name}");
    }
}

#[test]
fn keep_attention_float_leaves_both_attention_matmuls_unquantized() {
    let dir = fixtures("tfm_bert_float_attention");
    let options = PlacementOptions {
        keep_attention_float: true,
        ..Default::default()
    };
    for name in ["bert_post_ln", "bert_pre_ln"] {
        assert_eq!(
            quantized_inputs(&model(&dir, name), &options),
            expected(2, true, &[]),
            "{name}"
        );
    }
}

#[test]
fn vit_quantizes_patch_conv_and_classifier_but_not_the_class_token_concat() {
    let dir = fixtures("tfm_vit");
    let m = model(&dir, "vit");
    let extra = [
        "/embeddings/patch_embeddings/projection/Conv:0:A",
        "/embeddings/patch_embeddings/projection/Conv:1:W0",
        "/classifier/Gemm:0:A",
        "/classifier/Gemm:1:W0",
    ];
    assert_eq!(
        quantized_inputs(&m, &PlacementOptions::default()),
        expected(2, false, &extra)
    );
}
