//! Lowering quantizers for exporters: while [`record_quantizers`] runs a forward
//! pass, every quantizing `TensorQuantizer` emits a marker op instead of the fake
//! quant arithmetic and records what a `QuantizeLinear → DequantizeLinear` pair
//! needs. An exporter (qdq-onnx) captures the pass on burn's capture device and
//! turns each marker into that pair, so a fake quant never lowers to Round/Clip.

use std::cell::RefCell;

use burn::tensor::{DispatchTensor, Tensor};

use super::QuantizerHandle;
use crate::error::{Error, Result};
use crate::tensor_quant::NumBits;

/// What one quantizer does to one tensor, in the terms of a Q/DQ pair.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantLowering {
    /// Amax per entry: one value per tensor, or one per channel along `axis`.
    pub amax: Vec<f32>,
    /// Channel axis (non-negative) of a per-channel amax.
    pub axis: Option<usize>,
    /// Integer bits or E4M3.
    pub num_bits: NumBits,
    /// Unsigned grid.
    pub unsigned: bool,
    /// Narrow signed range (`[-127, 127]` for 8 bits). Always `false` for a signed
    /// grid in a record: `QuantizeLinear` saturates to `[-128, 127]`, so a signed
    /// narrow quantizer cannot lower to a pair and is refused, as the reference's
    /// export refuses it (spec §6). Unsigned grids ignore it (unsigned wins).
    pub narrow_range: bool,
}

impl QuantLowering {
    /// The largest grid value amax maps to (`maxbound`): `2^(b-1+u) - 1` for
    /// integers (127 for signed 8-bit, 255 unsigned), 448 for E4M3.
    pub fn bound(&self) -> f32 {
        self.num_bits.max_bound(self.unsigned)
    }

    /// The pair's scales, one per amax entry: `amax / bound` in float32, 1 where
    /// amax is 0 ([`NumBits::qdq_scale`]).
    pub fn scales(&self) -> Vec<f32> {
        self.amax
            .iter()
            .map(|&a| self.num_bits.qdq_scale(self.unsigned, a))
            .collect()
    }
}

/// One quantizer application seen during [`record_quantizers`].
pub struct QuantRecord {
    /// The tensor the quantizer read.
    pub input: DispatchTensor,
    /// The marker tensor standing for the quantized result; its consumers read it.
    pub output: DispatchTensor,
    /// The pair's parameters.
    pub lowering: QuantLowering,
    /// The quantizer, to find its name in the model.
    pub handle: QuantizerHandle,
}

/// What the quantizers did during one [`record_quantizers`] pass.
#[derive(Default)]
pub struct Recording {
    /// One pair per quantizer application, in forward order.
    pub records: Vec<QuantRecord>,
    /// Quantizers that failed (an unset amax, a real (non-fake) quantizer...), with
    /// their error, in forward order. They are NOT recorded on the quantizer, so a
    /// refused export leaves every quantizer as it was: the caller reports them.
    pub failures: Vec<(QuantizerHandle, Error)>,
}

thread_local! {
    static RECORDS: RefCell<Option<Recording>> = const { RefCell::new(None) };
}

/// Runs `f` with quantizers in lowering mode and returns what they recorded.
///
/// In lowering mode a quantizer that would quantize returns `x * 1` (a fresh tensor
/// an exporter can recognise) and records a [`QuantRecord`]; one that is disabled or
/// not quantizing behaves as usual. A quantizer whose `forward` fails passes its input
/// through and its error goes to [`Recording::failures`], not onto the quantizer.
pub fn record_quantizers<R>(f: impl FnOnce() -> R) -> (R, Recording) {
    struct Reset(Option<Recording>);
    impl Drop for Reset {
        fn drop(&mut self) {
            RECORDS.with(|r| *r.borrow_mut() = self.0.take());
        }
    }
    let previous = RECORDS.with(|r| r.borrow_mut().replace(Recording::default()));
    let reset = Reset(previous);
    let out = f();
    let recording = RECORDS.with(|r| r.borrow_mut().take()).unwrap_or_default();
    drop(reset);
    (out, recording)
}

/// Keeps `e` for the running [`record_quantizers`] pass; gives it back when no pass
/// runs (then the quantizer records it as usual).
pub(crate) fn note_failure(handle: &QuantizerHandle, e: Error) -> Option<Error> {
    RECORDS.with(|r| match r.borrow_mut().as_mut() {
        Some(recording) => {
            recording.failures.push((handle.clone(), e));
            None
        }
        None => Some(e),
    })
}

/// Whether a [`record_quantizers`] pass is running on this thread.
pub(crate) fn lowering_active() -> bool {
    RECORDS.with(|r| r.borrow().is_some())
}

/// Emits the marker for `x` and records the pair.
pub(crate) fn lower<const D: usize>(
    x: Tensor<D>,
    lowering: QuantLowering,
    handle: &QuantizerHandle,
) -> Result<Tensor<D>> {
    if !handle.config().fake_quant {
        return Err(Error::Unsupported {
            what: "export",
            format: "a real (fake_quant = false) quantizer; export fake-quant models".into(),
        });
    }
    let y = x.clone().mul_scalar(1.0);
    RECORDS.with(|r| {
        if let Some(recording) = r.borrow_mut().as_mut() {
            recording.records.push(QuantRecord {
                input: x.into_dispatch(),
                output: y.clone().into_dispatch(),
                lowering,
                handle: handle.clone(),
            });
        }
    });
    Ok(y)
}
