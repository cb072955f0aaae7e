//! `qdq`: quantize FP32 ONNX models for TensorRT from the command line.

mod batch_one;
mod commands;
mod data_args;
mod distill;
mod finetune;
mod flags;
mod pipeline;
mod report;
mod sensitivity;
mod shard;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use qdq_cli::data::images::Resize;
use qdq_vision::train::TrainConfig;

use commands::{
    run_calibrate, run_demo, run_eval, run_export, run_inspect, run_lint, run_quantize,
};
use distill::run_distill;
use finetune::run_finetune;

/// See [`qdq_cli::allocator`]: freed tensor buffers are reused rather than returned to
/// the kernel and faulted in again by the next node.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MANUAL: &str = "\
qdq quantizes FP32 ONNX models into TensorRT-ready QDQ ONNX files, with no Python.

It places quantizers where TensorRT wants them (inputs of Conv, ConvTranspose, Gemm and
MatMul with per-channel weights, pooling inputs, the skip branch of residual adds,
Concat inputs with one shared scale), calibrates them in one streaming pass over your
data (max, entropy, mse or percentile, all from one collection; or auto: per quantizer,
the one of those whose quantization least changes its consumers' output, measured in a
second pass over the first --auto-items items), writes the QDQ model with the opset it
needs, checks it against TensorRT's rules, and reports how far the quantized outputs
are from the float ones. FP16/BF16 models keep their float type (Q/DQ in it, from opset
19); weights in external data files next to the model are read.

With no command, `qdq` runs `qdq demo`: a small Fashion-MNIST CNN bundled in the
binary, calibrated on 256 images and evaluated on 500, FP32 against INT8.

Data (--calib, --data, --train; --input is another name for --calib, and for --data
in `qdq eval`): items along the first dimension, or one per file:
  FILE.npy    a NumPy array, first dimension = items (float32/64, integer or bool).
  FILE.npz    np.savez / np.savez_compressed: one array per model input, named like
              it (ModelOpt's convention), first dimension = items; for a single-input
              model also its only array. `labels` (or `y`) gives labels.
  FILE[.gz]   an IDX file (MNIST-style); bytes are multiplied by 1/255 by default.
  FOLDER/     PNG/JPEG images, or class folders of them (FOLDER/cat/1.jpg; the sorted
              folder index is the label). Each image is resized (--resize), center
              cropped to the model input's height x width (or --crop), converted to
              its channels (1: grayscale, 3: RGB), bytes multiplied by 1/255.
  FOLDER/     of .npz files, one item each (sorted by name): one array per input,
              without the batch axis (a leading axis of 1 is accepted), items may
              differ along the inputs' dynamic dimensions; `labels` optional.
  NAME=FILE   data for input NAME alone (any form above but .npz items); repeatable,
              and combined with one unnamed source for the other inputs.
  NAME=NUMBER every element of input NAME: a scalar input (silero-vad's `sr=16000`),
              or an input whose item shape is fixed (`state=0`).
Types: each input's data is converted to its type exactly: integer inputs (token ids,
masks, sizes) take whole numbers in their range, bool inputs 0/1 or bool, float inputs
any number (float16/bfloat16/float64 inputs are fed float32); anything else is an
error naming the input, item and value. The batch axis is dimension 0, or where the
batch dimension's name appears (a state [2, batch, 128]: axis 1); an input without one
(a scalar) takes one value for every batch. Items of different shapes are batched by
equal shape (groups in the order of their first item); a model that fixes its batch
size gets exactly that many items a batch.
Then, for float inputs: x * scale, minus --mean, divided by --std; --mean and --std
take one value or one per channel (the item's first dimension): --mean
0.485,0.456,0.406 --std 0.229,0.224,0.225 is ImageNet's. With several float inputs,
name the one each applies to: --mean image=0.5 (--resize/--crop apply to every image
folder unless named). Items must fit the model input: as many values as its fixed
per-item dimensions hold, or the same rank where some are dynamic.

Files: an output (-o, --cache) is written to a temporary file next to it and renamed
over it only when complete; a model only after it has been read back, run on qdq's
runtime and checked against its fake-quant simulation. An output that is one of the
command's inputs, another output, a device, a FIFO or a folder is refused before any
work. Ctrl-C leaves no partial file. Numeric flags are checked as they are read (the
error names the flag and its range); --skip, --skip-op and --method-for values that
match nothing are errors.

Exit codes: 0 success; 1 an error (the message names the file, flag, node or tensor);
2 a command-line error, or `qdq lint` found violations.

Examples:
  qdq demo
  qdq quantize model.onnx --calib calib.npy -o model.qdq.onnx
  qdq quantize model.onnx --calib images-idx3-ubyte.gz --method percentile=99.99 --skip '*head*' -o q.onnx
  qdq calibrate model.onnx --calib calib.npy -o cache.json
  qdq export model.onnx --cache cache.json -o q.onnx
  qdq eval model.onnx q.onnx --data test.npy --labels labels.npy
  qdq quantize minilm.onnx --calib tokens.npz -o minilm.qdq.onnx        # input_ids, attention_mask
  qdq quantize silero.onnx --calib input=audio.npy --calib state=0 --calib sr=16000 -o vad.qdq.onnx
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
    /// Where calibration, evaluation and fine-tuning run: cpu, or cuda / cuda:N on an
    /// NVIDIA GPU (a qdq built with `--features gpu`; see README, "GPU").
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
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
        #[command(flatten)]
        output: ModelOutput,
        /// Also save the calibration cache (JSON) here.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Evaluate FP32 vs quantized on this data afterwards (same forms and
        /// preprocessing as --calib; repeatable).
        #[arg(long, value_name = "[NAME=]SOURCE")]
        data: Vec<String>,
        /// Labels for --data (IDX or .npy), for accuracy.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Quantize from these statistics files (every slice of a sharded `qdq
        /// calibrate --stats` run) instead of --calib data.
        #[arg(long, value_name = "STATS", num_args = 1.., conflicts_with = "calib")]
        stats: Vec<PathBuf>,
        /// Keep the N layers in float whose quantization alone changes the outputs
        /// most (`qdq sensitivity`'s ranking, measured on the first --auto-items
        /// calibration items); 0: none.
        #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "stats")]
        keep_float_sensitive: usize,
        /// Keep in float every layer whose output error alone (as `qdq sensitivity`
        /// prints it) is above ERR.
        #[arg(long, value_name = "ERR", conflicts_with = "stats", allow_negative_numbers = true, value_parser = flags::non_negative_finite)]
        keep_float_above: Option<f64>,
        /// Quantize every layer even where `auto` finds the model broken: by default,
        /// when the model `auto` keeps still changes its outputs by more than a tenth
        /// of their energy (Σ(q-f)²/Σf² > 0.1 on its items), the layers whose
        /// quantization alone does so stay float (a power spectrum before a Log, an
        /// input that INT8 cannot span), and the command says which.
        #[arg(long)]
        no_auto_keep_float: bool,
    },
    /// Rank the layers by sensitivity: calibrate, then for each layer (a node with
    /// quantizers on its inputs) the whole model's output error against FP32,
    /// Σ(q-f)²/Σf², with only that layer quantized; most sensitive first. The first
    /// ones are those to keep in float (`quantize --keep-float-sensitive N`).
    Sensitivity {
        #[command(flatten)]
        common: CalibArgs,
        /// Items to measure on (same forms and preprocessing as --calib; default: the
        /// calibration data); repeatable.
        #[arg(long, visible_alias = "eval", value_name = "[NAME=]SOURCE")]
        data: Vec<String>,
        /// How many items (the first ones) each layer is measured on (at least 1).
        #[arg(long, default_value_t = 8, allow_negative_numbers = true, value_parser = flags::positive)]
        items: usize,
        /// Print only the N most sensitive layers.
        #[arg(long, value_name = "N")]
        top: Option<usize>,
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
        /// Training data (same forms and preprocessing as --calib), with labels; a
        /// model with one float input. With --distill: unlabeled items for every input
        /// (default: the --calib data).
        #[arg(
            long,
            value_name = "[NAME=]SOURCE",
            required_unless_present = "distill"
        )]
        train: Vec<String>,
        /// Label-free QAT: the FP32 model is the teacher, and the loss is the distance
        /// between the quantized graph's outputs and the FP32 graph's on the same items
        /// (--train, else --calib); any model, any typed inputs, no labels.
        #[arg(long)]
        distill: bool,
        /// --distill's loss: LOSS for every output or NAME=LOSS for one (repeatable);
        /// mse, cosine (1 - cosine along the last axis) or kl (KL divergence of the
        /// softmax along the last axis, temperature 1). Default: kl for a
        /// [batch, classes] output (logits), mse otherwise.
        #[arg(long, value_name = "[NAME=]LOSS", requires = "distill")]
        distill_loss: Vec<String>,
        /// Distill only this output (repeatable; default: every float output).
        #[arg(long, value_name = "NAME", requires = "distill")]
        distill_output: Vec<String>,
        /// Labels for --train (IDX or .npy); .npz files with `labels` and class
        /// folders carry their own.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Passes over the training data (fractions allowed), in (0, 10000]. The seed
        /// fine-tunes for about 10% of the original schedule.
        #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = flags::epochs)]
        epochs: f64,
        /// Initial learning rate, in (0, 1]. The seed starts at 1% of the original
        /// training's.
        #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true, value_parser = flags::learning_rate)]
        lr: f64,
        /// Final learning rate, in [0, --lr] (default: --lr / 100).
        #[arg(long, allow_negative_numbers = true, value_parser = flags::min_learning_rate)]
        min_lr: Option<f64>,
        /// Images per training step (at least 1).
        #[arg(long, default_value_t = 64, allow_negative_numbers = true, value_parser = flags::positive)]
        train_batch: usize,
        /// L2 penalty, in [0, 1).
        #[arg(long, default_value_t = 1e-4, allow_negative_numbers = true, value_parser = flags::weight_decay)]
        weight_decay: f32,
        /// Shuffling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Evaluate FP32, PTQ and fine-tuned on this data afterwards (repeatable).
        #[arg(long, value_name = "[NAME=]SOURCE")]
        data: Vec<String>,
        /// Labels for --data (IDX or .npy), for accuracy.
        #[arg(long)]
        data_labels: Option<PathBuf>,
        #[command(flatten)]
        output: ModelOutput,
    },
    /// Calibrate and write only the calibration cache (JSON: tensor -> amax, method);
    /// or, sharded, one slice's statistics (--stats, --shard) and their merge (--merge).
    Calibrate {
        #[command(flatten)]
        common: CalibArgs,
        /// Output cache file.
        #[arg(short, long, required_unless_present = "stats")]
        output: Option<PathBuf>,
        #[command(flatten)]
        shard: shard::ShardArgs,
    },
    /// Write the QDQ model from a calibration cache (qdq JSON or a TensorRT calibration table).
    Export {
        #[command(flatten)]
        model: ModelArgs,
        /// The cache.
        #[arg(long)]
        cache: PathBuf,
        #[command(flatten)]
        output: ModelOutput,
    },
    /// Compare a float model and its quantized version on data (accuracy with labels).
    Eval {
        /// The FP32 model.
        float: PathBuf,
        /// The quantized model.
        quantized: PathBuf,
        /// Input data: a file or folder, or NAME=FILE / NAME=NUMBER per input;
        /// repeatable (as --calib; see `qdq --help`). Also spelled --input.
        #[arg(
            long,
            visible_alias = "input",
            value_name = "[NAME=]SOURCE",
            required = true
        )]
        data: Vec<String>,
        /// Labels (IDX or .npy).
        #[arg(long)]
        labels: Option<PathBuf>,
        #[command(flatten)]
        pre: PreArgs,
        /// Batch size (at least 1).
        #[arg(long, default_value_t = 32, allow_negative_numbers = true, value_parser = flags::positive)]
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
    /// Leave the MatMuls of two activations (attention's Q·Kᵀ and probabilities·V) in
    /// float (ModelOpt's disable_mha_qdq); by default both of their inputs are quantized.
    #[arg(long)]
    keep_attention_float: bool,
    /// Output opset, 10 to the newest ONNX defines (default: the model's, raised to 13
    /// for per-channel, 19 for FP8).
    #[arg(long, allow_negative_numbers = true, value_parser = flags::opset)]
    opset: Option<i64>,
    /// Weight storage: `float` (float weights, Q/DQ pair) or `int8` (each weight
    /// stored quantized, read by a DequantizeLinear: ~4x smaller, same values; FP8
    /// values with --format fp8, INT4 values, ~8x smaller, with --weight-bits 4).
    #[arg(long, default_value = "float")]
    weights: String,
    /// Bits of the weight quantizers: 8, or 4 for W4A8 (INT4 weights per output
    /// channel, scale amax/7 so values lie in [-7, 7], as pytorch-quantization's
    /// num_bits=4; activations stay INT8). INT4 Q/DQ needs opset 21: the model is
    /// raised there, or refused naming the node that cannot be. With --weights int8
    /// the INT4 values are stored packed, two a byte (~8x smaller than float), read by
    /// a DequantizeLinear: the form weight-only INT4 runtimes take.
    #[arg(long, default_value_t = 8, value_parser = flags::weight_bits)]
    weight_bits: u32,
}

/// Where a command writes its model, and how its weights are stored.
#[derive(Args, Clone)]
pub(crate) struct ModelOutput {
    /// Output QDQ ONNX file.
    #[arg(short, long)]
    output: PathBuf,
    /// Store the weights (initializers of 1 KiB or more) in one file next to the
    /// output, OUTPUT.data (e.g. q.onnx.data), as ONNX external data; automatic when
    /// the model would exceed protobuf's 2 GiB limit for one file.
    #[arg(long)]
    external_data: bool,
    /// The serialized size above which the weights go to external data without
    /// --external-data: protobuf's limit (lowered by tests).
    #[arg(long, hide = true, default_value_t = qdq_onnx::MAX_MODEL_BYTES)]
    max_inline_bytes: u64,
}

impl ModelOutput {
    /// A model written at `path` with its weights inline up to protobuf's limit.
    fn inline(path: PathBuf) -> Self {
        Self {
            output: path,
            external_data: false,
            max_inline_bytes: qdq_onnx::MAX_MODEL_BYTES,
        }
    }

    /// The external data file: the output's name with `.data` appended.
    pub(crate) fn data_path(&self) -> PathBuf {
        let mut name = self.output.file_name().unwrap_or_default().to_os_string();
        name.push(".data");
        self.output.with_file_name(name)
    }
}

#[derive(Args, Clone)]
struct PreArgs {
    /// Float inputs: multiply raw values by this first (default 1/255 for IDX and
    /// images, 1 for .npy/.npz). `VALUE`, or `NAME=VALUE` for input NAME; repeatable.
    #[arg(long, value_name = "[NAME=]S", allow_negative_numbers = true, value_parser = flags::named_finite)]
    scale: Vec<String>,
    /// Float inputs: then subtract this: one value, or one per channel (a,b,c).
    /// `VALUES`, or `NAME=VALUES` for input NAME; repeatable.
    #[arg(long, value_name = "[NAME=]M", allow_negative_numbers = true, value_parser = flags::named_finites)]
    mean: Vec<String>,
    /// Float inputs: then divide by this: one value, or one per channel (a,b,c).
    /// `VALUES`, or `NAME=VALUES` for input NAME; repeatable.
    #[arg(long, value_name = "[NAME=]S", allow_negative_numbers = true, value_parser = flags::named_divisors)]
    std: Vec<String>,
    /// Image folders: resize first, the shorter side to N pixels (aspect kept), or to
    /// exactly HxW (default: the shorter side to the crop's larger side); `NAME=...`
    /// for one input's folder.
    #[arg(long, value_name = "[NAME=]N|HxW", value_parser = flags::named_resize)]
    resize: Vec<String>,
    /// Image folders: center crop to HxW (default: the model input's height and width,
    /// which a crop must equal where they are fixed); `NAME=HxW` for one input's folder.
    #[arg(long, value_name = "[NAME=]HxW", value_parser = flags::named_hw)]
    crop: Vec<String>,
}

/// `HxW` (height x width), both positive.
pub(crate) fn parse_hw(s: &str) -> Result<[u32; 2], String> {
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
pub(crate) fn parse_resize(s: &str) -> Result<Resize, String> {
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
    /// Calibration data: a file or folder (.npy, .npz, IDX, images, .npz items), or
    /// NAME=FILE / NAME=NUMBER for input NAME; repeatable (see `qdq --help`). Also
    /// spelled --input. Required, except where statistics files replace it.
    #[arg(long, visible_alias = "input", value_name = "[NAME=]SOURCE")]
    calib: Vec<String>,
    /// Activation amax method: auto (the default: per quantizer, the candidate among
    /// max, percentiles 99.999/99.99/99.9, mse and entropy whose quantization least
    /// changes its consumers' output, measured on the first --auto-items items), max,
    /// entropy, mse, percentile or percentile=P.
    #[arg(long, default_value = "auto")]
    method: String,
    /// Per-tensor method override, TENSOR=METHOD; repeatable.
    #[arg(long = "method-for")]
    method_for: Vec<String>,
    /// Batch size of the calibration pass (at least 1; the statistics do not depend on
    /// it). `auto` measures its items in batches of at most this many and at most a
    /// quarter of `--auto-items`, averaging its errors per batch.
    /// The pass runs a few batches at once (one per core, at most 4), each this size
    /// divided among them, so memory stays about one batch; and where the model lets
    /// the batch size vary, it runs the first item alone to size the others: each run
    /// holds as many items as keep its largest tensor within 16 MiB (large tensors are
    /// fresh memory every time: one 640x640 page a run is a third faster than eight).
    #[arg(long, default_value_t = 32, allow_negative_numbers = true, value_parser = flags::positive)]
    batch: usize,
    /// Items `auto` measures its candidates on (the first ones of the calibration set).
    #[arg(long, default_value_t = 8, allow_negative_numbers = true, value_parser = flags::positive)]
    auto_items: usize,
    /// A graph output `auto`'s whole-model step (and `qdq sensitivity`) measures;
    /// repeatable; default: every output. Name the outputs that matter when others are
    /// auxiliary, e.g. a recurrent state that the calibration items all start from
    /// zero, which otherwise weighs as much in the choice as the model's answer.
    #[arg(long = "auto-output", value_name = "OUTPUT")]
    auto_outputs: Vec<String>,
    #[command(flatten)]
    pre: PreArgs,
}

type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

/// Files a command names, each with the flag that names it.
type NamedFiles<'a> = Vec<(&'static str, &'a Path)>;

impl Command {
    /// The files the command reads and writes, each with the flag that names it, so
    /// that no output can destroy an input or another output.
    fn files(&self) -> (NamedFiles<'_>, NamedFiles<'_>) {
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        fn calib<'a>(c: &'a CalibArgs, inputs: &mut NamedFiles<'a>) {
            inputs.push(("MODEL", c.model.model.as_path()));
            inputs.extend(
                data_args::source_paths(&c.calib)
                    .into_iter()
                    .map(|p| ("--calib", p)),
            );
        }
        match self {
            Command::Demo { output } => outputs.push(("-o", output.as_path())),
            Command::Quantize {
                common,
                output,
                cache,
                data,
                labels,
                stats,
                ..
            } => {
                calib(common, &mut inputs);
                inputs.extend(stats.iter().map(|p| ("--stats", p.as_path())));
                inputs.extend(
                    data_args::source_paths(data)
                        .into_iter()
                        .map(|p| ("--data", p)),
                );
                inputs.extend(labels.as_deref().map(|p| ("--labels", p)));
                outputs.push(("-o", output.output.as_path()));
                outputs.extend(cache.as_deref().map(|p| ("--cache", p)));
            }
            Command::Sensitivity { common, data, .. } => {
                calib(common, &mut inputs);
                inputs.extend(
                    data_args::source_paths(data)
                        .into_iter()
                        .map(|p| ("--data", p)),
                );
            }
            Command::Finetune {
                common,
                train,
                labels,
                data,
                data_labels,
                output,
                ..
            } => {
                calib(common, &mut inputs);
                inputs.extend(
                    data_args::source_paths(train)
                        .into_iter()
                        .map(|p| ("--train", p)),
                );
                inputs.extend(labels.as_deref().map(|p| ("--labels", p)));
                inputs.extend(
                    data_args::source_paths(data)
                        .into_iter()
                        .map(|p| ("--data", p)),
                );
                inputs.extend(data_labels.as_deref().map(|p| ("--data-labels", p)));
                outputs.push(("-o", output.output.as_path()));
            }
            Command::Calibrate {
                common,
                output,
                shard,
            } => {
                calib(common, &mut inputs);
                inputs.extend(shard.merge.iter().map(|p| ("--merge", p.as_path())));
                outputs.extend(output.as_deref().map(|p| ("-o", p)));
                outputs.extend(shard.stats.as_deref().map(|p| ("--stats", p)));
            }
            Command::Export {
                model,
                cache,
                output,
            } => {
                inputs.push(("MODEL", model.model.as_path()));
                inputs.push(("--cache", cache.as_path()));
                outputs.push(("-o", output.output.as_path()));
            }
            Command::Eval { .. } | Command::Lint { .. } | Command::Inspect { .. } => {}
        }
        (inputs, outputs)
    }

    /// Whether the command needs --calib data and was given none (statistics files
    /// replace it for `calibrate --merge` and `quantize --stats`).
    fn lacks_calib(&self) -> bool {
        match self {
            Command::Quantize { common, stats, .. } => common.calib.is_empty() && stats.is_empty(),
            Command::Calibrate { common, shard, .. } => {
                common.calib.is_empty() && shard.merge.is_empty()
            }
            Command::Finetune { common, .. } | Command::Sensitivity { common, .. } => {
                common.calib.is_empty()
            }
            _ => false,
        }
    }

    /// The model the command writes, if any.
    fn model_output(&self) -> Option<&ModelOutput> {
        match self {
            Command::Quantize { output, .. }
            | Command::Finetune { output, .. }
            | Command::Export { output, .. } => Some(output),
            _ => None,
        }
    }
}

/// [`qdq::io::check_outputs`] for the command's files and the external data files
/// on either side: the data file a written model may get (`-o`'s name + `.data`,
/// written with --external-data or when the model is over protobuf's limit) must not
/// be an input, an input model's own data file, another output, a device or a folder,
/// and, with --external-data, not a symbolic link either.
fn check_files(command: &Command) -> Result<(), qdq::io::OutputError> {
    let (mut inputs, mut outputs) = command.files();
    let input_data: Vec<PathBuf> = inputs
        .iter()
        .filter(|(flag, _)| *flag == "MODEL")
        .flat_map(|(_, p)| qdq_onnx::proto::external::data_files(p))
        .collect();
    inputs.extend(
        input_data
            .iter()
            .map(|p| ("MODEL's external data", p.as_path())),
    );
    let output_data = command
        .model_output()
        .map(|o| (o.data_path(), o.external_data));
    if let Some((path, forced)) = &output_data {
        if *forced {
            qdq::io::check_not_symlink("-o's external data", path)?;
        }
        outputs.push(("-o's external data", path.as_path()));
    }
    qdq::io::check_outputs(&inputs, &outputs)
}

fn main() -> ExitCode {
    qdq_cli::allocator::keep_freed_memory();
    // Printing to a closed pipe (`qdq inspect m.onnx | head -1`) ends the process
    // quietly, as in any Unix tool, instead of panicking in `println!`. Files are
    // written with `write`, not to pipes, so this never cuts a model short.
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition at start-up, before any
    // thread exists, is what `signal` is for.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let json = cli.json;
    if let Err(e) = qdq::io::remove_temp_files_on_signals() {
        eprintln!("error: cannot install the signal handler that removes partial files: {e}");
        return ExitCode::from(1);
    }
    let device = match qdq::device(&cli.device) {
        Ok(device) => device,
        Err(e) => {
            eprintln!("error: --device: {e}");
            return ExitCode::from(1);
        }
    };
    let command = cli.command.unwrap_or(Command::Demo {
        output: "qdq-demo-int8.onnx".into(),
    });
    if command.lacks_calib() {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "the following required argument was not provided: --calib <[NAME=]SOURCE>",
            )
            .exit();
    }
    if let Err(e) = check_files(&command) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    if let Command::Finetune {
        lr,
        min_lr: Some(min),
        ..
    } = &command
        && min > lr
    {
        eprintln!(
            "error: --min-lr {min} is above --lr {lr}; the rate anneals down from --lr to --min-lr"
        );
        return ExitCode::from(2);
    }
    let result = match command {
        Command::Demo { output } => run_demo(&ModelOutput::inline(output), json, &device),
        Command::Quantize {
            common,
            output,
            cache,
            data,
            labels,
            stats,
            keep_float_sensitive,
            keep_float_above,
            no_auto_keep_float,
        } => run_quantize(
            &common,
            (&output, cache.as_deref()),
            (&data, labels.as_deref()),
            (
                &stats,
                sensitivity::KeepFloat {
                    top: keep_float_sensitive,
                    above: keep_float_above,
                    guard: !no_auto_keep_float,
                },
            ),
            json,
            &device,
        ),
        Command::Sensitivity {
            common,
            data,
            items,
            top,
        } => sensitivity::run_sensitivity(&common, &data, (items, top), json, &device),
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
            distill,
            distill_loss,
            distill_output,
        } => {
            let recipe = TrainConfig::new(epochs, lr)
                .with_min_lr(min_lr.unwrap_or(lr / 100.0))
                .with_batch_size(train_batch)
                .with_weight_decay(weight_decay)
                .with_augment(false)
                .with_seed(seed);
            if !distill {
                run_finetune(
                    &common,
                    (train.as_slice(), labels.as_deref()),
                    &recipe,
                    (!data.is_empty()).then_some((data.as_slice(), data_labels.as_deref())),
                    &output,
                    json,
                    &device,
                )
            } else if labels.is_some() {
                Err("--labels: --distill learns from the FP32 model's outputs, not from labels (--data-labels still scores --data)".into())
            } else {
                run_distill(
                    &common,
                    &distill::DistillArgs {
                        train: (!train.is_empty()).then_some(train.as_slice()),
                        outputs: &distill_output,
                        losses: &distill_loss,
                    },
                    &recipe,
                    (!data.is_empty()).then_some((data.as_slice(), data_labels.as_deref())),
                    &output,
                    json,
                    &device,
                )
            }
        }
        Command::Calibrate {
            common,
            output,
            shard,
        } => run_calibrate(&common, output.as_deref(), &shard, json, &device),
        Command::Export {
            model,
            cache,
            output,
        } => run_export(&model, &cache, &output, json, &device),
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
            (data.as_slice(), labels.as_deref()),
            &pre,
            batch,
            json,
            &device,
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
