//! One step of a quantized recurrent cell, shared by `QuantLSTM`, `QuantLSTMCell`,
//! `QuantGRU` and `QuantRNN` (`quant_rnn.py` of the reference): the fused scheme in
//! which the input quantizer sees `cat([x, h], 1)` and the weight quantizer
//! `cat([W_ih, W_hh], 1)`, so `x` and `h` share one amax and so do `W_ih` and `W_hh`
//! (per gate row with the default axis-0 descriptor).

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::module::linear;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::tensor_quantizer::TensorQuantizer;

/// The recurrence a cell computes (torch's `mode` of `RNNBase`), gates in torch's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RnnMode {
    /// `i, f, g, o = chunk(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh, 4)`;
    /// `c' = σ(f) c + σ(i) tanh(g)`, `h' = σ(o) tanh(c')`.
    Lstm,
    /// `r, z, n` gates: `r = σ(·)`, `z = σ(·)`,
    /// `n = tanh(x W_inᵀ + b_in + r (h W_hnᵀ + b_hn))`, `h' = (1 - z) n + z h`.
    Gru,
    /// `h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`.
    RnnTanh,
    /// `h' = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)`.
    RnnRelu,
}

impl RnnMode {
    /// Gate blocks stacked in the weights' first dim (4 for LSTM, 3 for GRU, 1 for RNN).
    pub fn gates(self) -> usize {
        match self {
            RnnMode::Lstm => 4,
            RnnMode::Gru => 3,
            RnnMode::RnnTanh | RnnMode::RnnRelu => 1,
        }
    }
}

/// The weights of one cell (one layer and direction), in PyTorch's layout and gate order.
///
/// - `weight_ih`: `[gates · d_hidden, d_input]`
/// - `weight_hh`: `[gates · d_hidden, d_hidden]`
/// - `bias_ih`, `bias_hh`: `[gates · d_hidden]` (both present or both absent)
#[derive(Module, Debug)]
pub struct RnnCellWeights {
    /// `[gates · d_hidden, d_input]`.
    pub weight_ih: Param<Tensor<2>>,
    /// `[gates · d_hidden, d_hidden]`.
    pub weight_hh: Param<Tensor<2>>,
    /// `[gates · d_hidden]`, added to the input product.
    pub bias_ih: Option<Param<Tensor<1>>>,
    /// `[gates · d_hidden]`, added to the hidden product.
    pub bias_hh: Option<Param<Tensor<1>>>,
}

impl RnnCellWeights {
    /// Weights of `gates · d_hidden` rows drawn as torch does: uniform in `±1/√d_hidden`.
    pub fn init(
        mode: RnnMode,
        d_input: usize,
        d_hidden: usize,
        bias: bool,
        device: &Device,
    ) -> Self {
        let k = 1.0 / (d_hidden.max(1) as f64).sqrt();
        let init = burn::nn::Initializer::Uniform { min: -k, max: k };
        let rows = mode.gates() * d_hidden;
        Self {
            weight_ih: init.init([rows, d_input], device),
            weight_hh: init.init([rows, d_hidden], device),
            bias_ih: bias.then(|| init.init([rows], device)),
            bias_hh: bias.then(|| init.init([rows], device)),
        }
    }

    /// `(d_input, d_hidden)` read from the weights' shapes.
    pub fn sizes(&self) -> (usize, usize) {
        let [_, d_input] = self.weight_ih.lazy_shape().dims();
        let [_, d_hidden] = self.weight_hh.lazy_shape().dims();
        (d_input, d_hidden)
    }

    /// The shape of `cat([W_ih, W_hh], 1)`, which the weight quantizer sees.
    pub fn fused_dims(&self) -> [usize; 2] {
        let (d_input, d_hidden) = self.sizes();
        let [rows, _] = self.weight_ih.lazy_shape().dims();
        [rows, d_input + d_hidden]
    }
}

/// Runs `q` strictly (`try_forward`) or leniently (`forward`, which passes the
/// tensor through on a quantizer error).
pub(crate) fn quantize<const D: usize>(
    q: &TensorQuantizer,
    x: Tensor<D>,
    strict: bool,
) -> Result<Tensor<D>> {
    if strict {
        q.try_forward(x)
    } else {
        Ok(q.forward(x))
    }
}

/// One step: `x` `[batch, d_input]`, `h` `[batch, d_hidden]`, `c` (LSTM only)
/// `[batch, d_hidden]` → `(h', c')`.
///
/// # Errors
/// [`Error::InputShape`] when `x` or the state do not fit the weights; with
/// `strict`, the quantizers' errors.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    layer: &'static str,
    mode: RnnMode,
    w: &RnnCellWeights,
    input_quantizer: &TensorQuantizer,
    weight_quantizer: &TensorQuantizer,
    x: Tensor<2>,
    h: Tensor<2>,
    c: Option<Tensor<2>>,
    strict: bool,
) -> Result<(Tensor<2>, Option<Tensor<2>>)> {
    let (d_input, d_hidden) = w.sizes();
    let [batch, features] = x.dims();
    if features != d_input {
        return Err(Error::InputShape {
            layer,
            expected: format!("[batch, {d_input}]"),
            got: vec![batch, features],
        });
    }
    for state in std::iter::once(&h).chain(c.as_ref()) {
        if state.dims() != [batch, d_hidden] {
            return Err(Error::InputShape {
                layer,
                expected: format!("a state of [{batch}, {d_hidden}]"),
                got: state.dims().to_vec(),
            });
        }
    }
    let xh = quantize(input_quantizer, Tensor::cat(vec![x, h.clone()], 1), strict)?;
    let wcat = Tensor::cat(vec![w.weight_ih.val(), w.weight_hh.val()], 1);
    let wq = quantize(weight_quantizer, wcat, strict)?;
    let xq = xh.clone().narrow(1, 0, d_input);
    let hq = xh.narrow(1, d_input, d_hidden);
    let w_ih = wq.clone().narrow(1, 0, d_input);
    let w_hh = wq.narrow(1, d_input, d_hidden);
    let gi = linear(xq, w_ih.transpose(), w.bias_ih.as_ref().map(|b| b.val()));
    let gh = linear(hq, w_hh.transpose(), w.bias_hh.as_ref().map(|b| b.val()));
    let gate = |t: &Tensor<2>, k: usize| t.clone().narrow(1, k * d_hidden, d_hidden);
    Ok(match mode {
        RnnMode::Lstm => {
            let g = gi + gh;
            let (i, f, cand, o) = (
                sigmoid(gate(&g, 0)),
                sigmoid(gate(&g, 1)),
                tanh(gate(&g, 2)),
                sigmoid(gate(&g, 3)),
            );
            let c = c.unwrap_or_else(|| h.zeros_like());
            let c_next = f * c + i * cand;
            (o * tanh(c_next.clone()), Some(c_next))
        }
        RnnMode::Gru => {
            let r = sigmoid(gate(&gi, 0) + gate(&gh, 0));
            let z = sigmoid(gate(&gi, 1) + gate(&gh, 1));
            let n = tanh(gate(&gi, 2) + r * gate(&gh, 2));
            let one_minus_z = z.clone().neg().add_scalar(1.0);
            (n * one_minus_z + z * h, None)
        }
        RnnMode::RnnTanh => (tanh(gi + gh), None),
        RnnMode::RnnRelu => (relu(gi + gh), None),
    })
}
