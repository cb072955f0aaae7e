//! Models as users have them: an FP16 export quantizes with one `qdq quantize`, and the
//! QDQ file keeps the model's float16 (scales, DQ outputs, inputs), passes the ONNX
//! checker (full check), runs in ONNX Runtime and agrees with qdq's runtime.

mod common;
use common::{qdq, run_python, s, scratch};

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use qdq_onnx::runtime::{OnnxGraph, Value};
use qdq_onnx::{Message, ModelProto};

const FLOAT16: i32 = 10;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

fn onnx_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../qdq-onnx/tests")
}

fn load(path: &Path) -> ModelProto {
    ModelProto::parse_from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

/// A deterministic batch of 2 Fashion-MNIST-sized images in [0, 1).
fn input() -> Vec<f32> {
    (0..2 * 28 * 28)
        .map(|i| ((i * 37 % 101) as f32) / 101.0)
        .collect()
}

/// The model's output on `x` from ONNX Runtime (after the checker, full check).
fn ort(model: &Path, dir: &Path, x: &[f32]) -> Vec<f32> {
    let (input, output) = (dir.join("x.bin"), dir.join("y.bin"));
    std::fs::write(
        &input,
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
    )
    .unwrap();
    let script = onnx_tests().join("ort_run.py");
    run_python(
        &[s(&script), s(model), s(&input), "2,1,28,28", s(&output)],
        "running the model in ONNX Runtime",
    );
    std::fs::read(&output)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The model's output on `x` from qdq's runtime.
fn ours(model: &Path, x: &[f32]) -> Vec<f32> {
    let device = Device::flex();
    let g = OnnxGraph::load(model, &device).unwrap();
    let v = Value::from_f32(x.to_vec(), &[2, 1, 28, 28], &device);
    let outs = g.run(vec![(g.inputs()[0].name.clone(), v)]).unwrap();
    outs[0].1.to_f32().unwrap()
}

/// Largest difference between two outputs, relative to the largest magnitude.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let top = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / top
}

#[test]
fn fp16_models_quantize_in_float16_and_run_in_onnx_runtime() {
    let dir = scratch("fp16");
    let (half, q19, q17) = (
        dir.join("fp16.onnx"),
        dir.join("q19.onnx"),
        dir.join("q17.onnx"),
    );
    let to_half = onnx_tests().join("to_half.py");
    let fp32 = data_dir().join("model.onnx");
    run_python(
        &[s(&to_half), s(&fp32), s(&half), "float16"],
        "converting the model to float16",
    );
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    for (out, opset) in [(&q19, None), (&q17, Some("17"))] {
        let mut args = vec!["quantize", s(&half), "--calib", s(&calib), "-o", s(out)];
        args.extend(opset.map(|o| ["--opset", o]).into_iter().flatten());
        let run = qdq(&args);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    // Opset 17 model: raised to 19, Q/DQ in float16, no Cast, input still float16.
    let m = load(&q19);
    assert_eq!(m.opset_import[0].version, 19);
    let g = m.graph.as_ref().unwrap();
    let input_type = |g: &onnx_ir::GraphProto| g.input[0].type_.tensor_type().elem_type;
    assert_eq!(input_type(g), FLOAT16);
    let scales: Vec<_> = g
        .initializer
        .iter()
        .filter(|t| t.name.ends_with("_scale"))
        .collect();
    assert!(scales.len() >= 8, "{}", scales.len());
    assert!(scales.iter().all(|t| t.data_type == FLOAT16));
    assert!(!g.node.iter().any(|n| n.op_type == "Cast"));
    // Kept at opset 17 on request: float32 pairs, Cast back to float16.
    let m = load(&q17);
    assert_eq!(m.opset_import[0].version, 17);
    let g = m.graph.as_ref().unwrap();
    assert_eq!(input_type(g), FLOAT16);
    let casts = g.node.iter().filter(|n| n.op_type == "Cast").count();
    let pairs = g
        .node
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear")
        .count();
    // Activations: Cast → Q → DQ → Cast; weights: a float32 copy → Q → DQ → Cast
    // (the float16 originals are gone).
    let copies = g
        .initializer
        .iter()
        .filter(|t| t.name.ends_with("_float32"))
        .count();
    assert_eq!(copies, 4);
    assert_eq!(casts, 2 * pairs - copies);
    for copy in g
        .initializer
        .iter()
        .filter(|t| t.name.ends_with("_float32"))
    {
        let original = copy.name.trim_end_matches("_float32");
        assert!(
            !g.initializer.iter().any(|t| t.name == original),
            "{original}"
        );
    }
    assert!(
        g.initializer
            .iter()
            .filter(|t| t.name.ends_with("_scale"))
            .all(|t| t.data_type == 1)
    );
    // Both run in ONNX Runtime (which computes in float16) and agree with qdq's
    // runtime (f32 inside) to float16's precision over a few layers.
    let x = input();
    for q in [&q19, &q17] {
        let (a, b) = (ours(q, &x), ort(q, &dir, &x));
        let d = rel_diff(&a, &b);
        assert!(
            d < 0.02,
            "{}: qdq vs ONNX Runtime differ by {d}",
            q.display()
        );
    }
    // And the quantized FP16 model is close to the FP16 model itself.
    let (fq, f) = (ours(&q19, &x), ours(&half, &x));
    assert!(rel_diff(&fq, &f) < 0.1, "{}", rel_diff(&fq, &f));
    // eval works on it too (the FP16 model against its QDQ file).
    let test = data_dir().join("test-images-idx3-ubyte.gz");
    let eval = qdq(&["eval", s(&half), s(&q19), "--data", s(&test)]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
}

#[test]
fn int8_weights_shrink_the_file_and_give_the_same_values() {
    let dir = scratch("dq-only");
    let (float_w, int8_w) = (dir.join("float.onnx"), dir.join("int8.onnx"));
    let (model, calib) = (
        data_dir().join("model.onnx"),
        data_dir().join("calib-images-idx3-ubyte.gz"),
    );
    for (out, weights) in [(&float_w, "float"), (&int8_w, "int8")] {
        let run = qdq(&[
            "quantize",
            s(&model),
            "--calib",
            s(&calib),
            "--weights",
            weights,
            "-o",
            s(out),
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    // Weights are INT8 initializers read by a DequantizeLinear: no Q on them, and no
    // float weight left; activations keep their pairs.
    let m = load(&int8_w);
    let g = m.graph.as_ref().unwrap();
    let count =
        |g: &onnx_ir::GraphProto, op: &str| g.node.iter().filter(|n| n.op_type == op).count();
    let f = load(&float_w);
    let fg = f.graph.as_ref().unwrap();
    assert_eq!(count(fg, "QuantizeLinear"), 10);
    assert_eq!(count(g, "QuantizeLinear"), 10 - 4);
    assert_eq!(count(g, "DequantizeLinear"), 10);
    let int8_weights: Vec<_> = g
        .initializer
        .iter()
        .filter(|t| t.data_type == 3 && t.dims.len() >= 2)
        .collect();
    assert_eq!(int8_weights.len(), 4);
    // The file shrinks about 4x.
    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64;
    let ratio = size(&int8_w) / size(&float_w);
    assert!((0.24..0.3).contains(&ratio), "size ratio {ratio}");
    // Bit for bit the same outputs, in ONNX Runtime and in qdq's runtime.
    let x = input();
    let (ort_f, ort_i) = (ort(&float_w, &dir, &x), ort(&int8_w, &dir, &x));
    assert_eq!(ort_f, ort_i);
    assert_eq!(ours(&float_w, &x), ours(&int8_w, &x));
    // The linter (through the CLI) accepts the DQ-only weights.
    assert!(qdq(&["lint", s(&int8_w)]).status.success());
}

#[test]
fn external_data_models_quantize_like_their_inline_twins() {
    let dir = scratch("external");
    let ext_dir = dir.join("ext");
    std::fs::create_dir(&ext_dir).unwrap();
    let (ext, inline_q, ext_q) = (
        ext_dir.join("model.onnx"),
        dir.join("inline_q.onnx"),
        dir.join("ext_q.onnx"),
    );
    let model = data_dir().join("model.onnx");
    // onnx's own writer: every tensor in one file next to the model.
    run_python(
        &[
            "-c",
            "import onnx, sys; m = onnx.load(sys.argv[1]); onnx.save_model(m, sys.argv[2], \
         save_as_external_data=True, all_tensors_to_one_file=True, \
         location='model.onnx.data', size_threshold=0)",
            s(&model),
            s(&ext),
        ],
        "saving the weights as external data",
    );
    assert!(std::fs::metadata(&ext).unwrap().len() < 10_000);
    assert!(ext_dir.join("model.onnx.data").is_file());
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    for (m, out) in [(&model, &inline_q), (&ext, &ext_q)] {
        let run = qdq(&["quantize", s(m), "--calib", s(&calib), "-o", s(out)]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    // The same calibration and the same file, byte for byte.
    assert_eq!(
        std::fs::read(&inline_q).unwrap(),
        std::fs::read(&ext_q).unwrap()
    );
    // A data file moved out of the model's folder, reached through `..`: refused by
    // name, nothing written.
    let bad = ext_dir.join("escape.onnx");
    run_python(
        &[
            "-c",
            "import onnx, sys\nm = onnx.load(sys.argv[1], load_external_data=False)\n\
         for t in m.graph.initializer:\n    for e in t.external_data:\n        \
         e.value = '../model.onnx.data' if e.key == 'location' else e.value\n\
         onnx.save(m, sys.argv[2])",
            s(&ext),
            s(&bad),
        ],
        "pointing the external data outside the folder",
    );
    let out = dir.join("never.onnx");
    let run = qdq(&["quantize", s(&bad), "--calib", s(&calib), "-o", s(&out)]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && !out.exists());
    assert!(
        err.contains("../model.onnx.data") && err.contains("no `..`"),
        "{err}"
    );
}
