//! `qdq`: quantize FP32 ONNX models for TensorRT from the command line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::prelude::*;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use qdq_cli::data::images::{self, ImageOptions, Resize};
use qdq_cli::data::{DataError, Dataset, Input, Preprocess};
use qdq_cli::demo;
use qdq_onnx::finetune::TrainableGraph;
use qdq_onnx::passes::PlacementOptions;
use qdq_onnx::quantize::{
    Calibration, CalibrationCache, Method, Prepared, QuantizeOptions, apply, prepare, report,
};
use qdq_onnx::runtime::{OnnxGraph, Value};
use qdq_onnx::{Message, ModelProto, QdqFormat};
use qdq_vision::train::{TrainConfig, fit};

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

Data (--calib, --data): items along the first dimension, or one per image file:
  FILE.npy    a NumPy array, first dimension = items (float32/64, integer or bool).
  FILE.npz    np.savez / np.savez_compressed: the array named like the model input,
              else the only array besides `labels`/`y`; `labels` (or `y`) gives labels.
  FILE[.gz]   an IDX file (MNIST-style); bytes are multiplied by 1/255 by default.
  FOLDER/     PNG/JPEG images, or class folders of them (FOLDER/cat/1.jpg; the sorted
              folder index is the label). Each image is resized (--resize), center
              cropped to the model input's height x width (or --crop), converted to
              its channels (1: grayscale, 3: RGB), bytes multiplied by 1/255.
Then, for all of them: x * scale, minus --mean, divided by --std; --mean and --std take
one value or one per channel (the item's first dimension): --mean 0.485,0.456,0.406
--std 0.229,0.224,0.225 is ImageNet's. Items must fit the model input: as many values
as its fixed per-item dimensions hold, or the same rank where some are dynamic.

Examples:
  qdq demo
  qdq quantize model.onnx --calib calib.npy -o model.qdq.onnx
  qdq quantize model.onnx --calib images-idx3-ubyte.gz --method percentile=99.99 --skip '*head*' -o q.onnx
  qdq calibrate model.onnx --calib calib.npy -o cache.json
  qdq export model.onnx --cache cache.json -o q.onnx
  qdq eval model.onnx q.onnx --data test.npy --labels labels.npy
  qdq finetune model.onnx --calib calib.npy --train train.npz --epochs 1 --lr 1e-3 \
      --data test.npy --data-labels test-labels.npy -o model.qat.onnx
  qdq quantize resnet50.onnx --calib imagenet-sample/ --resize 256 --mean 0.485,0.456,0.406 \
      --std 0.229,0.224,0.225 --data val/ -o resnet50.qdq.onnx
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
        /// Evaluate FP32 vs quantized on this data afterwards (same formats and
        /// preprocessing as --calib).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Labels for --data (IDX or .npy), for accuracy.
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Quantize, then fine-tune the QDQ model on labelled data (QAT, amax fixed) and
    /// write it: the seed's QAT recipe for an imported graph. Cross-entropy on the
    /// first output (logits [batch, classes]), SGD with momentum 0.9, the learning
    /// rate annealed along a cosine from --lr to --min-lr. Every Q/DQ pair trains as
    /// a straight-through fake quant with exactly the pair's value, so ONNX Runtime
    /// scores the written file as qdq does. BatchNormalization keeps its running
    /// statistics (its scale and bias train).
    Finetune {
        #[command(flatten)]
        common: CalibArgs,
        /// Training data (same formats and preprocessing as --calib), with labels.
        #[arg(long)]
        train: PathBuf,
        /// Labels for --train (IDX or .npy); .npz files with `labels` and class
        /// folders carry their own.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Passes over the training data (fractions allowed). The seed fine-tunes for
        /// about 10% of the original schedule.
        #[arg(long, default_value_t = 1.0)]
        epochs: f64,
        /// Initial learning rate. The seed starts at 1% of the original training's.
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Final learning rate (default: --lr / 100).
        #[arg(long)]
        min_lr: Option<f64>,
        /// Images per training step.
        #[arg(long, default_value_t = 64)]
        train_batch: usize,
        /// L2 penalty.
        #[arg(long, default_value_t = 1e-4)]
        weight_decay: f32,
        /// Shuffling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Evaluate FP32, PTQ and fine-tuned on this data afterwards.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Labels for --data (IDX or .npy), for accuracy.
        #[arg(long)]
        data_labels: Option<PathBuf>,
        /// Output QDQ ONNX file.
        #[arg(short, long)]
        output: PathBuf,
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
        /// Input data (.npy, .npz, IDX or a folder of images).
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
    /// Multiply raw values by this first (default 1/255 for IDX and images, 1 for
    /// .npy/.npz).
    #[arg(long)]
    scale: Option<f32>,
    /// Then subtract this: one value, or one per channel (a,b,c).
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        default_value = "0"
    )]
    mean: Vec<f32>,
    /// Then divide by this: one value, or one per channel (a,b,c).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    std: Vec<f32>,
    /// Image folders: resize first, the shorter side to N pixels (aspect kept), or to
    /// exactly HxW (default: the shorter side to the crop's larger side).
    #[arg(long, value_name = "N|HxW", value_parser = parse_resize)]
    resize: Option<Resize>,
    /// Image folders: center crop to HxW (default: the model input's height and width,
    /// which a crop must equal where they are fixed).
    #[arg(long, value_name = "HxW", value_parser = parse_hw)]
    crop: Option<[u32; 2]>,
}

/// `HxW` (height x width), both positive.
fn parse_hw(s: &str) -> Result<[u32; 2], String> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}`: expected HxW, e.g. 224x224"))?;
    let n = |v: &str| match v.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`{s}`: expected HxW with positive whole numbers, e.g. 224x224"
        )),
    };
    Ok([n(h)?, n(w)?])
}

/// `N` (the shorter side) or `HxW` (exact).
fn parse_resize(s: &str) -> Result<Resize, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err(format!("`{s}`: the shorter side must be positive")),
        Ok(n) => Ok(Resize::Shorter(n)),
        Err(_) => parse_hw(s)
            .map(Resize::Exact)
            .map_err(|_| format!("`{s}`: expected N (shorter side) or HxW, e.g. 256 or 224x224")),
    }
}

#[derive(Args, Clone)]
struct CalibArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Calibration data: .npy, .npz, IDX or a folder of images (see `qdq --help`).
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
        Command::Finetune {
            common,
            train,
            labels,
            epochs,
            lr,
            min_lr,
            train_batch,
            weight_decay,
            seed,
            data,
            data_labels,
            output,
        } => {
            let recipe = TrainConfig::new(epochs, lr)
                .with_min_lr(min_lr.unwrap_or(lr / 100.0))
                .with_batch_size(train_batch)
                .with_weight_decay(weight_decay)
                .with_augment(false)
                .with_seed(seed);
            run_finetune(
                &common,
                (&train, labels.as_deref()),
                &recipe,
                data.as_deref().map(|d| (d, data_labels.as_deref())),
                &output,
                json,
            )
        }
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

/// The graph's (first) runtime input, which the data feeds.
fn model_input(graph: &OnnxGraph) -> Fallible<Input> {
    let input = graph
        .inputs()
        .first()
        .ok_or("the model has no runtime input")?;
    Ok(Input {
        name: input.name.clone(),
        dims: input
            .dims
            .iter()
            .map(|d| match d {
                qdq_onnx::runtime::Dim::Fixed(n) => Some(*n),
                _ => None,
            })
            .collect(),
    })
}

/// Batches of `data` shaped for the graph's single input.
fn batches(graph: &OnnxGraph, data: &Dataset, batch: usize) -> Fallible<Vec<Vec<(String, Value)>>> {
    let input = model_input(graph)?;
    input.check("the data", &data.item_shape)?;
    let item: usize = data.item_shape.iter().product();
    let dims = &input.dims;
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

/// Folds constants and places quantizers; returns the prepared model and its float graph.
fn prepare_graph(model: &ModelProto, opts: &QuantizeOptions) -> Fallible<(Prepared, OnnxGraph)> {
    let prepared = prepare(model, opts)?;
    let graph = OnnxGraph::from_model(&prepared.model, &device())?;
    Ok((prepared, graph))
}

/// Calibrates the prepared model's quantizers on `data`, run through its float `graph`.
fn calibrate(
    prepared: &Prepared,
    graph: &OnnxGraph,
    data: &Dataset,
    batch: usize,
    method: Method,
    per: &HashMap<String, Method>,
    json: bool,
) -> Fallible<CalibrationCache> {
    let graph_proto = prepared
        .model
        .graph
        .as_ref()
        .ok_or("the model has no graph")?;
    let mut calib = Calibration::new(graph_proto, &prepared.sites, false)?;
    let batches = batches(graph, data, batch)?;
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
        calib.feed(graph, b)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(calib.cache(method, per)?)
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

/// FP32 vs quantized on `data`: every output compared (SQNR and cosine; top-1
/// agreement and, with labels, accuracy for `[batch, classes]` outputs), and the tensor
/// where the error jumps. The top-level figures are the first output's; accuracy the
/// first `[batch, classes]` output's.
fn evaluate(
    float: &OnnxGraph,
    quant: &OnnxGraph,
    data: &Dataset,
    batch: usize,
) -> Fallible<serde_json::Value> {
    let outputs = report::compare_outputs(
        float,
        quant,
        batches(float, data, batch)?,
        data.labels.as_deref(),
    )?;
    let first = outputs.first().ok_or("the model has no output")?;
    let finite = |x: f64| x.is_finite().then_some(x); // infinite SQNR (equal outputs): null
    let per_output: Vec<serde_json::Value> = outputs
        .iter()
        .map(|o| {
            let mut v = serde_json::json!({
                "name": o.name,
                "shape": o.item_shape,
                "sqnr_db": finite(o.agreement.sqnr_db),
                "cosine": o.agreement.cosine,
            });
            if o.classes.is_some() {
                v["top1_agreement"] = serde_json::json!(o.agreement.top1);
            }
            if let Some((f, q)) = o.accuracy {
                v["fp32_accuracy"] = serde_json::json!(f);
                v["quantized_accuracy"] = serde_json::json!(q);
            }
            v
        })
        .collect();
    let mut v = serde_json::json!({
        "items": first.items,
        "sqnr_db": finite(first.agreement.sqnr_db),
        "cosine": first.agreement.cosine,
        "outputs": per_output,
    });
    if first.classes.is_some() {
        v["top1_agreement"] = serde_json::json!(first.agreement.top1);
    }
    if let Some((f, q)) = outputs.iter().find_map(|o| o.accuracy) {
        v["fp32_accuracy"] = serde_json::json!(f);
        v["quantized_accuracy"] = serde_json::json!(q);
    }
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
    println!("FP32 vs quantized outputs ({} items):", v["items"]);
    for o in v["outputs"].as_array().into_iter().flatten() {
        let top1 = o["top1_agreement"].as_f64().map_or(String::new(), |t| {
            format!("top-1 agreement {:.2}%, ", t * 100.0)
        });
        let sqnr = o["sqnr_db"]
            .as_f64()
            .map_or("inf (equal)".into(), |d| format!("{d:.1} dB"));
        let shape: Vec<String> = o["shape"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.to_string())
            .collect();
        println!(
            "  {} [{}]: {top1}SQNR {sqnr}, cosine {:.5}",
            o["name"].as_str().unwrap_or(""),
            shape.join(", "),
            o["cosine"].as_f64().unwrap_or(0.0)
        );
    }
}

/// Prints what a command wrote: JSON, or a header, the quantizer table, the evaluation.
fn report(
    output: &Path,
    (prepared, cache): (&Prepared, &CalibrationCache),
    eval: Option<&serde_json::Value>,
    header: Option<&str>,
    json: bool,
) {
    report_with(output, (prepared, cache), eval, header, json, None);
}

/// [`report`] with more top-level JSON fields (`more`, an object).
fn report_with(
    output: &Path,
    (prepared, cache): (&Prepared, &CalibrationCache),
    eval: Option<&serde_json::Value>,
    header: Option<&str>,
    json: bool,
    more: Option<serde_json::Value>,
) {
    let table = &quantizer_table(prepared, cache);
    if json {
        let mut v = serde_json::json!({"output": output, "quantizers": table, "eval": eval});
        if let (Some(o), Some(serde_json::Value::Object(m))) = (v.as_object_mut(), more) {
            o.extend(m);
        }
        println!("{v}");
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
    let method = Method::entropy();
    let (prepared, float) = prepare_graph(&model, &opts)?;
    let cache = calibrate(&prepared, &float, &calib, 32, method, &HashMap::new(), json)?;
    let quantized = apply(&prepared, &cache, &opts)?;
    write_model(&quantized, output)?;
    let qgraph = OnnxGraph::from_model(&quantized, &device())?;
    let eval = evaluate(&float, &qgraph, &test, 100)?;
    let header = format!(
        "Fashion-MNIST CNN (bundled): {} quantizers, entropy calibration on {} images",
        prepared.sites.len(),
        calib.len()
    );
    let quantizers = (&prepared, &cache);
    report(output, quantizers, Some(&eval), Some(&header), json);
    Ok(ExitCode::SUCCESS)
}

/// Loads `path` for the model input `input`: a folder of images (fitted to the input,
/// see [`ImageOptions::for_input`]), `.npz`, `.npy` or IDX; then --scale, --mean and
/// --std, the check that items fit the input (naming `path`), and the labels.
fn load_data(
    path: &Path,
    labels: Option<&Path>,
    pre: &PreArgs,
    input: &Input,
) -> Fallible<Dataset> {
    let source = path.display().to_string();
    let mut d = if path.is_dir() {
        let o = ImageOptions {
            resize: pre.resize,
            scale: pre.scale.unwrap_or(1.0 / 255.0),
            mean: pre.mean.clone(),
            std: pre.std.clone(),
            ..ImageOptions::for_input(input, path, pre.crop)?
        };
        images::load(path, &o)?
    } else {
        if pre.resize.is_some() || pre.crop.is_some() {
            return Err(DataError::Format {
                path: source,
                why: "--resize and --crop apply to folders of images, not to files".into(),
            }
            .into());
        }
        let scale = pre.scale.map(|scale| Preprocess {
            scale,
            ..Preprocess::default()
        });
        let mut d = if path.extension().is_some_and(|e| e == "npz") {
            Dataset::load_npz(path, Some(&input.name), scale)?
        } else {
            Dataset::load(path, scale)?
        };
        d.normalize(&pre.mean, &pre.std)
            .map_err(|why| DataError::Format {
                path: source.clone(),
                why,
            })?;
        d
    };
    input.check(&source, &d.item_shape)?;
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
    let (prepared, float) = prepare_graph(&model, &opts)?;
    let input = model_input(&float)?;
    let calib_data = load_data(&c.calib, None, &c.pre, &input)?;
    // Evaluation data is read before the long calibration, so that an error in it
    // comes at once.
    let test = match data {
        Some(d) => Some(load_data(d, labels, &c.pre, &input)?),
        None => None,
    };
    let cache = calibrate(&prepared, &float, &calib_data, c.batch, method, &per, json)?;
    drop(calib_data);
    let quantized = apply(&prepared, &cache, &opts)?;
    if let Some(p) = cache_path {
        cache.save(p)?;
    }
    let eval = match &test {
        Some(test) => {
            let q = OnnxGraph::from_model(&quantized, &device())?;
            Some(evaluate(&float, &q, test, c.batch)?)
        }
        None => None,
    };
    write_model(&quantized, output)?;
    report(output, (&prepared, &cache), eval.as_ref(), None, json);
    Ok(ExitCode::SUCCESS)
}

/// `qdq finetune`: quantize as `qdq quantize` does, fine-tune the QDQ graph on the
/// training data with `recipe`, write it; with evaluation data, report PTQ and the
/// fine-tuned model against FP32.
fn run_finetune(
    c: &CalibArgs,
    (train_path, labels): (&Path, Option<&Path>),
    recipe: &TrainConfig,
    eval_data: Option<(&Path, Option<&Path>)>,
    output: &Path,
    json: bool,
) -> Fallible<ExitCode> {
    let model = read_model(&c.model.model)?;
    let opts = options(&c.model)?;
    let (method, per) = parse_methods(c)?;
    let (prepared, float) = prepare_graph(&model, &opts)?;
    let input = model_input(&float)?;
    // Every data file is read before the long steps, so that an error comes at once.
    let calib_data = load_data(&c.calib, None, &c.pre, &input)?;
    let train = load_data(train_path, labels, &c.pre, &input)?;
    let Some(train_labels) = train.labels.as_deref() else {
        return Err(format!(
            "--train {}: fine-tuning needs labels; give --labels, a .npz holding `labels`, or class folders",
            train_path.display()
        )
        .into());
    };
    if !(1..=3).contains(&train.item_shape.len()) || train.is_empty() {
        return Err(format!(
            "--train {}: fine-tuning takes items of 1 to 3 dimensions ([F], [H, W], [C, H, W]), got {} items of {:?}",
            train_path.display(),
            train.len(),
            train.item_shape
        )
        .into());
    }
    let test = match eval_data {
        Some((d, l)) => Some(load_data(d, l, &c.pre, &input)?),
        None => None,
    };
    let cache = calibrate(&prepared, &float, &calib_data, c.batch, method, &per, json)?;
    drop(calib_data);
    let quantized = apply(&prepared, &cache, &opts)?;

    // One checked forward pass first: the training loop has no error path.
    let trainable = TrainableGraph::new(&quantized, &device())?;
    let probe = (0..train.len().min(2)).collect::<Vec<_>>();
    let classes = trainable
        .classify(qdq_vision::data::batch(&train, &probe, None, &device()).0)?
        .dims()[1];
    if let Some(bad) = train_labels
        .iter()
        .find(|&&l| l < 0 || l as usize >= classes)
    {
        return Err(format!(
            "--train {}: label {bad} is outside the model's {classes} classes",
            train_path.display()
        )
        .into());
    }
    let ad = device().autodiff();
    ad.seed(recipe.seed);
    let (tuned, timing) = fit(trainable.fork(&ad).train(), &train, recipe, "fine-tuning");
    let tuned = tuned.valid();
    let finetuned = tuned.write_into(&quantized)?;
    let violations = qdq_onnx::lint(&finetuned);
    if !violations.is_empty() {
        return Err(qdq_onnx::Error::Lint(violations).into());
    }
    let (ptq_eval, eval) = match &test {
        Some(test) => {
            let ptq = OnnxGraph::from_model(&quantized, &device())?;
            let tuned = OnnxGraph::from_model(&finetuned, &device())?;
            (
                Some(evaluate(&float, &ptq, test, c.batch)?),
                Some(evaluate(&float, &tuned, test, c.batch)?),
            )
        }
        None => (None, None),
    };
    write_model(&finetuned, output)?;
    let summary = serde_json::json!({
        "epochs": recipe.epochs,
        "lr": recipe.lr,
        "min_lr": recipe.min_lr,
        "images": train.len(),
        "weights": tuned.names().len(),
        "quantizers": tuned.quantizers(),
        "seconds": timing.seconds,
        "images_per_s": timing.images_per_s,
    });
    let mut header = format!(
        "fine-tuned {} weights through {} quantizers: {} epoch(s) over {} images, lr {:.1e} -> {:.1e}, {:.1} s ({:.0} images/s)",
        tuned.names().len(),
        tuned.quantizers(),
        recipe.epochs,
        train.len(),
        recipe.lr,
        recipe.min_lr,
        timing.seconds,
        timing.images_per_s
    );
    if let Some((f, q)) = ptq_eval.as_ref().and_then(|v| {
        Some((
            v["fp32_accuracy"].as_f64()?,
            v["quantized_accuracy"].as_f64()?,
        ))
    }) {
        header += &format!(
            "
before fine-tuning: FP32 {:.2}%  PTQ {:.2}%",
            f * 100.0,
            q * 100.0
        );
    }
    let more = serde_json::json!({"finetune": summary, "eval_ptq": ptq_eval});
    let quantizers = (&prepared, &cache);
    report_with(
        output,
        quantizers,
        eval.as_ref(),
        Some(&header),
        json,
        Some(more),
    );
    Ok(ExitCode::SUCCESS)
}

fn run_calibrate(c: &CalibArgs, output: &Path, json: bool) -> Fallible<ExitCode> {
    let model = read_model(&c.model.model)?;
    let opts = options(&c.model)?;
    let (method, per) = parse_methods(c)?;
    let (prepared, float) = prepare_graph(&model, &opts)?;
    let data = load_data(&c.calib, None, &c.pre, &model_input(&float)?)?;
    let cache = calibrate(&prepared, &float, &data, c.batch, method, &per, json)?;
    cache.save(output)?;
    report(output, (&prepared, &cache), None, None, json);
    Ok(ExitCode::SUCCESS)
}

fn run_export(m: &ModelArgs, cache: &Path, output: &Path, json: bool) -> Fallible<ExitCode> {
    let model = read_model(&m.model)?;
    let opts = options(m)?;
    let cache = CalibrationCache::load(cache)?;
    let prepared = prepare(&model, &opts)?;
    let quantized = apply(&prepared, &cache, &opts)?;
    write_model(&quantized, output)?;
    report(output, (&prepared, &cache), None, None, json);
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
    let d = load_data(data, labels, pre, &model_input(&f)?)?;
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
