//! # qdq
//!
//! Quantization for [burn](https://burn.dev) models, the Rust counterpart of NVIDIA's
//! pytorch-quantization: the same names, the same numbers, no Python.
//!
//! - [`tensor_quant`]: `fake_tensor_quant`, `tensor_quant`, `scaled_e4m3`, `clip`,
//!   `QuantDescriptor` and the predefined descriptors. Bit-exact with the
//!   reference's CPU path.
//! - [`calib`]: `MaxCalibrator` and `HistogramCalibrator` with entropy, mse and
//!   percentile amax searches, exact integer counts.
//! - [`device`]: `cpu`, or `cuda:N` with the `gpu` feature, where tensors on the GPU
//!   are quantized, calibrated and trained through fused CUDA kernels (`qdq-cuda`)
//!   that give the CPU's values bit for bit.
//!
//! ```
//! use burn::prelude::*;
//! use qdq::tensor_quant::fake_tensor_quant;
//!
//! let device = Device::flex();
//! let x = Tensor::<1>::from_floats([0.981718183f32, 0.879606545, 0.992143452], &device);
//! let amax = Tensor::<1>::from_floats([0.992143452f32], &device);
//! let fq = fake_tensor_quant(x, amax, 8, false, true).unwrap();
//! let v = fq.into_data().to_vec::<f32>().unwrap();
//! assert_eq!(format!("{:.4}", v[1]), "0.8828");
//! ```

#![deny(missing_docs)]

pub mod calib;
mod device;
pub mod error;
pub mod io;
pub mod nn;
pub mod quant_modules;
pub mod simd;
pub mod tensor_quant;

pub use device::device;
pub use error::{Error, Result};
pub use tensor_quant::{Amax, QuantDescriptor};
