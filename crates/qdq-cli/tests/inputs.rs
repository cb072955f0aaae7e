//! Data for every input of a model: int64, bool, float, an RNN state batched on axis 1
//! and a scalar, from one `.npz`, a folder of `.npz` items and `NAME=FILE` sources,
//! fed through the CLI's own feed ([`qdq_cli::feed`]) to qdq's runtime and checked
//! against ONNX Runtime on the same data (`inputs_model.py`); variable-length items
//! batched by shape; a graph network's whole-graph items, one a run; each refusal with
//! its message.

mod common;
use common::{Scratch, qdq, run_python, s, scratch};

use std::path::Path;

use qdq_cli::feed::{batches, model_inputs};
use qdq_data::{Dataset, ModelData, Sources};
use qdq_onnx::runtime::{OnnxGraph, Value};

/// The model and data `inputs_model.py` writes, in a scratch folder.
fn made(name: &str) -> (Scratch, OnnxGraph) {
    let dir = scratch(name);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inputs_model.py");
    run_python(&[s(&script), s(&dir)], "inputs_model.py");
    let device = burn::tensor::Device::flex();
    let graph = OnnxGraph::load(&*dir.join("model.onnx"), &device).unwrap();
    (dir, graph)
}

fn open(graph: &OnnxGraph, sources: &Sources) -> Result<ModelData, String> {
    ModelData::load(model_inputs(graph).unwrap(), sources, &|_| {
        Default::default()
    })
    .map_err(|e| e.to_string())
}

fn named(dir: &Path, pairs: &[(&str, &str)]) -> Sources {
    Sources {
        named: pairs
            .iter()
            .map(|(n, f)| {
                let p = dir.join(f);
                let v = if p.exists() {
                    s(&p).to_string()
                } else {
                    f.to_string()
                };
                (n.to_string(), v)
            })
            .collect(),
        ..Sources::default()
    }
}

/// Array `key` of ORT's outputs, as f32.
fn ort(file: &Path, key: &str) -> Vec<f32> {
    let d = Dataset::load_npz(file, Some(key), None).unwrap();
    d.read(0, d.len()).unwrap()
}

/// Runs every batch of `data` (`batch` items each) on `graph` and checks each item's
/// outputs against ORT's in `judge`: the float ones within 1e-4, `twice` (int64)
/// exactly. Returns each batch's items and input shapes.
fn run_and_judge(
    graph: &OnnxGraph,
    data: &ModelData,
    batch: usize,
    judge: &Path,
) -> Vec<(Vec<usize>, Vec<Vec<usize>>)> {
    let mut seen = Vec::new();
    let mut inner = data.batches(batch).unwrap();
    for b in batches(graph, data, batch).unwrap() {
        let (items, inputs) = b.unwrap();
        assert_eq!(items, inner.next().unwrap().unwrap().0);
        let n = items.len();
        let shapes = inputs.iter().map(|(_, v)| v.shape()).collect();
        let outputs = graph.run(inputs).unwrap();
        for (name, v) in &outputs {
            let values = v.to_f32().unwrap();
            if name == "twice" {
                assert!(matches!(v, Value::Int(..)), "{name} stays int64");
            }
            let per = values.len() / n;
            for (k, item) in items.iter().enumerate() {
                let want = ort(judge, &format!("{name}_{item}"));
                let got = &values[k * per..(k + 1) * per];
                assert_eq!(got.len(), want.len(), "{name} of item {item}");
                for (g, w) in got.iter().zip(&want) {
                    let tol = if name == "twice" {
                        0.0
                    } else {
                        1e-4 * w.abs().max(1.0)
                    };
                    assert!(
                        (g - w).abs() <= tol,
                        "{name} of item {item}: {g} vs ORT {w}"
                    );
                }
            }
        }
        seen.push((items, shapes));
    }
    seen
}

#[test]
fn every_source_form_feeds_what_onnx_runtime_sees() {
    let (dir, graph) = made("every-form");
    let d: &Path = &dir;
    let inputs = model_inputs(&graph).unwrap();
    let described: Vec<String> = inputs
        .iter()
        .map(|i| format!("{} {}", i.name, i.describe()))
        .collect();
    assert_eq!(
        described,
        [
            "ids int64 [batch, ?]",
            "mask bool [batch, ?]",
            "x [batch, ?, 4]",
            "state [2, batch, 3]",
            "sr int64 []"
        ]
    );
    // One .npz with an array per input (`sr` a scalar): 6 items of seq 5, batches of 4.
    let whole = Sources {
        whole: Some(d.join("whole.npz")),
        ..Sources::default()
    };
    let data = open(&graph, &whole).unwrap();
    let seen = run_and_judge(&graph, &data, 4, &d.join("ort_whole.npz"));
    let shapes: Vec<_> = seen.iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(
        shapes,
        [
            vec![vec![4, 5], vec![4, 5], vec![4, 5, 4], vec![2, 4, 3], vec![]],
            vec![vec![2, 5], vec![2, 5], vec![2, 5, 4], vec![2, 2, 3], vec![]],
        ]
    );
    // One file per input: int8 0/1 for the bool mask, a deflated .npz, a literal.
    let per_input = named(
        d,
        &[
            ("ids", "ids.npy"),
            ("mask", "mask.npy"),
            ("x", "x.npz"),
            ("state", "state.npy"),
            ("sr", "16000"),
        ],
    );
    let data = open(&graph, &per_input).unwrap();
    assert_eq!(
        run_and_judge(&graph, &data, 4, &d.join("ort_whole.npz")),
        seen
    );
    // A folder of items of seq 3, 5, 3, 5, 3, 4 (item 1 with a leading axis of 1):
    // batched by shape, groups in the order of their first item.
    let folder = Sources {
        whole: Some(d.join("items")),
        ..Sources::default()
    };
    let data = open(&graph, &folder).unwrap();
    let seen = run_and_judge(&graph, &data, 2, &d.join("ort_items.npz"));
    let summary: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)> = seen
        .into_iter()
        .map(|(items, shapes)| (items, shapes[0].clone(), shapes[3].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (vec![0, 2], vec![2, 3], vec![2, 2, 3]),
            (vec![4], vec![1, 3], vec![2, 1, 3]),
            (vec![1, 3], vec![2, 5], vec![2, 2, 3]),
            (vec![5], vec![1, 4], vec![2, 1, 3]),
        ]
    );
}

#[test]
fn the_cli_reads_every_form_and_compares_integer_outputs_exactly() {
    let (dir, _) = made("cli-forms");
    let d: &Path = &dir;
    let model = d.join("model.onnx");
    let eval = |data: &[String]| {
        let mut args = vec![
            "eval".to_string(),
            s(&model).into(),
            s(&model).into(),
            "--json".into(),
        ];
        for v in data {
            args.extend(["--data".to_string(), v.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = qdq(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let whole = eval(&[s(&d.join("whole.npz")).into()]);
    assert_eq!(whole["items"], 6);
    assert_eq!(whole["outputs"][2]["name"], "twice");
    assert_eq!(whole["outputs"][2]["exact"], 1.0);
    let file = |f: &str| s(&d.join(f)).to_string();
    let per_input = eval(&[
        format!("ids={}", file("ids.npy")),
        format!("mask={}", file("mask.npy")),
        format!("x={}", file("x.npz")),
        format!("state={}", file("state.npy")),
        "sr=16000".into(),
    ]);
    assert_eq!(per_input["outputs"], whole["outputs"]);
    // One source for all inputs, a named one overriding its array for `ids`.
    let mixed = eval(&[file("whole.npz"), format!("ids={}", file("ids.npy"))]);
    assert_eq!(mixed["outputs"], whole["outputs"]);
    let items = eval(&[file("items")]);
    assert_eq!(items["items"], 6);
    // Quantize on one form, evaluate on another: the int64 output is untouched.
    let q = d.join("q.onnx");
    let out = qdq(&[
        "quantize",
        s(&model),
        "--calib",
        &file("whole.npz"),
        "--data",
        &file("items"),
        "--method",
        "max",
        "-o",
        s(&q),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["eval"]["items"], 6);
    assert_eq!(v["eval"]["outputs"][2]["exact"], 1.0);
    assert!(
        v["eval"]["outputs"][0]["sqnr_db"].as_f64().unwrap() > 20.0,
        "{v}"
    );
    // inspect shows every input's type and shape.
    let out = qdq(&["inspect", s(&model)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("input  ids int64 [batch, seq]"), "{text}");
    assert!(
        text.contains("input  state float32 [2, batch, 3]"),
        "{text}"
    );
    assert!(text.contains("input  sr int64 []"), "{text}");
    assert!(text.contains("output twice int64 [batch, seq]"), "{text}");
}

#[test]
fn wrong_data_is_refused_naming_the_input() {
    let (dir, graph) = made("refusals");
    let d: &Path = &dir;
    let p = |f: &str| d.join(f).display().to_string();
    let base = [
        ("ids", "ids.npy"),
        ("mask", "mask.npy"),
        ("x", "x.npz"),
        ("state", "state.npy"),
        ("sr", "16000"),
    ];
    let with = |name: &str, file: &str| {
        let pairs: Vec<(&str, &str)> = base
            .iter()
            .map(|&(n, f)| if n == name { (n, file) } else { (n, f) })
            .collect();
        // Values are converted as batches are read: the data is opened, then read.
        open(&graph, &named(d, &pairs))
            .and_then(|data| {
                let mut b = data.batches(4).map_err(|e| e.to_string())?;
                b.try_for_each(|b| b.map(drop)).map_err(|e| e.to_string())
            })
            .unwrap_err()
    };
    assert_eq!(
        open(&graph, &named(d, &base[..4])).unwrap_err(),
        "no data for input(s) `sr` int64 []; give a file for each (NAME=FILE) or one .npz \
         with an array per input"
    );
    assert_eq!(
        with("ids", "half.npy"),
        format!(
            "{}: input `ids` item 2, position 1: value 1.5 is not a whole number, as int64 \
             takes",
            p("half.npy")
        )
    );
    assert_eq!(
        with("mask", "two.npy"),
        format!(
            "{}: input `mask` item 4, position 0: value 2 is not 0 or 1, as bool takes",
            p("two.npy")
        )
    );
    assert_eq!(
        with("sr", "16000.5"),
        "sr=16000.5: input `sr` item 0, position 0: value 16000.5 is not a whole number, as \
         int64 takes"
    );
    assert_eq!(
        with("mask", "mask5.npy"),
        format!(
            "the inputs' data hold different item counts: `ids` 6 ({}), `mask` 5 ({}), `x` 6 \
             ({}: array `x`), `state` 6 ({})",
            p("ids.npy"),
            p("mask5.npy"),
            p("x.npz"),
            p("state.npy")
        )
    );
    assert_eq!(
        with("x", "x3.npy"),
        format!(
            "{}: data items of shape [5, 3] (15 values) do not fit model input `x` of shape \
             [batch, ?, 4]",
            p("x3.npy")
        )
    );
    let extra = Sources {
        whole: Some(d.join("extra.npz")),
        ..Sources::default()
    };
    assert_eq!(
        open(&graph, &extra).unwrap_err(),
        format!(
            "{}: array `other` feeds no input (the file holds [\"sr\", \"other\", \"ids\", \
             \"mask\", \"x\", \"state\"]; expected one array per input: `ids` int64 [batch, ?], \
             `mask` bool [batch, ?], `x` [batch, ?, 4], `state` [2, batch, 3], `sr` int64 [])",
            p("extra.npz")
        )
    );
    assert_eq!(
        open(&graph, &named(d, &[("idz", "ids.npy")])).unwrap_err(),
        format!(
            "idz={}: the model has no input `idz`; its inputs are `ids` int64 [batch, ?], \
             `mask` bool [batch, ?], `x` [batch, ?, 4], `state` [2, batch, 3], `sr` int64 []",
            p("ids.npy")
        )
    );
    // Through the CLI: the same message, exit code 1; a plain --mean with two float
    // inputs, and preprocessing for an integer input.
    let model = d.join("model.onnx");
    let run = |extra: &[&str]| {
        let mut args = vec!["eval", s(&model), s(&model), "--data"];
        let whole = p("whole.npz");
        args.push(&whole);
        args.extend(extra);
        let out = qdq(&args);
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(
        run(&["--mean", "0.5"]),
        "error: --mean: the model has 2 float inputs (x, state); say which one: --mean \
         NAME=VALUE\n"
    );
    // Fine-tuning trains single-float-input models: refused with the inputs listed.
    let whole = p("whole.npz");
    let out = qdq(&[
        "finetune",
        s(&model),
        "--calib",
        &whole,
        "--train",
        &whole,
        "-o",
        &p("f.onnx"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: --train {whole}: fine-tuning trains a model with one float input, from one \
             array or image folder; this model's inputs are `ids` int64 [batch, ?], `mask` bool \
             [batch, ?], `x` [batch, ?, 4], `state` [2, batch, 3], `sr` int64 []\n"
        )
    );
    assert_eq!(
        run(&["--std", "ids=2"]),
        "error: --std ids=...: input `ids` is int64 [batch, ?]; preprocessing applies to \
         float inputs (x, state)\n"
    );
}

/// `--auto-output` narrows `auto`'s whole-model judge to the outputs named (the
/// message says which, or, without it, that all count and how to narrow them), and a name the model lacks is refused with its outputs listed.
#[test]
fn auto_judges_the_outputs_named_and_refuses_unknown_ones() {
    let (dir, _) = made("auto-output");
    let d: &Path = &dir;
    let quantize = |output: &str, to: &str| {
        let (model, calib, out) = (d.join("model.onnx"), d.join("whole.npz"), d.join(to));
        let mut args = vec!["quantize", s(&model), "--calib", s(&calib), "-o", s(&out)];
        if !output.is_empty() {
            args.extend(["--auto-output", output]);
        }
        qdq(&args)
    };
    // Without the flag every output counts, and the log says how to narrow it.
    let out = quantize("", "all.onnx");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "auto: output error of the whole model (all 3 outputs, each weighing the same; \
             --auto-output NAME judges only the outputs named) on 6 items:"
        ),
        "{err}"
    );
    let out = quantize("y", "y.onnx");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("auto: output error of the whole model (output y) on 6 items:"),
        "{err}"
    );
    let out = quantize("z", "z.onnx");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--auto-output z: the model has no output `z`; its outputs: y, s, twice"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.join("z.onnx").exists());
}

/// A graph network's inputs have no batch axis (`feat [num_nodes, 4]`, `edge_index [2,
/// num_edges]`, `scale [3]`): a folder of `.npz` items, each a whole graph of its own
/// size, feeds them as they are, one item a run, whatever `--batch` says; every
/// output matches ONNX Runtime's on that graph, and `qdq quantize` calibrates on them.
#[test]
fn whole_graph_items_run_one_at_a_time() {
    let (dir, _) = made("inputs-graphs");
    let device = burn::tensor::Device::flex();
    let graph = OnnxGraph::load(&*dir.join("graph.onnx"), &device).unwrap();
    let items = dir.join("graphs");
    let data = open(
        &graph,
        &Sources {
            whole: Some(items.clone()),
            ..Sources::default()
        },
    )
    .unwrap();
    assert!(data.inputs().iter().all(|i| i.batch_axis.is_none()));
    assert_eq!(data.batches(8).unwrap().size(), 1);
    let mut seen = Vec::new();
    for (k, b) in batches(&graph, &data, 8).unwrap().enumerate() {
        let (items, inputs) = b.unwrap();
        assert_eq!(items, [k]);
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|(_, v)| v.shape()).collect();
        seen.push(shapes[0][0]);
        let y = graph.run(inputs).unwrap()[0].1.to_f32().unwrap();
        let want = ort(&dir.join("ort_graphs.npz"), &format!("y_{k}"));
        assert_eq!(y.len(), 3);
        for (g, w) in y.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "graph {k}: {g} vs {w}"
            );
        }
    }
    assert_eq!(
        seen,
        [4, 6, 4, 7, 5],
        "every graph, in order, at its own size"
    );

    let o = qdq(&[
        "quantize",
        s(&dir.join("graph.onnx")),
        "--calib",
        s(&items),
        "--batch",
        "4",
        "-o",
        s(&dir.join("q.onnx")),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("hw._weight_quantizer"), "{out}");
    assert!(e.contains("on 5 items"), "{e}");
    // A graph whose edges name a node it lacks: the run fails, and the error names
    // the item's file among the five.
    let bad = dir.join("graphs_bad");
    let o = qdq(&[
        "quantize",
        s(&dir.join("graph.onnx")),
        "--calib",
        s(&bad),
        "-o",
        s(&dir.join("bad.onnx")),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    let file = bad.join("002.npz");
    assert!(
        e.contains("(Gather)") && e.contains(&format!("(running the model on {})", s(&file))),
        "{e}"
    );
    assert!(!dir.join("bad.onnx").exists());
}
