//! `QuantLinear` (`nn/modules/quant_linear.py` of the reference).
//!
//! The weight is kept in PyTorch's `[d_output, d_input]` layout, not burn's
//! `[d_input, d_output]`: then axis 0 means "per output feature" exactly as in the
//! reference's `QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW` (the scales TensorRT needs
//! for a GEMM), and `_weight_quantizer._amax` has the reference's shape.

use burn::module::Param;
use burn::nn::{Initializer, Linear};
use burn::prelude::*;
use burn::tensor::module::linear;
use serde::{Deserialize, Serialize};

use super::macros::{impl_input_mixin, impl_weight_mixin, quant_desc_setters};
use super::mixin::{check_fake_quant, init_quantizers, pop_quant_desc_in_kwargs};
use crate::error::Result;
use crate::nn::tensor_quantizer::TensorQuantizer;
use crate::tensor_quant::{
    QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW, QUANT_DESC_8BIT_PER_TENSOR, QuantDescriptor,
};

/// Applies a linear transformation to a fake-quantized input with a fake-quantized
/// weight (`QuantLinear` of the reference): `y = q_in(x) · q_w(W)ᵀ + b`.
///
/// Should be created with [`QuantLinearConfig`] or [`QuantLinear::from_float`].
///
/// # Fields
/// - `weight`: `[d_output, d_input]` (PyTorch's layout), quantized per row (per
///   output feature, axis 0) by default (`QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW`)
/// - `bias`: `[d_output]`, added unquantized (present by default)
/// - `_input_quantizer`: 8-bit per tensor by default, dynamic amax until calibrated
/// - `_weight_quantizer`: see `weight`
///
/// # Shapes (`forward`)
/// - input: `[..., d_input]` (any rank `D`)
/// - output: `[..., d_output]`
///
/// ```
/// use burn::prelude::*;
/// use qdq::nn::QuantLinearConfig;
///
/// let device = Device::flex();
/// let fc = QuantLinearConfig::new(4, 3).init(&device).unwrap();
/// assert_eq!(fc.weight.dims(), [3, 4]); // PyTorch layout
/// assert_eq!(fc.forward(Tensor::<2>::ones([2, 4], &device)).dims(), [2, 3]);
/// ```
#[derive(Module, Debug)]
pub struct QuantLinear {
    /// `[d_output, d_input]` (PyTorch's layout; burn's `Linear` stores the transpose).
    pub weight: Param<Tensor<2>>,
    /// `[d_output]`, added unquantized.
    pub bias: Option<Param<Tensor<1>>>,
    /// Quantizes the input.
    pub _input_quantizer: TensorQuantizer,
    /// Quantizes the weight (per row, i.e. per output feature, by default).
    pub _weight_quantizer: TensorQuantizer,
}

/// Configuration of a [`QuantLinear`]: the fields and defaults of burn's
/// `LinearConfig` (less `layout`: the weight layout is fixed, see
/// [`QuantLinear::weight`]) plus descriptors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuantLinearConfig {
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Whether to add a bias (default true).
    pub bias: bool,
    /// Weight and bias initializer (default burn's: Kaiming uniform, gain 1/√3).
    pub initializer: Initializer,
    /// Input descriptor; `None` takes the class default at `init`.
    pub quant_desc_input: Option<QuantDescriptor>,
    /// Weight descriptor; `None` takes the class default at `init`.
    pub quant_desc_weight: Option<QuantDescriptor>,
}

impl burn::config::Config for QuantLinearConfig {}

impl QuantLinearConfig {
    /// A config for `d_input -> d_output` with burn's defaults.
    pub fn new(d_input: usize, d_output: usize) -> Self {
        Self {
            d_input,
            d_output,
            bias: true,
            initializer: Initializer::KaimingUniform {
                gain: 1.0 / 3.0f64.sqrt(),
                fan_out_only: false,
            },
            quant_desc_input: None,
            quant_desc_weight: None,
        }
    }

    /// Whether to add a bias.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// The weight and bias initializer.
    pub fn with_initializer(mut self, initializer: Initializer) -> Self {
        self.initializer = initializer;
        self
    }

    quant_desc_setters!(input, weight);

    /// Initializes a [`QuantLinear`] (fan-in/fan-out as burn's `Linear`).
    ///
    /// # Errors
    /// A `fake_quant = false` descriptor, or a per-channel axis outside rank 2.
    pub fn init(&self, device: &Device) -> Result<QuantLinear> {
        let (input, weight) = pop_quant_desc_in_kwargs::<QuantLinear>(
            self.quant_desc_input.clone(),
            self.quant_desc_weight.clone(),
        );
        check_fake_quant(&input)?;
        check_fake_quant(&weight)?;
        let fans = (Some(self.d_input), Some(self.d_output));
        let weight_param =
            self.initializer
                .init_with([self.d_output, self.d_input], fans.0, fans.1, device);
        let bias = self.bias.then(|| {
            self.initializer
                .init_with([self.d_output], fans.0, fans.1, device)
        });
        QuantLinear::new(weight_param, bias, input, weight)
    }
}

impl QuantLinear {
    /// A layer from a `[d_output, d_input]` weight and an optional bias.
    ///
    /// # Errors
    /// As [`QuantLinearConfig::init`].
    pub fn new(
        weight: Param<Tensor<2>>,
        bias: Option<Param<Tensor<1>>>,
        quant_desc_input: impl Into<Option<QuantDescriptor>>,
        quant_desc_weight: impl Into<Option<QuantDescriptor>>,
    ) -> Result<Self> {
        let (_input_quantizer, _weight_quantizer) = init_quantizers::<Self>(
            quant_desc_input.into(),
            quant_desc_weight.into(),
            weight.lazy_shape().as_slice(),
            &weight.lazy_device(),
        )?;
        Ok(Self {
            weight,
            bias,
            _input_quantizer,
            _weight_quantizer,
        })
    }

    /// Quantizes a float burn [`Linear`]: its weight is transposed into
    /// `[d_output, d_input]` (same parameter id), its bias kept.
    ///
    /// The weight stays trainable unless it was a frozen autodiff tensor.
    ///
    /// # Errors
    /// As [`QuantLinearConfig::init`].
    pub fn from_float(
        layer: Linear,
        quant_desc_input: impl Into<Option<QuantDescriptor>>,
        quant_desc_weight: impl Into<Option<QuantDescriptor>>,
    ) -> Result<Self> {
        // `consume` drops burn's layout mappers, which would transpose on save.
        let (id, w, _mapper) = layer.weight.consume();
        // A plain device cannot mark tensors; burn treats such params as trainable.
        let trainable = w.is_require_grad() || !w.device().is_autodiff();
        // Transpose, then detach: a fresh leaf (burn's `detach` keeps `require_grad`, and
        // only a leaf may be marked).
        let weight = Param::initialized(id, w.transpose().detach()).set_require_grad(trainable);
        Self::new(weight, layer.bias, quant_desc_input, quant_desc_weight)
    }

    /// `q(x) · q(W)ᵀ + b` over the last dim of `input` (`[..., d_input]`).
    /// Never panics on a quantizer error (see [`TensorQuantizer::forward`]).
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let input = self._input_quantizer.forward(input);
        let weight = self._weight_quantizer.forward(self.weight.val());
        self.apply(input, weight)
    }

    /// [`QuantLinear::forward`], returning the first quantizer error.
    pub fn try_forward<const D: usize>(&self, input: Tensor<D>) -> Result<Tensor<D>> {
        let input = self._input_quantizer.try_forward(input)?;
        let weight = self._weight_quantizer.try_forward(self.weight.val())?;
        Ok(self.apply(input, weight))
    }

    fn apply<const D: usize>(&self, input: Tensor<D>, weight: Tensor<2>) -> Tensor<D> {
        linear(
            input,
            weight.transpose(),
            self.bias.as_ref().map(|b| b.val()),
        )
    }
}

impl_input_mixin!(QuantLinear, QUANT_DESC_8BIT_PER_TENSOR);
impl_weight_mixin!(QuantLinear, QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW);
