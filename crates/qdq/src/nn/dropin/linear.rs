//! Drop-in `Linear`: burn's `Linear`, or `QuantLinear`.
//!
//! The two store their weight differently: burn's `Linear` as `[d_input,
//! d_output]` (with the default `LinearLayout::Row`), `QuantLinear` as PyTorch's
//! `[d_output, d_input]`, so that its per-row weight scales are the reference's
//! (and TensorRT's). Both record it under the same key, `weight`. A record
//! therefore loads into a build of the same variant; a float checkpoint goes into
//! a quantized model through [`quant_modules::quantize`](crate::quant_modules::quantize)
//! (load it into the float build, then quantize), which transposes the weight.
//! burn checks shapes on load, so loading a float `Linear` record straight into a
//! quantized one fails, except for a square weight, which would load transposed:
//! do not load float `Linear` weights with `allow_partial` into a quantized build.

use burn::nn::{Initializer, LinearLayout};
use burn::tensor::{Device, Tensor};

use super::layer::{DropIn, Replaceable, dropin_types, expect_init};
use super::registry::{LayerKind, replacement_for};
use crate::error::Result;
use crate::nn::modules::QuantLinear;

dropin_types! {
    weighted:
    Linear(LinearConfig) = QuantLinear(burn::nn::Linear, burn::nn::LinearConfig);
}

// burn's `LinearConfig` is not declared with the `Quant*` layers (`QuantLinearConfig`
// has no layout), so its `new` and setters are written out here.
impl LinearConfig {
    /// A config for `d_input -> d_output` with the defaults of burn's `LinearConfig::new`.
    pub fn new(d_input: usize, d_output: usize) -> Self {
        Self {
            layer: burn::nn::LinearConfig::new(d_input, d_output),
        }
    }

    /// Whether to add a bias (as burn's float config does).
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.layer = self.layer.with_bias(bias);
        self
    }

    /// The weight and bias initializer (as burn's float config does).
    pub fn with_initializer(mut self, initializer: Initializer) -> Self {
        self.layer = self.layer.with_initializer(initializer);
        self
    }

    /// The float weight's storage layout (as burn's float config does; the
    /// quantized layer's is always `[d_output, d_input]`).
    pub fn with_layout(mut self, layout: LinearLayout) -> Self {
        self.layer = self.layer.with_layout(layout);
        self
    }

    /// Burn's `Linear`, or a [`QuantLinear`] while replacement is on for `Linear`:
    /// burn's initialization in both cases (the quantized weight is its transpose).
    ///
    /// # Errors
    /// A replacement whose weight descriptor's axis is outside rank 2.
    pub fn try_init(&self, device: &Device) -> Result<Linear> {
        let float = self.layer.init(device);
        Ok(match replacement_for(LayerKind::Linear) {
            None => DropIn::Float(float),
            Some(r) => DropIn::Quant(<QuantLinear as Replaceable>::from_float(float, r)?),
        })
    }

    /// Burn's `Linear`, or a [`QuantLinear`] while replacement is on for `Linear`.
    ///
    /// # Panics
    /// Where [`Self::try_init`] fails.
    #[track_caller]
    pub fn init(&self, device: &Device) -> Linear {
        expect_init(self.try_init(device), LayerKind::Linear)
    }
}

impl Linear {
    /// `x · W + b` over the last dim of `input` (`[..., d_input]`), on the quantized
    /// input and weight for the quantized variant.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        match self {
            DropIn::Float(layer) => layer.forward(input),
            DropIn::Quant(layer) => layer.forward(input),
        }
    }

    /// [`Self::forward`], returning the quantizers' first error (see
    /// [`QuantLinear::try_forward`]).
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>> {
        match self {
            DropIn::Float(layer) => Ok(layer.forward(input)),
            DropIn::Quant(layer) => layer.try_forward(input),
        }
    }
}
