//! The `qdq` binary end to end: the bundled demo, quantize / calibrate / export / eval /
//! lint / inspect, and bad input that must give a clear error and no output file.

mod common;
use common::{python, qdq, s, scratch};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use qdq_data::idx::{self, Idx};
use qdq_data::npy::Npy;
use qdq_onnx::{Message, ModelProto};

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "qdq failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

#[test]
fn demo_quantizes_the_bundled_model_and_keeps_its_accuracy() {
    let dir = scratch("demo");
    let out = dir.join("demo.onnx");
    let v = json(&qdq(&["demo", "-o", s(&out), "--json"]));
    let eval = &v["eval"];
    let fp32 = eval["fp32_accuracy"].as_f64().unwrap();
    let int8 = eval["quantized_accuracy"].as_f64().unwrap();
    assert!(fp32 > 0.8, "the bundled model is trained: {fp32}");
    assert!((fp32 - int8).abs() <= 0.02, "INT8 {int8} vs FP32 {fp32}");
    assert!(eval["top1_agreement"].as_f64().unwrap() >= 0.95, "{eval}");
    assert!(eval["sqnr_db"].as_f64().unwrap() > 15.0, "{eval}");
    assert_eq!(eval["items"], 500);
    // The per-layer scan names a tensor of the model where the error jumps.
    let jump = eval["error_jump"]["tensor"]
        .as_str()
        .expect("an error jump");
    assert!(jump.ends_with("_out") || jump == "output", "{eval}");
    assert!(
        eval["error_jump"]["sqnr_db"].as_f64().unwrap() > 10.0,
        "{eval}"
    );
    // On the first batch: 8 items, the demo's 28x28 tensors being small.
    assert_eq!(eval["error_jump"]["items"], 8, "{eval}");
    // The default method is auto: every activation quantizer records its choice, and
    // weights keep their per-channel max.
    for q in v["quantizers"].as_array().unwrap() {
        let (name, method) = (q["name"].as_str().unwrap(), q["method"].as_str().unwrap());
        if name.ends_with("_weight_quantizer") {
            assert_eq!(method, "max", "{q}");
        } else {
            assert!(method.starts_with("auto:"), "{q}");
        }
    }
    // conv1, conv2 (input + weight), two pools, fc1, fc2 (input + weight).
    let names: Vec<&str> = v["quantizers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| n.ends_with("_weight_quantizer"))
            .count(),
        4,
        "{names:?}"
    );
    // The file passes the linter, through the CLI too.
    assert!(qdq(&["lint", s(&out)]).status.success());
    let inspect = json(&qdq(&["inspect", s(&out), "--json"]));
    assert_eq!(inspect["quantize_linear"], names.len());
    assert_eq!(inspect["opset"], 17);
}

#[test]
fn calibrate_then_export_equals_quantize_and_tensorrt_tables_import() {
    let dir = scratch("cache");
    let model = data_dir().join("model.onnx");
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let (q1, cache, q2) = (dir.join("q1.onnx"), dir.join("c.json"), dir.join("q2.onnx"));
    let common = [
        "--calib",
        s(&calib),
        "--method",
        "percentile=99.9",
        "--json",
    ];
    json(&qdq(
        &[&["quantize", s(&model), "-o", s(&q1)], &common[..]].concat()
    ));
    json(&qdq(&[
        &["calibrate", s(&model), "-o", s(&cache)],
        &common[..],
    ]
    .concat()));
    json(&qdq(&[
        "export",
        s(&model),
        "--cache",
        s(&cache),
        "-o",
        s(&q2),
        "--json",
    ]));
    assert_eq!(std::fs::read(&q1).unwrap(), std::fs::read(&q2).unwrap());
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(text.contains("percentile=99.9"), "{text}");

    // A TensorRT table holds activation scales only (float32 hex; amax = scale * 127):
    // weights get their per-channel max from the model.
    let c: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut table = String::from("TRT-8601-EntropyCalibration2\n");
    for (tensor, e) in c["entries"].as_object().unwrap() {
        if e["amax"].as_array().unwrap().len() == 1 {
            let amax = e["amax"][0].as_f64().unwrap() as f32;
            table.push_str(&format!("{tensor}: {:08x}\n", (amax / 127.0).to_bits()));
        }
    }
    let trt = dir.join("trt.cache");
    std::fs::write(&trt, &table).unwrap();
    let q3 = dir.join("q3.onnx");
    json(&qdq(&[
        "export",
        s(&model),
        "--cache",
        s(&trt),
        "-o",
        s(&q3),
        "--json",
    ]));
    let a = ModelProto::parse_from_bytes(&std::fs::read(&q1).unwrap()).unwrap();
    let b = ModelProto::parse_from_bytes(&std::fs::read(&q3).unwrap()).unwrap();
    let scale = |m: &ModelProto, name: &str| {
        let g = m.graph.as_ref().unwrap();
        let t = g.initializer.iter().find(|t| t.name == name).unwrap();
        t.raw_data.to_vec()
    };
    // Same weight scales; activation scales equal to within float rounding.
    let w = "Conv_1._weight_quantizer_scale";
    assert_eq!(scale(&a, w), scale(&b, w));
    let f = |v: Vec<u8>| f32::from_le_bytes([v[0], v[1], v[2], v[3]]);
    let act = "Conv_4._input_quantizer_scale";
    let (x, y) = (f(scale(&a, act)), f(scale(&b, act)));
    assert!((x - y).abs() <= f32::EPSILON * x, "{x} vs {y}");
    // A table that lacks an activation tensor: named.
    let first = table.lines().nth(1).unwrap().to_string();
    std::fs::write(&trt, table.replace(&format!("{first}\n"), "")).unwrap();
    let q4 = dir.join("q4.onnx");
    let out = qdq(&["export", s(&model), "--cache", s(&trt), "-o", s(&q4)]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("is not in the calibration cache"), "{e}");
    assert!(!q4.exists());
}

/// Quantizes `model` on the bundled calibration images into `dir/q.onnx`, with `extra`
/// flags; returns the file and the JSON report.
fn quantize(model: &Path, dir: &Path, extra: &[&str]) -> (PathBuf, serde_json::Value) {
    let q = dir.join("q.onnx");
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let args = [
        "quantize",
        s(model),
        "--calib",
        s(&calib),
        "-o",
        s(&q),
        "--json",
    ];
    let v = json(&qdq(&[&args[..], extra].concat()));
    (q, v)
}

#[test]
fn eval_compares_two_models_with_labels() {
    let dir = scratch("eval");
    let model = data_dir().join("model.onnx");
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let (q, _) = quantize(&model, &dir, &["--method", "max"]);
    let v = json(&qdq(&[
        "eval",
        s(&model),
        s(&q),
        "--data",
        s(&data_dir().join("test-images-idx3-ubyte.gz")),
        "--labels",
        s(&data_dir().join("test-labels-idx1-ubyte.gz")),
        "--json",
    ]));
    assert!(v["fp32_accuracy"].as_f64().unwrap() > 0.8, "{v}");
    // The same model against itself: identical outputs.
    let same = json(&qdq(&[
        "eval",
        s(&model),
        s(&model),
        "--data",
        s(&calib),
        "--json",
    ]));
    assert_eq!(same["top1_agreement"], 1.0);
    assert!(
        same["sqnr_db"].is_null() || same["sqnr_db"].as_f64().is_none(),
        "infinite SQNR: {same}"
    );
}

fn write_npy(path: &Path, shape: &[usize], data: &[f32]) {
    let npy = Npy {
        shape: shape.to_vec(),
        data: data.to_vec(),
    };
    std::fs::write(path, npy.to_bytes()).unwrap();
}

#[test]
fn bad_input_gets_a_clear_error_and_no_output_file() {
    let dir = scratch("bad");
    let model = data_dir().join("model.onnx");
    let out = dir.join("out.onnx");
    let run = |args: &[&str]| {
        let o = qdq(args);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(!out.exists(), "{args:?} wrote a file");
        stderr(&o)
    };
    // Data whose items do not fit the model input.
    let wrong = dir.join("wrong.npy");
    write_npy(&wrong, &[4, 3, 10], &[0.5; 120]);
    let e = run(&["quantize", s(&model), "--calib", s(&wrong), "-o", s(&out)]);
    assert!(e.contains("do not fit model input `input`"), "{e}");
    // NaN in the data, named by item and position.
    let mut v = vec![0.5f32; 2 * 784];
    v[784 + 3] = f32::NAN;
    let nan = dir.join("nan.npy");
    write_npy(&nan, &[2, 1, 28, 28], &v);
    let e = run(&["quantize", s(&model), "--calib", s(&nan), "-o", s(&out)]);
    assert!(e.contains("NaN in item 1 at position 3"), "{e}");
    // A device this build cannot use, or that does not exist, before any work.
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let e = run(&[
        "--device",
        "tpu",
        "quantize",
        s(&model),
        "--calib",
        s(&calib),
        "-o",
        s(&out),
    ]);
    assert!(
        e.contains("unknown device `tpu`; expected cpu, cuda or cuda:N"),
        "{e}"
    );
    let e = run(&[
        "quantize",
        s(&model),
        "--calib",
        s(&calib),
        "-o",
        s(&out),
        "--device",
        "cuda:1",
    ]);
    assert!(
        e.contains("cuda:1")
            && (e.contains("`gpu` feature") || e.contains("CUDA is not available")),
        "{e}"
    );
    // An empty calibration set.
    let empty = dir.join("empty.npy");
    write_npy(&empty, &[0, 1, 28, 28], &[]);
    let e = run(&["quantize", s(&model), "--calib", s(&empty), "-o", s(&out)]);
    assert!(e.contains("no items"), "{e}");
    // A truncated model.
    let bytes = std::fs::read(&model).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = run(&[
        "quantize",
        s(&truncated),
        "--calib",
        s(&wrong),
        "-o",
        s(&out),
    ]);
    assert!(
        e.contains("truncated.onnx") && e.contains("not a valid ONNX model"),
        "{e}"
    );
    // Unsupported operators, all listed with counts.
    let mut m = ModelProto::parse_from_bytes(&bytes).unwrap();
    let g = m.graph.as_mut().unwrap();
    for n in g.node.iter_mut().filter(|n| n.op_type == "Relu") {
        n.op_type = "Mish".into();
    }
    g.node[0].op_type = "TfIdfVectorizer".into();
    let odd = dir.join("odd.onnx");
    std::fs::write(&odd, m.write_to_bytes().unwrap()).unwrap();
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let e = run(&["quantize", s(&odd), "--calib", s(&calib), "-o", s(&out)]);
    assert!(
        e.contains("Mish (x3)") && e.contains("TfIdfVectorizer (x1)"),
        "{e}"
    );
    // An output path that cannot be written.
    let e = run(&[
        "quantize",
        s(&model),
        "--calib",
        s(&calib),
        "-o",
        "/nonexistent/dir/q.onnx",
    ]);
    assert!(e.contains("/nonexistent/dir/q.onnx"), "{e}");
    // Bad method.
    let e = run(&[
        "quantize",
        s(&model),
        "--calib",
        s(&calib),
        "--method",
        "median",
        "-o",
        s(&out),
    ]);
    assert!(e.contains("median"), "{e}");
    assert!(e.contains("expected one of auto, max"), "{e}");
    // A model that fixes its batch inside (Reshape to [1, 1568]) while declaring it
    // dynamic: qdq names the node and falls back to batch 1, the same file as --batch 1.
    let mut m = ModelProto::parse_from_bytes(&bytes).unwrap();
    let g = m.graph.as_mut().unwrap();
    let shape = g
        .initializer
        .iter_mut()
        .find(|t| t.name == "const_7")
        .unwrap();
    let le = |v: [i64; 2]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    assert_eq!(
        shape.raw_data,
        le([0, 1568]),
        "the bundled model's Reshape shape"
    );
    shape.raw_data = le([1, 1568]).into();
    let one = dir.join("batch-one.onnx");
    std::fs::write(&one, m.write_to_bytes().unwrap()).unwrap();
    let quantize = |extra: &[&str]| {
        let mut args = vec!["quantize", s(&one), "--calib", s(&calib), "--method", "max"];
        args.extend(extra);
        args.extend(["-o", s(&out)]);
        let o = qdq(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        (stderr(&o), std::fs::read(&out).unwrap())
    };
    let (e, fell_back) = quantize(&[]);
    // The 32-item batch is shared by the batches run at once (one per core, at most
    // 4): the note names the size that failed, 8 to 32.
    let failed_at: usize = e
        .split("fails on a batch of ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{e}"));
    assert!(
        e.contains("note: node `") && (8..=32).contains(&failed_at) && e.contains("--batch 1"),
        "{e}"
    );
    let (e, one_by_one) = quantize(&["--batch", "1"]);
    assert!(!e.contains("note: node"), "{e}");
    assert_eq!(fell_back, one_by_one);
}

#[test]
fn lint_reports_violations_with_exit_code_2() {
    let dir = scratch("lint");
    let (q, _) = quantize(&data_dir().join("model.onnx"), &dir, &[]);
    let mut m = ModelProto::parse_from_bytes(&std::fs::read(&q).unwrap()).unwrap();
    // Zero point 5 on the first activation pair.
    let g = m.graph.as_mut().unwrap();
    let zp = g
        .initializer
        .iter_mut()
        .find(|t| t.name.ends_with("_input_quantizer_zero_point"))
        .unwrap();
    zp.raw_data = vec![5u8].into();
    let bad = dir.join("bad.onnx");
    std::fs::write(&bad, m.write_to_bytes().unwrap()).unwrap();
    let out = qdq(&["lint", s(&bad), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let violations = v["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 2, "{v}");
    assert_eq!(violations[0]["rule"], "ZeroPoint");
}

/// The first `n` bundled test images and labels, ordered by label (stably), as a class
/// folder tree holds them: `dir/images/c{label}/{index:03}.png`, and the same items as
/// IDX files `dir/images.idx.gz` and `dir/labels.idx.gz`.
fn test_images_three_ways(dir: &Path, n: usize) -> (PathBuf, PathBuf, PathBuf) {
    let images = Idx::read(&data_dir().join("test-images-idx3-ubyte.gz")).unwrap();
    let labels = Idx::read(&data_dir().join("test-labels-idx1-ubyte.gz")).unwrap();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| labels.data[i]);
    let folder = dir.join("images");
    for c in 0..10 {
        std::fs::create_dir_all(folder.join(format!("c{c}"))).unwrap();
    }
    let mut sorted = Idx {
        dims: vec![n, 28, 28],
        data: Vec::new(),
    };
    for &i in &order {
        let pixels = images.data[i * 784..(i + 1) * 784].to_vec();
        let png = folder.join(format!("c{}/{i:03}.png", labels.data[i]));
        image::GrayImage::from_raw(28, 28, pixels.clone())
            .unwrap()
            .save(&png)
            .unwrap();
        sorted.data.extend(pixels);
    }
    let sorted_labels = Idx {
        dims: vec![n],
        data: order.iter().map(|&i| labels.data[i]).collect(),
    };
    let (x, y) = (dir.join("images.idx.gz"), dir.join("labels.idx.gz"));
    idx::write_gz(&sorted, &x).unwrap();
    idx::write_gz(&sorted_labels, &y).unwrap();
    (folder, x, y)
}

#[test]
fn image_folders_give_what_the_same_images_as_idx_give() {
    let dir = scratch("images");
    let model = data_dir().join("model.onnx");
    let (folder, x, y) = test_images_three_ways(&dir, 120);
    // Evaluation: labels from the class folders; the same numbers as IDX + labels.
    let from_idx = json(&qdq(&[
        "eval",
        s(&model),
        s(&model),
        "--data",
        s(&x),
        "--labels",
        s(&y),
        "--json",
    ]));
    let from_folder = json(&qdq(&[
        "eval",
        s(&model),
        s(&model),
        "--data",
        s(&folder),
        "--json",
    ]));
    assert_eq!(from_folder["items"], 120);
    let acc = from_folder["fp32_accuracy"].as_f64().unwrap();
    assert!(acc > 0.8, "{from_folder}");
    assert_eq!(from_folder["fp32_accuracy"], from_idx["fp32_accuracy"]);
    assert_eq!(from_folder["outputs"], from_idx["outputs"]);
    // Calibration and evaluation on the folder: the very same QDQ model and report.
    let (q1, q2) = (dir.join("q1.onnx"), dir.join("q2.onnx"));
    let a = json(&qdq(&[
        "quantize",
        s(&model),
        "--calib",
        s(&x),
        "--data",
        s(&x),
        "--labels",
        s(&y),
        "-o",
        s(&q1),
        "--json",
    ]));
    let b = json(&qdq(&[
        "quantize",
        s(&model),
        "--calib",
        s(&folder),
        "--data",
        s(&folder),
        "--resize",
        "28",
        "--crop",
        "28x28",
        "-o",
        s(&q2),
        "--json",
    ]));
    assert_eq!(std::fs::read(&q1).unwrap(), std::fs::read(&q2).unwrap());
    assert_eq!(a["eval"], b["eval"]);
    assert!(
        b["eval"]["quantized_accuracy"].as_f64().unwrap() > 0.75,
        "{b}"
    );
    // --mean and --std: the same arithmetic for images and IDX.
    let normalised = |data: &[&str]| {
        let args = [
            "eval",
            s(&model),
            s(&model),
            "--mean=-0.25",
            "--std",
            "2",
            "--json",
        ];
        json(&qdq(&[&args[..], data].concat()))["outputs"].clone()
    };
    let a = normalised(&["--data", s(&folder)]);
    assert_eq!(a, normalised(&["--data", s(&x), "--labels", s(&y)]));
    assert_ne!(a, from_folder["outputs"]);

    // A crop that does not fit the model: the folder, both shapes, no file.
    let out = dir.join("out.onnx");
    let fail = |flags: &[&str]| {
        let args = [&["quantize", s(&model), "-o", s(&out)], flags].concat();
        let o = qdq(&args);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(!out.exists(), "{args:?} wrote a file");
        stderr(&o)
    };
    let e = fail(&["--calib", s(&folder), "--crop", "20x20"]);
    assert!(
        e.contains(&format!(
            "{} (cropped to 20x20): data items of shape [1, 20, 20] (400 values) do not fit \
             model input `input` of shape [batch, 1, 28, 28]",
            folder.display()
        )),
        "{e}"
    );
    for (flags, expected) in [
        (
            ["--calib", s(&folder), "--resize", "20x20"],
            "cannot crop 28x28",
        ),
        (
            ["--calib", s(&folder), "--mean", "0.5,0.5,0.5"],
            "3 mean values for items of shape [1, 28, 28]",
        ),
        (
            ["--calib", s(&x), "--crop", "28x28"],
            "--resize and --crop apply to folders of images",
        ),
        (["--calib", s(&folder), "--crop", "28"], "expected HxW"),
    ] {
        let e = fail(&flags);
        assert!(e.contains(expected), "{flags:?}: {e}");
    }
    // The manual documents the flags.
    let help = String::from_utf8(qdq(&["quantize", "--help"]).stdout).unwrap();
    assert!(
        help.contains("--resize <[NAME=]N|HxW>") && help.contains("--crop <[NAME=]HxW>"),
        "{help}"
    );
}

#[test]
fn numpy_npy_and_npz_files_give_what_idx_gives() {
    let dir = scratch("npz");
    let model = data_dir().join("model.onnx");
    let (_, x, y) = test_images_three_ways(&dir, 64);
    let ds = qdq_data::Dataset::load(&x, None).unwrap();
    let labels = Idx::read(&y).unwrap();
    write_npy(
        &dir.join("x.npy"),
        &[64, 1, 28, 28],
        &ds.read(0, 64).unwrap(),
    );
    let y_f32: Vec<f32> = labels.data.iter().map(|&b| b as f32).collect();
    write_npy(&dir.join("y32.npy"), &[64], &y_f32);
    // NumPy itself writes the files: int64 labels, stored and deflated archives.
    let script = "import numpy as np\n\
                  x = np.load('x.npy'); y = np.load('y32.npy').astype(np.int64)\n\
                  np.save('y.npy', y)\n\
                  np.savez('stored.npz', input=x, extra=x[:1], labels=y)\n\
                  np.savez_compressed('deflated.npz', x=x, y=y)\n\
                  np.savez('two.npz', a=x, b=x)\n";
    let out = Command::new(python())
        .current_dir(&dir)
        .args(["-c", script])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let eval = |args: &[&str]| {
        json(&qdq(
            &[&["eval", s(&model), s(&model), "--json"], args].concat()
        ))
    };
    let from_idx = eval(&["--data", s(&x), "--labels", s(&y)]);
    assert!(
        from_idx["fp32_accuracy"].as_f64().unwrap() > 0.8,
        "{from_idx}"
    );
    for v in [
        eval(&[
            "--data",
            s(&dir.join("x.npy")),
            "--labels",
            s(&dir.join("y.npy")),
        ]),
        eval(&["--data", s(&dir.join("stored.npz"))]),
        eval(&["--data", s(&dir.join("deflated.npz"))]),
    ] {
        assert_eq!(v["outputs"], from_idx["outputs"]);
        assert_eq!(v["fp32_accuracy"], from_idx["fp32_accuracy"]);
    }
    // Two candidate arrays and none named `input`: the keys are listed.
    let two = dir.join("two.npz");
    let o = qdq(&["eval", s(&model), s(&model), "--data", s(&two)]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "{}: holds arrays [\"a\", \"b\"]; expected `input` (the model input)",
            two.display()
        )),
        "{e}"
    );
}

#[test]
fn every_output_is_compared() {
    // The bundled model with a second output: the first Relu's activations.
    let dir = scratch("outputs");
    let bytes = std::fs::read(data_dir().join("model.onnx")).unwrap();
    let mut m = ModelProto::parse_from_bytes(&bytes).unwrap();
    let g = m.graph.as_mut().unwrap();
    let relu = g.node.iter().find(|n| n.op_type == "Relu").unwrap();
    let mut extra = g.output[0].clone();
    extra.name = relu.output[0].clone();
    extra.type_ = Default::default();
    g.output.push(extra);
    let relu = relu.output[0].clone();
    let model = dir.join("two.onnx");
    std::fs::write(&model, m.write_to_bytes().unwrap()).unwrap();
    let test = data_dir().join("test-images-idx3-ubyte.gz");
    let labels = data_dir().join("test-labels-idx1-ubyte.gz");
    let (_, v) = quantize(&model, &dir, &["--data", s(&test), "--labels", s(&labels)]);
    let outputs = v["eval"]["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2, "{v}");
    let (logits, act) = (&outputs[0], &outputs[1]);
    assert_eq!(logits["name"], "output");
    assert_eq!(logits["shape"], serde_json::json!([10]));
    assert!(logits["top1_agreement"].as_f64().unwrap() >= 0.95, "{v}");
    assert!(logits["fp32_accuracy"].as_f64().unwrap() > 0.8, "{v}");
    // A feature map: SQNR and cosine, no top-1 or accuracy.
    assert_eq!(act["name"], relu.as_str());
    assert_eq!(act["shape"].as_array().unwrap().len(), 3, "{v}");
    assert!(act["sqnr_db"].as_f64().unwrap() > 15.0, "{v}");
    assert!(act["cosine"].as_f64().unwrap() > 0.99, "{v}");
    assert!(act.get("top1_agreement").is_none() && act.get("fp32_accuracy").is_none());
    // The top-level figures are the first output's.
    assert_eq!(v["eval"]["sqnr_db"], logits["sqnr_db"]);
    assert_eq!(v["eval"]["items"], 500);
    // The text report has a line per output.
    let q = dir.join("q.onnx");
    let out = qdq(&["eval", s(&model), s(&q), "--data", s(&test)]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("FP32 vs quantized outputs (500 items):"),
        "{text}"
    );
    assert!(text.contains("  output [10]: top-1 agreement "), "{text}");
    assert!(text.contains(&format!("  {relu} [")), "{text}");
}

#[test]
fn finetune_trains_only_the_weights_and_onnx_runtime_scores_the_file_alike() {
    let dir = scratch("finetune");
    let d = data_dir();
    let fm = Path::new(qdq_vision::data::DEFAULT_DIR);
    let (model, calib) = (d.join("model.onnx"), d.join("calib-images-idx3-ubyte.gz"));
    let (test, test_labels) = (
        d.join("test-images-idx3-ubyte.gz"),
        d.join("test-labels-idx1-ubyte.gz"),
    );
    let (train, train_labels) = (
        fm.join("train-images-idx3-ubyte.gz"),
        fm.join("train-labels-idx1-ubyte.gz"),
    );
    assert!(
        train.exists(),
        "this test needs Debian's dataset-fashion-mnist (installed by .ci/run)"
    );
    let out = dir.join("tuned.onnx");
    // 2% of an epoch: 1200 of the 60 000 training images.
    let v = json(&qdq(&[
        "finetune",
        s(&model),
        "--calib",
        s(&calib),
        "--train",
        s(&train),
        "--labels",
        s(&train_labels),
        "--epochs",
        "0.02",
        "--lr",
        "0.01",
        "--data",
        s(&test),
        "--data-labels",
        s(&test_labels),
        "-o",
        s(&out),
        "--json",
    ]));
    let tune = &v["finetune"];
    assert_eq!(tune["images"], 60000);
    assert_eq!(tune["quantizers"], 10, "{tune}");
    assert_eq!(
        tune["weights"], 8,
        "two convs and two linears, weight and bias"
    );
    let (ptq, tuned) = (&v["eval_ptq"], &v["eval"]);
    assert_eq!(ptq["fp32_accuracy"], tuned["fp32_accuracy"]);
    let (ptq_acc, tuned_acc) = (
        ptq["quantized_accuracy"].as_f64().unwrap(),
        tuned["quantized_accuracy"].as_f64().unwrap(),
    );
    assert!(ptq_acc > 0.8, "{ptq}");
    assert!(
        tuned_acc >= ptq_acc - 0.01,
        "fine-tuned {tuned_acc} vs PTQ {ptq_acc}"
    );

    // The same quantizers as `qdq quantize` writes (scales, zero points, graph),
    // with trained weights.
    let (ptq_file, _) = quantize(&model, &dir, &[]);
    let read = |p: &Path| ModelProto::parse_from_bytes(&std::fs::read(p).unwrap()).unwrap();
    let (a, b) = (read(&ptq_file), read(&out));
    let (ga, gb) = (a.graph.as_ref().unwrap(), b.graph.as_ref().unwrap());
    assert_eq!(ga.node, gb.node);
    assert_eq!(ga.initializer.len(), gb.initializer.len());
    let mut changed = 0;
    for (x, y) in ga.initializer.iter().zip(&gb.initializer) {
        assert_eq!(
            (&x.name, &x.dims, x.data_type),
            (&y.name, &y.dims, y.data_type)
        );
        let is_scale_or_zero = gb
            .node
            .iter()
            .any(|n| n.op_type.ends_with("QuantizeLinear") && n.input[1..].contains(&x.name));
        if is_scale_or_zero {
            assert_eq!(x, y, "quantizer `{}` kept", x.name);
        } else if x != y {
            changed += 1;
        }
    }
    assert_eq!(changed, 8, "every weight trained");
    assert!(qdq_onnx::lint(&b).is_empty());

    // ONNX Runtime on the written file scores what qdq reported (one item of 500 at
    // most may flip on float summation order).
    let images = qdq_cli::demo::test_images().unwrap();
    let ort = qdq_vision::ort::accuracy(&python(), &out, &images).unwrap();
    assert!(
        (ort - tuned_acc).abs() <= 0.002 + 1e-9,
        "ORT {ort} vs qdq {tuned_acc}"
    );

    // Training data without labels: a clear error naming it, and no file.
    let none = dir.join("none.onnx");
    let o = qdq(&[
        "finetune",
        s(&model),
        "--calib",
        s(&calib),
        "--train",
        s(&calib),
        "-o",
        s(&none),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--train") && e.contains("needs labels"), "{e}");
    assert!(!none.exists());
}

#[test]
fn inspect_counts_constant_node_weights_and_other_domains_ops() {
    let dir = scratch("inspect");
    let model = data_dir().join("model.onnx");
    let original = json(&qdq(&["inspect", s(&model), "--json"]));
    let weights = original["weight_elements"].as_u64().unwrap();
    assert!(weights > 0, "{original}");
    assert_eq!(original["unsupported_ops"], serde_json::json!([]));
    // The same weights as a Constant node (PyTorch's exporter writes many that way),
    // and one Relu moved into another domain, which the runtime does not execute.
    let mut m = ModelProto::parse_from_bytes(&std::fs::read(&model).unwrap()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let init = g.initializer.remove(0);
    g.input.retain(|i| i.name != init.name);
    let mut constant = onnx_ir::NodeProto::new();
    constant.op_type = "Constant".into();
    constant.output.push(init.name.clone());
    let mut value = onnx_ir::AttributeProto::new();
    value.name = "value".into();
    value.type_ = onnx_ir::AttributeType::TENSOR.into();
    value.t = Some(init).into();
    constant.attribute.push(value);
    g.node.insert(0, constant);
    let relu = g.node.iter_mut().find(|n| n.op_type == "Relu").unwrap();
    relu.domain = "com.example".into();
    let changed = dir.join("changed.onnx");
    std::fs::write(&changed, m.write_to_bytes().unwrap()).unwrap();
    let v = json(&qdq(&["inspect", s(&changed), "--json"]));
    assert_eq!(v["weight_elements"].as_u64(), Some(weights), "{v}");
    assert_eq!(
        v["unsupported_ops"],
        serde_json::json!(["com.example:Relu (x1)"])
    );
    assert_eq!(v["ops"]["com.example:Relu"], 1, "{v}");
    assert_eq!(v["ops"]["Constant"], 1, "{v}");
    // The text names other domains' opsets too, and says when the default one is
    // missing (a scikit-learn export imports only ai.onnx.ml).
    let opset = m.opset_import[0].version;
    let mut ml = m.opset_import[0].clone();
    ml.domain = "ai.onnx.ml".into();
    ml.version = 3;
    m.opset_import.push(ml);
    std::fs::write(&changed, m.write_to_bytes().unwrap()).unwrap();
    let text = |m: &Path| String::from_utf8_lossy(&qdq(&["inspect", s(m)]).stdout).into_owned();
    assert!(
        text(&changed).contains(&format!(": opset {opset} (and ai.onnx.ml 3), IR ")),
        "{}",
        text(&changed)
    );
    m.opset_import.remove(0);
    std::fs::write(&changed, m.write_to_bytes().unwrap()).unwrap();
    assert!(
        text(&changed).contains(": opset ai.onnx.ml 3, IR "),
        "{}",
        text(&changed)
    );
}

/// `auto`'s guard on the bundled CNN with MatMul_12's input forced to clip (percentile
/// 50): the kept model's error passes 0.1, MatMul_12 alone passes it, so it stays float
/// (said, and listed in the JSON); the file's MatMul_12 reads no dequantized tensor and
/// its outputs are near float again (ONNX Runtime). `--no-auto-keep-float` quantizes it
/// anyway; a mild clip (percentile 90) is below the bound and nothing is kept float.
#[test]
fn auto_keeps_float_a_layer_that_breaks_the_model_alone() {
    let dir = scratch("auto-guard");
    let model = data_dir().join("model.onnx");
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let run = |clip: &str, extra: &[&str], out: &Path| {
        let method_for = format!("Relu_11_out=percentile={clip}");
        let args = [
            &["quantize", s(&model), "--calib", s(&calib)][..],
            &["--method-for", &method_for, "-o", s(out)],
            extra,
        ]
        .concat();
        let o = qdq(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    let reads_dq = |path: &Path| {
        let m = ModelProto::parse_from_bytes(&std::fs::read(path).unwrap()).unwrap();
        let g = m.graph.unwrap();
        let mm = g
            .node
            .iter()
            .find(|n| n.name == "MatMul_12")
            .unwrap()
            .clone();
        g.node
            .iter()
            .any(|n| n.op_type == "DequantizeLinear" && mm.input.contains(&n.output[0]))
    };
    let guarded = dir.join("guarded.onnx");
    let o = run("50", &[], &guarded);
    let e = stderr(&o);
    assert!(
        e.contains("kept in float the layers whose quantization alone passes it: MatMul_12 ("),
        "{e}"
    );
    assert!(!reads_dq(&guarded));
    let v = json(&run("50", &["--json"], &guarded));
    assert_eq!(v["kept_float"], serde_json::json!(["MatMul_12"]), "{v}");

    let all = dir.join("all.onnx");
    let o = run("50", &["--no-auto-keep-float"], &all);
    assert!(!stderr(&o).contains("kept in float"), "{}", stderr(&o));
    assert!(reads_dq(&all));

    let mild = dir.join("mild.onnx");
    let v = json(&run("90", &["--json"], &mild));
    assert!(v.get("kept_float").is_none(), "{v}");
    assert!(reads_dq(&mild));

    // ONNX Runtime on the calibration images: the guarded file's logits are close to
    // float's, the fully quantized one's far (MatMul_12 sees a clipped input).
    let cos = |q: &Path| -> f64 {
        let o = Command::new(python())
            .args(["-c", COSINE, s(&model), s(q), s(&calib)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    let (g, a) = (cos(&guarded), cos(&all));
    assert!(g > 0.999 && a < 0.9, "guarded {g}, all quantized {a}");
}

/// The guard never keeps every layer float (that would be the FP32 model under a QDQ
/// name): a one-layer model, `Log(MatMul(x, W))` on inputs spanning e^±16, whose one
/// quantized layer rounds most inputs to zero, stays quantized, and the command says
/// why.
#[test]
fn the_guard_never_keeps_every_layer_float() {
    let dir = scratch("guard-one-layer");
    let o = Command::new(python())
        .args(["-c", ONE_LAYER, s(&dir)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let q = dir.join("q.onnx");
    let o = qdq(&[
        "quantize",
        s(&dir.join("model.onnx")),
        "--calib",
        s(&dir.join("x.npy")),
        "-o",
        s(&q),
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("(past 0.1); its only layer breaks it alone, so every layer stays quantized"),
        "{e}"
    );
    let m = ModelProto::parse_from_bytes(&std::fs::read(&q).unwrap()).unwrap();
    let pairs = m
        .graph
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear")
        .count();
    assert_eq!(pairs, 2, "the MatMul's input and weight");
}

/// Writes DIR/model.onnx, `y = Log(Clip(x @ W, 1e-10))` with W [16, 4] in [0.1, 1),
/// and DIR/x.npy, 32 rows of `exp(N(0, 4²))`: `python -c ONE_LAYER DIR`.
const ONE_LAYER: &str = r#"
import sys, os
import numpy as np, onnx
from onnx import helper as h, TensorProto as T, numpy_helper as nh
d = sys.argv[1]
rng = np.random.default_rng(3)
W = rng.uniform(0.1, 1.0, (16, 4)).astype(np.float32)
g = h.make_graph(
    [h.make_node("MatMul", ["x", "W"], ["m"]), h.make_node("Clip", ["m", "lo"], ["c"]),
     h.make_node("Log", ["c"], ["y"])],
    "one_layer",
    [h.make_tensor_value_info("x", T.FLOAT, ["batch", 16])],
    [h.make_tensor_value_info("y", T.FLOAT, ["batch", 4])],
    [nh.from_array(W, "W"), nh.from_array(np.array(1e-10, np.float32), "lo")],
)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
m.ir_version = 8
onnx.checker.check_model(m, full_check=True)
onnx.save(m, os.path.join(d, "model.onnx"))
np.save(os.path.join(d, "x.npy"), np.exp(rng.normal(0, 4, (32, 16))).astype(np.float32))
"#;

/// Cosine of two models' first outputs over the first 64 images of an IDX file
/// (scaled to [0, 1], as qdq feeds it): `python -c COSINE FLOAT QDQ IDX`.
const COSINE: &str = r#"
import gzip, sys
import numpy as np, onnxruntime as ort
with gzip.open(sys.argv[3]) as f:
    raw = f.read()
n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
x = np.frombuffer(raw[16:16 + 64 * h * w], np.uint8).reshape(64, 1, h, w).astype(np.float32) / 255.0
outs = []
for path in sys.argv[1:3]:
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs.append(np.asarray(s.run(None, {s.get_inputs()[0].name: x})[0], np.float64).ravel())
a, b = outs
print(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
"#;

/// `qdq sensitivity` on the bundled CNN with one layer made to clip badly (MatMul_12's
/// input, `Relu_11_out`, at percentile=50: amax 1.17 where its max is 16.5) ranks that
/// layer first, every layer once, errors descending; `quantize --keep-float-sensitive 1`
/// leaves exactly that layer in float and says so.
#[test]
fn sensitivity_ranks_the_clipped_layer_first_and_quantize_keeps_it_float() {
    let dir = scratch("sensitivity");
    let model = data_dir().join("model.onnx");
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let clip = [
        "--calib",
        s(&calib),
        "--method",
        "max",
        "--method-for",
        "Relu_11_out=percentile=50",
    ];
    let mut args = vec!["sensitivity", s(&model)];
    args.extend(clip);
    let v = json(&qdq(&[&args[..], &["--items", "16", "--json"]].concat()));
    assert_eq!(v["items"], 16);
    let layers = v["layers"].as_array().unwrap();
    let nodes: Vec<&str> = layers.iter().map(|l| l["node"].as_str().unwrap()).collect();
    assert_eq!(nodes[0], "MatMul_12", "{v}");
    let mut sorted = nodes.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "Conv_1",
            "Conv_4",
            "MatMul_12",
            "MatMul_9",
            "MaxPool_3",
            "MaxPool_6"
        ]
    );
    assert_eq!(v["layers_measured"], 6);
    let errors: Vec<f64> = layers
        .iter()
        .map(|l| l["error"].as_f64().unwrap())
        .collect();
    assert!(errors.windows(2).all(|w| w[0] >= w[1]), "{errors:?}");
    // The clipped layer alone moves the logits far more than any other layer alone.
    assert!(errors[0] > 10.0 * errors[1], "{errors:?}");
    assert_eq!(
        layers[0]["quantizers"],
        serde_json::json!(["MatMul_12._input_quantizer", "MatMul_12._weight_quantizer"])
    );
    // All layers together lose at least what the worst one loses alone.
    assert!(
        v["error_all_quantized"].as_f64().unwrap() >= errors[0] * 0.5,
        "{v}"
    );

    // The table: a header, then the ranking.
    let text = qdq(&[&args[..], &["--items", "16", "--top", "2"]].concat());
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success(), "{}", stderr(&text));
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(['1', '2', '3']))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].contains("MatMul_12") && rows[0].contains("MatMul"),
        "{out}"
    );
    assert!(out.starts_with("6 layers, each quantized alone"), "{out}");

    let q = dir.join("q.onnx");
    let mut args = vec!["quantize", s(&model)];
    args.extend(clip);
    let v = json(&qdq(&[
        &args[..],
        &["--keep-float-sensitive", "1", "-o", s(&q), "--json"],
    ]
    .concat()));
    assert_eq!(v["kept_float"], serde_json::json!(["MatMul_12"]));
    let names: Vec<&str> = v["quantizers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(
        names.iter().all(|n| !n.starts_with("MatMul_12.")),
        "{names:?}"
    );
    let written = ModelProto::parse_from_bytes(&std::fs::read(&q).unwrap()).unwrap();
    let graph = written.graph.unwrap();
    let mm = graph.node.iter().find(|n| n.name == "MatMul_12").unwrap();
    assert!(
        graph
            .node
            .iter()
            .all(|n| n.op_type != "DequantizeLinear" || !mm.input.contains(&n.output[0])),
        "MatMul_12 reads no dequantized tensor"
    );

    // Keeping every layer float would write the FP32 model: refused, naming the count,
    // and nothing written.
    let all = dir.join("all-float.onnx");
    let o = qdq(&[
        &args[..],
        &["--keep-float-sensitive", "1000", "-o", s(&all)],
    ]
    .concat());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("keep all 6 layers in float"),
        "{}",
        stderr(&o)
    );
    assert!(!all.exists());
}
