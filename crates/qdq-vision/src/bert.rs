//! A BERT-style sentence encoder on qdq's layers, quantized the way pytorch-quantization's
//! users quantize BERT (`QDQBert`): every linear layer a `QuantLinear` (8-bit per-tensor
//! input, per-row weight), quantizers in front of both attention matmuls
//! ([`QuantMultiHeadAttention`]), embeddings, LayerNorm, softmax and GELU float.
//!
//! Post-LN BERT layers, mean pooling over the unpadded tokens (sentence-transformers'
//! pooling). [`Bert::load_hf`] loads a Hugging Face checkpoint (safetensors, PyTorch
//! names and layouts, e.g. paraphrase-MiniLM-L3-v2 as `bench/bert/prepare.py` writes
//! it) through burn-store's key remapping.

use std::path::Path;

use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;
use qdq::nn::{
    QuantLinear, QuantLinearConfig, QuantMhaInput, QuantMultiHeadAttention,
    QuantMultiHeadAttentionConfig, named_quantizers,
};

use crate::resnet::{LoadError, QuantScheme};

/// The shape of a [`Bert`].
#[derive(Config, Debug)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Longest sequence (position embeddings).
    pub max_position: usize,
    /// Token types.
    #[config(default = 2)]
    pub type_vocab_size: usize,
    /// Hidden width.
    pub d_model: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Layers.
    pub n_layers: usize,
    /// LayerNorm epsilon (BERT's 1e-12).
    #[config(default = 1e-12)]
    pub layer_norm_eps: f64,
    /// Descriptors; `None`: FP32 (every quantizer disabled).
    pub quantize: Option<QuantScheme>,
}

impl BertConfig {
    /// paraphrase-MiniLM-L3-v2: 3 layers, width 384, 12 heads, FFN 1536, BERT's
    /// uncased vocabulary.
    pub fn minilm_l3() -> Self {
        Self::new(30522, 512, 384, 12, 1536, 3)
    }

    /// Initializes the encoder (random weights, burn's initializers).
    ///
    /// # Errors
    /// Heads not dividing the width; a bad descriptor.
    pub fn init(&self, device: &Device) -> qdq::Result<Bert> {
        let (input, weight) = match &self.quantize {
            Some(s) => (Some(s.input.clone()), Some(s.weight.clone())),
            None => (None, None),
        };
        let linear = |i, o| {
            let mut c = QuantLinearConfig::new(i, o);
            c.quant_desc_input = input.clone();
            c.quant_desc_weight = weight.clone();
            c.init(device)
        };
        let norm = || {
            LayerNormConfig::new(self.d_model)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let mut attention = QuantMultiHeadAttentionConfig::new(self.d_model, self.n_heads);
        attention.quant_desc_input = input.clone();
        attention.quant_desc_weight = weight.clone();
        let layers = (0..self.n_layers)
            .map(|_| {
                Ok(BertLayer {
                    attention: attention.init(device)?,
                    attention_norm: norm(),
                    intermediate: linear(self.d_model, self.d_ff)?,
                    output: linear(self.d_ff, self.d_model)?,
                    output_norm: norm(),
                })
            })
            .collect::<qdq::Result<Vec<_>>>()?;
        let embed = |n| EmbeddingConfig::new(n, self.d_model).init(device);
        let model = Bert {
            embeddings: BertEmbeddings {
                word_embeddings: embed(self.vocab_size),
                position_embeddings: embed(self.max_position),
                token_type_embeddings: embed(self.type_vocab_size),
                norm: norm(),
            },
            layers,
        };
        if self.quantize.is_none() {
            for q in named_quantizers(&model) {
                q.handle.disable();
            }
        }
        Ok(model)
    }
}

/// Word, position and token-type embeddings, summed, then LayerNorm.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `[vocab_size, d_model]`.
    pub word_embeddings: Embedding,
    /// `[max_position, d_model]`.
    pub position_embeddings: Embedding,
    /// `[type_vocab_size, d_model]`.
    pub token_type_embeddings: Embedding,
    /// Float LayerNorm (HF `embeddings.LayerNorm`).
    pub norm: LayerNorm,
}

/// One post-LN encoder layer: `x = norm(x + attn(x)); x = norm(x + W₂·gelu(W₁·x))`.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Self-attention (HF `attention.self.*` and `attention.output.dense`).
    pub attention: QuantMultiHeadAttention,
    /// HF `attention.output.LayerNorm`.
    pub attention_norm: LayerNorm,
    /// HF `intermediate.dense`, `d_model → d_ff`.
    pub intermediate: QuantLinear,
    /// HF `output.dense`, `d_ff → d_model`.
    pub output: QuantLinear,
    /// HF `output.LayerNorm`.
    pub output_norm: LayerNorm,
}

/// The encoder with mean pooling.
#[derive(Module, Debug)]
pub struct Bert {
    /// Embeddings.
    pub embeddings: BertEmbeddings,
    /// Encoder layers (HF `encoder.layer.N`).
    pub layers: Vec<BertLayer>,
}

impl BertLayer {
    fn forward(&self, x: Tensor<3>, attn_bias: Option<Tensor<4>>) -> qdq::Result<Tensor<3>> {
        let mut input = QuantMhaInput::self_attn(x.clone());
        input.attn_bias = attn_bias;
        let a = self.attention.forward(input)?.context;
        let x = self.attention_norm.forward(a + x);
        let h = self
            .output
            .forward(gelu(self.intermediate.forward(x.clone())));
        Ok(self.output_norm.forward(h + x))
    }
}

impl Bert {
    /// Embeddings of token ids `[B, S]` (token type 0): `[B, S, d_model]`.
    ///
    /// # Errors
    /// A sequence longer than the position table, or an id outside the vocabulary
    /// (named with the largest id).
    pub fn embed(&self, ids: Tensor<2, Int>) -> qdq::Result<Tensor<3>> {
        let e = &self.embeddings;
        let [b, s] = ids.dims();
        let [vocab, _] = e.word_embeddings.weight.dims();
        let [positions, _] = e.position_embeddings.weight.dims();
        let (lo, hi) = (
            ids.clone().min().into_scalar::<i64>(),
            ids.clone().max().into_scalar::<i64>(),
        );
        if s > positions || lo < 0 || hi >= vocab as i64 {
            return Err(qdq::Error::Unsupported {
                what: "these token ids",
                format: format!(
                    "Bert (vocabulary {vocab}, {positions} positions): ids [{b}, {s}] in {lo}..={hi}"
                ),
            });
        }
        let device = ids.device();
        let pos = Tensor::<1, Int>::arange(0..s as i64, &device)
            .reshape([1, s])
            .expand([b, s]);
        let types = Tensor::<2, Int>::zeros([b, s], &device);
        let x = e.word_embeddings.forward(ids)
            + e.position_embeddings.forward(pos)
            + e.token_type_embeddings.forward(types);
        Ok(e.norm.forward(x))
    }

    /// The encoder layers on embeddings `[B, S, d_model]`; `mask` `[B, S]` is 1 for
    /// tokens, 0 for padding (HF's `attention_mask`).
    ///
    /// # Errors
    /// Shapes that do not fit (see [`QuantMultiHeadAttention::forward`]).
    pub fn encode(&self, x: Tensor<3>, mask: Option<Tensor<2>>) -> qdq::Result<Tensor<3>> {
        // HF's extended mask: (1 - mask) * min, added to every head's scores.
        let bias = mask.map(|m| {
            let [b, s] = m.dims();
            let min = self
                .layers
                .first()
                .map_or(-1.0e4, |l| l.attention.min_float);
            m.neg()
                .add_scalar(1.0)
                .mul_scalar(min)
                .reshape([b, 1, 1, s])
        });
        let mut x = x;
        for layer in &self.layers {
            x = layer.forward(x, bias.clone())?;
        }
        Ok(x)
    }

    /// Sentence embeddings `[B, d_model]`: the mean of the encoded tokens that `mask`
    /// keeps (sentence-transformers' mean pooling).
    ///
    /// # Errors
    /// As [`Bert::embed`] and [`Bert::encode`].
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> qdq::Result<Tensor<2>> {
        let x = self.embed(ids)?;
        let h = self.encode(x, Some(mask.clone()))?;
        let m = mask.unsqueeze_dim::<3>(2);
        let sum = (h * m.clone()).sum_dim(1).squeeze_dim::<2>(1);
        Ok(sum / m.sum_dim(1).squeeze_dim::<2>(1).clamp_min(1e-9))
    }

    /// The exported part: encoder layers and mean pooling on unpadded embeddings
    /// `[B, S, d_model]` → `[B, d_model]` (ONNX export has one float input; the
    /// embedding lookup stays outside, as TensorRT BERT deployments keep it).
    ///
    /// # Panics
    /// A width other than `d_model` (check before tracing).
    pub fn forward_embedded(&self, x: Tensor<3>) -> Tensor<2> {
        let h = self
            .encode(x, None)
            .expect("embeddings of the model's width");
        h.mean_dim(1).squeeze_dim::<2>(1)
    }

    /// Loads a Hugging Face BERT checkpoint (safetensors; the `bert.` or
    /// `model.0.auto_model.` prefix optional) into this model of the same shape.
    /// Linear weights keep PyTorch's `[out, in]` layout, which `QuantLinear` uses.
    ///
    /// # Errors
    /// An unreadable file, a tensor of the wrong shape, or a parameter the file lacks
    /// (each named).
    pub fn load_hf(mut self, path: &Path) -> Result<Self, LoadError> {
        use burn::store::{KeyRemapper, ModuleSnapshot, SafetensorsStore};
        let layer = r"^encoder\.layer\.(\d+)\.";
        let patterns: Vec<(String, String)> = [
            (r"^(bert|model\.0\.auto_model)\.", ""),
            (r"^embeddings\.LayerNorm\.", "embeddings.norm."),
            (r"attention\.self\.", "layers.$1.attention."),
            (r"attention\.output\.dense\.", "layers.$1.attention.output."),
            (
                r"attention\.output\.LayerNorm\.",
                "layers.$1.attention_norm.",
            ),
            (r"intermediate\.dense\.", "layers.$1.intermediate."),
            (r"output\.dense\.", "layers.$1.output."),
            (r"output\.LayerNorm\.", "layers.$1.output_norm."),
            (r"norm\.weight$", "norm.gamma"),
            (r"norm\.bias$", "norm.beta"),
        ]
        .into_iter()
        .enumerate()
        // Patterns 2..8 rename a layer's parts: anchored after `encoder.layer.N.`.
        .map(|(i, (from, to))| {
            let from = if (2..8).contains(&i) {
                format!("{layer}{from}")
            } else {
                from.to_string()
            };
            (from, to.to_string())
        })
        .collect();
        let remap = KeyRemapper::from_patterns(patterns).expect("valid patterns");
        let bad = |e: &dyn std::fmt::Display| LoadError::Format {
            path: path.display().to_string(),
            why: e.to_string(),
        };
        let mut store = SafetensorsStore::from_file(path)
            .remap(remap)
            .allow_partial(true);
        let result = self.load_from(&mut store).map_err(|e| bad(&e))?;
        if let Some(e) = result.errors.first() {
            return Err(bad(e));
        }
        // Quantizers' amax are not in a float checkpoint; every parameter is.
        let missing: Vec<String> = result
            .missing
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| !n.ends_with("_amax"))
            .collect();
        if !missing.is_empty() {
            return Err(LoadError::Missing {
                path: path.display().to_string(),
                names: missing,
            });
        }
        Ok(self)
    }
}
