//! Training and evaluation loops for classifiers: SGD with momentum and weight decay on
//! a cosine learning-rate schedule (burn's optimizer and scheduler), a progress bar
//! with loss, accuracy, images/s and ETA, and top-1 accuracy.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use qdq_data::{DataError, Dataset};
use qdq_onnx::finetune::TrainableGraph;
use serde::Serialize;

use crate::data::{Rng, batch};

/// One training run: `epochs` over the data, the learning rate annealed from `lr` to
/// `min_lr` along a cosine.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// Passes over the training data (fractions run part of the last pass).
    pub epochs: f64,
    /// Initial learning rate.
    pub lr: f64,
    /// Final learning rate.
    #[config(default = 0.0)]
    pub min_lr: f64,
    /// Images per step.
    #[config(default = 128)]
    pub batch_size: usize,
    /// SGD momentum.
    #[config(default = 0.9)]
    pub momentum: f64,
    /// L2 penalty.
    #[config(default = 5e-4)]
    pub weight_decay: f32,
    /// Random shifts and flips.
    #[config(default = true)]
    pub augment: bool,
    /// Shuffling and augmentation seed.
    #[config(default = 0)]
    pub seed: u64,
}

/// What a step of the workflow took.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Wall time in seconds.
    pub seconds: f64,
    /// Images processed per second.
    pub images_per_s: f64,
    /// Where training stopped because the loss became NaN or Inf (training only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diverged: Option<Divergence>,
}

/// The step at which a training run's loss stopped being finite.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Divergence {
    /// Optimizer step, counted from 1.
    pub step: usize,
    /// Passes over the data completed before it (fractional).
    pub epoch: f64,
    /// The loss at that step (NaN or Inf).
    pub loss: f64,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "training diverged at step {} (epoch {:.3}): the loss became {}",
            self.step, self.epoch, self.loss
        )
    }
}

impl Timing {
    /// The time since `start` for `images` images.
    pub fn since(start: Instant, images: usize) -> Self {
        let seconds = start.elapsed().as_secs_f64();
        Self {
            seconds,
            images_per_s: images as f64 / seconds.max(1e-9),
            diverged: None,
        }
    }
}

/// A model that maps `[batch, C, H, W]` images to logits.
pub trait Classifier: Module {
    /// Logits `[batch, classes]`.
    fn logits(&self, images: Tensor<4>) -> Tensor<2>;
}

impl Classifier for crate::ResNet {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

/// An imported ONNX graph. Check it with one [`TrainableGraph::classify`] call before
/// training: the loops have no error path, so a failing run panics with the runtime's
/// message (the node at fault).
impl Classifier for TrainableGraph {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.classify(images).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Trains `model` (on an autodiff device) on `data` as `cfg` says, showing `label`
/// on the progress bar, reading one batch at a time. Returns the trained model and the
/// time taken; a loss that becomes NaN or Inf stops training at once, and
/// `Timing::diverged` says where.
///
/// # Errors
/// Reading a batch failed.
///
/// # Panics
/// An invalid learning rate (burn's scheduler refuses it) or unlabelled data.
pub fn fit<M: Classifier>(
    model: M,
    data: &Dataset,
    cfg: &TrainConfig,
    label: &str,
) -> Result<(M, Timing), DataError> {
    fit_with(model, data, cfg, label, |_, _| Ok::<_, DataError>(()))
}

/// [`fit`], calling `on_epoch(epoch, &model)` after each full pass over the data
/// (epochs counted from 1), e.g. to write a checkpoint; its first error, or the first
/// error reading a batch, stops training.
///
/// # Panics
/// As [`fit`].
pub fn fit_with<M: Classifier, E: From<DataError>>(
    model: M,
    data: &Dataset,
    cfg: &TrainConfig,
    label: &str,
    mut on_epoch: impl FnMut(usize, &M) -> Result<(), E>,
) -> Result<(M, Timing), E> {
    let device = model
        .devices()
        .first()
        .cloned()
        .expect("a model with parameters");
    let per_epoch = data.len().div_ceil(cfg.batch_size);
    let steps = ((cfg.epochs * per_epoch as f64).round() as usize).max(1);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
        .with_weight_decay(Some(WeightDecayConfig::new(cfg.weight_decay)))
        .init();
    let mut schedule = CosineAnnealingLrSchedulerConfig::new(cfg.lr, steps)
        .with_min_lr(cfg.min_lr)
        .init()
        .expect("a valid learning-rate schedule");
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut rng = Rng::new(cfg.seed);
    let bar = progress(steps as u64, label);
    let start = Instant::now();
    let (mut model, mut order, mut seen) = (model, Vec::new(), 0);
    let (mut loss_avg, mut acc_avg) = (0.0f64, 0.0f64);
    for step in 0..steps {
        if order.is_empty() {
            order = rng.permutation(data.len());
            order.reverse(); // popped from the end
        }
        let take = cfg.batch_size.min(order.len());
        let idx: Vec<usize> = order.split_off(order.len() - take);
        let (x, y) = batch(data, &idx, cfg.augment.then_some(&mut rng), &device)?;
        let logits = model.logits(x);
        let hits = logits
            .clone()
            .argmax(1)
            .flatten::<1>(0, 1)
            .equal(y.clone())
            .int()
            .sum()
            .into_scalar::<i64>();
        let loss = loss_fn.forward(logits, y);
        let value = f64::from(loss.clone().into_scalar::<f32>());
        if !value.is_finite() {
            // Every later step would only spread the NaN: stop, and say where.
            bar.finish_and_clear();
            let mut timing = Timing::since(start, seen);
            timing.diverged = Some(Divergence {
                step: step + 1,
                epoch: seen as f64 / data.len() as f64,
                loss: value,
            });
            return Ok((model, timing));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = schedule.step().base();
        model = optim.step(lr, model, grads);
        seen += take;
        let k = 0.02f64.max(1.0 / (step + 1) as f64);
        loss_avg += k * (value - loss_avg);
        acc_avg += k * (hits as f64 / take as f64 - acc_avg);
        bar.set_message(format!(
            "loss {loss_avg:.3} acc {:.1}% lr {lr:.2e} {:.0} img/s",
            100.0 * acc_avg,
            seen as f64 / start.elapsed().as_secs_f64()
        ));
        bar.inc(1);
        if order.is_empty() {
            bar.suspend(|| on_epoch(seen / data.len(), &model))?;
        }
    }
    bar.finish_and_clear();
    Ok((model, Timing::since(start, seen)))
}

/// Top-1 accuracy (0 to 1) of `model` (inference device) on `data`, and the time
/// taken.
///
/// # Errors
/// Reading a batch failed.
///
/// # Panics
/// Unlabelled data.
pub fn evaluate<M: Classifier>(
    model: &M,
    data: &Dataset,
    label: &str,
) -> Result<(f64, Timing), DataError> {
    let mut correct = 0i64;
    let timing = in_batches(model, data, 500, label, |x, y| {
        let pred = model.logits(x).argmax(1).flatten::<1>(0, 1);
        correct += pred.equal(y).int().sum().into_scalar::<i64>();
    })?;
    Ok((correct as f64 / data.len() as f64, timing))
}

/// Runs `model` (inference device) over `data` in batches, for calibration.
///
/// # Errors
/// Reading a batch failed.
pub fn feed<M: Classifier>(model: &M, data: &Dataset, label: &str) -> Result<Timing, DataError> {
    in_batches(model, data, 256, label, |x, _| {
        let _ = model.logits(x);
    })
}

/// Calls `step` on `data` in order, `size` images at a time, on `model`'s device,
/// with a progress bar; returns the time taken.
fn in_batches<M: Classifier>(
    model: &M,
    data: &Dataset,
    size: usize,
    label: &str,
    mut step: impl FnMut(Tensor<4>, Tensor<1, Int>),
) -> Result<Timing, DataError> {
    let device = model
        .devices()
        .first()
        .cloned()
        .expect("a model with parameters");
    let n = data.len();
    let bar = progress(n.div_ceil(size) as u64, label);
    let start = Instant::now();
    for from in (0..n).step_by(size) {
        let idx: Vec<usize> = (from..(from + size).min(n)).collect();
        let (x, y) = batch(data, &idx, None, &device)?;
        step(x, y);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Timing::since(start, n))
}

fn progress(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}
