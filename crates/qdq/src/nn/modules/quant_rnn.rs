//! Quantized recurrent layers (`nn/modules/quant_rnn.py` of the reference):
//! `QuantLSTM`, `QuantLSTMCell`, and qdq's own `QuantGRU` and `QuantRNN`.
//!
//! Each cell step quantizes `cat([x, h], 1)` with its layer-and-direction's input
//! quantizer and `cat([W_ih, W_hh], 1)` with its weight quantizer, then computes
//! torch's recurrence (see [`RnnMode`]). The quantizers of cell `k = layer ·
//! num_directions + direction` are `_input_quantizers.{k}` and `_weight_quantizers.{k}`,
//! as in the reference's state dict; the weights, in torch's layout and gate order,
//! are torch's `weight_ih_l{layer}{_reverse}`, `weight_hh_l…`, `bias_ih_l…`,
//! `bias_hh_l…` ([`super::rnn_names`]), so a torch state dict loads by name.
//!
//! The reference's `QuantRNN` and `QuantGRU` build their quantizers but crash at
//! forward (its `Recurrent` passes quantizer keyword arguments that torch's
//! `RNNTanhCell` / `GRUCell` do not take); `QuantGRU` and `QuantRNN` here are qdq's
//! own, with `QuantLSTM`'s fused scheme applied to torch's GRU and Elman equations.

use burn::module::Param;
use burn::nn::activation::Activation;
use burn::nn::{BiLstm, GateController, Gru, Lstm, LstmState, Rnn};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::mixin::{check_fake_quant, init_input_quantizer, init_weight_quantizer};
use super::rnn_cell::{RnnCellWeights, RnnMode, step};
use crate::error::{Error, Result};
use crate::nn::tensor_quantizer::TensorQuantizer;
use crate::tensor_quant::{
    QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW, QUANT_DESC_8BIT_PER_TENSOR, QuantDescriptor,
};

/// The state of a multi-layer recurrent layer, torch's `(h_n, c_n)`.
///
/// - `hidden`: `[num_layers · num_directions, batch, d_hidden]`
/// - `cell`: same shape, LSTM only (`None` for GRU and RNN)
#[derive(Clone, Debug)]
pub struct RecurrentState {
    /// `[num_layers · num_directions, batch, d_hidden]`.
    pub hidden: Tensor<3>,
    /// `[num_layers · num_directions, batch, d_hidden]` (LSTM only).
    pub cell: Option<Tensor<3>>,
}

/// `Unsupported` naming `layer` and what of the float layer has no torch counterpart.
fn refuse(layer: &'static str, what: &'static str) -> Error {
    Error::Unsupported {
        what,
        format: format!("{layer} (torch's recurrence has no such option)"),
    }
}

/// A fresh trainable leaf holding `t` (a torch-layout weight assembled from burn's gates).
fn leaf<const D: usize>(t: Tensor<D>) -> Param<Tensor<D>> {
    let device = t.device();
    Param::from_tensor(Tensor::from_data(t.into_data(), &device))
}

/// Stacks burn gates into one torch-layout cell (`gates` in torch's order).
fn cell_of(gates: &[&GateController]) -> RnnCellWeights {
    let weight = |f: &dyn Fn(&GateController) -> Tensor<2>| {
        leaf(Tensor::cat(gates.iter().map(|g| f(g)).collect(), 0))
    };
    let bias = |f: &dyn Fn(&GateController) -> Option<Tensor<1>>| {
        let parts: Option<Vec<_>> = gates.iter().map(|g| f(g)).collect();
        parts.map(|p| leaf(Tensor::cat(p, 0)))
    };
    // burn's `Linear` exposes its weight as `[d_input, d_output]`: transpose to torch's.
    RnnCellWeights {
        weight_ih: weight(&|g| g.input_transform.weight.val().transpose()),
        weight_hh: weight(&|g| g.hidden_transform.weight.val().transpose()),
        bias_ih: bias(&|g| g.input_transform.bias.as_ref().map(|b| b.val())),
        bias_hh: bias(&|g| g.hidden_transform.bias.as_ref().map(|b| b.val())),
    }
}

/// A burn recurrent layer that converts to one torch-layout cell.
pub trait FloatRecurrent {
    /// The cell's weights, its mode and whether the layer is batch-first.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for an option torch's recurrence lacks (clipping, a
    /// reversed layer, coupled input-forget gates, other activations).
    fn into_cell(self) -> Result<(RnnCellWeights, RnnMode, bool)>;
}

impl FloatRecurrent for Lstm {
    fn into_cell(self) -> Result<(RnnCellWeights, RnnMode, bool)> {
        const L: &str = "QuantLSTM";
        if self.clip.is_some() {
            return Err(refuse(L, "cell-state clipping (`clip`)"));
        }
        if self.reverse {
            return Err(refuse(L, "a reversed single-direction LSTM (`reverse`)"));
        }
        let acts = (
            &self.gate_activation,
            &self.cell_activation,
            &self.hidden_activation,
        );
        if !matches!(
            acts,
            (
                Activation::Sigmoid(_),
                Activation::Tanh(_),
                Activation::Tanh(_)
            )
        ) {
            return Err(refuse(L, "activations other than sigmoid/tanh/tanh"));
        }
        let Some(forget) = self.forget_gate.as_ref() else {
            return Err(refuse(L, "coupled input-forget gates (`input_forget`)"));
        };
        // torch's order: input, forget, cell (g), output.
        let cell = cell_of(&[&self.input_gate, forget, &self.cell_gate, &self.output_gate]);
        Ok((cell, RnnMode::Lstm, self.batch_first))
    }
}

impl FloatRecurrent for Gru {
    fn into_cell(self) -> Result<(RnnCellWeights, RnnMode, bool)> {
        const L: &str = "QuantGRU";
        if self.clip.is_some() {
            return Err(refuse(L, "hidden-state clipping (`clip`)"));
        }
        if !self.reset_after {
            return Err(refuse(
                L,
                "reset before the hidden product (`reset_after = false`)",
            ));
        }
        if !matches!(
            (&self.gate_activation, &self.hidden_activation),
            (Activation::Sigmoid(_), Activation::Tanh(_))
        ) {
            return Err(refuse(L, "activations other than sigmoid/tanh"));
        }
        // torch's order: reset, update (z), new.
        let cell = cell_of(&[&self.reset_gate, &self.update_gate, &self.new_gate]);
        // burn's GRU reads `[batch, seq, d_input]`.
        Ok((cell, RnnMode::Gru, true))
    }
}

impl FloatRecurrent for Rnn {
    fn into_cell(self) -> Result<(RnnCellWeights, RnnMode, bool)> {
        const L: &str = "QuantRNN";
        if self.clip.is_some() {
            return Err(refuse(L, "hidden-state clipping (`clip`)"));
        }
        if self.reverse {
            return Err(refuse(L, "a reversed single-direction RNN (`reverse`)"));
        }
        let mode = match self.hidden_activation {
            Activation::Tanh(_) => RnnMode::RnnTanh,
            Activation::Relu(_) => RnnMode::RnnRelu,
            _ => return Err(refuse(L, "activations other than tanh or relu")),
        };
        Ok((cell_of(&[&self.gate]), mode, self.batch_first))
    }
}

/// Declares one multi-layer quantized recurrent class: module, config, `init`,
/// `from_float*`, `forward`, and the mixins' defaults.
macro_rules! quant_recurrent {
    ($(#[$doc:meta])* $name:ident, $config:ident, default $default:expr, modes $($mode:pat_param)|+) => {
        $(#[$doc])*
        ///
        /// # Fields
        /// - `cells[k]`: cell `k = layer · num_directions + direction`, named as torch
        ///   names it: `weight_ih_l{layer}{_reverse}` `[gates · d_hidden, d_in]`,
        ///   `weight_hh_l…`, `bias_ih_l…`, `bias_hh_l…` ([`super::rnn_names`])
        /// - `_input_quantizers.{k}`: 8-bit per tensor by default, over `cat([x, h], 1)`
        /// - `_weight_quantizers.{k}`: 8-bit per gate row (axis 0) by default, over
        ///   `cat([W_ih, W_hh], 1)` `[gates · d_hidden, d_in + d_hidden]`
        ///
        /// # Shapes (`forward`)
        /// - input: `[seq, batch, d_input]` (`[batch, seq, d_input]` when `batch_first`)
        /// - output: `[seq, batch, num_directions · d_hidden]` (batch first likewise)
        /// - state: [`RecurrentState`]
        #[derive(Clone, Debug)]
        pub struct $name {
            /// Cell weights, one per layer and direction.
            pub cells: Vec<RnnCellWeights>,
            /// Input quantizers, one per cell (reference name `_input_quantizers`).
            pub _input_quantizers: Vec<TensorQuantizer>,
            /// Weight quantizers, one per cell (reference name `_weight_quantizers`).
            pub _weight_quantizers: Vec<TensorQuantizer>,
            /// Hidden features.
            pub d_hidden: usize,
            /// Stacked layers.
            pub num_layers: usize,
            /// Whether each layer also runs backwards in time.
            pub bidirectional: bool,
            /// Whether the input is `[batch, seq, features]`.
            pub batch_first: bool,
            /// The recurrence.
            pub mode: RnnMode,
        }

        super::rnn_names::recurrent_module!($name);

        #[doc = concat!("Configuration of a [`", stringify!($name), "`] (torch's constructor arguments and defaults).")]
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub struct $config {
            /// Input features (`input_size`).
            pub d_input: usize,
            /// Hidden features (`hidden_size`).
            pub d_hidden: usize,
            /// Stacked layers (default 1).
            pub num_layers: usize,
            /// Whether the cells have biases (default true).
            pub bias: bool,
            /// Whether the input is `[batch, seq, features]` (default false, as torch).
            pub batch_first: bool,
            /// Whether each layer also runs backwards (default false).
            pub bidirectional: bool,
            /// torch's LSTM projection size; only 0 is supported, as in the reference.
            pub proj_size: usize,
            /// The recurrence.
            pub mode: RnnMode,
            /// Input descriptor; `None` takes the class default at `init`.
            pub quant_desc_input: Option<QuantDescriptor>,
            /// Weight descriptor; `None` takes the class default at `init`.
            pub quant_desc_weight: Option<QuantDescriptor>,
        }

        impl burn::config::Config for $config {}

        impl $config {
            /// A config for `d_input -> d_hidden` with torch's defaults.
            pub fn new(d_input: usize, d_hidden: usize) -> Self {
                Self {
                    d_input,
                    d_hidden,
                    num_layers: 1,
                    bias: true,
                    batch_first: false,
                    bidirectional: false,
                    proj_size: 0,
                    mode: $default,
                    quant_desc_input: None,
                    quant_desc_weight: None,
                }
            }

            /// Stacked layers.
            pub fn with_num_layers(mut self, num_layers: usize) -> Self {
                self.num_layers = num_layers;
                self
            }

            /// Whether the cells have biases.
            pub fn with_bias(mut self, bias: bool) -> Self {
                self.bias = bias;
                self
            }

            /// Whether the input is `[batch, seq, features]`.
            pub fn with_batch_first(mut self, batch_first: bool) -> Self {
                self.batch_first = batch_first;
                self
            }

            /// Whether each layer also runs backwards in time.
            pub fn with_bidirectional(mut self, bidirectional: bool) -> Self {
                self.bidirectional = bidirectional;
                self
            }

            /// torch's `proj_size` (refused at `init` unless 0).
            pub fn with_proj_size(mut self, proj_size: usize) -> Self {
                self.proj_size = proj_size;
                self
            }

            super::macros::quant_desc_setters!(input, weight);

            #[doc = concat!("Initializes a [`", stringify!($name), "`], weights uniform in `±1/√d_hidden` as torch.")]
            ///
            /// # Errors
            /// `proj_size > 0` or a mode of another class ([`Error::Unsupported`]), no
            /// layers or hidden features, a `fake_quant = false` descriptor.
            pub fn init(&self, device: &Device) -> Result<$name> {
                const L: &str = stringify!($name);
                if self.proj_size > 0 {
                    return Err(Error::Unsupported {
                        what: "proj_size > 0",
                        format: format!("{L} (as in pytorch-quantization)"),
                    });
                }
                if !matches!(self.mode, $($mode)|+) {
                    return Err(Error::Unsupported { what: "this recurrence", format: format!("{L} ({:?})", self.mode) });
                }
                if self.num_layers == 0 || self.d_hidden == 0 {
                    return Err(Error::InputShape {
                        layer: L,
                        expected: "num_layers >= 1 and d_hidden >= 1".into(),
                        got: vec![self.num_layers, self.d_hidden],
                    });
                }
                let (din, dw) = self.descriptors();
                check_fake_quant(&din)?;
                check_fake_quant(&dw)?;
                let dirs = if self.bidirectional { 2 } else { 1 };
                let mut cells = Vec::new();
                for layer in 0..self.num_layers {
                    let d_in = if layer == 0 { self.d_input } else { dirs * self.d_hidden };
                    for _ in 0..dirs {
                        cells.push(RnnCellWeights::init(self.mode, d_in, self.d_hidden, self.bias, device));
                    }
                }
                $name::from_cells(cells, self.num_layers, self.bidirectional, self.batch_first, self.mode, din, dw)
            }

            fn descriptors(&self) -> (QuantDescriptor, QuantDescriptor) {
                use super::mixin::{QuantInputMixin, QuantMixin};
                (
                    self.quant_desc_input.clone().unwrap_or_else($name::default_quant_desc_input),
                    self.quant_desc_weight.clone().unwrap_or_else($name::default_quant_desc_weight),
                )
            }
        }

        impl $name {
            /// The layer from its cells (`k = layer · num_directions + direction`) and
            /// resolved descriptors: one input and one weight quantizer per cell.
            ///
            /// # Errors
            /// A cell count other than `num_layers · num_directions`, cells whose
            /// sizes do not chain, or a quantizer error.
            pub fn from_cells(
                cells: Vec<RnnCellWeights>,
                num_layers: usize,
                bidirectional: bool,
                batch_first: bool,
                mode: RnnMode,
                quant_desc_input: QuantDescriptor,
                quant_desc_weight: QuantDescriptor,
            ) -> Result<Self> {
                const L: &str = stringify!($name);
                let dirs = if bidirectional { 2 } else { 1 };
                let Some(first) = cells.first() else {
                    return Err(Error::InputShape { layer: L, expected: "at least one cell".into(), got: vec![] });
                };
                let (_, d_hidden) = first.sizes();
                let rows = mode.gates() * d_hidden;
                for (k, cell) in cells.iter().enumerate() {
                    let (d_in, h) = cell.sizes();
                    let want_in = if k < dirs { d_in } else { dirs * d_hidden };
                    let [r, _] = cell.weight_ih.lazy_shape().dims();
                    if cells.len() != num_layers * dirs || h != d_hidden || d_in != want_in || r != rows {
                        return Err(Error::InputShape {
                            layer: L,
                            expected: format!("{} cells of {rows} rows, hidden {d_hidden}, layer inputs chaining", num_layers * dirs),
                            got: vec![cells.len(), k, r, d_in, h],
                        });
                    }
                }
                let device = first.weight_ih.lazy_device();
                let mut inputs = Vec::new();
                let mut weights = Vec::new();
                for cell in &cells {
                    inputs.push(init_input_quantizer(&quant_desc_input, &device)?);
                    weights.push(init_weight_quantizer(&quant_desc_weight, &cell.fused_dims(), &device)?);
                }
                Ok(Self {
                    cells,
                    _input_quantizers: inputs,
                    _weight_quantizers: weights,
                    d_hidden,
                    num_layers,
                    bidirectional,
                    batch_first,
                    mode,
                })
            }

            /// Quantizes stacked single-direction burn layers (layer 0 first); a
            /// descriptor given as `None` takes the class default.
            ///
            /// # Errors
            /// What [`FloatRecurrent::into_cell`] refuses, layers that disagree on
            /// mode or batch-first, sizes that do not chain, a quantizer error.
            pub fn from_float_layers<F: FloatRecurrent>(
                layers: Vec<F>,
                quant_desc_input: impl Into<Option<QuantDescriptor>>,
                quant_desc_weight: impl Into<Option<QuantDescriptor>>,
            ) -> Result<Self> {
                let num_layers = layers.len();
                let mut cells = Vec::new();
                let mut kind = None;
                for layer in layers {
                    let (cell, mode, batch_first) = layer.into_cell()?;
                    if kind.is_some_and(|k| k != (mode, batch_first)) || !matches!(mode, $($mode)|+) {
                        return Err(Error::Unsupported {
                            what: "layers of different recurrences or batch layouts",
                            format: stringify!($name).into(),
                        });
                    }
                    kind = Some((mode, batch_first));
                    cells.push(cell);
                }
                let (mode, batch_first) = kind.unwrap_or(($default, false));
                let (din, dw) = $config::new(0, 0)
                    .with_descs(quant_desc_input.into(), quant_desc_weight.into())
                    .descriptors();
                Self::from_cells(cells, num_layers, false, batch_first, mode, din, dw)
            }

            /// Quantizes one single-direction burn layer (see [`Self::from_float_layers`]).
            ///
            /// # Errors
            /// As [`Self::from_float_layers`].
            pub fn from_float<F: FloatRecurrent>(
                layer: F,
                quant_desc_input: impl Into<Option<QuantDescriptor>>,
                quant_desc_weight: impl Into<Option<QuantDescriptor>>,
            ) -> Result<Self> {
                Self::from_float_layers(vec![layer], quant_desc_input, quant_desc_weight)
            }

            /// Output and final state for `input`, starting from `state` (zeros when
            /// `None`). Never panics on a quantizer error (the tensor passes through).
            ///
            /// # Panics
            /// On an input or state whose shape does not fit ([`Self::try_forward`]
            /// reports it), as burn's layers do.
            pub fn forward(&self, input: Tensor<3>, state: Option<RecurrentState>) -> (Tensor<3>, RecurrentState) {
                match run(stringify!($name), self.mode, &self.cells, &self._input_quantizers, &self._weight_quantizers, self.num_layers, self.bidirectional, self.batch_first, input, state, false) {
                    Ok(out) => out,
                    Err(e) => panic!("{e}"),
                }
            }

            /// [`Self::forward`], returning [`Error::InputShape`] for a bad input or
            /// state and the first quantizer error.
            pub fn try_forward(&self, input: Tensor<3>, state: Option<RecurrentState>) -> Result<(Tensor<3>, RecurrentState)> {
                run(stringify!($name), self.mode, &self.cells, &self._input_quantizers, &self._weight_quantizers, self.num_layers, self.bidirectional, self.batch_first, input, state, true)
            }
        }

        impl $config {
            fn with_descs(mut self, input: Option<QuantDescriptor>, weight: Option<QuantDescriptor>) -> Self {
                self.quant_desc_input = input;
                self.quant_desc_weight = weight;
                self
            }
        }

        // The class defaults; the per-cell quantizers are reached by the model walk.
        impl super::mixin::QuantInputMixin for $name {
            fn input_default() -> &'static super::mixin::DefaultQuantDesc {
                static SLOT: super::mixin::DefaultQuantDesc = super::mixin::DefaultQuantDesc::new(&QUANT_DESC_8BIT_PER_TENSOR);
                &SLOT
            }

            /// Layer 0's forward-direction input quantizer (`_input_quantizers.0`).
            fn input_quantizer(&self) -> &TensorQuantizer {
                &self._input_quantizers[0]
            }

            fn input_quantizer_mut(&mut self) -> &mut TensorQuantizer {
                &mut self._input_quantizers[0]
            }
        }

        impl super::mixin::QuantMixin for $name {
            fn weight_default() -> &'static super::mixin::DefaultQuantDesc {
                static SLOT: super::mixin::DefaultQuantDesc = super::mixin::DefaultQuantDesc::new(&QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW);
                &SLOT
            }

            /// Layer 0's forward-direction weight quantizer (`_weight_quantizers.0`).
            fn weight_quantizer(&self) -> &TensorQuantizer {
                &self._weight_quantizers[0]
            }

            fn weight_quantizer_mut(&mut self) -> &mut TensorQuantizer {
                &mut self._weight_quantizers[0]
            }
        }
    };
}

quant_recurrent!(
    /// A multi-layer, optionally bidirectional LSTM on fake-quantized inputs and
    /// weights (`QuantLSTM` of the reference; torch's gate order i, f, g, o).
    QuantLSTM, QuantLSTMConfig, default RnnMode::Lstm, modes RnnMode::Lstm
);
quant_recurrent!(
    /// A multi-layer, optionally bidirectional GRU on fake-quantized inputs and weights:
    /// qdq's own (the reference's `QuantGRU` crashes at forward), with `QuantLSTM`'s
    /// fused scheme and torch's equations (gate order r, z, n).
    QuantGRU, QuantGRUConfig, default RnnMode::Gru, modes RnnMode::Gru
);
quant_recurrent!(
    /// A multi-layer, optionally bidirectional Elman RNN (tanh or relu) on
    /// fake-quantized inputs and weights: qdq's own (the reference's `QuantRNN`
    /// crashes at forward), with `QuantLSTM`'s fused scheme.
    QuantRNN, QuantRNNConfig, default RnnMode::RnnTanh, modes RnnMode::RnnTanh | RnnMode::RnnRelu
);

impl QuantRNNConfig {
    /// `relu` instead of the default `tanh` (torch's `nonlinearity`).
    pub fn with_relu(mut self, relu: bool) -> Self {
        self.mode = if relu {
            RnnMode::RnnRelu
        } else {
            RnnMode::RnnTanh
        };
        self
    }
}

impl QuantLSTM {
    /// Quantizes a burn `BiLstm` (one bidirectional layer).
    ///
    /// # Errors
    /// As [`Self::from_float_layers`].
    pub fn from_float_bidirectional(
        layer: BiLstm,
        quant_desc_input: impl Into<Option<QuantDescriptor>>,
        quant_desc_weight: impl Into<Option<QuantDescriptor>>,
    ) -> Result<Self> {
        let batch_first = layer.batch_first;
        // Each half runs forward in time; `BiLstm` reverses the input for `reverse` itself.
        let (fwd, ..) = layer.forward.into_cell()?;
        let mut backward = layer.reverse;
        backward.reverse = false;
        let (bwd, ..) = backward.into_cell()?;
        let (din, dw) = QuantLSTMConfig::new(0, 0)
            .with_descs(quant_desc_input.into(), quant_desc_weight.into())
            .descriptors();
        Self::from_cells(vec![fwd, bwd], 1, true, batch_first, RnnMode::Lstm, din, dw)
    }
}

/// The multi-layer recurrence shared by the three classes.
#[allow(clippy::too_many_arguments)]
fn run(
    layer: &'static str,
    mode: RnnMode,
    cells: &[RnnCellWeights],
    input_quantizers: &[TensorQuantizer],
    weight_quantizers: &[TensorQuantizer],
    num_layers: usize,
    bidirectional: bool,
    batch_first: bool,
    input: Tensor<3>,
    state: Option<RecurrentState>,
    strict: bool,
) -> Result<(Tensor<3>, RecurrentState)> {
    let x = if batch_first {
        input
    } else {
        input.swap_dims(0, 1)
    };
    let [batch, seq, _] = x.dims();
    let dirs = if bidirectional { 2 } else { 1 };
    let n = num_layers * dirs;
    let d_hidden = cells.first().map_or(0, |c| c.sizes().1);
    if seq == 0 || n != cells.len() {
        return Err(Error::InputShape {
            layer,
            expected: "a sequence of at least one step".into(),
            got: x.dims().to_vec(),
        });
    }
    let device = x.device();
    let want = [n, batch, d_hidden];
    let lstm = mode == RnnMode::Lstm;
    let zeros = || Tensor::<3>::zeros(want, &device);
    let (h0, c0) = match state {
        None => (zeros(), lstm.then(zeros)),
        Some(s) => (
            s.hidden,
            if lstm {
                Some(s.cell.unwrap_or_else(zeros))
            } else {
                None
            },
        ),
    };
    for s in std::iter::once(&h0).chain(c0.as_ref()) {
        if s.dims() != want {
            return Err(Error::InputShape {
                layer,
                expected: format!("a state of {want:?}"),
                got: s.dims().to_vec(),
            });
        }
    }
    let pick = |s: &Tensor<3>, k: usize| -> Tensor<2> { s.clone().narrow(0, k, 1).squeeze_dim(0) };
    let mut layer_input = x;
    let (mut hn, mut cn) = (Vec::new(), Vec::new());
    for l in 0..num_layers {
        let mut outs = Vec::new();
        for d in 0..dirs {
            let k = l * dirs + d;
            let mut h = pick(&h0, k);
            let mut c = c0.as_ref().map(|c| pick(c, k));
            let mut steps = Vec::with_capacity(seq);
            for i in 0..seq {
                let t = if d == 0 { i } else { seq - 1 - i };
                let xt: Tensor<2> = layer_input.clone().narrow(1, t, 1).squeeze_dim(1);
                let (h2, c2) = step(
                    layer,
                    mode,
                    &cells[k],
                    &input_quantizers[k],
                    &weight_quantizers[k],
                    xt,
                    h,
                    c,
                    strict,
                )?;
                h = h2;
                c = c2;
                steps.push(h.clone());
            }
            if d == 1 {
                steps.reverse();
            }
            outs.push(Tensor::<2>::stack::<3>(steps, 1));
            hn.push(h);
            cn.extend(c);
        }
        layer_input = Tensor::cat(outs, 2);
    }
    let output = if batch_first {
        layer_input
    } else {
        layer_input.swap_dims(0, 1)
    };
    let cell = (!cn.is_empty()).then(|| Tensor::<2>::stack::<3>(cn, 0));
    Ok((
        output,
        RecurrentState {
            hidden: Tensor::<2>::stack::<3>(hn, 0),
            cell,
        },
    ))
}

/// One LSTM cell on fake-quantized inputs and weights (`QuantLSTMCell` of the
/// reference): one step of [`QuantLSTM`]'s fused scheme.
///
/// # Fields
/// - `weight_ih` `[4 · d_hidden, d_input]`, `weight_hh` `[4 · d_hidden, d_hidden]`,
///   `bias_ih`, `bias_hh` `[4 · d_hidden]`: torch's names, layout and gate order (i, f, g, o)
/// - `_input_quantizer`: 8-bit per tensor by default, over `cat([x, h], 1)`
/// - `_weight_quantizer`: 8-bit per gate row (axis 0) by default, over `cat([W_ih, W_hh], 1)`
///
/// # Shapes (`forward`)
/// - input: `[batch, d_input]`; state `(c, h)` `[batch, d_hidden]` each (zeros when `None`)
#[derive(burn::module::Module, Debug)]
pub struct QuantLSTMCell {
    /// `[4 · d_hidden, d_input]`.
    pub weight_ih: Param<Tensor<2>>,
    /// `[4 · d_hidden, d_hidden]`.
    pub weight_hh: Param<Tensor<2>>,
    /// `[4 · d_hidden]`.
    pub bias_ih: Option<Param<Tensor<1>>>,
    /// `[4 · d_hidden]`.
    pub bias_hh: Option<Param<Tensor<1>>>,
    /// Quantizes `cat([x, h], 1)`.
    pub _input_quantizer: TensorQuantizer,
    /// Quantizes `cat([W_ih, W_hh], 1)`.
    pub _weight_quantizer: TensorQuantizer,
}

/// Configuration of a [`QuantLSTMCell`] (torch's `LSTMCell` arguments and defaults).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuantLSTMCellConfig {
    /// Input features.
    pub d_input: usize,
    /// Hidden features.
    pub d_hidden: usize,
    /// Whether the cell has biases (default true).
    pub bias: bool,
    /// Input descriptor; `None` takes the class default at `init`.
    pub quant_desc_input: Option<QuantDescriptor>,
    /// Weight descriptor; `None` takes the class default at `init`.
    pub quant_desc_weight: Option<QuantDescriptor>,
}

impl burn::config::Config for QuantLSTMCellConfig {}

impl QuantLSTMCellConfig {
    /// A config for `d_input -> d_hidden` with a bias.
    pub fn new(d_input: usize, d_hidden: usize) -> Self {
        Self {
            d_input,
            d_hidden,
            bias: true,
            quant_desc_input: None,
            quant_desc_weight: None,
        }
    }

    /// Whether the cell has biases.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    super::macros::quant_desc_setters!(input, weight);

    /// Initializes a [`QuantLSTMCell`], weights uniform in `±1/√d_hidden` as torch.
    ///
    /// # Errors
    /// A `fake_quant = false` descriptor or a per-channel axis outside rank 2.
    pub fn init(&self, device: &Device) -> Result<QuantLSTMCell> {
        let cell = RnnCellWeights::init(
            RnnMode::Lstm,
            self.d_input,
            self.d_hidden,
            self.bias,
            device,
        );
        QuantLSTMCell::from_cell(
            cell,
            self.quant_desc_input.clone(),
            self.quant_desc_weight.clone(),
        )
    }
}

impl QuantLSTMCell {
    fn from_cell(
        cell: RnnCellWeights,
        input: Option<QuantDescriptor>,
        weight: Option<QuantDescriptor>,
    ) -> Result<Self> {
        let dims = cell.fused_dims();
        let (_input_quantizer, _weight_quantizer) = super::mixin::init_quantizers::<Self>(
            input,
            weight,
            &dims,
            &cell.weight_ih.lazy_device(),
        )?;
        Ok(Self {
            weight_ih: cell.weight_ih,
            weight_hh: cell.weight_hh,
            bias_ih: cell.bias_ih,
            bias_hh: cell.bias_hh,
            _input_quantizer,
            _weight_quantizer,
        })
    }

    /// Quantizes a single-direction burn `Lstm` as a cell (its gates, torch's order).
    ///
    /// # Errors
    /// As [`FloatRecurrent::into_cell`], or a quantizer error.
    pub fn from_float(
        layer: Lstm,
        quant_desc_input: impl Into<Option<QuantDescriptor>>,
        quant_desc_weight: impl Into<Option<QuantDescriptor>>,
    ) -> Result<Self> {
        let (cell, ..) = layer.into_cell()?;
        Self::from_cell(cell, quant_desc_input.into(), quant_desc_weight.into())
    }

    fn weights(&self) -> RnnCellWeights {
        // Clones share the parameters (and their gradients).
        RnnCellWeights {
            weight_ih: self.weight_ih.clone(),
            weight_hh: self.weight_hh.clone(),
            bias_ih: self.bias_ih.clone(),
            bias_hh: self.bias_hh.clone(),
        }
    }

    fn run(
        &self,
        input: Tensor<2>,
        state: Option<LstmState<2>>,
        strict: bool,
    ) -> Result<LstmState<2>> {
        let [batch, _] = input.dims();
        let (_, d_hidden) = self.weights().sizes();
        let (c, h) = match state {
            Some(s) => (s.cell, s.hidden),
            None => {
                let z = Tensor::zeros([batch, d_hidden], &input.device());
                (z.clone(), z)
            }
        };
        let (h, c) = step(
            "QuantLSTMCell",
            RnnMode::Lstm,
            &self.weights(),
            &self._input_quantizer,
            &self._weight_quantizer,
            input,
            h,
            Some(c),
            strict,
        )?;
        let c = c.unwrap_or_else(|| h.zeros_like());
        Ok(LstmState::new(c, h))
    }

    /// The next `(cell, hidden)` state. Never panics on a quantizer error.
    ///
    /// # Panics
    /// On an input or state that does not fit the weights ([`Self::try_forward`]
    /// reports it).
    pub fn forward(&self, input: Tensor<2>, state: Option<LstmState<2>>) -> LstmState<2> {
        match self.run(input, state, false) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Self::forward`], returning shape and quantizer errors.
    pub fn try_forward(
        &self,
        input: Tensor<2>,
        state: Option<LstmState<2>>,
    ) -> Result<LstmState<2>> {
        self.run(input, state, true)
    }
}

super::macros::impl_input_mixin!(QuantLSTMCell, QUANT_DESC_8BIT_PER_TENSOR);
super::macros::impl_weight_mixin!(QuantLSTMCell, QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW);
