//! Trains the small Fashion-MNIST CNN that `qdq demo` quantizes, and writes the bundled
//! example: the FP32 ONNX model (exported with qdq's own exporter), 256 training images
//! for calibration and 500 test images with labels.
//!
//! `cargo run --release -p qdq-cli --example train_fashion_mnist [DATA_DIR] [OUT_DIR]`
//!
//! DATA_DIR defaults to Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist),
//! OUT_DIR to `crates/qdq-cli/data/fashion-mnist`. Deterministic: fixed seed, fixed order.

use std::path::PathBuf;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::relu;
use qdq_cli::data::idx::{Idx, write_gz};
use qdq_onnx::export::{ExportOptions, export_to_file};

#[derive(Module, Debug)]
struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
}

impl Cnn {
    fn new(device: &Device) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            conv1: conv(1, 16),
            conv2: conv(16, 32),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc1: LinearConfig::new(32 * 7 * 7, 64).init(device),
            fc2: LinearConfig::new(64, 10).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(relu(self.conv1.forward(x)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        let x: Tensor<2> = x.flatten(1, 3);
        self.fc2.forward(relu(self.fc1.forward(x)))
    }
}

fn images(idx: &Idx, from: usize, n: usize, device: &Device) -> Tensor<4> {
    let px = 28 * 28;
    let v: Vec<f32> = idx.data[from * px..(from + n) * px]
        .iter()
        .map(|&b| b as f32 / 255.0)
        .collect();
    Tensor::from_data(TensorData::new(v, [n, 1, 28, 28]), device)
}

fn labels(idx: &Idx, from: usize, n: usize, device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = idx.data[from..from + n].iter().map(|&b| b as i64).collect();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

fn accuracy(model: &Cnn, x: &Idx, y: &Idx, n: usize, device: &Device) -> f32 {
    let mut correct = 0;
    for from in (0..n).step_by(500) {
        let b = 500.min(n - from);
        let pred = model
            .forward(images(x, from, b, device))
            .argmax(1)
            .flatten::<1>(0, 1);
        let hits = pred.equal(labels(y, from, b, device)).int().sum();
        correct += hits.into_scalar::<i64>();
    }
    correct as f32 / n as f32
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/usr/share/datasets/fashion-mnist".into()),
    );
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/data/fashion-mnist").into()),
    );
    let read = |f: &str| Idx::read(&data.join(f));
    let (train_x, train_y) = (
        read("train-images-idx3-ubyte.gz")?,
        read("train-labels-idx1-ubyte.gz")?,
    );
    let (test_x, test_y) = (
        read("t10k-images-idx3-ubyte.gz")?,
        read("t10k-labels-idx1-ubyte.gz")?,
    );

    let device = Device::flex();
    let ad = device.clone().autodiff();
    ad.seed(7);
    let mut model = Cnn::new(&ad);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let batch = 128;
    let n = train_x.dims[0];
    for epoch in 0..3 {
        let mut total = 0.0;
        for (step, from) in (0..n - batch).step_by(batch).enumerate() {
            let logits = model.forward(images(&train_x, from, batch, &ad));
            let loss = loss_fn.forward(logits, labels(&train_y, from, batch, &ad));
            total += loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-3, model, grads);
            if step % 100 == 99 {
                println!("epoch {epoch} step {} loss {:.4}", step + 1, total / 100.0);
                total = 0.0;
            }
        }
        let valid = model.valid();
        println!(
            "epoch {epoch}: test accuracy {:.4}",
            accuracy(&valid, &test_x, &test_y, 10_000, &device)
        );
    }
    let model = model.valid();
    std::fs::create_dir_all(&out)?;
    let sample = images(&test_x, 0, 2, &device);
    let options = ExportOptions {
        dynamic_batch: true,
        ..Default::default()
    };
    export_to_file(
        &model,
        Cnn::forward,
        sample,
        &options,
        out.join("model.onnx"),
    )?;
    write_gz(&train_x.take(256), &out.join("calib-images-idx3-ubyte.gz"))?;
    write_gz(&test_x.take(500), &out.join("test-images-idx3-ubyte.gz"))?;
    write_gz(&test_y.take(500), &out.join("test-labels-idx1-ubyte.gz"))?;
    println!(
        "wrote {} (accuracy on the 500 bundled test images: {:.4})",
        out.display(),
        accuracy(&model, &test_x, &test_y, 500, &device)
    );
    Ok(())
}
