//! Label-free QAT (`qdq finetune --distill`): the FP32 graph is the teacher, and the
//! loss is the distance between the quantized graph's outputs and the teacher's on the
//! same items, one [`DistillLoss`] per output.

use std::fmt;

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::runtime::{RunError, Value};

/// The distance between a student output and its teacher's, averaged over items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistillLoss {
    /// Mean squared difference over all elements (maps, hidden states, boxes).
    Mse,
    /// `1 − cos` between the vectors along the last axis, averaged over the other
    /// axes (embeddings: a token's or a sentence's vector).
    Cosine,
    /// `KL(softmax(teacher) ‖ softmax(student))` along the last axis, temperature 1,
    /// averaged over the other axes (logits).
    Kl,
}

impl DistillLoss {
    /// `mse`, `cosine` or `kl`.
    ///
    /// # Errors
    /// Any other name (the message lists the three).
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "mse" => Ok(Self::Mse),
            "cosine" => Ok(Self::Cosine),
            "kl" => Ok(Self::Kl),
            other => Err(format!(
                "unknown distillation loss `{other}` (mse, cosine or kl)"
            )),
        }
    }

    /// The default for an output of shape `dims` (a batch of the teacher's values):
    /// `kl` for `[batch, classes]` with at least two classes (a classifier's logits),
    /// `mse` otherwise (features, maps, boxes, scores).
    pub fn default_for(dims: &[usize]) -> Self {
        if dims.len() == 2 && dims[1] >= 2 {
            Self::Kl
        } else {
            Self::Mse
        }
    }

    /// The loss (a one-element tensor) between `student` and `teacher`, both of shape
    /// `dims` (flattened: `[rows, last]`, rows ≥ 1), on the student's device.
    pub fn forward(self, student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
        match self {
            Self::Mse => (student - teacher).powi_scalar(2).mean(),
            Self::Cosine => {
                // 1e-12 keeps a zero vector's cosine finite (0) instead of NaN.
                let dot = (student.clone() * teacher.clone()).sum_dim(1);
                let ns = student.powi_scalar(2).sum_dim(1);
                let nt = teacher.powi_scalar(2).sum_dim(1);
                let cos = dot / (ns * nt).add_scalar(1e-12).sqrt();
                cos.neg().add_scalar(1.0).mean()
            }
            Self::Kl => {
                let log_t = log_softmax(teacher, 1);
                let log_s = log_softmax(student, 1);
                (log_t.clone().exp() * (log_t - log_s)).sum_dim(1).mean()
            }
        }
    }
}

impl fmt::Display for DistillLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mse => "mse",
            Self::Cosine => "cosine",
            Self::Kl => "kl",
        })
    }
}

/// A float output as `[rows, last]`, moved to `device` when given (a scalar or rank-1
/// output is one row).
fn rows(v: Value, device: Option<&Device>, name: &str) -> Result<Tensor<2>, RunError> {
    let dims = v.shape();
    let last = dims.last().copied().unwrap_or(1).max(1);
    let n: usize = dims.iter().product();
    let Value::Float(t) = v else {
        return Err(RunError::Graph(format!(
            "output `{name}` is {}; distillation compares float outputs",
            v.describe()
        )));
    };
    let t = t.reshape(&[n / last, last])?.to_rank::<2>()?;
    Ok(match device {
        Some(d) if &t.device() != d => Tensor::from_data(t.into_data(), d),
        _ => t,
    })
}

/// The summed loss of the `losses` outputs: `student` (the trained graph's outputs,
/// carrying the gradient) against `teacher` (the float graph's, on any device).
///
/// # Errors
/// An output missing from either side, not float, or of another shape than the
/// teacher's; the error names it.
pub fn distill_loss(
    losses: &[(String, DistillLoss)],
    student: Vec<(String, Value)>,
    teacher: Vec<(String, Value)>,
) -> Result<Tensor<1>, RunError> {
    let mut student: std::collections::HashMap<String, Value> = student.into_iter().collect();
    let mut teacher: std::collections::HashMap<String, Value> = teacher.into_iter().collect();
    let mut total: Option<Tensor<1>> = None;
    for (name, loss) in losses {
        let missing = || RunError::Graph(format!("the graph has no output `{name}`"));
        let s = student.remove(name).ok_or_else(missing)?;
        let t = teacher.remove(name).ok_or_else(missing)?;
        if s.shape() != t.shape() {
            return Err(RunError::Graph(format!(
                "output `{name}`: the quantized graph gives {:?}, the float graph {:?}",
                s.shape(),
                t.shape()
            )));
        }
        let s = rows(s, None, name)?;
        let t = rows(t, Some(&s.device()), name)?;
        let term = loss.forward(s, t);
        total = Some(match total {
            Some(sum) => sum + term,
            None => term,
        });
    }
    total.ok_or_else(|| RunError::Graph("no output to distill".into()))
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    fn t2(v: &[f32], rows: usize) -> Tensor<2> {
        let d = Device::flex();
        Tensor::from_data(TensorData::new(v.to_vec(), [rows, v.len() / rows]), &d)
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar::<f32>()
    }

    #[test]
    fn losses_have_their_closed_form_values() {
        let s = t2(&[1.0, 0.0, 0.0, 2.0], 2);
        let t = t2(&[0.0, 1.0, 0.0, 3.0], 2);
        // MSE: (1 + 1 + 0 + 1) / 4.
        assert_eq!(scalar(DistillLoss::Mse.forward(s.clone(), t.clone())), 0.75);
        // Rows: orthogonal (cos 0) and parallel (cos 1): mean of 1 and 0.
        let c = scalar(DistillLoss::Cosine.forward(s.clone(), t.clone()));
        assert!((c - 0.5).abs() < 1e-6, "{c}");
        // KL of row 1: p = softmax(0, 1), q = softmax(1, 0); row 2: softmax(0, 3) vs
        // softmax(0, 2).
        let sm = |a: f64, b: f64| {
            let (ea, eb) = (a.exp(), b.exp());
            (ea / (ea + eb), eb / (ea + eb))
        };
        let kl = |p: (f64, f64), q: (f64, f64)| p.0 * (p.0 / q.0).ln() + p.1 * (p.1 / q.1).ln();
        let want = (kl(sm(0.0, 1.0), sm(1.0, 0.0)) + kl(sm(0.0, 3.0), sm(0.0, 2.0))) / 2.0;
        let k = scalar(DistillLoss::Kl.forward(s, t.clone()));
        assert!((f64::from(k) - want).abs() < 1e-5, "{k} vs {want}");
        // Identical outputs cost nothing.
        assert_eq!(scalar(DistillLoss::Mse.forward(t.clone(), t.clone())), 0.0);
        assert!(scalar(DistillLoss::Kl.forward(t.clone(), t.clone())).abs() < 1e-6);
        assert!(scalar(DistillLoss::Cosine.forward(t.clone(), t)).abs() < 1e-6);
    }

    #[test]
    fn defaults_and_names() {
        assert_eq!(DistillLoss::default_for(&[8, 10]), DistillLoss::Kl);
        assert_eq!(DistillLoss::default_for(&[8, 1]), DistillLoss::Mse);
        assert_eq!(DistillLoss::default_for(&[8, 7, 384]), DistillLoss::Mse);
        for l in [DistillLoss::Mse, DistillLoss::Cosine, DistillLoss::Kl] {
            assert_eq!(DistillLoss::parse(&l.to_string()), Ok(l));
        }
        assert!(
            DistillLoss::parse("l1")
                .unwrap_err()
                .contains("mse, cosine or kl")
        );
    }

    #[test]
    fn a_missing_or_misshapen_output_is_named() {
        let d = Device::flex();
        let v = |n: usize| Value::from_f32(vec![0.0; n], &[1, n], &d);
        let losses = [("y".to_string(), DistillLoss::Mse)];
        let e = distill_loss(&losses, vec![("z".into(), v(2))], vec![("y".into(), v(2))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`y`"), "{e}");
        let e = distill_loss(&losses, vec![("y".into(), v(3))], vec![("y".into(), v(2))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`y`") && e.contains("[1, 3]"), "{e}");
    }
}
