//! torchvision's ResNets (`resnet18/34/50`, BasicBlock and Bottleneck) on qdq's drop-in
//! layers, with the seed's `quantize` flag: convolutions, the average pool and the
//! classifier become `QuantConv2d` / `QuantAdaptiveAvgPool2d` / `QuantLinear`, and every
//! block gets a `residual_quantizer` on its identity branch so that TensorRT can fuse
//! the residual add into the block's last convolution.
//!
//! Parameter names are torchvision's (`conv1.weight`, `layer1.0.bn1.running_mean`,
//! `fc.bias`), except `downsample.0`/`downsample.1`, which are `downsample.conv` and
//! `downsample.bn` here; [`ResNet::load_torchvision`] maps them (and BatchNorm's
//! `weight`/`bias` to burn's `gamma`/`beta`) when it reads a torchvision checkpoint.
//!
//! A small-input variant (3x3 stride-1 stem, no max pool, configurable width) suits
//! 28x28 images such as Fashion-MNIST.

use std::path::Path;

use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use qdq::nn::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, Conv2d, Conv2dConfig, Linear, LinearConfig,
    MaxPool2d, MaxPool2dConfig, TensorQuantizer,
};
use qdq::quant_modules::Replacement;
use qdq::tensor_quant::{CalibMethod, QuantDescriptor};
use serde::{Deserialize, Serialize};

/// BasicBlock (two 3x3 convolutions, expansion 1) or Bottleneck (1x1, 3x3, 1x1,
/// expansion 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockKind {
    /// ResNet-18/34's block.
    Basic,
    /// ResNet-50/101/152's block.
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> usize {
        match self {
            Self::Basic => 1,
            Self::Bottleneck => 4,
        }
    }
}

/// The descriptors a quantized ResNet is built with.
#[derive(Config, Debug, PartialEq)]
pub struct QuantScheme {
    /// Input descriptor of every convolution, the pool, the classifier and the
    /// residual quantizers.
    pub input: QuantDescriptor,
    /// Weight descriptor of convolutions and the classifier (per output channel).
    pub weight: QuantDescriptor,
}

impl QuantScheme {
    /// The seed's: 8-bit histogram-calibrated activations, 8-bit per-channel max
    /// weights.
    pub fn seed() -> Self {
        Self::with_bits(8, 8)
    }

    /// `weight_bits` per-channel weights, `input_bits` histogram-calibrated
    /// activations (e.g. 4-bit weights with 8-bit activations).
    ///
    /// # Panics
    /// A width outside 1..=16 (a programming error, not input).
    pub fn with_bits(weight_bits: u32, input_bits: u32) -> Self {
        let input = QuantDescriptor::builder()
            .num_bits(input_bits)
            .calib_method(CalibMethod::Histogram)
            .build()
            .expect("valid activation descriptor");
        let weight = QuantDescriptor::builder()
            .num_bits(weight_bits)
            .axis([0])
            .build()
            .expect("valid weight descriptor");
        Self { input, weight }
    }

    fn layer(&self) -> Replacement {
        Replacement::new()
            .with_quant_desc_input(self.input.clone())
            .with_quant_desc_weight(self.weight.clone())
    }

    fn pool(&self) -> Replacement {
        Replacement::new().with_quant_desc_input(self.input.clone())
    }
}

/// A ResNet's shape: `ResNetConfig::resnet18(1000)`, or any block/depth/width.
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Block type.
    pub block: BlockKind,
    /// Blocks per stage (4 stages).
    pub layers: [usize; 4],
    /// Classifier outputs.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Channels of the stem and the first stage (torchvision: 64); stages double it.
    #[config(default = 64)]
    pub width: usize,
    /// 3x3 stride-1 stem without max pool, for small images (28x28, 32x32).
    #[config(default = false)]
    pub small_input: bool,
    /// Build quantized (the seed's `quantize=True`) with these descriptors.
    #[config(default = "None")]
    pub quantize: Option<QuantScheme>,
}

impl ResNetConfig {
    /// torchvision's `resnet18`.
    pub fn resnet18(num_classes: usize) -> Self {
        Self::new(BlockKind::Basic, [2, 2, 2, 2]).with_num_classes(num_classes)
    }

    /// torchvision's `resnet34`.
    pub fn resnet34(num_classes: usize) -> Self {
        Self::new(BlockKind::Basic, [3, 4, 6, 3]).with_num_classes(num_classes)
    }

    /// torchvision's `resnet50`.
    pub fn resnet50(num_classes: usize) -> Self {
        Self::new(BlockKind::Bottleneck, [3, 4, 6, 3]).with_num_classes(num_classes)
    }

    /// Builds the model: float, or quantized when [`ResNetConfig::quantize`] is set.
    ///
    /// # Errors
    /// Descriptors the layers cannot use (see [`qdq::nn::DropIn::quantize_with`]).
    pub fn init(&self, device: &Device) -> qdq::Result<ResNet> {
        let w = self.width;
        let (k, s, p) = if self.small_input {
            (3, 1, 1)
        } else {
            (7, 2, 3)
        };
        let mut in_planes = w;
        let mut stages = Vec::with_capacity(4);
        for (i, &blocks) in self.layers.iter().enumerate() {
            let planes = w << i;
            let stride = if i == 0 { 1 } else { 2 };
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let stride = if b == 0 { stride } else { 1 };
                stage.push(Block::new(self.block, in_planes, planes, stride, device));
                in_planes = planes * self.block.expansion();
            }
            stages.push(stage);
        }
        let [layer1, layer2, layer3, layer4]: [Vec<Block>; 4] =
            stages.try_into().expect("four stages");
        let model = ResNet {
            conv1: conv(self.in_channels, w, k, s, p, device),
            bn1: BatchNormConfig::new(w).init(device),
            maxpool: (!self.small_input).then(|| {
                MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init()
            }),
            layer1,
            layer2,
            layer3,
            layer4,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(in_planes, self.num_classes).init(device),
        };
        match &self.quantize {
            Some(scheme) => model.quantize(scheme),
            None => Ok(model),
        }
    }
}

/// A 2-D convolution without bias, torchvision's initialization (Kaiming normal,
/// fan out, ReLU gain).
fn conv(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(device)
}

/// The 1x1 convolution and BatchNorm that match the identity to a block's output
/// (torchvision's `downsample`, a `Sequential`).
#[derive(Module, Debug)]
pub struct Downsample {
    /// `downsample.0` in torchvision.
    pub conv: Conv2d,
    /// `downsample.1` in torchvision.
    pub bn: BatchNorm,
}

/// A residual block: BasicBlock (`conv3`/`bn3` absent) or Bottleneck.
#[derive(Module, Debug)]
pub struct Block {
    /// First convolution (3x3 for Basic, 1x1 for Bottleneck).
    pub conv1: Conv2d,
    /// Its BatchNorm.
    pub bn1: BatchNorm,
    /// Second convolution (3x3, carries the stride).
    pub conv2: Conv2d,
    /// Its BatchNorm.
    pub bn2: BatchNorm,
    /// Bottleneck's 1x1 expansion.
    pub conv3: Option<Conv2d>,
    /// Its BatchNorm.
    pub bn3: Option<BatchNorm>,
    /// Projection of the identity when the shape changes.
    pub downsample: Option<Downsample>,
    /// Quantizes the identity branch before the add (quantized models only).
    pub residual_quantizer: Option<TensorQuantizer>,
}

impl Block {
    fn new(
        kind: BlockKind,
        in_planes: usize,
        planes: usize,
        stride: usize,
        device: &Device,
    ) -> Self {
        let out = planes * kind.expansion();
        let bn = |c| BatchNormConfig::new(c).init(device);
        let downsample = (stride != 1 || in_planes != out).then(|| Downsample {
            conv: conv(in_planes, out, 1, stride, 0, device),
            bn: bn(out),
        });
        let (conv1, conv2, conv3) = match kind {
            BlockKind::Basic => (
                conv(in_planes, planes, 3, stride, 1, device),
                conv(planes, planes, 3, 1, 1, device),
                None,
            ),
            BlockKind::Bottleneck => (
                conv(in_planes, planes, 1, 1, 0, device),
                conv(planes, planes, 3, stride, 1, device),
                Some(conv(planes, out, 1, 1, 0, device)),
            ),
        };
        Self {
            conv1,
            bn1: bn(planes),
            conv2,
            bn2: bn(planes),
            bn3: conv3.as_ref().map(|_| bn(out)),
            conv3,
            downsample,
            residual_quantizer: None,
        }
    }

    /// The block's forward, as torchvision's (with the seed's residual quantizer).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let mut out = relu(self.bn1.forward(self.conv1.forward(x)));
        out = self.bn2.forward(self.conv2.forward(out));
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = bn3.forward(conv3.forward(relu(out)));
        }
        let identity = match &self.residual_quantizer {
            Some(q) => q.forward(identity),
            None => identity,
        };
        relu(out + identity)
    }

    fn quantize(self, scheme: &QuantScheme, device: &Device) -> qdq::Result<Self> {
        let layer = || scheme.layer();
        Ok(Self {
            conv1: self.conv1.quantize_with(layer())?,
            conv2: self.conv2.quantize_with(layer())?,
            conv3: self.conv3.map(|c| c.quantize_with(layer())).transpose()?,
            downsample: self
                .downsample
                .map(|d| {
                    Ok::<_, qdq::Error>(Downsample {
                        conv: d.conv.quantize_with(layer())?,
                        bn: d.bn,
                    })
                })
                .transpose()?,
            residual_quantizer: Some(match self.residual_quantizer {
                Some(q) => q,
                None => TensorQuantizer::new(&scheme.input, device)?,
            }),
            ..self
        })
    }
}

/// torchvision's ResNet.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution.
    pub conv1: Conv2d,
    /// Stem BatchNorm.
    pub bn1: BatchNorm,
    /// Stem max pool (absent in the small-input variant); float, as in the seed.
    pub maxpool: Option<MaxPool2d>,
    /// Stage 1.
    pub layer1: Vec<Block>,
    /// Stage 2.
    pub layer2: Vec<Block>,
    /// Stage 3.
    pub layer3: Vec<Block>,
    /// Stage 4.
    pub layer4: Vec<Block>,
    /// Global average pool.
    pub avgpool: AdaptiveAvgPool2d,
    /// Classifier.
    pub fc: Linear,
}

impl ResNet {
    /// Logits for `[batch, channels, height, width]` images.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.bn1.forward(self.conv1.forward(x)));
        if let Some(pool) = &self.maxpool {
            x = pool.forward(x);
        }
        for block in self.blocks() {
            x = block.forward(x);
        }
        let x: Tensor<2> = self.avgpool.forward(x).flatten(1, 3);
        self.fc.forward(x)
    }

    /// Every block, stage by stage.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
    }

    /// Whether the model was built or converted quantized.
    pub fn is_quantized(&self) -> bool {
        self.conv1.is_quantized()
    }

    /// The quantized version of this model, keeping every parameter (the usual PTQ
    /// start: train or load float, then quantize). Layers already quantized stay as
    /// they are.
    ///
    /// # Errors
    /// Descriptors the layers cannot use.
    pub fn quantize(self, scheme: &QuantScheme) -> qdq::Result<Self> {
        let device = self.bn1.gamma.lazy_device();
        let stage = |blocks: Vec<Block>| {
            blocks
                .into_iter()
                .map(|b| b.quantize(scheme, &device))
                .collect::<qdq::Result<Vec<_>>>()
        };
        Ok(Self {
            conv1: self.conv1.quantize_with(scheme.layer())?,
            layer1: stage(self.layer1)?,
            layer2: stage(self.layer2)?,
            layer3: stage(self.layer3)?,
            layer4: stage(self.layer4)?,
            avgpool: self.avgpool.quantize_with(scheme.pool())?,
            fc: self.fc.quantize_with(scheme.layer())?,
            ..self
        })
    }

    /// The same model with every per-tensor (activation and residual) quantizer's
    /// range made learnable from its calibrated amax
    /// ([`TensorQuantizer::to_learnable`]); weight quantizers stay fixed. For QAT with
    /// learned amax.
    ///
    /// # Errors
    /// A quantizer without amax (calibrate first).
    pub fn with_learnable_amax(self) -> qdq::Result<Self> {
        fn learn(q: &mut TensorQuantizer) -> qdq::Result<()> {
            *q = q.to_learnable()?;
            Ok(())
        }
        fn conv(c: &mut Conv2d) -> qdq::Result<()> {
            c.as_quant_mut()
                .map_or(Ok(()), |q| learn(&mut q._input_quantizer))
        }
        let mut m = self;
        conv(&mut m.conv1)?;
        for stage in [&mut m.layer1, &mut m.layer2, &mut m.layer3, &mut m.layer4] {
            for b in stage.iter_mut() {
                conv(&mut b.conv1)?;
                conv(&mut b.conv2)?;
                if let Some(c) = b.conv3.as_mut() {
                    conv(c)?;
                }
                if let Some(d) = b.downsample.as_mut() {
                    conv(&mut d.conv)?;
                }
                if let Some(q) = b.residual_quantizer.as_mut() {
                    learn(q)?;
                }
            }
        }
        if let Some(p) = m.avgpool.as_quant_mut() {
            learn(&mut p._input_quantizer)?;
        }
        if let Some(fc) = m.fc.as_quant_mut() {
            learn(&mut fc._input_quantizer)?;
        }
        Ok(m)
    }

    /// Saves the parameters in torchvision's names and layouts (safetensors), the
    /// inverse of [`ResNet::load_torchvision`]; quantizers' `_amax` are saved too.
    /// Written atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save_torchvision(&self, path: &Path) -> Result<(), LoadError> {
        use burn::store::{BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, SafetensorsStore};
        let remap = KeyRemapper::new()
            .add_pattern(r"downsample\.conv\.", "downsample.0.")
            .and_then(|r| r.add_pattern(r"downsample\.bn\.", "downsample.1."))
            .expect("valid patterns");
        let fail = |why: String| LoadError::Format {
            path: path.display().to_string(),
            why,
        };
        // In memory first, then one atomic write: never a half-written checkpoint.
        let mut store = SafetensorsStore::from_bytes(None)
            .remap(remap)
            .with_to_adapter(BurnToPyTorchAdapter);
        self.save_into(&mut store)
            .map_err(|e| fail(e.to_string()))?;
        let bytes = store.get_bytes().map_err(|e| fail(e.to_string()))?;
        qdq::io::write_atomic(path, &bytes).map_err(|e| fail(e.to_string()))
    }

    /// Loads a torchvision checkpoint (safetensors, or PyTorch's `.pt`/`.pth`) by
    /// name into this model, which must be float and of the same shape: BatchNorm
    /// `weight`/`bias` become `gamma`/`beta`, `downsample.0/1` become
    /// `downsample.conv/bn`, Linear weights are transposed to burn's layout, and
    /// `num_batches_tracked` is ignored. Quantize afterwards with
    /// [`ResNet::quantize`].
    ///
    /// # Errors
    /// An unreadable file, a tensor of the wrong shape, or a parameter of the model
    /// that the file lacks (each named).
    pub fn load_torchvision(mut self, path: &Path) -> Result<Self, LoadError> {
        use burn::store::{
            KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
        };
        let remap = KeyRemapper::new()
            .add_pattern(r"downsample\.0\.", "downsample.conv.")
            .and_then(|r| r.add_pattern(r"downsample\.1\.", "downsample.bn."))
            .expect("valid patterns");
        let bad = |e: &dyn std::fmt::Display| LoadError::Format {
            path: path.display().to_string(),
            why: e.to_string(),
        };
        let result = if path.extension().is_some_and(|e| e == "safetensors") {
            let mut store = SafetensorsStore::from_file(path)
                .remap(remap)
                .with_from_adapter(PyTorchToBurnAdapter)
                .allow_partial(true);
            self.load_from(&mut store).map_err(|e| bad(&e))?
        } else {
            let mut store = PytorchStore::from_file(path)
                .remap(remap)
                .allow_partial(true);
            self.load_from(&mut store).map_err(|e| bad(&e))?
        };
        if let Some(e) = result.errors.first() {
            return Err(bad(e));
        }
        if !result.missing.is_empty() {
            return Err(LoadError::Missing {
                path: path.display().to_string(),
                names: result.missing.into_iter().map(|(n, _)| n).collect(),
            });
        }
        Ok(self)
    }
}

/// Why a torchvision checkpoint did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Unreadable, not a checkpoint, or a tensor of the wrong shape.
    #[error("cannot load the checkpoint {path}: {why}")]
    Format {
        /// The checkpoint.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// The checkpoint lacks some of the model's parameters.
    #[error("{path} lacks {} of the model's parameters: {} (is it a checkpoint of the same architecture and width?)", names.len(), names.join(", "))]
    Missing {
        /// The checkpoint.
        path: String,
        /// The model's parameter names it lacks.
        names: Vec<String>,
    },
}
