//! Quantizers inside subgraphs (If branches, a Loop body) and the batch-1 fallback, on
//! small models built by `subgraph_model.py`, judged by ONNX's full checker and ONNX
//! Runtime.

mod common;
use common::{qdq, run_python, s, scratch};

use std::path::Path;

use qdq_onnx::quantize::{QuantizeOptions, prepare};

/// Runs `subgraph_model.py args`, which must succeed; its stdout.
fn script(args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/subgraph_model.py");
    run_python(&[&[s(&path)], args].concat(), "subgraph_model.py")
}

#[test]
fn quantizers_go_inside_branches_and_loop_bodies() {
    let dir = scratch("subgraphs");
    script(&["make", s(&dir)]);
    let model = dir.join("branches.onnx");
    // Placement: both branches and the loop body, weights of the main graph (Wt, Wl),
    // of a branch (Mt) and folded `Constant`s (We, Me); `x` is the main graph's.
    let proto = qdq_onnx::proto::read_model(&model).unwrap();
    let prepared = prepare(&proto, &QuantizeOptions::default()).unwrap();
    let sites: Vec<(String, String)> = prepared
        .sites
        .iter()
        .map(|s| (s.name.clone(), s.key()))
        .collect();
    let want = [
        ("conv_e._input_quantizer", "x"),
        ("conv_e._weight_quantizer", "branch/else_branch/We"),
        ("mm_e._input_quantizer", "branch/else_branch/e_r"),
        ("mm_e._weight_quantizer", "branch/else_branch/Me"),
        ("conv_t._input_quantizer", "x"),
        ("conv_t._weight_quantizer", "Wt"),
        ("mm_t._input_quantizer", "branch/then_branch/t_r"),
        ("mm_t._weight_quantizer", "branch/then_branch/Mt"),
        ("mm_l._input_quantizer", "loop/body/y_in"),
        ("mm_l._weight_quantizer", "Wl"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(sites, want);

    // Calibrated at 16 kHz only: the else branch never runs, so its MatMul's input has
    // no data; that quantizer and its weight's are left out and named.
    // Both `max` and `auto` (which probes the quantizers inside the branch taken and
    // the loop body) write the same pairs.
    for method in ["max", "auto"] {
        judge(&dir, &model, method);
    }
    // `qdq inspect` counts the pairs inside branches and bodies too.
    let o = qdq(&["inspect", s(&dir.join("max.onnx")), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let placed = QE.len() + QT.len() + QL.len();
    assert_eq!(v["quantize_linear"], placed, "{v}");
    assert_eq!(v["subgraph_ops"]["QuantizeLinear"], placed, "{v}");
    assert!(v["ops"].get("QuantizeLinear").is_none(), "{v}");
    let o = qdq(&["inspect", s(&dir.join("max.onnx"))]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!(
            "{placed} QuantizeLinear, {placed} of them in subgraphs"
        )),
        "{text}"
    );

    // `--weights int8` stores the weights of every graph quantized, in the graph whose
    // pair reads them (a main-graph weight read by a branch included), gives the
    // float-weight file's outputs exactly, and drops the float weights no node reads
    // any more (the else branch's MatMul weight, left float, stays).
    let stored = dir.join("stored.onnx");
    let o = qdq(&[
        "quantize",
        s(&model),
        "--calib",
        s(&dir.join("calib.npz")),
        "--method",
        "max",
        "--weights",
        "int8",
        "-o",
        s(&stored),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let max = dir.join("max.onnx");
    let got: serde_json::Value =
        serde_json::from_str(script(&["stored", s(&max), s(&stored)]).trim()).unwrap();
    assert_eq!(got["int8"], got["weight_q"], "{got}");
    let scopes = [
        "",
        "branch/else_branch/",
        "branch/then_branch/",
        "loop/body/",
    ];
    let counts: Vec<usize> = scopes
        .iter()
        .map(|sc| got["int8"][sc].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, [0, 1, 2, 1], "{got}");
    let q = |scope: &str| got["q"][scope].clone();
    assert_eq!(q(""), serde_json::json!([]));
    assert_eq!(q("branch/else_branch/"), serde_json::json!([QE[0]]));
    assert_eq!(q("branch/then_branch/"), serde_json::json!([QT[0], QT[2]]));
    assert_eq!(q("loop/body/"), serde_json::json!([QL[0]]));
    assert_eq!(got["floats"], serde_json::json!(["Me"]), "{got}");
    assert_eq!(got["diff"].as_f64(), Some(0.0), "{got}");
}

/// `qdq sensitivity` ranks the layers inside branches and loop bodies as their own
/// (a subgraph's node 0 is not the main graph's), leaves out the MatMul of the branch
/// calibration never took, and `--keep-float-sensitive` keeps the worst one float
/// wherever it sits.
#[test]
fn sensitivity_ranks_the_layers_inside_subgraphs() {
    let dir = scratch("subgraph-sensitivity");
    script(&["make", s(&dir)]);
    let model = dir.join("branches.onnx");
    let calib = dir.join("calib.npz");
    let o = qdq(&["sensitivity", s(&model), "--calib", s(&calib), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut layers: Vec<(String, String)> = got["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["graph"].as_str().unwrap().to_string(),
                l["node"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    layers.sort();
    let want = [
        ("branch/else_branch/", "conv_e"),
        ("branch/then_branch/", "conv_t"),
        ("branch/then_branch/", "mm_t"),
        ("loop/body/", "mm_l"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(g, n)| (g.to_string(), n.to_string()))
        .collect();
    assert_eq!(layers, want, "{got}");
    let error = |node: &str| {
        got["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["node"] == node)
            .unwrap()["error"]
            .as_f64()
            .unwrap()
    };
    // The else branch never runs on these items: quantizing it changes nothing.
    assert_eq!(error("conv_e"), 0.0, "{got}");
    for node in ["conv_t", "mm_t", "mm_l"] {
        assert!(error(node) > 0.0 && error(node) < 0.1, "{node}: {got}");
    }
    let worst = got["layers"][0]["node"].as_str().unwrap().to_string();

    let out = dir.join("kept.onnx");
    let o = qdq(&[
        "quantize",
        s(&model),
        "--calib",
        s(&calib),
        "--method",
        "max",
        "--keep-float-sensitive",
        "1",
        "-o",
        s(&out),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let scope = got["layers"][0]["graph"].as_str().unwrap();
    assert!(
        stderr.contains(&format!(
            "kept in float, most sensitive first (error with the layer alone quantized, on 6 items): {scope}{worst} ("
        )),
        "{stderr}"
    );
    // The kept layer's two quantizers are gone from the file, every other stays.
    let judged: serde_json::Value =
        serde_json::from_str(script(&["judge", s(&model), s(&out)]).trim()).unwrap();
    let written: Vec<String> = [
        "",
        "branch/else_branch/",
        "branch/then_branch/",
        "loop/body/",
    ]
    .iter()
    .flat_map(|sc| judged["q"][sc].as_array().unwrap().clone())
    .map(|v| v.as_str().unwrap().to_string())
    .collect();
    let want: Vec<String> = QE
        .iter()
        .chain(&QT)
        .chain(&QL)
        .filter(|q| !q.starts_with(&format!("{worst}.")))
        .map(|q| q.to_string())
        .collect();
    assert_eq!(written, want, "{worst}: {judged}");
}

/// Quantizes the fixture by `method` and checks the written file.
fn judge(dir: &Path, model: &Path, method: &str) {
    let out = dir.join(format!("{method}.onnx"));
    let calib = dir.join("calib.npz");
    let o = qdq(&[
        "quantize",
        s(model),
        "--calib",
        s(&calib),
        "--method",
        method,
        "-o",
        s(&out),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "note: 2 quantizers inside subgraphs saw no calibration data (a branch the data never takes) and stay float: mm_e._input_quantizer, mm_e._weight_quantizer"
        ),
        "{stderr}"
    );
    let judged: serde_json::Value =
        serde_json::from_str(script(&["judge", s(model), s(&out)]).trim()).unwrap();
    let q = |scope: &str| -> Vec<String> {
        judged["q"][scope]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(q(""), Vec::<String>::new());
    assert_eq!(q("branch/else_branch/"), QE);
    assert_eq!(q("branch/then_branch/"), QT);
    assert_eq!(q("loop/body/"), QL);
    // ONNX Runtime runs both branches of the written file close to float.
    let (c16, c8) = (
        judged["cos16"].as_f64().unwrap(),
        judged["cos8"].as_f64().unwrap(),
    );
    assert!(c16 > 0.99 && c8 > 0.99, "{method}: {judged}");
}

/// A batch whose tensors would pass the runtime's size limit where one item's do not
/// (a speech CNN's convolution over 900 x 161 frames, in the fifth holdout) runs one
/// item at a time, with a notice, and writes what `--batch 1` writes.
#[test]
fn a_batch_past_the_size_limit_runs_one_item_at_a_time() {
    let dir = scratch("bigpool");
    script(&["make", s(&dir)]);
    let (model, items) = (dir.join("bigpool.onnx"), dir.join("bigitems.npz"));
    let run = |out: &str, extra: &[&str]| {
        let out = dir.join(out);
        let mut args = vec![
            "quantize",
            s(&model),
            "--calib",
            s(&items),
            "--method",
            "max",
        ];
        args.extend(extra);
        args.extend(["-o", s(&out)]);
        let o = qdq(&args);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        (std::fs::read(&out).unwrap(), stderr)
    };
    let (batched, notice) = run("batched.onnx", &[]);
    assert!(
        notice.contains("on a batch of 2 items would pass the runtime's size limit; running one item at a time (--batch 1)"),
        "{notice}"
    );
    let (one, quiet) = run("one.onnx", &["--batch", "1"]);
    assert!(!quiet.contains("size limit"), "{quiet}");
    assert_eq!(batched, one);
}

#[test]
fn a_model_that_fixes_batch_1_inside_falls_back_to_batch_1() {
    let dir = scratch("batch1");
    script(&["make", s(&dir)]);
    let model = dir.join("reshape1.onnx");
    let items = dir.join("items.npz");
    let run = |out: &str, extra: &[&str]| {
        let out = dir.join(out);
        let mut args = vec![
            "quantize",
            s(&model),
            "--calib",
            s(&items),
            "--data",
            s(&items),
            "--json",
            "-o",
            s(&out),
        ];
        args.extend(extra);
        let o = qdq(&args);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&o.stdout).replace(s(&out), "OUT");
        (std::fs::read(&out).unwrap(), stdout, stderr)
    };
    let (auto, auto_json, notice) = run("auto.onnx", &[]);
    assert!(
        notice.contains(
            // The calibration pass runs the first of the 5 items alone (to size its
            // runs), then the other 4 together.
            "note: node `to_batch1` fails on a batch of 4 items although the batch dimension is dynamic; running one item at a time (--batch 1)"
        ),
        "{notice}"
    );
    assert_eq!(notice.matches("note: node").count(), 1, "{notice}");
    let (one, one_json, quiet) = run("one.onnx", &["--batch", "1"]);
    assert!(!quiet.contains("note: node"), "{quiet}");
    assert_eq!(auto, one);
    assert_eq!(auto_json, one_json);

    // `finetune --distill` trains one item a step after the same fallback, where a
    // training batch of 5 failed at the Reshape; the written model is verified by
    // qdq's runtime before it is kept.
    let tuned = dir.join("tuned.onnx");
    let o = qdq(&[
        "finetune",
        s(&model),
        "--calib",
        s(&items),
        "--distill",
        "--data",
        s(&items),
        "-o",
        s(&tuned),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "note: training one item a step too (--train-batch 1), as the model runs one item at a time"
        ),
        "{stderr}"
    );
    assert!(tuned.is_file());
}

/// The QuantizeLinear nodes of each graph in the written model, in node order: the else
/// branch keeps only its Conv's pair (its input, `x`, is calibrated in the main graph).
const QE: [&str; 2] = [
    "conv_e._input_quantizer_QuantizeLinear",
    "conv_e._weight_quantizer_QuantizeLinear",
];
const QT: [&str; 4] = [
    "conv_t._input_quantizer_QuantizeLinear",
    "conv_t._weight_quantizer_QuantizeLinear",
    "mm_t._input_quantizer_QuantizeLinear",
    "mm_t._weight_quantizer_QuantizeLinear",
];
const QL: [&str; 2] = [
    "mm_l._input_quantizer_QuantizeLinear",
    "mm_l._weight_quantizer_QuantizeLinear",
];
