//! The seed's "Quantizing Resnet50" and "Quantization Aware Training" chapters, end to
//! end on Fashion-MNIST:
//!
//! 1. train an FP32 ResNet (or load its checkpoint, saved with torchvision's names);
//! 2. PTQ: quantize it (`quantize=True`), collect histograms of activations and the
//!    max of weights on the calibration images once, then evaluate max, entropy, mse,
//!    percentile 99.9 and 99.99 from that one collection, and print the quantizer table;
//! 3. QAT: fine-tune the best PTQ model with the seed's recipe (10% of the FP32
//!    schedule, 1% of its initial learning rate annealed to 1% of that), amax fixed,
//!    and once more with learned activation ranges;
//! 4. export the QAT model to QDQ ONNX and score the file with ONNX Runtime;
//! 5. the same PTQ and QAT with 4-bit weights, where PTQ visibly hurts.
//!
//! [`run`] returns the table; `examples/resnet_chapter.rs` is the documented command.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use qdq::calib::HistogramMethod;
use qdq::nn::{collect_stats, compute_amax, quantizer_summary};
use qdq_data::Dataset;
use qdq_onnx::export::{ExportOptions, export_to_file};
use serde::Serialize;

use crate::data::FashionMnist;
use crate::ort::{self, OrtError};
use crate::resnet::{BlockKind, LoadError, QuantScheme, ResNet, ResNetConfig};
use crate::train::{Timing, TrainConfig, evaluate, feed, fit, fit_with};

/// What to run.
#[derive(Clone, Debug)]
pub struct ChapterConfig {
    /// The network (small-input ResNet, 1 channel, 10 classes).
    pub model: ResNetConfig,
    /// The FP32 schedule.
    pub train: TrainConfig,
    /// Training images used (all when `None`).
    pub train_images: Option<usize>,
    /// Test images scored (all when `None`).
    pub test_images: Option<usize>,
    /// Calibration images, the first of the training set (seed: 1024).
    pub calib_images: usize,
    /// QAT length as a fraction of the FP32 epochs (seed: 0.1).
    pub qat_fraction: f64,
    /// QAT length of the harder (`low_bits`) settings, as a fraction of the FP32
    /// epochs: fewer bits lose more, and take longer to win back (the full run uses
    /// 0.3, three times the seed's 10%; see README).
    pub low_bits_qat_fraction: f64,
    /// QAT's initial learning rate as a fraction of the FP32 one (seed: 0.01); it is
    /// annealed to the same fraction of itself.
    pub qat_lr_factor: f64,
    /// The harder settings, `[weight bits, activation bits]` each: PTQ with every
    /// method, then QAT from the best. Empty skips them.
    pub low_bits: Vec<[u32; 2]>,
    /// Where the FP32 checkpoint, the ONNX file and `results.json` go.
    pub out_dir: PathBuf,
    /// Reuse `out_dir/fp32.safetensors` when it exists instead of training.
    pub reuse_checkpoint: bool,
    /// The Python with onnx and onnxruntime that scores the exported file.
    pub python: PathBuf,
    /// Where training, calibration and evaluation run (`qdq::device("cuda")` for a GPU).
    pub device: Device,
}

impl ChapterConfig {
    /// The full run, sized for a 2-core CPU: a small-input BasicBlock ResNet with one
    /// block per stage at width 16 (ResNet-10's layout), 6 epochs without augmentation
    /// on all 60 000 training images, scored on all 10 000 test images, calibrated on
    /// 1024 training images.
    pub fn full(out_dir: PathBuf, python: PathBuf) -> Self {
        Self {
            model: ResNetConfig::new(BlockKind::Basic, [1, 1, 1, 1])
                .with_num_classes(10)
                .with_in_channels(1)
                .with_small_input(true)
                .with_width(16),
            train: TrainConfig::new(6.0, 0.1).with_augment(false),
            train_images: None,
            test_images: None,
            calib_images: 1024,
            qat_fraction: 0.1,
            low_bits_qat_fraction: 0.3,
            qat_lr_factor: 0.01,
            low_bits: vec![[4, 8], [4, 4]],
            out_dir,
            reuse_checkpoint: true,
            python,
            device: Device::flex(),
        }
    }
}

/// One line of the results table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// What was measured ("FP32", "PTQ entropy", "QAT", ...).
    pub step: String,
    /// Top-1 accuracy on the test images (0 to 1), when the step is scored.
    pub accuracy: Option<f64>,
    /// How long the step took (training, calibration, or amax + evaluation).
    pub timing: Timing,
}

/// Everything [`run`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct ChapterReport {
    /// The table, in order.
    pub rows: Vec<Row>,
    /// The PTQ method QAT started from.
    pub best_ptq: String,
    /// The seed-style table of every quantizer of the best PTQ model.
    pub quantizers: String,
    /// The exported QDQ ONNX file.
    pub onnx: PathBuf,
    /// qdq's fake-quant accuracy of the exported model, on the same images as ONNX
    /// Runtime's.
    pub qat_accuracy: f64,
    /// ONNX Runtime's accuracy on the exported file.
    pub ort_accuracy: f64,
}

impl ChapterReport {
    /// The accuracy of the row named `step`.
    pub fn accuracy(&self, step: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.step == step)
            .and_then(|r| r.accuracy)
    }

    /// The results as a Markdown table.
    pub fn markdown(&self) -> String {
        markdown(&self.rows)
    }
}

/// `rows` as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s =
        String::from("| step | top-1 (%) | wall time (s) | images/s |\n|---|---:|---:|---:|\n");
    for r in rows {
        let acc = r
            .accuracy
            .map_or("".into(), |a| format!("{:.2}", 100.0 * a));
        s += &format!(
            "| {} | {acc} | {:.1} | {:.0} |\n",
            r.step, r.timing.seconds, r.timing.images_per_s
        );
    }
    s
}

/// Why the chapter stopped.
#[derive(Debug, thiserror::Error)]
pub enum ChapterError {
    /// Fashion-MNIST could not be read.
    #[error(
        "{0} (install Debian's dataset-fashion-mnist, or pass the folder holding its four files)"
    )]
    Data(#[from] qdq_data::DataError),
    /// Quantization, calibration or a quantizer failed.
    #[error(transparent)]
    Quant(#[from] qdq::Error),
    /// The export failed.
    #[error(transparent)]
    Export(#[from] qdq_onnx::Error),
    /// The checkpoint did not load.
    #[error(transparent)]
    Checkpoint(#[from] LoadError),
    /// ONNX Runtime could not score the file.
    #[error(transparent)]
    Ort(#[from] OrtError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The PTQ methods compared, in the seed's order.
pub fn ptq_methods() -> Vec<(String, HistogramMethod)> {
    [
        HistogramMethod::Max,
        HistogramMethod::entropy(),
        HistogramMethod::mse(),
        HistogramMethod::percentile(99.9),
        HistogramMethod::percentile(99.99),
    ]
    .into_iter()
    .map(|m| (m.to_string(), m))
    .collect()
}

/// Runs the chapter on Fashion-MNIST from `data_dir`, printing each result as it comes.
///
/// # Errors
/// Unreadable data, a failed export, ONNX Runtime missing or failing.
pub fn run(cfg: &ChapterConfig, data_dir: &Path) -> Result<ChapterReport, ChapterError> {
    let (data, train, test) = splits(cfg, data_dir)?;
    let calib = data.train.first(cfg.calib_images);
    run_on(cfg, &train, &test, &calib)
}

/// Fashion-MNIST from `data_dir`, with the training and test images `cfg` takes.
fn splits(
    cfg: &ChapterConfig,
    data_dir: &Path,
) -> Result<(FashionMnist, Dataset, Dataset), ChapterError> {
    let data = FashionMnist::load(data_dir)?;
    let train = cfg
        .train_images
        .map_or_else(|| data.train.clone(), |n| data.train.first(n));
    let test = cfg
        .test_images
        .map_or_else(|| data.test.clone(), |n| data.test.first(n));
    Ok((data, train, test))
}

/// The chapter's first step alone: the FP32 model trained (or loaded from
/// `out_dir/fp32.safetensors`), scored on the test images and written as
/// `out_dir/fp32.onnx`, the float model that `qdq quantize` (and `bench/corpus/bench.py`'s
/// `chapter-resnet`) starts from. Returns its rows of the table.
///
/// # Errors
/// As [`run`].
pub fn run_fp32(cfg: &ChapterConfig, data_dir: &Path) -> Result<Vec<Row>, ChapterError> {
    let (_, train, test) = splits(cfg, data_dir)?;
    create_out_dir(cfg)?;
    let ad = cfg.device.clone().autodiff();
    ad.seed(cfg.train.seed);
    let mut rows = Vec::new();
    fp32_stage(
        cfg,
        (&train, &test),
        (&cfg.device, &ad),
        &mut recorder(&mut rows),
    )?;
    Ok(rows)
}

fn create_out_dir(cfg: &ChapterConfig) -> Result<(), ChapterError> {
    std::fs::create_dir_all(&cfg.out_dir).map_err(|source| ChapterError::Io {
        path: cfg.out_dir.display().to_string(),
        source,
    })
}

/// What records a row of the table: prints it as it comes and keeps it in `rows`.
fn recorder(rows: &mut Vec<Row>) -> impl FnMut(&str, Option<f64>, Timing) + '_ {
    |step: &str, accuracy: Option<f64>, timing: Timing| {
        let acc = accuracy.map_or(String::new(), |a| format!(" {:.2}%", 100.0 * a));
        println!(
            "{step:<24}{acc:>8}  {:.1} s  {:.0} img/s",
            timing.seconds, timing.images_per_s
        );
        rows.push(Row {
            step: step.into(),
            accuracy,
            timing,
        });
    }
}

/// The FP32 model: `out_dir/fp32.safetensors` when it exists and
/// [`ChapterConfig::reuse_checkpoint`], else trained on `train` (a checkpoint after every
/// epoch, so a long run that is stopped keeps its work); scored on `test` and written as
/// `out_dir/fp32.onnx` (dynamic batch).
fn fp32_stage(
    cfg: &ChapterConfig,
    (train, test): (&Dataset, &Dataset),
    (device, ad): (&Device, &Device),
    record: &mut impl FnMut(&str, Option<f64>, Timing),
) -> Result<ResNet, ChapterError> {
    let checkpoint = cfg.out_dir.join("fp32.safetensors");
    let fp32 = if cfg.reuse_checkpoint && checkpoint.exists() {
        let start = Instant::now();
        let model = cfg.model.clone().with_quantize(None).init(device)?;
        let model = model.load_torchvision(&checkpoint)?;
        record("FP32 (checkpoint)", None, Timing::since(start, 0));
        model
    } else {
        let model = cfg.model.clone().with_quantize(None).init(ad)?;
        let (model, t) = fit_with(model, train, &cfg.train, "FP32", |epoch, m: &ResNet| {
            let path = cfg.out_dir.join(format!("fp32-epoch{epoch}.safetensors"));
            m.valid()
                .save_torchvision(&path)
                .map_err(ChapterError::from)
        })?;
        record("FP32 training", None, t);
        let model = model.valid();
        model.save_torchvision(&checkpoint)?;
        model
    };
    let (acc, t) = evaluate(&fp32, test, "FP32 eval")?;
    record("FP32", Some(acc), t);
    let onnx = cfg.out_dir.join("fp32.onnx");
    let start = Instant::now();
    export_dynamic(&fp32, test, device, &onnx)?;
    record("export FP32 ONNX", None, Timing::since(start, 0));
    Ok(fp32)
}

/// Writes `model` as ONNX at `path`, traced on two `test` images, with a dynamic batch.
fn export_dynamic(
    model: &ResNet,
    test: &Dataset,
    device: &Device,
    path: &Path,
) -> Result<(), ChapterError> {
    let sample = crate::data::batch(test, &[0, 1], None, device)?.0;
    let options = ExportOptions {
        dynamic_batch: true,
        ..Default::default()
    };
    export_to_file(model, ResNet::forward, sample, &options, path)?;
    Ok(())
}

/// [`run`] on given splits (labelled `[28, 28]`-style images).
///
/// # Errors
/// As [`run`].
pub fn run_on(
    cfg: &ChapterConfig,
    train: &Dataset,
    test: &Dataset,
    calib: &Dataset,
) -> Result<ChapterReport, ChapterError> {
    create_out_dir(cfg)?;
    let device = cfg.device.clone();
    let ad = device.clone().autodiff();
    ad.seed(cfg.train.seed);
    let mut rows = Vec::new();
    let mut record = recorder(&mut rows);

    // 1. FP32.
    let fp32 = fp32_stage(cfg, (train, test), (&device, &ad), &mut record)?;

    // 2. PTQ, 3. QAT, at 8 bits; 4. export.
    let (best, quantizers) = ptq(&fp32, &QuantScheme::seed(), calib, test, "", &mut record)?;
    let qat_cfg = qat_schedule(cfg, cfg.qat_fraction);
    let (qat, qat_accuracy) = {
        let model = best.1.clone().fork(&ad).train();
        let (model, t) = fit(model, train, &qat_cfg, "QAT")?;
        let model = model.valid();
        let (acc, te) = evaluate(&model, test, "QAT eval")?;
        record("QAT training", None, t);
        record("QAT", Some(acc), te);
        (model, acc)
    };
    {
        let model = best.1.clone().with_learnable_amax()?.fork(&ad).train();
        let (model, t) = fit(model, train, &qat_cfg, "QAT learn")?;
        let model = model.valid();
        let (acc, te) = evaluate(&model, test, "QAT eval")?;
        record("QAT learned amax training", None, t);
        record("QAT learned amax", Some(acc), te);
    }
    let onnx = cfg.out_dir.join("resnet_qat.onnx");
    let start = Instant::now();
    export_dynamic(&qat, test, &device, &onnx)?;
    record("export QDQ ONNX", None, Timing::since(start, 0));
    let start = Instant::now();
    let ort_accuracy = ort::accuracy(&cfg.python, &onnx, test)?;
    record(
        "ONNX Runtime (QAT file)",
        Some(ort_accuracy),
        Timing::since(start, test.len()),
    );

    // 5. Harder settings: fewer bits.
    for &[w, a] in &cfg.low_bits {
        let tag = format!(" w{w}a{a}");
        let scheme = QuantScheme::with_bits(w, a);
        let (best, _) = ptq(&fp32, &scheme, calib, test, &tag, &mut record)?;
        let model = best.1.fork(&ad).train();
        let low_cfg = qat_schedule(cfg, cfg.low_bits_qat_fraction);
        let (model, t) = fit(model, train, &low_cfg, &format!("QAT{tag}"))?;
        let (acc, te) = evaluate(&model.valid(), test, "QAT eval")?;
        record(&format!("QAT{tag} training"), None, t);
        record(&format!("QAT{tag}"), Some(acc), te);
    }

    drop(record);
    let report = ChapterReport {
        rows,
        best_ptq: best.0,
        quantizers,
        onnx,
        qat_accuracy,
        ort_accuracy,
    };
    let json = cfg.out_dir.join("results.json");
    let text = serde_json::to_string_pretty(&report).expect("serializable report");
    qdq::io::write_atomic(&json, text.as_bytes()).map_err(|source| ChapterError::Io {
        path: json.display().to_string(),
        source,
    })?;
    Ok(report)
}

/// The seed's QAT recipe relative to the FP32 schedule.
fn qat_schedule(cfg: &ChapterConfig, fraction: f64) -> TrainConfig {
    let lr = cfg.train.lr * cfg.qat_lr_factor;
    let mut qat = cfg
        .train
        .clone()
        .with_min_lr(lr * cfg.qat_lr_factor)
        .with_seed(cfg.train.seed + 1);
    qat.epochs = cfg.train.epochs * fraction;
    qat.lr = lr;
    qat
}

/// Quantizes `fp32` with `scheme`, calibrates once, scores every method; returns the
/// best (method name, model) and its quantizer table.
fn ptq(
    fp32: &ResNet,
    scheme: &QuantScheme,
    calib: &Dataset,
    test: &Dataset,
    tag: &str,
    record: &mut impl FnMut(&str, Option<f64>, Timing),
) -> Result<((String, ResNet), String), ChapterError> {
    let model = fp32.clone().quantize(scheme)?;
    let mut t = None;
    collect_stats(&model, |m| t = Some(feed(m, calib, "calibrate")))?;
    record(
        &format!("PTQ{tag} calibration"),
        None,
        t.expect("feed ran")?,
    );
    let mut best: Option<(f64, String, ResNet)> = None;
    for (name, method) in ptq_methods() {
        let start = Instant::now();
        let m = compute_amax(model.clone(), method)?;
        let (acc, _) = evaluate(&m, test, &name)?;
        record(
            &format!("PTQ{tag} {name}"),
            Some(acc),
            Timing::since(start, test.len()),
        );
        if best.as_ref().is_none_or(|b| acc > b.0) {
            best = Some((acc, name, m));
        }
    }
    let (_, name, model) = best.expect("at least one method");
    let table = quantizer_summary(&model);
    Ok(((name, model), table))
}
