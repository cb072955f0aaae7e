//! A small CNN of qdq layers through the seed's PTQ workflow: histogram calibration
//! of activations, max of weights, amax by several methods from one collection,
//! the summary table, and save/load in burn records and safetensors.

mod common;

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::activation::relu;
use common::{Lcg, bits, dev, tensor, values};
use qdq::Error;
use qdq::calib::HistogramMethod;
use qdq::nn::*;
use qdq::tensor_quant::{CalibMethod, QuantDescriptor};

/// A parameter shaped and placed like `p`, uniform in ±1/sqrt(`fan_in`) from `rng`.
fn uniform_like<const D: usize>(
    p: &burn::module::Param<Tensor<D>>,
    fan_in: usize,
    rng: &mut Lcg,
) -> burn::module::Param<Tensor<D>> {
    let t = p.val();
    let (shape, device) = (t.dims(), t.device());
    let bound = 1.0 / (fan_in as f32).sqrt();
    let v = rng.vec(shape.iter().product(), -bound, bound);
    burn::module::Param::from_tensor(tensor(v, shape, &device))
}

#[derive(Module, Debug)]
struct Cnn {
    conv1: QuantConv2d,
    pool: QuantMaxPool2d,
    conv2: QuantConv2d,
    gap: QuantAdaptiveAvgPool2d,
    fc: QuantLinear,
}

impl Cnn {
    /// The same network with weights and biases drawn from `Lcg(seed)`, uniform in
    /// ±1/sqrt(fan_in), not from burn's global RNG, which tests running in parallel
    /// share (so a training curve is the same in every run).
    fn with_fixed_weights(mut self, seed: u64) -> Self {
        let mut rng = Lcg(seed);
        self.conv1.weight = uniform_like(&self.conv1.weight, 9, &mut rng);
        self.conv2.weight = uniform_like(&self.conv2.weight, 36, &mut rng);
        self.fc.weight = uniform_like(&self.fc.weight, 8, &mut rng);
        for (bias, fan_in) in [
            (&mut self.conv1.bias, 9),
            (&mut self.conv2.bias, 36),
            (&mut self.fc.bias, 8),
        ] {
            *bias = bias.as_ref().map(|b| uniform_like(b, fan_in, &mut rng));
        }
        self
    }

    fn new(device: &Device) -> Self {
        let hist = QuantDescriptor::builder()
            .calib_method(CalibMethod::Histogram)
            .build()
            .unwrap();
        let conv = |cin, cout| {
            QuantConv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_quant_desc_input(hist.clone())
                .init(device)
                .unwrap()
        };
        Self {
            conv1: conv(1, 4),
            pool: QuantMaxPool2dConfig::new([2, 2])
                .with_quant_desc_input(hist.clone())
                .init(device)
                .unwrap(),
            conv2: conv(4, 8),
            gap: QuantAdaptiveAvgPool2dConfig::new([1, 1])
                .with_quant_desc_input(hist.clone())
                .init(device)
                .unwrap(),
            fc: QuantLinearConfig::new(8, 3)
                .with_quant_desc_input(hist)
                .init(device)
                .unwrap(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.conv1.forward(x));
        let x = relu(self.conv2.forward(self.pool.forward(x)));
        let x: Tensor<2> = self.gap.forward(x).flatten(1, 3);
        self.fc.forward(x)
    }
}

fn images(seed: u64, n: usize) -> Tensor<4> {
    tensor(Lcg(seed).vec(n * 64, -1.0, 1.0), [n, 1, 8, 8], &dev())
}

fn calibrated() -> Cnn {
    let model = Cnn::new(&dev()).with_fixed_weights(7);
    collect_stats(&model, |m| {
        for seed in 0..3 {
            let _ = m.forward(images(seed, 16));
        }
    })
    .unwrap();
    compute_amax(model, HistogramMethod::entropy()).unwrap()
}

#[test]
fn ptq_calibrates_every_quantizer_and_tracks_the_float_model() {
    let model = calibrated();
    let found = named_quantizers(&model);
    let names: Vec<&str> = found.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1._input_quantizer",
            "conv1._weight_quantizer",
            "pool._input_quantizer",
            "conv2._input_quantizer",
            "conv2._weight_quantizer",
            "gap._input_quantizer",
            "fc._input_quantizer",
            "fc._weight_quantizer"
        ]
    );
    // Weights: max calibration per output channel equals max |w| of each row, exactly.
    let w = values(model.conv1.weight.val());
    let want: Vec<f32> = w
        .chunks(9)
        .map(|c| c.iter().fold(0.0f32, |m, v| m.max(v.abs())))
        .collect();
    assert_eq!(found[1].amax.as_deref(), Some(&want[..]));
    // Activations: entropy amax is within the observed range.
    let a = found[0].amax.as_ref().unwrap()[0];
    assert!(a > 0.5 && a <= 1.0, "conv1 input amax {a}");
    assert_eq!(quantizer_summary(&model).lines().count(), 8);

    // Quantized output tracks the float model (quantizers disabled) closely.
    let x = images(99, 8);
    let q = values(model.forward(x.clone()));
    for quantizer in &found {
        quantizer.handle.disable();
    }
    let f = values(model.forward(x));
    for quantizer in &found {
        quantizer.handle.enable();
    }
    let err: f32 = q
        .iter()
        .zip(&f)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f32>()
        .sqrt();
    let norm: f32 = f.iter().map(|v| v * v).sum::<f32>().sqrt();
    // 0.0020 with these fixed weights.
    assert!(err / norm < 0.01, "relative error {}", err / norm);
    assert!(err > 0.0, "quantization must change the output");

    // Another method from the same histograms, without new data.
    let model = compute_amax(model, HistogramMethod::percentile(90.0)).unwrap();
    let p90 = named_quantizers(&model)[0].amax.as_ref().unwrap()[0];
    assert!(p90 < a, "p90 {p90} vs entropy {a}");
}

#[test]
fn safetensors_round_trip_uses_pytorch_names_and_shapes() {
    let model = calibrated();
    let dir = std::env::temp_dir().join(format!("qdq-cnn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cnn.safetensors");
    save_safetensors(&model, &file).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let shape = |n: &str| st.tensor(n).unwrap().shape().to_vec();
    assert_eq!(shape("conv1.weight"), vec![4, 1, 3, 3]);
    assert_eq!(shape("conv1._weight_quantizer._amax"), vec![4, 1, 1, 1]);
    assert_eq!(shape("conv1._input_quantizer._amax"), Vec::<usize>::new());
    assert_eq!(shape("fc.weight"), vec![3, 8]);
    assert_eq!(shape("fc._weight_quantizer._amax"), vec![3, 1]);

    let x = images(5, 4);
    let fresh = load_safetensors(Cnn::new(&dev()), &file).unwrap();
    assert_eq!(
        bits(&values(fresh.forward(x.clone()))),
        bits(&values(model.forward(x.clone())))
    );

    // burn's own record format round-trips too.
    let record = dir.join("cnn.bpk");
    model.clone().save_file(&record).unwrap();
    let reloaded = Cnn::new(&dev()).load_file(&record);
    assert_eq!(
        bits(&values(reloaded.forward(x.clone()))),
        bits(&values(model.forward(x)))
    );

    // A truncated file is a typed error naming it; an unwritable path leaves no file.
    std::fs::write(dir.join("bad.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = load_safetensors(Cnn::new(&dev()), dir.join("bad.safetensors")).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path.ends_with("bad.safetensors")),
        "{err}"
    );
    let missing = dir.join("no-such-dir").join("x.safetensors");
    assert!(matches!(
        save_safetensors(&model, &missing),
        Err(Error::Io { .. })
    ));
    assert!(!missing.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn qat_fine_tunes_weights_with_amax_frozen() {
    use burn::optim::{GradientsParams, SgdConfig};
    let d = dev().autodiff();
    let model = Cnn::new(&d).with_fixed_weights(11);
    let batch = |seed| tensor(Lcg(seed).vec(16 * 64, -1.0, 1.0), [16, 1, 8, 8], &d);
    collect_stats(&model, |m| {
        let _ = m.forward(batch(1));
    })
    .unwrap();
    let mut model = compute_amax(model, HistogramMethod::mse()).unwrap();
    let amax_before: Vec<_> = named_quantizers(&model)
        .into_iter()
        .map(|q| q.amax)
        .collect();
    let w_before = values(model.conv1.weight.val());
    let x = batch(2);
    let target = tensor(Lcg(3).vec(16 * 3, -0.5, 0.5), [16, 3], &d);
    let mut optim = SgdConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..15 {
        let loss = (model.forward(x.clone()) - target.clone())
            .powf_scalar(2.0)
            .mean();
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.05, model, grads);
    }
    // Fixed weights, not burn's global RNG, which tests running in parallel share
    // (random weights once made this curve fall 2.9% where 3% was asked): with these,
    // the loss falls to 0.865 of its start in every run.
    assert!(losses[14] < losses[0] * 0.9, "loss {losses:?}");
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "loss {losses:?}");
    assert_ne!(values(model.conv1.weight.val()), w_before, "weights train");
    let amax_after: Vec<_> = named_quantizers(&model)
        .into_iter()
        .map(|q| q.amax)
        .collect();
    assert_eq!(amax_after, amax_before, "amax stays frozen");
}
