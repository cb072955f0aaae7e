//! Histogram calibration: collecting a large batch, and each amax search on a
//! 2048-bin histogram of activation-like data.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qdq::calib::{HistogramCalibrator, HistogramMethod};

/// Deterministic |N(0, 1)| samples: Box–Muller over a 64-bit LCG.
fn half_normal(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut uniform = move || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // 53 random bits in (0, 1]: never 0, so ln() is finite.
        ((s >> 11) + 1) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()).abs() as f32
        })
        .collect()
}

fn collect(c: &mut Criterion) {
    // Signed data, as activations before a ReLU: the |x| path is the one measured.
    let data: Vec<f32> = half_normal(1 << 24, 1)
        .iter()
        .enumerate()
        .map(|(k, &v)| if k % 2 == 0 { v } else { -v })
        .collect();
    let mut group = c.benchmark_group("histogram_collect");
    group.throughput(Throughput::Elements(data.len() as u64));
    group.sample_size(20);
    group.bench_function("16M_f32", |b| {
        b.iter(|| {
            let mut calib = HistogramCalibrator::new(8, None, false).unwrap();
            calib.collect_slice(black_box(&data)).unwrap();
            black_box(calib.total())
        })
    });
    group.finish();
}

fn compute_amax(c: &mut Criterion) {
    let mut calib = HistogramCalibrator::new(8, None, false).unwrap();
    calib.collect_slice(&half_normal(1 << 20, 2)).unwrap();
    assert_eq!(calib.counts().len(), 2048);
    let mut group = c.benchmark_group("histogram_compute_amax_2048_bins");
    for method in [
        HistogramMethod::entropy(),
        HistogramMethod::mse(),
        HistogramMethod::percentile(99.99),
    ] {
        group.bench_function(method.name(), |b| {
            b.iter(|| black_box(calib.compute_amax(black_box(method)).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, collect, compute_amax);
criterion_main!(benches);
