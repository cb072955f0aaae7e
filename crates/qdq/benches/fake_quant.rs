//! Fake quant of 16 M f32 per tensor, no gradient: the fused kernel against a plain
//! parallel copy of the same buffer and against the same expression as a chain of
//! burn ops. Prints the ratios measured in this run after criterion's report.
//!
//! `cargo bench -p qdq --bench fake_quant`

use std::hint::black_box;
use std::time::{Duration, Instant};

use burn::prelude::*;
use burn::tensor::TensorData;
use criterion::{Criterion, Throughput};
use qdq::tensor_quant::{IntRange, fake_tensor_quant, kernel, layout::AmaxLayout, ops};
use rayon::prelude::*;

const N: usize = 16 * 1024 * 1024;

fn input() -> Vec<f32> {
    let mut s = 1u64;
    (0..N)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
        })
        .collect()
}

fn par_copy(src: &[f32], dst: &mut [f32]) {
    dst.par_chunks_mut(1 << 15)
        .zip(src.par_chunks(1 << 15))
        .for_each(|(d, s)| d.copy_from_slice(s));
}

struct Case<'a> {
    src: &'a [f32],
    dst: &'a mut [f32],
    layout: AmaxLayout,
    range: IntRange,
    device: Device,
}

impl Case<'_> {
    fn copy(&mut self) {
        par_copy(self.src, self.dst);
    }
    fn fused(&mut self) {
        kernel::fake_quant_into(self.src, self.dst, &[3.0], &self.layout, self.range).unwrap();
    }
    fn tensor_api(&self) -> Tensor<1> {
        let x = Tensor::<1>::from_data(TensorData::new(self.src.to_vec(), [N]), &self.device);
        fake_tensor_quant(
            x,
            Tensor::from_floats([3.0f32], &self.device),
            8,
            false,
            false,
        )
        .unwrap()
    }
    fn chain(&self) -> Tensor<1> {
        let x = Tensor::<1>::from_data(TensorData::new(self.src.to_vec(), [N]), &self.device);
        let out = ops::fake_quant_chain(x, Tensor::from_floats([3.0f32], &self.device), self.range);
        // Force execution.
        let _ = out.clone().into_data();
        out
    }
    fn to_tensor(&self) -> Tensor<1> {
        Tensor::<1>::from_data(TensorData::new(self.src.to_vec(), [N]), &self.device)
    }
}

/// Median wall time of `reps` runs.
fn median(reps: usize, mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[reps / 2]
}

fn main() {
    let src = input();
    let mut dst = vec![0.0f32; N];
    let mut case = Case {
        src: &src,
        dst: &mut dst,
        layout: AmaxLayout::new(&[N], &[1]).unwrap(),
        range: IntRange::new(8, false, false).unwrap(),
        device: Device::flex(),
    };

    let mut c = Criterion::default().configure_from_args().sample_size(20);
    let mut g = c.benchmark_group("fake_quant_16M_per_tensor");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("parallel_copy", |b| b.iter(|| case.copy()));
    g.bench_function("fused_kernel", |b| b.iter(|| case.fused()));
    g.bench_function("tensor_api_fused", |b| {
        b.iter(|| black_box(case.tensor_api()))
    });
    g.bench_function("burn_op_chain", |b| b.iter(|| black_box(case.chain())));
    g.bench_function("tensor_construction_only", |b| {
        b.iter(|| black_box(case.to_tensor()))
    });
    g.finish();

    // Ratios from one interleaved run, so both sides share the machine's state.
    let copy = median(15, || case.copy());
    let fused = median(15, || case.fused());
    let build = median(5, || drop(black_box(case.to_tensor())));
    let api = median(5, || drop(black_box(case.tensor_api())));
    let chain = median(5, || drop(black_box(case.chain())));
    println!("\nratios (median of runs, this process):");
    println!(
        "  parallel copy               {:>8.2} ms",
        copy.as_secs_f64() * 1e3
    );
    println!(
        "  fused kernel                {:>8.2} ms",
        fused.as_secs_f64() * 1e3
    );
    println!(
        "  fused / copy                {:>8.2}x  (target <= 1.5x)",
        fused.as_secs_f64() / copy.as_secs_f64()
    );
    println!(
        "  burn op chain / tensor API  {:>8.2}x  (target >= 3x; both include building the input tensor, {:.2} ms)",
        chain.as_secs_f64() / api.as_secs_f64(),
        build.as_secs_f64() * 1e3
    );
}
