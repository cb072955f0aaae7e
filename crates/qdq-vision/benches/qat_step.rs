//! A QAT step (forward + backward + SGD update, fake quant on every weight and
//! activation, calibrated amax) against the same step of the float model, on the
//! chapter's network (ResNet-18 layout, width 32, 28x28 images, batch 128). Prints the
//! median step times and their ratio; the target is a ratio of at most 1.3.
//!
//! `cargo bench -p qdq-vision --bench qat_step [-- STEPS]`

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use qdq::calib::HistogramMethod;
use qdq::nn::{collect_stats, compute_amax};
use qdq_vision::{QuantScheme, ResNet, ResNetConfig};

fn step_times(model: ResNet, x: &Tensor<4>, y: &Tensor<1, Int>, steps: usize) -> Vec<f64> {
    let device = x.device();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = SgdConfig::new().init();
    let mut model = model;
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        // Wait for the update to land before stopping the clock.
        let _ = model.fc.devices();
        times.push(start.elapsed().as_secs_f64());
    }
    times
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let steps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let device = Device::flex();
    let ad = device.clone().autodiff();
    ad.seed(1);
    let cfg = ResNetConfig::resnet18(10)
        .with_in_channels(1)
        .with_small_input(true)
        .with_width(32);
    let float = cfg.init(&device).unwrap();
    let batch = 128;
    let x = Tensor::<4>::random([batch, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let quant = float.clone().quantize(&QuantScheme::seed()).unwrap();
    collect_stats(&quant, |m| {
        let _ = m.forward(x.clone());
    })
    .unwrap();
    let quant = compute_amax(quant, HistogramMethod::percentile(99.99)).unwrap();

    let (xa, ya) = (
        x.to_device(&ad),
        Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &ad),
    );
    let float = float.fork(&ad).train();
    let quant = quant.fork(&ad).train();
    // Warm up both, then interleave so both see the same machine state.
    let _ = step_times(float.clone(), &xa, &ya, 2);
    let _ = step_times(quant.clone(), &xa, &ya, 2);
    let (mut f, mut q) = (Vec::new(), Vec::new());
    for _ in 0..steps.div_ceil(5) {
        f.extend(step_times(float.clone(), &xa, &ya, 5));
        q.extend(step_times(quant.clone(), &xa, &ya, 5));
    }
    let (f, q) = (median(f), median(q));
    println!(
        "QAT step (batch {batch}): float {:.1} ms, quantized {:.1} ms, ratio {:.2} (target <= 1.30); {:.0} vs {:.0} img/s",
        f * 1e3,
        q * 1e3,
        q / f,
        batch as f64 / f,
        batch as f64 / q
    );
}
