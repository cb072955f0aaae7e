//! A float tensor's values on the host, without the copies burn's `to_data` and
//! `into_data` make: read in place ([`HostValues`]) or updated in place
//! ([`with_host_mut`]) when the tensor is a contiguous f32 tensor of burn's CPU backend.
//!
//! Calibrators and `auto` read values the ONNX runtime still holds, and the fused
//! kernels (fake quantization, the runtime's `Erf`) rewrite values nothing else holds;
//! on a 640x640 detector the copies and the page faults of their fresh buffers were a
//! tenth of calibration time and, for `auto`'s quantized runs, 7 % of its time.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::DType;

use crate::error::{Error, Result};

/// Reads `t` as float32 values (converting other float types), always a copy.
pub(crate) fn host_values<const D: usize>(t: &Tensor<D>) -> Result<Vec<f32>> {
    t.to_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Data(format!("{e:?}")))
}

/// A float tensor's values as f32 on the host: the tensor's own storage, shared and not
/// copied, when it is a contiguous f32 tensor of burn's CPU backend; a copy otherwise.
pub enum HostValues {
    /// The tensor's storage, held (the tensor is immutable while shared).
    Shared(FlexTensor),
    /// A copy: another backend, element type or layout.
    Copied(Vec<f32>),
}

impl HostValues {
    /// The values of `t`.
    ///
    /// # Errors
    /// A tensor that cannot be read back.
    pub fn of<const D: usize>(t: &Tensor<D>) -> Result<Self> {
        match Self::shared(t) {
            Some(shared) => Ok(shared),
            None => host_values(t).map(Self::Copied),
        }
    }

    /// The values of `t` read in place ([`HostValues::Shared`]), or `None` without
    /// copying anything when `t` is not a contiguous f32 tensor of burn's CPU backend.
    pub fn shared<const D: usize>(t: &Tensor<D>) -> Option<Self> {
        let p = t.clone().try_into_primitive::<Flex>().ok()?;
        p.as_slice::<f32>().is_some().then_some(Self::Shared(p))
    }

    /// The values, in the tensor's logical (row-major) order.
    pub fn as_slice(&self) -> &[f32] {
        match self {
            // `shared` keeps only tensors that have this view.
            Self::Shared(p) => p.as_slice::<f32>().unwrap_or_default(),
            Self::Copied(v) => v,
        }
    }
}

impl std::ops::Deref for HostValues {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        self.as_slice()
    }
}

/// Runs `kernel` over `t`'s values as f32, row-major, and returns the tensor holding
/// what it wrote (on `t`'s device, in `t`'s dtype) with the kernel's result.
///
/// The kernel writes into `t`'s own storage when `t` is a contiguous f32 tensor of
/// burn's CPU backend and this was the last reference to it (the runtime hands a node
/// the inputs it reads for the last time); otherwise into a copy, and `t`'s other
/// holders keep their values.
///
/// # Errors
/// A tensor that cannot be read back.
pub fn with_host_mut<const D: usize, R>(
    t: Tensor<D>,
    kernel: impl FnOnce(&mut [f32]) -> R,
) -> Result<(Tensor<D>, R)> {
    // Checked before taking the primitive, which consumes the tensor (device equality
    // ignores autodiff, whose tensors are not plain Flex primitives).
    let device = t.device();
    if t.dtype() == DType::F32 && device == Device::flex() && !device.is_autodiff() {
        let dims = t.dims();
        let mut p = t
            .try_into_primitive::<Flex>()
            .map_err(|e| Error::Data(format!("{e:?}")))?;
        let range = p.layout().contiguous_offsets();
        if let (Some((start, end)), true) = (range, p.is_unique())
            && let Some(storage) = p.try_storage_mut::<f32>()
        {
            let r = kernel(&mut storage[start..end]);
            return Ok((Tensor::from_primitive::<Flex>(p), r));
        }
        // Shared or strided: a copy of the values, in order.
        let mut values = match p.as_slice::<f32>() {
            Some(s) => s.to_vec(),
            None => p
                .to_contiguous()
                .as_slice::<f32>()
                .unwrap_or_default()
                .to_vec(),
        };
        let r = kernel(&mut values);
        let out = Tensor::from_data(TensorData::new(values, dims), &Device::flex());
        return Ok((out, r));
    }
    let dtype = t.dtype();
    let mut data = t.into_data();
    if data.dtype() != DType::F32 {
        data = data.convert::<f32>();
    }
    let slice = data
        .as_mut_slice::<f32>()
        .map_err(|e| Error::Data(format!("{e:?}")))?;
    let r = kernel(slice);
    let out: Tensor<D> = Tensor::from_data(data, &device);
    let out = if dtype == DType::F32 {
        out
    } else {
        out.cast(dtype)
    };
    Ok((out, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
        t.to_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn a_tensor_held_once_is_updated_in_its_own_storage() {
        let device = Device::flex();
        let t = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device);
        let before = t.clone().try_into_primitive::<Flex>().unwrap();
        let address = before.bytes().as_ptr();
        drop(before);
        let (out, n) = with_host_mut(t, |v| {
            v.iter_mut().for_each(|x| *x *= 10.0);
            v.len()
        })
        .unwrap();
        assert_eq!(n, 4);
        assert_eq!(values(&out), [10.0, 20.0, 30.0, 40.0]);
        let after = out.try_into_primitive::<Flex>().unwrap();
        assert_eq!(after.bytes().as_ptr(), address, "no copy was made");
    }

    #[test]
    fn a_shared_tensor_keeps_its_values_for_its_other_holders() {
        let device = Device::flex();
        let t = Tensor::<1>::from_floats([1.0, -2.0, 3.0], &device);
        let (out, ()) = with_host_mut(t.clone(), |v| v.iter_mut().for_each(|x| *x = -*x)).unwrap();
        assert_eq!(values(&out), [-1.0, 2.0, -3.0]);
        assert_eq!(values(&t), [1.0, -2.0, 3.0]);
    }

    #[test]
    fn a_strided_view_is_read_in_logical_order() {
        let device = Device::flex();
        // [[1, 2, 3], [4, 5, 6]] transposed: [[1, 4], [2, 5], [3, 6]].
        let t = Tensor::<2>::from_floats([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], &device).transpose();
        let mut seen = Vec::new();
        let (out, ()) = with_host_mut(t, |v| {
            seen = v.to_vec();
            v.iter_mut().for_each(|x| *x += 0.5);
        })
        .unwrap();
        assert_eq!(seen, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(out.dims(), [3, 2]);
        assert_eq!(values(&out), [1.5, 4.5, 2.5, 5.5, 3.5, 6.5]);
    }

    #[test]
    fn an_autodiff_device_gets_a_copy_on_it() {
        let device = Device::flex().autodiff();
        let t = Tensor::<1>::from_floats([1.0, 2.0], &device);
        let (out, ()) = with_host_mut(t, |v| v.iter_mut().for_each(|x| *x += 1.0)).unwrap();
        assert!(out.device().is_autodiff());
        assert_eq!(values(&out), [2.0, 3.0]);
    }

    #[test]
    fn other_float_types_round_trip_through_f32() {
        let device = Device::flex();
        let t = Tensor::<1>::from_floats([1.0, 2.5], &device).cast(DType::F16);
        let (out, ()) = with_host_mut(t, |v| v.iter_mut().for_each(|x| *x *= 2.0)).unwrap();
        assert_eq!(out.dtype(), DType::F16);
        assert_eq!(values(&out.cast(DType::F32)), [2.0, 5.0]);
    }
}
