//! Quantization functions and descriptors: the Rust counterpart of
//! pytorch-quantization's `tensor_quant.py`.
//!
//! - [`fake_tensor_quant`] / [`tensor_quant`]: integer quantization, 1–16 bits,
//!   signed or unsigned, narrow or full range, amax per tensor or per channel.
//! - [`scaled_e4m3`]: FP8 E4M3 fake quantization.
//! - [`clip`]: the learnable-range clip with PACT-style gradients.
//! - [`QuantDescriptor`] and the predefined descriptors.
//!
//! Every function chooses its path from the input: a tensor that takes part in an
//! autodiff graph goes through burn ops with a straight-through-estimator gradient;
//! any other tensor goes through one fused, parallel pass over its data. The two
//! paths agree bit for bit. With the `gpu` feature, a tensor on a LibTorch CUDA
//! device goes through `qdq-cuda`'s fused kernels instead, forward and backward.

mod amax;
mod clip;
#[cfg(feature = "gpu")]
pub(crate) mod cuda;
mod descriptor;
mod export;
mod format;
pub mod host;
pub mod kernel;
pub mod layout;
pub mod ops;
pub mod reduce;

pub use amax::Amax;
pub(crate) use amax::amax_is_set;
pub use clip::clip;
pub use descriptor::fmt_axis as descriptor_fmt_axis;
pub use descriptor::*;
pub use export::QuantLowering;
pub use format::{AMAX_EPS, E4M3_MAX, E4M3Tag, IntRange, NumBits};
pub(crate) use host::host_values;
pub use host::{HostValues, with_host_mut};

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::error::{Error, Result};
use layout::AmaxLayout;

/// Fake quantization: `round(x * max_bound/amax)` clamped to the grid, divided back
/// (returns floats on the quantization grid).
///
/// `amax` has the input's rank: all ones per tensor, or a keepdims per-channel shape
/// such as `[C, 1, 1, 1]`. The reference's function defaults are `num_bits = 8`,
/// `unsigned = false`, `narrow_range = true`.
///
/// Gradient (when `inputs` is tracked by autodiff): straight-through where
/// `|x| <= amax`, zero elsewhere, none for `amax`.
///
/// # Errors
/// Negative inputs with `unsigned`, negative or NaN amax, an amax that does not
/// broadcast, or an unsupported bit width.
pub fn fake_tensor_quant<const D: usize>(
    inputs: Tensor<D>,
    amax: Tensor<D>,
    num_bits: u32,
    unsigned: bool,
    narrow_range: bool,
) -> Result<Tensor<D>> {
    let range = IntRange::new(num_bits, unsigned, narrow_range)?;
    #[cfg(feature = "gpu")]
    if let Some(out) = cuda::quantize(&inputs, &amax, range, true) {
        return out;
    }
    if inputs.is_tracked() {
        check_tracked(&inputs, &amax, unsigned)?;
        let forward = ops::fake_quant_chain(inputs.clone().detach(), amax.clone().detach(), range);
        return Ok(ops::ste(inputs, amax, forward));
    }
    let (out, ()) = on_host(inputs, &amax, |data, amax, layout| {
        kernel::fake_quant_inplace(data, amax, layout, range)
    })?;
    Ok(out)
}

/// Real quantization: the integer codes (as floats) and the scale
/// (`max_bound/amax`, amax's shape, 1 where `amax <= 2^-24`).
///
/// Same arguments, errors and gradient as [`fake_tensor_quant`].
pub fn tensor_quant<const D: usize>(
    inputs: Tensor<D>,
    amax: Tensor<D>,
    num_bits: u32,
    unsigned: bool,
    narrow_range: bool,
) -> Result<(Tensor<D>, Tensor<D>)> {
    let range = IntRange::new(num_bits, unsigned, narrow_range)?;
    let amax_shape = amax.shape();
    #[cfg(feature = "gpu")]
    if let Some(q) = cuda::quantize(&inputs, &amax, range, false) {
        return Ok((q?, returned_scale(&amax, range)?));
    }
    if inputs.is_tracked() {
        check_tracked(&inputs, &amax, unsigned)?;
        let (q, _) = ops::quant_chain(inputs.clone().detach(), amax.clone().detach(), range);
        let scale = returned_scale(&amax, range)?;
        return Ok((ops::ste(inputs, amax, q), scale));
    }
    let device = amax.device();
    let (q, scales) = on_host(inputs, &amax, |data, amax, layout| {
        kernel::quant_inplace(data, amax, layout, range)
    })?;
    let scale = Tensor::from_data(TensorData::new(scales, amax_shape), &device);
    Ok((q, scale))
}

/// FP8 E4M3 fake quantization (`scaled_e4m3` of the reference):
/// `e4m3(x * 448/amax) / (448/amax)`, saturating at ±448, and `+0.0` wherever
/// `|x| < 2^-24`. With `amax = None` it is a plain cast to E4M3 and back.
///
/// Gradient: straight-through where `|x| <= amax` (or 448 without amax).
/// Both paths use the fused kernel for the forward value.
pub fn scaled_e4m3<const D: usize>(
    inputs: Tensor<D>,
    amax: Option<Tensor<D>>,
) -> Result<Tensor<D>> {
    let amax = amax.unwrap_or_else(|| Tensor::full([1; D], E4M3_MAX, &inputs.device()));
    let tracked = inputs.is_tracked();
    let source = if tracked {
        inputs.clone().detach()
    } else {
        inputs.clone()
    };
    let (forward, ()) = on_host(source, &amax, kernel::scaled_e4m3_inplace)?;
    if tracked {
        Ok(ops::ste(inputs, amax, forward))
    } else {
        Ok(forward)
    }
}

/// Runs a slice kernel over the tensor's values ([`host::with_host_mut`]: in place when
/// nothing else holds them) with the amax and its layout.
fn on_host<const D: usize, R>(
    inputs: Tensor<D>,
    amax: &Tensor<D>,
    kernel: impl FnOnce(&mut [f32], &[f32], &AmaxLayout) -> Result<R>,
) -> Result<(Tensor<D>, R)> {
    let layout = AmaxLayout::new(&inputs.dims(), &amax.dims())?;
    let amax = host_values(amax)?;
    let (out, r) = host::with_host_mut(inputs, |data| kernel(data, &amax, &layout))?;
    Ok((out, r?))
}

/// The validation the fused kernels do, for the op-chain path.
fn check_tracked<const D: usize>(
    inputs: &Tensor<D>,
    amax: &Tensor<D>,
    unsigned: bool,
) -> Result<()> {
    AmaxLayout::new(&inputs.dims(), &amax.dims())?;
    kernel::check_amax(&host_values(amax)?)?;
    if unsigned {
        let min: f32 = inputs.clone().detach().min().into_scalar();
        if min < 0.0 {
            return Err(Error::NegativeInputUnsigned { min });
        }
    }
    Ok(())
}

fn returned_scale<const D: usize>(amax: &Tensor<D>, range: IntRange) -> Result<Tensor<D>> {
    let values: Vec<f32> = host_values(amax)?
        .into_iter()
        .map(|a| kernel::int_scale(a, range))
        .collect();
    Ok(Tensor::from_data(
        TensorData::new(values, amax.shape()),
        &amax.device(),
    ))
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;

    use super::*;

    #[test]
    fn host_values_share_a_contiguous_cpu_tensor_and_copy_a_strided_one() {
        let device = Device::flex();
        let t = Tensor::<2>::from_data([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]], &device);
        let storage = t.clone().try_into_primitive::<Flex>().unwrap();
        let storage = storage.as_slice::<f32>().unwrap().as_ptr();
        let seen = HostValues::of(&t).unwrap();
        assert!(matches!(seen, HostValues::Shared(_)));
        assert_eq!(*seen, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(seen.as_ptr(), storage, "read in place, not copied");
        // A transposed view is not contiguous: a copy, in logical order.
        let transposed = HostValues::of(&t.clone().transpose()).unwrap();
        assert!(matches!(transposed, HostValues::Copied(_)));
        assert_eq!(*transposed, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        // `shared` reads in place or declines, never copies.
        assert!(HostValues::shared(&t.clone().transpose()).is_none());
        let shared = HostValues::shared(&t).unwrap();
        assert_eq!(shared.as_ptr(), storage);
    }
}
