//! `qdq`: quantize FP32 ONNX models for TensorRT from the command line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::prelude::*;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use qdq_cli::data::{Dataset, Preprocess};
use qdq_cli::demo;
use qdq_onnx::passes::PlacementOptions;
use qdq_onnx::quantize::{
    Calibration, CalibrationCache, Method, Prepared, QuantizeOptions, apply, prepare, report,
};
use qdq_onnx::runtime::{OnnxGraph, Value};
use qdq_onnx::{Message, ModelProto, QdqFormat};

const MANUAL: &str = "\
qdq quantizes FP32 ONNX models into TensorRT-ready QDQ ONNX files, with no Python.

It places quantizers where TensorRT wants them (inputs of Conv, ConvTranspose, Gemm and
MatMul with per-channel weights, pooling inputs, the skip branch of residual adds,
Concat inputs with one shared scale), calibrates them in one streaming pass over your
data (max, entropy, mse or percentile, all from one collection), writes the QDQ model
with the opset it needs, checks it against TensorRT's rules, and reports how far the
quantized outputs are from the float ones.

With no command, `qdq` runs `qdq demo`: a small Fashion-MNIST CNN bundled in the
binary, calibrated on 256 images and evaluated on 500, FP32 against INT8.

Data (--calib, --data): .npy arrays (first dimension = items; float32, float64 or
uint8) or IDX files (MNIST-style, optionally .gz; bytes are divided by 255 unless
--scale is given). Each item must hold exactly the model input's per-item elements.

Examples:
  qdq demo
  qdq quantize model.onnx --calib calib.npy -o model.qdq.onnx
  qdq quantize model.onnx --calib images-idx3-ubyte.gz --method percentile=99.99 --skip '*head*' -o q.onnx
  qdq calibrate model.onnx --calib calib.npy -o cache.json
  qdq export model.onnx --cache cache.json -o q.onnx
  qdq eval model.onnx q.onnx --data test.npy --labels labels.npy
  qdq lint q.onnx
  qdq inspect q.onnx";

#[derive(Parser)]
#[command(name = "qdq", version, about = "Quantize FP32 ONNX models for TensorRT (INT8/FP8 QDQ), no Python", long_about = MANUAL)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Print a JSON report on stdout instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Quantize the bundled Fashion-MNIST CNN and print FP32 vs INT8 accuracy.
    Demo {
        /// Where to write the QDQ model.
        #[arg(short, long, default_value = "qdq-demo-int8.onnx")]
        output: PathBuf,
    },
    /// Calibrate a model on data and write the QDQ model.
    Quantize {
        #[command(flatten)]
        common: CalibArgs,
        /// Output QDQ ONNX file.
        #[arg(short, long)]
        output: PathBuf,
        /// Also save the calibration cache (JSON) here.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Evaluate FP32 vs quantized on this data afterwards.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Labels for --data (IDX or .npy), for accuracy.
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Calibrate and write only the calibration cache (JSON: tensor -> amax, method).
    Calibrate {
        #[command(flatten)]
        common: CalibArgs,
        /// Output cache file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Write the QDQ model from a calibration cache (qdq JSON or a TensorRT calibration table).
    Export {
        #[command(flatten)]
        model: ModelArgs,
        /// The cache.
        #[arg(long)]
        cache: PathBuf,
        /// Output QDQ ONNX file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Compare a float model and its quantized version on data (accuracy with labels).
    Eval {
        /// The FP32 model.
        float: PathBuf,
        /// The quantized model.
        quantized: PathBuf,
        /// Input data.
        #[arg(long)]
        data: PathBuf,
        /// Labels (IDX or .npy).
        #[arg(long)]
        labels: Option<PathBuf>,
        #[command(flatten)]
        pre: PreArgs,
        /// Batch size.
        #[arg(long, default_value_t = 32)]
        batch: usize,
    },
    /// Check a QDQ model against TensorRT's rules.
    Lint {
        /// The model.
        file: PathBuf,
    },
    /// Show a model's opset, inputs, outputs, operators and quantizers.
    Inspect {
        /// The model.
        file: PathBuf,
    },
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// The FP32 ONNX model.
    model: PathBuf,
    /// int8 or fp8 (E4M3, opset 19).
    #[arg(long, default_value = "int8")]
    format: String,
    /// Leave nodes whose name matches this pattern (`*` wildcard) in float; repeatable.
    #[arg(long = "skip")]
    skip: Vec<String>,
    /// Leave nodes of this op type in float; repeatable.
    #[arg(long = "skip-op")]
    skip_op: Vec<String>,
    /// Output opset (default: the model's, raised to 13 for per-channel, 19 for FP8).
    #[arg(long)]
    opset: Option<i64>,
}

#[derive(Args, Clone)]
struct PreArgs {
    /// Multiply raw values by this first (default 1/255 for IDX, 1 for .npy).
    #[arg(long)]
    scale: Option<f32>,
    /// Then subtract this.
    #[arg(long, default_value_t = 0.0)]
    mean: f32,
    /// Then divide by this.
    #[arg(long, default_value_t = 1.0)]
    std: f32,
}

#[derive(Args, Clone)]
struct CalibArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Calibration data (.npy or IDX).
    #[arg(long)]
    calib: PathBuf,
    /// Activation amax method: max, entropy, mse, percentile or percentile=P.
    #[arg(long, default_value = "entropy")]
    method: String,
    /// Per-tensor method override, TENSOR=METHOD; repeatable.
    #[arg(long = "method-for")]
    method_for: Vec<String>,
    /// Batch size of the calibration pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[command(flatten)]
    pre: PreArgs,
}

type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.command.unwrap_or(Command::Demo {
        output: "qdq-demo-int8.onnx".into(),
    }) {
        Command::Demo { output } => run_demo(&output, json),
        Command::Quantize {
            common,
            output,
            cache,
            data,
            labels,
        } => run_quantize(
            &common,
            &output,
            cache.as_deref(),
            data.as_deref(),
            labels.as_deref(),
            json,
        ),
        Command::Calibrate { common, output } => run_calibrate(&common, &output, json),
        Command::Export {
            model,
            cache,
            output,
        } => run_export(&model, &cache, &output, json),
        Command::Eval {
            float,
            quantized,
            data,
            labels,
            pre,
            batch,
        } => run_eval(
            &float,
            &quantized,
            &data,
            labels.as_deref(),
            &pre,
            batch,
            json,
        ),
        Command::Lint { file } => run_lint(&file, json),
        Command::Inspect { file } => run_inspect(&file, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn device() -> Device {
    Device::flex()
}

fn read_model(path: &Path) -> Fallible<ModelProto> {
    Ok(qdq_onnx::read_model(path)?)
}

fn options(m: &ModelArgs) -> Fallible<QuantizeOptions> {
    let format = match m.format.as_str() {
        "int8" => QdqFormat::Int8,
        "fp8" => QdqFormat::Fp8E4M3,
        other => return Err(format!("--format {other}: expected int8 or fp8").into()),
    };
    Ok(QuantizeOptions {
        placement: PlacementOptions {
            skip_op_types: m.skip_op.clone(),
            skip_names: m.skip.clone(),
            ..Default::default()
        },
        format,
        opset: m.opset,
    })
}

fn preprocess(p: &PreArgs) -> Option<Preprocess> {
    let custom = p.scale.is_some() || p.mean != 0.0 || p.std != 1.0;
    custom.then(|| Preprocess {
        scale: p.scale.unwrap_or(1.0),
        mean: p.mean,
        std: p.std,
    })
}

/// Batches of `data` shaped for the graph's single input.
fn batches(graph: &OnnxGraph, data: &Dataset, batch: usize) -> Fallible<Vec<Vec<(String, Value)>>> {
    let input = graph
        .inputs()
        .first()
        .ok_or("the model has no runtime input")?;
    let dims: Vec<Option<usize>> = input
        .dims
        .iter()
        .map(|d| match d {
            qdq_onnx::runtime::Dim::Fixed(n) => Some(*n),
            _ => None,
        })
        .collect();
    let per_item: Option<usize> = dims.iter().skip(1).copied().product();
    let item: usize = data.item_shape.iter().product();
    if per_item.is_some_and(|p| p != item) || dims.is_empty() {
        return Err(format!(
            "data items of shape {:?} ({item} values) do not fit model input `{}` of shape {:?}",
            data.item_shape, input.name, input.dims
        )
        .into());
    }
    let fixed_batch = dims[0];
    let batch = fixed_batch.unwrap_or(batch.max(1));
    let mut out = Vec::new();
    for from in (0..data.len()).step_by(batch) {
        let values = data.items(from, batch);
        let n = values.len() / item.max(1);
        if fixed_batch.is_some_and(|b| b != n) {
            break; // a static batch: drop the ragged tail
        }
        let mut shape = vec![n];
        match dims.iter().skip(1).copied().collect::<Option<Vec<_>>>() {
            Some(rest) => shape.extend(rest),
            None => shape.extend(&data.item_shape),
        }
        out.push(vec![(
            input.name.clone(),
            Value::try_from_f32(values.to_vec(), &shape, &device())?,
        )]);
    }
    Ok(out)
}

fn parse_methods(c: &CalibArgs) -> Fallible<(Method, HashMap<String, Method>)> {
    let method: Method = c.method.parse().map_err(|e| format!("--method: {e}"))?;
    let mut per = HashMap::new();
    for m in &c.method_for {
        let (t, v) = m
            .split_once('=')
            .ok_or_else(|| format!("--method-for {m}: expected TENSOR=METHOD"))?;
        per.insert(
            t.to_string(),
            v.parse().map_err(|e| format!("--method-for {m}: {e}"))?,
        );
    }
    Ok((method, per))
}

/// Folds, places and calibrates; returns the prepared model, its graph and the cache.
fn calibrate(
    model: &ModelProto,
    opts: &QuantizeOptions,
    data: &Dataset,
    batch: usize,
    method: Method,
    per: &HashMap<String, Method>,
    json: bool,
) -> Fallible<(Prepared, OnnxGraph, CalibrationCache)> {
    let prepared = prepare(model, opts)?;
    let graph = OnnxGraph::from_model(&prepared.model, &device())?;
    let graph_proto = prepared
        .model
        .graph
        .as_ref()
        .ok_or("the model has no graph")?;
    let mut calib = Calibration::new(graph_proto, &prepared.sites, false)?;
    let batches = batches(&graph, data, batch)?;
    if batches.is_empty() {
        return Err(
            "the calibration set is empty (or smaller than the model's fixed batch)".into(),
        );
    }
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(batches.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "calibrating {bar:30} {pos}/{len} batches, {elapsed} (ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for b in batches {
        calib.feed(&graph, b)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let cache = calib.cache(method, per)?;
    Ok((prepared, graph, cache))
}

fn write_model(model: &ModelProto, path: &Path) -> Fallible<()> {
    let bytes = model.write_to_bytes()?;
    qdq::io::write_atomic(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

fn quantizer_table(prepared: &Prepared, cache: &CalibrationCache) -> Vec<serde_json::Value> {
    prepared
        .sites
        .iter()
        .map(|s| {
            let e = cache.entries.get(&s.tensor);
            let amax = e.map(|e| e.amax.clone()).unwrap_or_default();
            serde_json::json!({
                "name": s.name,
                "tensor": s.tensor,
                "method": e.map(|e| e.method.clone()).unwrap_or_default(),
                "amax": if amax.len() == 1 { serde_json::json!(amax[0]) } else { serde_json::json!({"channels": amax.len(), "max": amax.iter().fold(0f32, |m, v| m.max(*v))}) },
            })
        })
        .collect()
}

fn print_table(rows: &[serde_json::Value]) {
    println!("{:<48} {:<18} amax", "quantizer", "method");
    for r in rows {
        let amax = match &r["amax"] {
            serde_json::Value::Object(o) => format!(
                "{} channels, max {:.4}",
                o["channels"],
                o["max"].as_f64().unwrap_or(0.0)
            ),
            v => format!("{:.4}", v.as_f64().unwrap_or(0.0)),
        };
        println!(
            "{:<48} {:<18} {}",
            r["name"].as_str().unwrap_or(""),
            r["method"].as_str().unwrap_or(""),
            amax
        );
    }
}

/// Runs a graph over all batches and concatenates its first output.
fn outputs(graph: &OnnxGraph, batches: &[Vec<(String, Value)>]) -> Fallible<(Vec<f32>, usize)> {
    let mut all = Vec::new();
    let mut classes = 1;
    for b in batches {
        let out = graph.run(b.clone())?;
        let (_, v) = out.into_iter().next().ok_or("the model has no output")?;
        classes = v.shape().last().copied().unwrap_or(1);
        all.extend(v.to_f32()?);
    }
    Ok((all, classes))
}

fn evaluate(
    float: &OnnxGraph,
    quant: &OnnxGraph,
    data: &Dataset,
    batch: usize,
) -> Fallible<serde_json::Value> {
    let batches_f = batches(float, data, batch)?;
    let (yf, classes) = outputs(float, &batches_f)?;
    let (yq, _) = outputs(quant, &batches(quant, data, batch)?)?;
    let m = report::compare(&yf, &yq, classes);
    let mut v = serde_json::json!({
        "items": yf.len() / classes.max(1),
        "top1_agreement": m.top1,
        "sqnr_db": m.sqnr_db,
        "cosine": m.cosine,
    });
    // Where the error jumps, on the first few items: per-tensor SQNR, float vs quantized.
    let few = batches(float, data, 8)?;
    if let Some(first) = few.into_iter().next() {
        let layers = report::layer_sqnr(float, quant, first)?;
        if let Some((tensor, drop)) = report::error_jump(&layers) {
            let sqnr = layers
                .iter()
                .find(|(n, _)| n == tensor)
                .map_or(0.0, |l| l.1);
            v["error_jump"] =
                serde_json::json!({"tensor": tensor, "sqnr_db": sqnr, "drop_db": drop});
        }
    }
    if let Some(labels) = &data.labels {
        let n = yf.len() / classes.max(1);
        v["fp32_accuracy"] = serde_json::json!(report::accuracy(&yf, classes, &labels[..n]));
        v["quantized_accuracy"] = serde_json::json!(report::accuracy(&yq, classes, &labels[..n]));
    }
    Ok(v)
}

fn print_eval(v: &serde_json::Value) {
    let jump = &v["error_jump"];
    if let Some(t) = jump["tensor"].as_str() {
        println!(
            "largest error jump: tensor `{t}` (SQNR falls {:.1} dB, to {:.1} dB)",
            jump["drop_db"].as_f64().unwrap_or(0.0),
            jump["sqnr_db"].as_f64().unwrap_or(0.0)
        );
    }
    if let (Some(a), Some(b)) = (
        v["fp32_accuracy"].as_f64(),
        v["quantized_accuracy"].as_f64(),
    ) {
        println!(
            "accuracy: FP32 {:.2}%  quantized {:.2}%  ({} items)",
            a * 100.0,
            b * 100.0,
            v["items"]
        );
    }
    println!(
        "FP32 vs quantized outputs: top-1 agreement {:.2}%, SQNR {:.1} dB, cosine {:.5}",
        v["top1_agreement"].as_f64().unwrap_or(0.0) * 100.0,
        v["sqnr_db"].as_f64().unwrap_or(0.0),
        v["cosine"].as_f64().unwrap_or(0.0)
    );
}

/// Prints what a command wrote: JSON, or a header, the quantizer table, the evaluation.
fn report(
    output: &Path,
    table: &[serde_json::Value],
    eval: Option<&serde_json::Value>,
    header: Option<&str>,
    json: bool,
) {
    if json {
        println!(
            "{}",
            serde_json::json!({"output": output, "quantizers": table, "eval": eval})
        );
        return;
    }
    if let Some(h) = header {
        println!("{h}\n");
    }
    print_table(table);
    if let Some(e) = eval {
        println!();
        print_eval(e);
    }
    // Every model written went through the lint (quantize::apply); a cache did not.
    let linted = output.extension().is_some_and(|e| e == "onnx");
    let note = if linted {
        " (passes the TensorRT lint)"
    } else {
        ""
    };
    println!("\nwrote {}{note}", output.display());
}

fn run_demo(output: &Path, json: bool) -> Fallible<ExitCode> {
    let model = ModelProto::parse_from_bytes(demo::MODEL)?;
    let calib = demo::calibration_images()?;
    let test = demo::test_images()?;
    let opts = QuantizeOptions::default();
    let method = Method::Histogram(qdq::calib::HistogramMethod::entropy());
    let (prepared, float, cache) =
        calibrate(&model, &opts, &calib, 32, method, &HashMap::new(), json)?;
    let quantized = apply(&prepared, &cache, &opts)?;
    write_model(&quantized, output)?;
    let qgraph = OnnxGraph::from_model(&quantized, &device())?;
    let eval = evaluate(&float, &qgraph, &test, 100)?;
    let header = format!(
        "Fashion-MNIST CNN (bundled): {} quantizers, entropy calibration on {} images",
        prepared.sites.len(),
        calib.len()
    );
    let table = quantizer_table(&prepared, &cache);
    report(output, &table, Some(&eval), Some(&header), json);
    Ok(ExitCode::SUCCESS)
}

fn load_data(path: &Path, labels: Option<&Path>, pre: &PreArgs) -> Fallible<Dataset> {
    let mut d = Dataset::load(path, preprocess(pre))?;
    if let Some(l) = labels {
        d = d.with_labels(l)?;
    }
    Ok(d)
}

fn run_quantize(
    c: &CalibArgs,
    output: &Path,
    cache_path: Option<&Path>,
    data: Option<&Path>,
    labels: Option<&Path>,
    json: bool,
) -> Fallible<ExitCode> {
    let model = read_model(&c.model.model)?;
    let opts = options(&c.model)?;
    let (method, per) = parse_methods(c)?;
    let calib_data = load_data(&c.calib, None, &c.pre)?;
    let (prepared, float, cache) =
        calibrate(&model, &opts, &calib_data, c.batch, method, &per, json)?;
    let quantized = apply(&prepared, &cache, &opts)?;
    if let Some(p) = cache_path {
        cache.save(p)?;
    }
    let eval = match data {
        Some(d) => {
            let test = load_data(d, labels, &c.pre)?;
            let q = OnnxGraph::from_model(&quantized, &device())?;
            Some(evaluate(&float, &q, &test, c.batch)?)
        }
        None => None,
    };
    write_model(&quantized, output)?;
    report(
        output,
        &quantizer_table(&prepared, &cache),
        eval.as_ref(),
        None,
        json,
    );
    Ok(ExitCode::SUCCESS)
}

fn run_calibrate(c: &CalibArgs, output: &Path, json: bool) -> Fallible<ExitCode> {
    let model = read_model(&c.model.model)?;
    let opts = options(&c.model)?;
    let (method, per) = parse_methods(c)?;
    let data = load_data(&c.calib, None, &c.pre)?;
    let (prepared, _, cache) = calibrate(&model, &opts, &data, c.batch, method, &per, json)?;
    cache.save(output)?;
    report(
        output,
        &quantizer_table(&prepared, &cache),
        None,
        None,
        json,
    );
    Ok(ExitCode::SUCCESS)
}

fn run_export(m: &ModelArgs, cache: &Path, output: &Path, json: bool) -> Fallible<ExitCode> {
    let model = read_model(&m.model)?;
    let opts = options(m)?;
    let cache = CalibrationCache::load(cache)?;
    let prepared = prepare(&model, &opts)?;
    let quantized = apply(&prepared, &cache, &opts)?;
    write_model(&quantized, output)?;
    report(
        output,
        &quantizer_table(&prepared, &cache),
        None,
        None,
        json,
    );
    Ok(ExitCode::SUCCESS)
}

fn run_eval(
    float: &Path,
    quantized: &Path,
    data: &Path,
    labels: Option<&Path>,
    pre: &PreArgs,
    batch: usize,
    json: bool,
) -> Fallible<ExitCode> {
    let f = OnnxGraph::from_model(&read_model(float)?, &device())?;
    let q = OnnxGraph::from_model(&read_model(quantized)?, &device())?;
    let d = load_data(data, labels, pre)?;
    let v = evaluate(&f, &q, &d, batch)?;
    if json {
        println!("{v}");
    } else {
        print_eval(&v);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_lint(file: &Path, json: bool) -> Fallible<ExitCode> {
    let violations = qdq_onnx::lint_file(file)?;
    if json {
        let v: Vec<_> = violations
            .iter()
            .map(|v| serde_json::json!({"node": v.node, "rule": format!("{:?}", v.rule), "message": v.message, "fix": v.fix}))
            .collect();
        println!("{}", serde_json::json!({"file": file, "violations": v}));
    } else if violations.is_empty() {
        println!("{}: passes TensorRT's QDQ rules", file.display());
    } else {
        for v in &violations {
            println!("{v}");
        }
        println!("{}: {} violation(s)", file.display(), violations.len());
    }
    Ok(if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn run_inspect(file: &Path, json: bool) -> Fallible<ExitCode> {
    let model = read_model(file)?;
    let graph = model.graph.as_ref().ok_or("the model has no graph")?;
    let mut ops: std::collections::BTreeMap<&str, usize> = Default::default();
    for n in &graph.node {
        *ops.entry(n.op_type.as_str()).or_default() += 1;
    }
    let supported = qdq_onnx::runtime::supported_ops();
    let unsupported: Vec<&str> = ops
        .keys()
        .copied()
        .filter(|o| !supported.contains(o))
        .collect();
    let inits: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let dims = |v: &onnx_ir::ValueInfoProto| -> Vec<String> {
        v.type_
            .tensor_type()
            .shape
            .dim
            .iter()
            .map(|d| {
                if d.has_dim_value() {
                    d.dim_value().to_string()
                } else {
                    d.dim_param().to_string()
                }
            })
            .collect()
    };
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .map(|i| (i.name.clone(), dims(i)))
        .collect();
    let outputs: Vec<_> = graph
        .output
        .iter()
        .map(|o| (o.name.clone(), dims(o)))
        .collect();
    let opset = qdq_onnx::passes::model_opset(&model);
    let params: usize = graph
        .initializer
        .iter()
        .map(|t| t.dims.iter().product::<i64>().max(0) as usize)
        .sum();
    let pairs = ops.get("QuantizeLinear").copied().unwrap_or(0);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "file": file, "opset": opset, "ir_version": model.ir_version, "producer": model.producer_name,
                "inputs": inputs, "outputs": outputs, "ops": ops, "initializer_elements": params,
                "quantize_linear": pairs, "unsupported_ops": unsupported,
            })
        );
    } else {
        println!(
            "{}: opset {opset}, IR {}, producer `{}`",
            file.display(),
            model.ir_version,
            model.producer_name
        );
        for (n, d) in &inputs {
            println!("  input  {n} [{}]", d.join(", "));
        }
        for (n, d) in &outputs {
            println!("  output {n} [{}]", d.join(", "));
        }
        println!(
            "  {} nodes, {params} weight elements, {pairs} QuantizeLinear",
            graph.node.len()
        );
        for (op, n) in &ops {
            println!("    {op:<24} {n}");
        }
        if !unsupported.is_empty() {
            println!(
                "  not runnable by qdq's runtime: {}",
                unsupported.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
