//! Shared helpers for the integration tests.
#![allow(dead_code)]

use burn::prelude::*;

/// A deterministic generator (64-bit LCG) so tests need no RNG crate and never flake.
pub struct Lcg(pub u64);

impl Lcg {
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// `n` values uniform in [lo, hi).
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi)).collect()
    }
}

/// The CPU device every test uses.
pub fn dev() -> Device {
    Device::flex()
}

/// A rank-D tensor from values and shape.
pub fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(burn::tensor::TensorData::new(values, shape), device)
}

/// The tensor's values.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Bit patterns, so that -0.0 and NaN payloads compare exactly.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A descriptor of `bits` bits, per tensor or keeping one axis.
pub fn desc(bits: u32, axis: Option<isize>) -> qdq::tensor_quant::QuantDescriptor {
    let b = qdq::tensor_quant::QuantDescriptor::builder().num_bits(bits);
    match axis {
        Some(a) => b.axis([a]),
        None => b,
    }
    .build()
    .unwrap()
}
