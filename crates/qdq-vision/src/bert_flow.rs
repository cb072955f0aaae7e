//! The seed's flow on a [`Bert`] sentence encoder: batched embeddings, the metrics
//! (cosine to FP32 embeddings, retrieval), and QAT by distillation to FP32 embeddings.

use std::time::Instant;

use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

use crate::bert::Bert;
use crate::train::Timing;

/// Token ids and masks of a set of sentences, padded to one length.
#[derive(Clone, Debug)]
pub struct Sentences {
    /// `[N, S]` token ids.
    pub ids: Vec<i64>,
    /// `[N, S]`, 1 for tokens, 0 for padding.
    pub mask: Vec<i64>,
    /// Sentences.
    pub n: usize,
    /// Padded length.
    pub len: usize,
}

impl Sentences {
    /// Rows `from..to` as tensors on `device`: ids `[B, S]` and the float mask `[B, S]`.
    pub fn rows(&self, from: usize, to: usize, device: &Device) -> (Tensor<2, Int>, Tensor<2>) {
        let (a, b) = (from * self.len, to * self.len);
        let shape = [to - from, self.len];
        let ids =
            Tensor::<2, Int>::from_data(TensorData::new(self.ids[a..b].to_vec(), shape), device);
        let mask: Vec<f32> = self.mask[a..b].iter().map(|&m| m as f32).collect();
        (ids, Tensor::from_data(TensorData::new(mask, shape), device))
    }
}

/// Sentence embeddings `[N, d_model]` of all `s`, `batch` at a time.
///
/// # Errors
/// Ids outside the vocabulary, sequences longer than the position table.
pub fn embed_all(model: &Bert, s: &Sentences, batch: usize) -> qdq::Result<Vec<f32>> {
    let device = model.embeddings.norm.gamma.lazy_device();
    let mut out = Vec::new();
    for from in (0..s.n).step_by(batch.max(1)) {
        let (ids, mask) = s.rows(from, (from + batch).min(s.n), &device);
        let y = model.forward(ids, mask)?;
        out.extend(
            y.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

/// Cosine of each row of `a` with the same row of `b` (rows of `dim` values).
pub fn row_cosines(a: &[f32], b: &[f32], dim: usize) -> Vec<f64> {
    a.chunks(dim)
        .zip(b.chunks(dim))
        .map(|(x, y)| cosine(x, y))
        .collect()
}

fn cosine(x: &[f32], y: &[f32]) -> f64 {
    let dot: f64 = x.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum();
    let n = |v: &[f32]| v.iter().map(|&a| a as f64 * a as f64).sum::<f64>().sqrt();
    dot / (n(x) * n(y)).max(1e-30)
}

/// Retrieval top-1: the share of queries (rows of `queries`) whose most cosine-similar
/// row of `docs` is the row with the same index.
pub fn retrieval_top1(queries: &[f32], docs: &[f32], dim: usize) -> f64 {
    let docs: Vec<&[f32]> = docs.chunks(dim).collect();
    let hits = queries
        .chunks(dim)
        .enumerate()
        .filter(|(i, q)| {
            let best = docs
                .iter()
                .enumerate()
                .map(|(j, d)| (j, cosine(q, d)))
                .fold((usize::MAX, f64::NEG_INFINITY), |b, c| {
                    if c.1 > b.1 { c } else { b }
                });
            best.0 == *i
        })
        .count();
    hits as f64 / docs.len().max(1) as f64
}

/// QAT by distillation: fine-tunes `student` (on an autodiff device) so that its
/// sentence embeddings of `data` approach `teacher` (`[N, d_model]`, the FP32
/// model's), by mean squared error; Adam, `lr` annealed along a cosine to 1% of itself
/// (the seed's QAT recipe: a short schedule, a small annealed learning rate).
///
/// # Errors
/// As [`Bert::forward`].
pub fn distill(
    student: Bert,
    teacher: &[f32],
    data: &Sentences,
    epochs: usize,
    batch: usize,
    lr: f64,
) -> qdq::Result<(Bert, Timing, Vec<f64>)> {
    let device = student.embeddings.norm.gamma.lazy_device();
    let dim = teacher.len() / data.n.max(1);
    let batch = batch.max(1);
    let steps = (epochs * data.n.div_ceil(batch)).max(1);
    let mut optim = AdamConfig::new().init();
    let mut schedule = CosineAnnealingLrSchedulerConfig::new(lr, steps)
        .with_min_lr(lr * 0.01)
        .init()
        .expect("a valid learning-rate schedule");
    let (mut model, mut losses, start) = (student, Vec::new(), Instant::now());
    for step in 0..steps {
        let from = (step * batch) % (data.n.div_ceil(batch) * batch);
        let to = (from + batch).min(data.n);
        let (ids, mask) = data.rows(from, to, &device);
        let target = Tensor::<2>::from_data(
            TensorData::new(teacher[from * dim..to * dim].to_vec(), [to - from, dim]),
            &device,
        );
        let y = model.forward(ids, mask)?;
        let loss = (y - target).powi_scalar(2).mean();
        losses.push(f64::from(loss.clone().into_scalar::<f32>()));
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(schedule.step().base(), model, grads);
    }
    Ok((model.valid(), Timing::since(start, steps * batch), losses))
}
