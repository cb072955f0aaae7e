//! `QuantMultiHeadAttention`: burn's multi-head attention with quantized projections
//! and quantizers in front of both attention matmuls, placed as pytorch-quantization's
//! BERT QAT models place them (`QDQBertSelfAttention`: `matmul_q_input_quantizer`,
//! `matmul_k_input_quantizer`, `matmul_v_input_quantizer`, `matmul_a_input_quantizer`).
//!
//! Exported, each of those quantizers becomes a `QuantizeLinear → DequantizeLinear`
//! pair directly on a `MatMul` input, where TensorRT fuses INT8 GEMMs.

use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::Bool;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use super::macros::quant_desc_setters;
use super::mixin::{QuantInputMixin, check_fake_quant, init_input_quantizer};
use super::quant_linear::{QuantLinear, QuantLinearConfig};
use crate::error::{Error, Result};
use crate::nn::tensor_quantizer::TensorQuantizer;
use crate::tensor_quant::QuantDescriptor;

/// Multi-head attention on fake-quantized tensors:
///
/// ```text
/// Q, K, V = QuantLinear_{q,k,v}(query, key, value), split into heads [B, H, S, d_k]
/// scores  = q_q(Q) · q_k(Kᵀ) / √d_k  (+ attn_bias; padded keys set to min_float)
/// probs   = softmax(scores, last axis)
/// context = QuantLinear_o(merge_heads(q_a(probs) · q_v(V)))
/// ```
///
/// No dropout (BERT QAT fine-tunes and exports without it; burn's `Dropout` would
/// make the quantized forward differ from the exported graph).
///
/// # Fields
/// - `query`, `key`, `value`, `output`: `QuantLinear` `d_model → d_model`
///   (8-bit per-tensor input, 8-bit per-row weight by default)
/// - `matmul_{q,k,v,a}_input_quantizer`: 8-bit per tensor by default
///   (`QuantLinear`'s class default input descriptor, as the reference)
///
/// # Shapes (`forward`)
/// - query `[B, S_q, d_model]`, key and value `[B, S_k, d_model]`
/// - `mask_pad` `[B, S_k]` (true = padding), `attn_bias` broadcastable to
///   `[B, n_heads, S_q, S_k]`
/// - context `[B, S_q, d_model]`, weights `[B, n_heads, S_q, S_k]`
#[derive(Module, Debug)]
pub struct QuantMultiHeadAttention {
    /// Query projection.
    pub query: QuantLinear,
    /// Key projection.
    pub key: QuantLinear,
    /// Value projection.
    pub value: QuantLinear,
    /// Output projection.
    pub output: QuantLinear,
    /// Quantizes Q, the left operand of the scores matmul.
    pub matmul_q_input_quantizer: TensorQuantizer,
    /// Quantizes Kᵀ, the right operand of the scores matmul.
    pub matmul_k_input_quantizer: TensorQuantizer,
    /// Quantizes V, the right operand of the context matmul.
    pub matmul_v_input_quantizer: TensorQuantizer,
    /// Quantizes the attention probabilities, the left operand of the context matmul.
    pub matmul_a_input_quantizer: TensorQuantizer,
    /// Model width.
    pub d_model: usize,
    /// Number of heads.
    pub n_heads: usize,
    /// Width of a head, `d_model / n_heads`.
    pub d_k: usize,
    /// The score given to padded keys (burn's default -1e4).
    pub min_float: f64,
}

/// Configuration of a [`QuantMultiHeadAttention`]: burn's `MultiHeadAttentionConfig`
/// less dropout and quiet softmax, plus descriptors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuantMultiHeadAttentionConfig {
    /// Model width.
    pub d_model: usize,
    /// Number of heads; must divide `d_model`.
    pub n_heads: usize,
    /// Score of padded keys (default -1e4, burn's).
    pub min_float: f64,
    /// Projection initializer (default burn's Kaiming uniform, gain 1/√3).
    pub initializer: Initializer,
    /// Whether the four projections have a bias (default true).
    pub bias: bool,
    /// Descriptor of the projections' and matmuls' input quantizers; `None`: the
    /// `QuantLinear` class default.
    pub quant_desc_input: Option<QuantDescriptor>,
    /// Descriptor of the projections' weight quantizers; `None`: the class default.
    pub quant_desc_weight: Option<QuantDescriptor>,
}

impl burn::config::Config for QuantMultiHeadAttentionConfig {}

impl QuantMultiHeadAttentionConfig {
    /// A config for width `d_model` and `n_heads` heads with burn's defaults.
    pub fn new(d_model: usize, n_heads: usize) -> Self {
        Self {
            d_model,
            n_heads,
            min_float: -1.0e4,
            initializer: Initializer::KaimingUniform {
                gain: 1.0 / 3.0f64.sqrt(),
                fan_out_only: false,
            },
            bias: true,
            quant_desc_input: None,
            quant_desc_weight: None,
        }
    }

    /// The score of padded keys.
    pub fn with_min_float(mut self, min_float: f64) -> Self {
        self.min_float = min_float;
        self
    }

    /// The projections' initializer.
    pub fn with_initializer(mut self, initializer: Initializer) -> Self {
        self.initializer = initializer;
        self
    }

    /// Whether the projections have a bias.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    quant_desc_setters!(input, weight);

    /// Initializes the layer.
    ///
    /// # Errors
    /// `n_heads` zero or not dividing `d_model`; a `fake_quant = false` descriptor.
    pub fn init(&self, device: &Device) -> Result<QuantMultiHeadAttention> {
        if self.n_heads == 0 || !self.d_model.is_multiple_of(self.n_heads) {
            return Err(Error::Unsupported {
                what: "n_heads not dividing d_model",
                format: format!(
                    "QuantMultiHeadAttention with d_model = {} and n_heads = {}",
                    self.d_model, self.n_heads
                ),
            });
        }
        let mut linear = QuantLinearConfig::new(self.d_model, self.d_model)
            .with_bias(self.bias)
            .with_initializer(self.initializer.clone());
        linear.quant_desc_input = self.quant_desc_input.clone();
        linear.quant_desc_weight = self.quant_desc_weight.clone();
        let input = self
            .quant_desc_input
            .clone()
            .unwrap_or_else(QuantLinear::default_quant_desc_input);
        check_fake_quant(&input)?;
        let quantizer = || init_input_quantizer(&input, device);
        Ok(QuantMultiHeadAttention {
            query: linear.init(device)?,
            key: linear.init(device)?,
            value: linear.init(device)?,
            output: linear.init(device)?,
            matmul_q_input_quantizer: quantizer()?,
            matmul_k_input_quantizer: quantizer()?,
            matmul_v_input_quantizer: quantizer()?,
            matmul_a_input_quantizer: quantizer()?,
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_k: self.d_model / self.n_heads,
            min_float: self.min_float,
        })
    }
}

/// The inputs of [`QuantMultiHeadAttention::forward`] (burn's `MhaInput` with an
/// additive bias besides the padding mask).
#[derive(Clone, Debug)]
pub struct QuantMhaInput {
    /// `[B, S_q, d_model]`.
    pub query: Tensor<3>,
    /// `[B, S_k, d_model]`.
    pub key: Tensor<3>,
    /// `[B, S_k, d_model]`.
    pub value: Tensor<3>,
    /// `[B, S_k]`, true where the key is padding (burn's convention).
    pub mask_pad: Option<Tensor<2, Bool>>,
    /// Added to the scores (BERT's `(1 - mask) * min`): broadcastable to
    /// `[B, n_heads, S_q, S_k]`. Unlike `mask_pad` it exports (an `Add`).
    pub attn_bias: Option<Tensor<4>>,
}

impl QuantMhaInput {
    /// Self-attention: query, key and value are `x`.
    pub fn self_attn(x: Tensor<3>) -> Self {
        Self::new(x.clone(), x.clone(), x)
    }

    /// Attention of `query` over `key` / `value`.
    pub fn new(query: Tensor<3>, key: Tensor<3>, value: Tensor<3>) -> Self {
        Self {
            query,
            key,
            value,
            mask_pad: None,
            attn_bias: None,
        }
    }

    /// With a padding mask `[B, S_k]`.
    pub fn mask_pad(mut self, mask: Tensor<2, Bool>) -> Self {
        self.mask_pad = Some(mask);
        self
    }

    /// With an additive score bias.
    pub fn attn_bias(mut self, bias: Tensor<4>) -> Self {
        self.attn_bias = Some(bias);
        self
    }
}

/// What [`QuantMultiHeadAttention::forward`] returns.
#[derive(Clone, Debug)]
pub struct QuantMhaOutput {
    /// Attention probabilities `[B, n_heads, S_q, S_k]` (before `matmul_a`'s quantizer).
    pub weights: Tensor<4>,
    /// `[B, S_q, d_model]`.
    pub context: Tensor<3>,
}

impl QuantMultiHeadAttention {
    /// Attention as the type documentation says. A quantizer error passes the tensor
    /// through (see [`TensorQuantizer::forward`]).
    ///
    /// # Errors
    /// Inputs whose shapes do not fit (`d_model`, batch, key/value length, masks),
    /// named with their shapes.
    pub fn forward(&self, input: QuantMhaInput) -> Result<QuantMhaOutput> {
        self.check(&input)?;
        let [batch, s_q, d_model] = input.query.dims();
        let q = self.heads(self.query.forward(input.query));
        let k = self.heads(self.key.forward(input.key));
        let v = self.heads(self.value.forward(input.value));
        let scores = self
            .matmul_q_input_quantizer
            .forward(q)
            .matmul(self.matmul_k_input_quantizer.forward(k.transpose()))
            .div_scalar((self.d_k as f32).sqrt());
        let scores = match input.attn_bias {
            Some(bias) => scores + bias,
            None => scores,
        };
        let scores = match input.mask_pad {
            Some(mask) => {
                let [b, s_k] = mask.dims();
                scores.mask_fill(mask.reshape([b, 1, 1, s_k]), self.min_float)
            }
            None => scores,
        };
        let weights = softmax(scores, 3);
        let context = self
            .matmul_a_input_quantizer
            .forward(weights.clone())
            .matmul(self.matmul_v_input_quantizer.forward(v))
            .swap_dims(1, 2)
            .reshape([batch, s_q, d_model]);
        Ok(QuantMhaOutput {
            weights,
            context: self.output.forward(context),
        })
    }

    /// `[B, S, d_model]` → `[B, n_heads, S, d_k]`.
    fn heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, s, _] = x.dims();
        x.reshape([b, s, self.n_heads, self.d_k]).swap_dims(1, 2)
    }

    fn check(&self, input: &QuantMhaInput) -> Result<()> {
        let (q, k, v) = (input.query.dims(), input.key.dims(), input.value.dims());
        let mut ok = q[2] == self.d_model && k == v && k[2] == self.d_model && q[0] == k[0];
        if let Some(m) = &input.mask_pad {
            ok &= m.dims() == [k[0], k[1]];
        }
        if let Some(b) = &input.attn_bias {
            let want = [q[0], self.n_heads, q[1], k[1]];
            ok &= b.dims().iter().zip(want).all(|(&d, w)| d == 1 || d == w);
        }
        if ok {
            return Ok(());
        }
        Err(Error::Unsupported {
            what: "these input shapes",
            format: format!(
                "QuantMultiHeadAttention (d_model {}, {} heads): query {q:?}, key {k:?}, \
                 value {v:?}, mask_pad {:?}, attn_bias {:?}",
                self.d_model,
                self.n_heads,
                input.mask_pad.as_ref().map(|m| m.dims()),
                input.attn_bias.as_ref().map(|b| b.dims()),
            ),
        })
    }
}
