//! The fused CUDA path (feature `gpu`): tensors on a LibTorch CUDA device are
//! quantized by `qdq-cuda`'s kernels in place of the host kernels or the op chain.
//!
//! Forward is one pass (read x, write y); with autodiff, the backward is one more
//! (read x and the gradient, write the masked gradient), as a burn autodiff op whose
//! state is the input itself. Values equal the host kernels' bit for bit.

// burn marks its LibTorch backend deprecated in favour of burn-cuda, whose CUDA
// runtime does not build here (it downloads LLVM); LibTorch is the GPU path we ship.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::libtorch::TchTensor;
use burn::backend::{
    Autodiff, DispatchDevice, DispatchKindConversion, DispatchTensor, LibTorch, LibTorchDevice,
};
use burn::prelude::*;
use qdq_cuda::{Entry, Gpu, Grid, Scales};

use super::format::IntRange;
use super::kernel::IntParams;
use super::layout::AmaxLayout;
use crate::error::{Error, Result};

fn gpu_error(e: qdq_cuda::Error) -> Error {
    Error::Gpu(e.to_string())
}

/// The CUDA ordinal of a tensor on a LibTorch CUDA device.
pub(crate) fn cuda_ordinal<const D: usize>(t: &Tensor<D>) -> Option<usize> {
    match t.device().inner().as_dispatch() {
        DispatchDevice::LibTorch(LibTorchDevice::Cuda(i)) => Some(*i),
        _ => None,
    }
}

/// The kernels' per-entry constants for `amax` (host values) broadcast by `layout`.
fn scales(amax: &[f32], layout: &AmaxLayout, range: IntRange) -> Scales {
    let entry = |a: f32| {
        let p = IntParams::new(a, range);
        Entry {
            scale_round: p.scale_round,
            scale_out: p.scale_out,
            bound: a,
        }
    };
    if layout.amax_len == 1 {
        Scales::Tensor(entry(amax[0]))
    } else {
        Scales::Blocks {
            entries: layout.pattern.iter().map(|&i| entry(amax[i])).collect(),
            inner: layout.inner as u64,
        }
    }
}

/// A float32, contiguous view of `t` and its device pointer.
fn contiguous_f32(t: &tch::Tensor) -> (tch::Tensor, u64) {
    let t = if t.kind() == tch::Kind::Float {
        t.contiguous()
    } else {
        t.to_kind(tch::Kind::Float).contiguous()
    };
    let ptr = t.data_ptr() as u64;
    (t, ptr)
}

/// What one fused call computes.
#[derive(Clone, Debug)]
struct Quant {
    ordinal: usize,
    scales: Scales,
    grid: Grid,
    divide: bool,
    unsigned: bool,
}

impl Quant {
    /// Runs the forward kernel on `x`, returning the output in `x`'s dtype.
    fn forward(&self, x: &tch::Tensor) -> Result<tch::Tensor> {
        let gpu = Gpu::get(self.ordinal).map_err(gpu_error)?;
        let (xc, xp) = contiguous_f32(x);
        let y = xc.empty_like();
        let n = xc.numel() as u64;
        // SAFETY: xc and y are live contiguous f32 CUDA tensors of n elements on this
        // device, kept alive until the launch is ordered on the shared default stream.
        let negative = unsafe {
            gpu.fake_quant(
                xp,
                y.data_ptr() as u64,
                n,
                &self.scales,
                self.grid,
                self.divide,
                self.unsigned,
            )
        }
        .map_err(gpu_error)?;
        if negative {
            let min = f32::try_from(xc.min()).unwrap_or(f32::NAN);
            return Err(Error::NegativeInputUnsigned { min });
        }
        Ok(if x.kind() == tch::Kind::Float {
            y
        } else {
            y.to_kind(x.kind())
        })
    }

    /// The straight-through gradient of `x` for `grad`.
    fn backward(&self, x: &tch::Tensor, grad: &tch::Tensor) -> tch::Tensor {
        let gpu = Gpu::get(self.ordinal).expect("the forward pass set this GPU up");
        let (xc, xp) = contiguous_f32(x);
        let (gc, gp) = contiguous_f32(grad);
        let gx = gc.empty_like();
        // SAFETY: as in `forward`; all three tensors hold xc.numel() f32s.
        unsafe {
            gpu.ste_backward(
                xp,
                gp,
                gx.data_ptr() as u64,
                xc.numel() as u64,
                &self.scales,
            )
        }
        .expect("the straight-through kernel failed on the GPU");
        if grad.kind() == tch::Kind::Float {
            gx
        } else {
            gx.to_kind(grad.kind())
        }
    }
}

/// The autodiff op: forward by [`Quant::forward`], backward by [`Quant::backward`].
#[derive(Debug)]
struct FusedSte;

impl Backward<LibTorch, 1> for FusedSte {
    type State = (TchTensor, Quant);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, quant) = ops.state;
        unary::<LibTorch, _>(ops.parents, ops.node, grads, |grad: TchTensor| {
            TchTensor::new(quant.backward(&x.tensor, &grad.tensor))
        });
    }
}

/// `fake_tensor_quant` (`divide`) or `tensor_quant`'s codes on the GPU, or `None`
/// when `inputs` is not on a LibTorch CUDA device. The gradient, if tracked, is the
/// straight-through estimator (`|x| <= amax`).
pub(crate) fn quantize<const D: usize>(
    inputs: &Tensor<D>,
    amax: &Tensor<D>,
    range: IntRange,
    divide: bool,
) -> Option<Result<Tensor<D>>> {
    let ordinal = cuda_ordinal(inputs)?;
    Some(quantize_on(inputs, amax, range, divide, ordinal))
}

fn quantize_on<const D: usize>(
    inputs: &Tensor<D>,
    amax: &Tensor<D>,
    range: IntRange,
    divide: bool,
    ordinal: usize,
) -> Result<Tensor<D>> {
    let layout = AmaxLayout::new(&inputs.dims(), &amax.dims())?;
    let amax = super::host_values(amax)?;
    super::kernel::check_amax(&amax)?;
    let quant = Quant {
        ordinal,
        scales: scales(&amax, &layout, range),
        grid: Grid {
            lo: range.min_bound(),
            hi: range.max_bound(),
        },
        divide,
        unsigned: range.unsigned(),
    };
    if let Ok(t) = inputs.clone().try_into_primitive::<LibTorch>() {
        let y = quant.forward(&t.tensor)?;
        return Ok(Tensor::from_primitive::<LibTorch>(TchTensor::new(y)));
    }
    if let Some(out) = autodiff::<D, NoCheckpointing>(inputs, &quant) {
        return out;
    }
    if let Some(out) = autodiff::<D, BalancedCheckpointing>(inputs, &quant) {
        return out;
    }
    Err(Error::Gpu(format!(
        "a tensor on CUDA device {ordinal} that is neither a LibTorch nor an autodiff LibTorch tensor"
    )))
}

fn autodiff<const D: usize, C>(inputs: &Tensor<D>, quant: &Quant) -> Option<Result<Tensor<D>>>
where
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<Autodiff<LibTorch, C>>,
{
    let ad = inputs
        .clone()
        .try_into_primitive::<Autodiff<LibTorch, C>>()
        .ok()?;
    let run = || -> Result<Tensor<D>> {
        let y = TchTensor::new(quant.forward(&ad.primitive().tensor)?);
        let out = match FusedSte
            .prepare::<C>([ad.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((ad.primitive().clone(), quant.clone()), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        Ok(Tensor::from_primitive::<Autodiff<LibTorch, C>>(out))
    };
    Some(run())
}

/// The LibTorch tensor behind `t` (plain or inside autodiff), sharing its storage.
fn raw_tch<const D: usize>(t: &Tensor<D>) -> Option<tch::Tensor> {
    if let Ok(p) = t.clone().try_into_primitive::<LibTorch>() {
        return Some(p.tensor);
    }
    if let Ok(p) = t
        .clone()
        .try_into_primitive::<Autodiff<LibTorch, NoCheckpointing>>()
    {
        return Some(p.primitive().tensor.shallow_clone());
    }
    t.clone()
        .try_into_primitive::<Autodiff<LibTorch, BalancedCheckpointing>>()
        .ok()
        .map(|p| p.primitive().tensor.shallow_clone())
}

/// A tensor's values on its CUDA device, contiguous float32, for the calibrators.
pub(crate) struct DeviceData {
    gpu: &'static Gpu,
    /// Keeps the (possibly converted) values alive while kernels read them.
    tensor: tch::Tensor,
    ptr: u64,
}

impl DeviceData {
    /// `x`'s data, or `None` when `x` is not on a LibTorch CUDA device.
    pub(crate) fn of<const D: usize>(x: &Tensor<D>) -> Option<Result<Self>> {
        let ordinal = cuda_ordinal(x)?;
        Some((|| {
            let gpu = Gpu::get(ordinal).map_err(gpu_error)?;
            let raw = raw_tch(x).ok_or_else(|| {
                Error::Gpu(format!(
                    "a tensor on CUDA device {ordinal} that is not a LibTorch tensor"
                ))
            })?;
            let (tensor, ptr) = contiguous_f32(&raw);
            Ok(Self { gpu, tensor, ptr })
        })())
    }

    pub(crate) fn len(&self) -> usize {
        self.tensor.numel()
    }

    /// Bit pattern of the largest |x| and the number of zeros.
    pub(crate) fn abs_scan(&self) -> Result<(u32, u64)> {
        // SAFETY: `tensor` is a live contiguous f32 CUDA tensor of `len` elements.
        unsafe { self.gpu.abs_scan(self.ptr, self.len() as u64) }.map_err(gpu_error)
    }

    /// Adds the values' bins over `[0, hi]` to `counts`.
    pub(crate) fn histogram(&self, hi: f32, counts: &mut [u64]) -> Result<()> {
        // SAFETY: as in `abs_scan`.
        unsafe { self.gpu.histogram(self.ptr, self.len() as u64, hi, counts) }.map_err(gpu_error)
    }
}

/// [`DeviceData::abs_scan`] of `x`, or `None` off CUDA.
pub(crate) fn abs_scan<const D: usize>(x: &Tensor<D>) -> Option<Result<(u32, u64)>> {
    DeviceData::of(x).map(|d| d?.abs_scan())
}
