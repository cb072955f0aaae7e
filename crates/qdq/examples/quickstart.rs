//! The seed document's first example: fake and real quantization of ten values.
//!
//! `cargo run --release --example quickstart`

// The seed values are quoted digit for digit, beyond f32 precision.
#![allow(clippy::excessive_precision)]

use burn::prelude::*;
use qdq::calib::{HistogramCalibrator, HistogramMethod, MaxCalibrator};
use qdq::tensor_quant::{
    QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL, fake_tensor_quant, tensor_quant,
};

fn main() -> qdq::Result<()> {
    let device = Device::flex();
    // torch.manual_seed(12345); torch.rand(10)
    let x = Tensor::<1>::from_floats(
        [
            0.981718183f32,
            0.879606545,
            0.992143452,
            0.461067259,
            0.0832159519,
            0.178431094,
            0.367431521,
            0.567649722,
            0.337606728,
            0.211946607,
        ],
        &device,
    );
    let amax = x.clone().abs().max();
    let fake = fake_tensor_quant(x.clone(), amax.clone(), 8, false, true)?;
    let (quant, scale) = tensor_quant(x.clone(), amax, 8, false, true)?;
    println!("x          = {:.4}", x.into_data());
    println!("fake_quant = {:.4}", fake.into_data());
    println!("quant      = {}", quant.into_data());
    println!("scale      = {:.4}", scale.into_scalar::<f32>());

    println!("\n{}", *QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL);

    // Calibrate a per-tensor amax from a batch of activations, four ways.
    let acts: Vec<f32> = (0..100_000)
        .map(|i| ((i * 7919) % 10_007) as f32 / 10_007.0)
        .collect();
    let mut max = MaxCalibrator::new(8, None, false);
    max.collect_slice(&acts, &[acts.len()])?;
    let mut hist = HistogramCalibrator::new(8, None, false)?;
    hist.collect_slice(&acts)?;
    println!(
        "\nmax amax          = {:.4}",
        max.compute_amax().expect("data was collected").values()[0]
    );
    for method in [
        HistogramMethod::entropy(),
        HistogramMethod::mse(),
        HistogramMethod::percentile(99.9),
    ] {
        println!(
            "{:<17} = {:.4}",
            format!("{method} amax"),
            hist.compute_amax(method)?.values()[0]
        );
    }
    Ok(())
}
