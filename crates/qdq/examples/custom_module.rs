//! Quantizing layers qdq does not ship, the three ways of the guide's "Creating
//! Custom Quantized Modules":
//!
//! 1. input only: `QuantLayerNorm`, a burn `LayerNorm` behind an input quantizer
//!    ([`QuantInputMixin`]);
//! 2. input and weight: `QuantPRelu`, whose per-channel slopes are quantized too
//!    ([`QuantMixin`]);
//! 3. a [`TensorQuantizer`] placed directly before a functional op.
//!
//! `cargo run --example custom_module`

use std::sync::LazyLock;

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, PRelu, PReluConfig};
use burn::prelude::*;
use burn::tensor::activation::prelu;
use burn::tensor::module::adaptive_avg_pool2d;
use qdq::nn::{
    DefaultQuantDesc, QuantInputMixin, QuantLinear, QuantMixin, TensorQuantizer,
    init_input_quantizer, init_quantizers, pop_quant_desc_input,
};
use qdq::tensor_quant::{QUANT_DESC_8BIT_PER_TENSOR, QuantDescriptor};

/// 1. A layer norm on a quantized input.
#[derive(Module, Debug)]
struct QuantLayerNorm {
    norm: LayerNorm,
    /// The name makes the record path `..._input_quantizer._amax`, as the reference's.
    _input_quantizer: TensorQuantizer,
}

impl QuantLayerNorm {
    /// `quant_desc_input = None` takes the class default (`pop_quant_desc_in_kwargs`).
    fn new(
        d_model: usize,
        quant_desc_input: Option<QuantDescriptor>,
        device: &Device,
    ) -> qdq::Result<Self> {
        let desc = pop_quant_desc_input::<Self>(quant_desc_input);
        Ok(Self {
            norm: LayerNormConfig::new(d_model).init(device),
            // Rejects `fake_quant = false`, as the reference's `init_quantizer`.
            _input_quantizer: init_input_quantizer(&desc, device)?,
        })
    }

    fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.norm.forward(self._input_quantizer.forward(input))
    }
}

impl QuantInputMixin for QuantLayerNorm {
    fn input_default() -> &'static DefaultQuantDesc {
        // The class's own default, changed by `QuantLayerNorm::set_default_quant_desc_input`.
        static DEFAULT: DefaultQuantDesc = DefaultQuantDesc::new(&QUANT_DESC_8BIT_PER_TENSOR);
        &DEFAULT
    }

    fn input_quantizer(&self) -> &TensorQuantizer {
        &self._input_quantizer
    }

    fn input_quantizer_mut(&mut self) -> &mut TensorQuantizer {
        &mut self._input_quantizer
    }
}

/// The slopes are quantized per channel (axis 0 of `[C]`) by default.
static ALPHA_PER_CHANNEL: LazyLock<QuantDescriptor> = LazyLock::new(|| {
    QuantDescriptor::builder()
        .axis([0])
        .build()
        .expect("a valid descriptor")
});

/// 2. A parametric ReLU with quantized input and slopes.
#[derive(Module, Debug)]
struct QuantPRelu {
    alpha: Param<Tensor<1>>,
    _input_quantizer: TensorQuantizer,
    _weight_quantizer: TensorQuantizer,
}

impl QuantPRelu {
    /// Quantizes a float `PRelu`, keeping its slopes.
    fn from_float(
        layer: PRelu,
        quant_desc_input: Option<QuantDescriptor>,
        quant_desc_weight: Option<QuantDescriptor>,
    ) -> qdq::Result<Self> {
        let dims = layer.alpha.lazy_shape();
        let device = layer.alpha.lazy_device();
        // Resolves the descriptors against the class defaults, rejects real
        // quantization, and sizes the per-channel amax to the slopes.
        let (_input_quantizer, _weight_quantizer) = init_quantizers::<Self>(
            quant_desc_input,
            quant_desc_weight,
            dims.as_slice(),
            &device,
        )?;
        Ok(Self {
            alpha: layer.alpha,
            _input_quantizer,
            _weight_quantizer,
        })
    }

    fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let input = self._input_quantizer.forward(input);
        let alpha = self._weight_quantizer.forward(self.alpha.val());
        prelu(input, alpha)
    }
}

impl QuantInputMixin for QuantPRelu {
    fn input_default() -> &'static DefaultQuantDesc {
        static DEFAULT: DefaultQuantDesc = DefaultQuantDesc::new(&QUANT_DESC_8BIT_PER_TENSOR);
        &DEFAULT
    }

    fn input_quantizer(&self) -> &TensorQuantizer {
        &self._input_quantizer
    }

    fn input_quantizer_mut(&mut self) -> &mut TensorQuantizer {
        &mut self._input_quantizer
    }
}

impl QuantMixin for QuantPRelu {
    fn weight_default() -> &'static DefaultQuantDesc {
        static DEFAULT: DefaultQuantDesc = DefaultQuantDesc::new(&ALPHA_PER_CHANNEL);
        &DEFAULT
    }

    fn weight_quantizer(&self) -> &TensorQuantizer {
        &self._weight_quantizer
    }

    fn weight_quantizer_mut(&mut self) -> &mut TensorQuantizer {
        &mut self._weight_quantizer
    }
}

/// Deterministic values in [-1, 1).
fn data<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 37 + 11) % 101) as f32 / 50.5 - 1.0)
        .collect();
    Tensor::from_data(burn::tensor::TensorData::new(v, shape), device)
}

/// Values with four decimals.
fn show<const D: usize>(t: Tensor<D>) -> String {
    let v = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    let items: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
    format!("[{}]", items.join(", "))
}

fn main() -> qdq::Result<()> {
    let device = Device::flex();

    // 1. Input only, with a 4-bit class default.
    QuantLayerNorm::set_default_quant_desc_input(QuantDescriptor::builder().num_bits(4).build()?);
    let norm = QuantLayerNorm::new(4, None, &device)?;
    let x = data([2, 4], &device);
    println!("{}", norm.input_quantizer());
    println!("x                  = {}", show(x.clone()));
    println!("layer_norm(q4(x))  = {}", show(norm.forward(x)));

    // 2. Input and weight. The slopes' class default is per channel (one amax per
    // slope, so each slope is kept exactly); a 4-bit per-tensor descriptor shows
    // the grid.
    let mut float = PReluConfig::new().with_num_parameters(3).init(&device);
    float.alpha = Param::from_tensor(Tensor::from_floats([0.1, 0.2345, 0.3337], &device));
    let slopes_4bit = QuantDescriptor::builder().num_bits(4).build()?;
    let act = QuantPRelu::from_float(float, None, Some(slopes_4bit))?;
    let x = data([1, 3, 4], &device);
    println!("\n{}", act.weight_quantizer());
    println!("alpha              = {}", show(act.alpha.val()));
    println!(
        "q4(alpha)          = {}",
        show(act._weight_quantizer.forward(act.alpha.val()))
    );
    println!("prelu(q(x), q4(a)) = {}", show(act.forward(x)));

    // 3. A quantizer straight into a functional op (the guide's last example).
    let quantizer = TensorQuantizer::new(&QuantLinear::default_quant_desc_input(), &device)?;
    let test_input = data([1, 5, 5, 5], &device);
    let out = adaptive_avg_pool2d(quantizer.forward(test_input), [3, 3]);
    println!("\n{quantizer}");
    println!("adaptive_avg_pool2d(q(x), 3) has shape {:?}", out.dims());
    println!("channel 0          = {}", show(out.slice([0..1, 0..1])));
    Ok(())
}
