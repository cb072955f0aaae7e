//! The drop-in `Lstm` (the reference's `LSTM` kind, in its default map): burn's
//! `Lstm`, or a one-layer, one-direction [`QuantLSTM`] built from it, with burn's
//! `forward(input, state) -> (output, LstmState)` in both variants.
//!
//! burn's options that torch's LSTM lacks (`clip`, `reverse`, `input_forget`, other
//! activations) cannot be quantized: `try_init` and
//! [`quant_modules::quantize`](crate::quant_modules::quantize) report them by name.

use burn::nn::activation::ActivationConfig;
use burn::nn::{Initializer, LstmState};
use burn::tensor::{Device, Tensor};

use super::layer::{DropIn, DropInConfig, Replaceable, expect_init, forward_setters};
use super::registry::{LayerKind, Replacement, replacement_for};
use crate::error::Result;
use crate::nn::modules::{QuantLSTM, RecurrentState};

/// Drop-in for burn's `Lstm`: the float layer, or [`QuantLSTM`] while replacement is
/// on for `LSTM` (see [`DropIn`]).
pub type Lstm = DropIn<QuantLSTM>;

/// Drop-in for burn's `LstmConfig`: same `new` and setters; `init` builds an [`Lstm`].
pub type LstmConfig = DropInConfig<burn::nn::LstmConfig>;

impl Replaceable for QuantLSTM {
    type Float = burn::nn::Lstm;
    const KIND: LayerKind = LayerKind::LSTM;

    fn from_float(float: burn::nn::Lstm, replacement: Replacement) -> Result<Self> {
        replacement.check(Self::KIND)?;
        QuantLSTM::from_float(
            float,
            replacement.quant_desc_input,
            replacement.quant_desc_weight,
        )
    }
}

impl DropInConfig<burn::nn::LstmConfig> {
    /// A config with the arguments and defaults of burn's `LstmConfig::new`.
    pub fn new(d_input: usize, d_hidden: usize, bias: bool) -> Self {
        Self {
            layer: burn::nn::LstmConfig::new(d_input, d_hidden, bias),
        }
    }

    forward_setters!(layer;
        with_initializer(initializer: Initializer),
        with_batch_first(batch_first: bool),
        with_reverse(reverse: bool),
        with_clip(clip: Option<f64>),
        with_input_forget(input_forget: bool),
        with_gate_activation(gate_activation: ActivationConfig),
        with_cell_activation(cell_activation: ActivationConfig),
        with_hidden_activation(hidden_activation: ActivationConfig),
    );

    /// burn's float `Lstm`, or a [`QuantLSTM`] made from it while replacement is on.
    ///
    /// # Errors
    /// A burn option torch's LSTM lacks, or a descriptor the layer cannot use.
    pub fn try_init(&self, device: &Device) -> Result<Lstm> {
        let float = self.layer.init(device);
        Ok(match replacement_for(LayerKind::LSTM) {
            None => DropIn::Float(float),
            Some(r) => DropIn::Quant(<QuantLSTM as Replaceable>::from_float(float, r)?),
        })
    }

    /// [`Self::try_init`].
    ///
    /// # Panics
    /// Where [`Self::try_init`] fails.
    #[track_caller]
    pub fn init(&self, device: &Device) -> Lstm {
        expect_init(self.try_init(device), LayerKind::LSTM)
    }
}

/// burn's `[batch, d_hidden]` state as a one-cell [`RecurrentState`].
fn to_recurrent(state: LstmState<2>) -> RecurrentState {
    RecurrentState {
        hidden: state.hidden.unsqueeze_dim(0),
        cell: Some(state.cell.unsqueeze_dim(0)),
    }
}

/// The last cell's state, as burn's (the drop-in's quantized layer has one cell).
fn to_burn(state: RecurrentState) -> LstmState<2> {
    let last = |t: Tensor<3>| -> Tensor<2> {
        let n = t.dims()[0];
        t.narrow(0, n - 1, 1).squeeze_dim(0)
    };
    let hidden = last(state.hidden);
    let cell = state.cell.map_or_else(|| hidden.zeros_like(), last);
    LstmState::new(cell, hidden)
}

impl DropIn<QuantLSTM> {
    /// burn's `Lstm::forward`, or the quantized layer's with the state converted.
    ///
    /// # Panics
    /// Where the float layer's forward would (a shape that does not fit).
    pub fn forward(
        &self,
        input: Tensor<3>,
        state: Option<LstmState<2>>,
    ) -> (Tensor<3>, LstmState<2>) {
        match self {
            Self::Float(lstm) => lstm.forward(input, state),
            Self::Quant(lstm) => {
                let (out, state) = lstm.forward(input, state.map(to_recurrent));
                (out, to_burn(state))
            }
        }
    }

    /// [`Self::forward`], returning the quantized layer's errors (see [`QuantLSTM::try_forward`]).
    pub fn try_forward(
        &self,
        input: Tensor<3>,
        state: Option<LstmState<2>>,
    ) -> Result<(Tensor<3>, LstmState<2>)> {
        match self {
            Self::Float(lstm) => Ok(lstm.forward(input, state)),
            Self::Quant(lstm) => {
                let (out, state) = lstm.try_forward(input, state.map(to_recurrent))?;
                Ok((out, to_burn(state)))
            }
        }
    }
}
