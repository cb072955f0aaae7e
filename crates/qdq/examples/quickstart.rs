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
    println!("x          = {}", fmt(x, 4));
    println!("fake_quant = {}", fmt(fake, 4));
    println!("quant      = {}", fmt(quant, 0));
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

/// `[0.9817, 0.8796, ...]`: values with `decimals` digits, as PyTorch prints them.
fn fmt(t: Tensor<1>, decimals: usize) -> String {
    let v = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    let items: Vec<String> = v.iter().map(|x| format!("{x:.decimals$}")).collect();
    format!("[{}]", items.join(", "))
}
