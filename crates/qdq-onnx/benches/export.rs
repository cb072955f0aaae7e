//! Export time of a ResNet-50 (25.6 M parameters, 53 convolutions + 1 linear, every
//! layer with input and weight quantizers, plus 16 residual quantizers): capture,
//! lowering, lint, serialization, and the atomic write of a 100 MB file.

use std::hint::black_box;

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use criterion::{Criterion, criterion_group, criterion_main};
use qdq::calib::HistogramMethod;
use qdq::nn::*;
use qdq::tensor_quant::QUANT_DESC_8BIT_PER_TENSOR;
use qdq_onnx::export::{ExportOptions, export, export_to_file};

#[derive(Module, Debug)]
struct ConvBn {
    conv: QuantConv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(i: usize, o: usize, k: usize, stride: usize, d: &Device) -> Self {
        let p = k / 2;
        Self {
            conv: QuantConv2dConfig::new([i, o], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(false)
                .init(d)
                .unwrap(),
            bn: BatchNormConfig::new(o).init(d),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

#[derive(Module, Debug)]
struct Bottleneck {
    a: ConvBn,
    b: ConvBn,
    c: ConvBn,
    downsample: Option<ConvBn>,
    residual_quantizer: TensorQuantizer,
}

impl Bottleneck {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(ds) => ds.forward(x.clone()),
            None => x.clone(),
        };
        let y = relu(self.a.forward(x));
        let y = relu(self.b.forward(y));
        relu(self.c.forward(y) + self.residual_quantizer.forward(identity))
    }
}

#[derive(Module, Debug)]
struct ResNet50 {
    stem: ConvBn,
    pool: QuantMaxPool2d,
    blocks: Vec<Bottleneck>,
    gap: QuantAdaptiveAvgPool2d,
    fc: QuantLinear,
}

impl ResNet50 {
    fn new(d: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut cin = 64;
        for (stage, (&n, &width)) in [3, 4, 6, 3].iter().zip(&[64, 128, 256, 512]).enumerate() {
            for i in 0..n {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let out = width * 4;
                blocks.push(Bottleneck {
                    a: ConvBn::new(cin, width, 1, 1, d),
                    b: ConvBn::new(width, width, 3, stride, d),
                    c: ConvBn::new(width, out, 1, 1, d),
                    downsample: (i == 0).then(|| ConvBn::new(cin, out, 1, stride, d)),
                    residual_quantizer: TensorQuantizer::new(&QUANT_DESC_8BIT_PER_TENSOR, d)
                        .unwrap(),
                });
                cin = out;
            }
        }
        Self {
            stem: ConvBn::new(3, 64, 7, 2, d),
            pool: QuantMaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(d)
                .unwrap(),
            blocks,
            gap: QuantAdaptiveAvgPool2dConfig::new([1, 1]).init(d).unwrap(),
            fc: QuantLinearConfig::new(2048, 1000).init(d).unwrap(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.pool.forward(relu(self.stem.forward(x)));
        for b in &self.blocks {
            x = b.forward(x);
        }
        self.fc.forward(self.gap.forward(x).flatten(1, 3))
    }
}

fn bench(c: &mut Criterion) {
    let d = Device::flex();
    let model = ResNet50::new(&d);
    // Calibrate (max) on one small batch: every quantizer gets an amax.
    collect_stats(&model, |m| {
        let _ = m.forward(Tensor::random(
            [1, 3, 64, 64],
            burn::tensor::Distribution::Default,
            &d,
        ));
    })
    .unwrap();
    let model = compute_amax(model, HistogramMethod::entropy()).unwrap();
    let params = model.num_params();
    let quantizers = named_quantizers(&model).len();
    let sample = Tensor::<4>::zeros([1, 3, 224, 224], &d);
    let options = ExportOptions::default();
    let path = std::env::temp_dir().join("qdq-bench-resnet50.onnx");
    println!("ResNet-50: {params} parameters, {quantizers} quantizers");

    let mut group = c.benchmark_group("export_resnet50");
    group.sample_size(10);
    group.bench_function("export_in_memory", |b| {
        b.iter(|| black_box(export(&model, ResNet50::forward, sample.clone(), &options).unwrap()))
    });
    group.bench_function("export_to_file", |b| {
        b.iter(|| {
            black_box(
                export_to_file(&model, ResNet50::forward, sample.clone(), &options, &path).unwrap(),
            )
        })
    });
    group.finish();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("file: {:.1} MB", size as f64 / 1e6);
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, bench);
criterion_main!(benches);
