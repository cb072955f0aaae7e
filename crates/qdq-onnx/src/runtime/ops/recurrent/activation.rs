//! The activation functions RNN, GRU and LSTM accept by name (`activations`), with
//! their `activation_alpha` / `activation_beta` parameters.

use burn::tensor::Tensor;
use burn::tensor::activation as act;

use super::super::super::error::{RunResult, op_err};

/// One named activation with its parameters resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    /// `alpha * x + beta`.
    Affine(f64, f64),
    LeakyRelu(f64),
    ThresholdedRelu(f64),
    /// `alpha * tanh(beta * x)`.
    ScaledTanh(f64, f64),
    HardSigmoid(f64, f64),
    Elu(f64),
    Softsign,
    Softplus,
}

/// Which parameters an activation takes: (alpha, beta) defaults, `None` when unused.
fn params(name: &str) -> Option<(Option<f64>, Option<f64>)> {
    Some(match name {
        "relu" | "tanh" | "sigmoid" | "softsign" | "softplus" => (None, None),
        "affine" => (Some(1.0), Some(0.0)),
        "leakyrelu" => (Some(0.01), None),
        "thresholdedrelu" => (Some(1.0), None),
        "scaledtanh" => (Some(1.0), Some(1.0)),
        "hardsigmoid" => (Some(0.2), Some(0.5)),
        "elu" => (Some(1.0), None),
        _ => return None,
    })
}

/// Resolves the `activations` names (case-insensitive) with their parameters, consumed
/// in order by the activations that take them (as ONNX Runtime does); a missing
/// parameter takes the standalone operator's default.
pub(crate) fn resolve(
    names: &[String],
    alphas: &[f32],
    betas: &[f32],
) -> RunResult<Vec<Activation>> {
    let (mut ai, mut bi) = (alphas.iter(), betas.iter());
    names
        .iter()
        .map(|n| {
            let lower = n.to_ascii_lowercase();
            let (da, db) =
                params(&lower).ok_or_else(|| op_err(format!("unknown activation `{n}`")))?;
            let a = da
                .map(|d| ai.next().map_or(d, |&v| v as f64))
                .unwrap_or(0.0);
            let b = db
                .map(|d| bi.next().map_or(d, |&v| v as f64))
                .unwrap_or(0.0);
            Ok(match lower.as_str() {
                "relu" => Activation::Relu,
                "tanh" => Activation::Tanh,
                "sigmoid" => Activation::Sigmoid,
                "softsign" => Activation::Softsign,
                "softplus" => Activation::Softplus,
                "affine" => Activation::Affine(a, b),
                "leakyrelu" => Activation::LeakyRelu(a),
                "thresholdedrelu" => Activation::ThresholdedRelu(a),
                "scaledtanh" => Activation::ScaledTanh(a, b),
                "hardsigmoid" => Activation::HardSigmoid(a, b),
                _ => Activation::Elu(a),
            })
        })
        .collect()
}

impl Activation {
    /// Applies the activation to a `[batch, hidden]` tensor.
    pub(crate) fn apply(self, t: Tensor<2>) -> Tensor<2> {
        match self {
            Activation::Relu => act::relu(t),
            Activation::Tanh => t.tanh(),
            Activation::Sigmoid => act::sigmoid(t),
            Activation::Affine(a, b) => t.mul_scalar(a).add_scalar(b),
            Activation::LeakyRelu(a) => act::leaky_relu(t, a),
            Activation::ThresholdedRelu(a) => {
                let m = t.clone().lower_equal_elem(a);
                t.mask_fill(m, 0.0)
            }
            Activation::ScaledTanh(a, b) => t.mul_scalar(b).tanh().mul_scalar(a),
            Activation::HardSigmoid(a, b) => act::hard_sigmoid(t, a, b),
            Activation::Elu(a) => {
                let neg = t.clone().exp().sub_scalar(1.0).mul_scalar(a);
                let m = t.clone().lower_elem(0.0);
                t.mask_where(m, neg)
            }
            Activation::Softsign => t.clone().div(t.abs().add_scalar(1.0)),
            Activation::Softplus => {
                // log(1 + e^x), stable for large x
                let big = t.clone().greater_elem(20.0);
                t.clone().exp().log1p().mask_where(big, t)
            }
        }
    }
}
