//! The one place where quantizer state travels outside the model: the mode of the
//! walk or pass running on this thread.
//!
//! burn's `forward(&self, x)`, `visit` and `map` take no context, so a quantizer or
//! drop-in layer cannot be told "you are being exported" or "you are being
//! quantized" through arguments. A thread-local [`Mode`] says it instead; each mode
//! is entered by one public function, for the length of a closure, and the mode
//! found before is restored afterwards (also on panic), so scopes nest:
//!
//! | mode | entered by | read by |
//! |---|---|---|
//! | [`Mode::Forward`] | (default) | — |
//! | [`Mode::Lowering`] | [`record_quantizers`] | `TensorQuantizer::try_forward` |
//! | [`Mode::Walking`] | [`super::named_quantizers`] | `QuantizerHandle::visit` |
//! | [`Mode::Quantizing`] | [`crate::quant_modules::quantize`] | the drop-in layers' `map` |

use std::cell::RefCell;

use burn::tensor::{DispatchTensor, Tensor};

use super::handle::QuantizerHandle;
use crate::error::{Error, Result};
use crate::tensor_quant::QuantLowering;

/// What the running walk or pass asks of quantizers and drop-in layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Nothing special: quantizers quantize, layers stay as they are.
    Forward,
    /// [`record_quantizers`]: quantizers emit a marker and record a Q/DQ pair.
    Lowering,
    /// [`super::named_quantizers`]: quantizer handles report themselves when visited.
    Walking,
    /// [`crate::quant_modules::quantize`]: float drop-ins turn quantized when mapped.
    Quantizing,
}

/// A mode with what it collects.
enum State {
    Forward,
    Lowering(Recording),
    /// Handles visited since the walk last took them.
    Walking(Vec<QuantizerHandle>),
    /// The first layer that could not be quantized.
    Quantizing(Option<Error>),
}

impl State {
    fn mode(&self) -> Mode {
        match self {
            State::Forward => Mode::Forward,
            State::Lowering(_) => Mode::Lowering,
            State::Walking(_) => Mode::Walking,
            State::Quantizing(_) => Mode::Quantizing,
        }
    }
}

thread_local! {
    static SCOPE: RefCell<State> = const { RefCell::new(State::Forward) };
}

/// The mode running on this thread.
pub(crate) fn mode() -> Mode {
    SCOPE.with(|s| s.borrow().mode())
}

/// Runs `f` in `state`; returns its result and the state as `f` left it. The state
/// found before is put back afterwards, even if `f` panics.
fn scoped<R>(state: State, f: impl FnOnce() -> R) -> (R, State) {
    struct Restore(Option<State>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0.take() {
                SCOPE.with(|s| *s.borrow_mut() = previous);
            }
        }
    }
    let previous = SCOPE.with(|s| s.replace(state));
    let mut restore = Restore(Some(previous));
    let out = f();
    let previous = restore.0.take().expect("restored once");
    let state = SCOPE.with(|s| s.replace(previous));
    (out, state)
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

/// Runs `f` with quantizers in lowering mode and returns what they recorded.
///
/// In lowering mode a quantizer that would quantize returns `x * 1` (a fresh tensor
/// an exporter can recognise) and records a [`QuantRecord`]; one that is disabled or
/// not quantizing behaves as usual. A quantizer whose `forward` fails passes its input
/// through and its error goes to [`Recording::failures`], not onto the quantizer.
pub fn record_quantizers<R>(f: impl FnOnce() -> R) -> (R, Recording) {
    let (out, state) = scoped(State::Lowering(Recording::default()), f);
    match state {
        State::Lowering(recording) => (out, recording),
        _ => (out, Recording::default()),
    }
}

/// Keeps `e` for the running [`record_quantizers`] pass; gives it back when no pass
/// runs (then the quantizer records it as usual).
pub(crate) fn note_failure(handle: &QuantizerHandle, e: Error) -> Option<Error> {
    SCOPE.with(|s| match &mut *s.borrow_mut() {
        State::Lowering(recording) => {
            recording.failures.push((handle.clone(), e));
            None
        }
        _ => Some(e),
    })
}

/// Emits the marker for `x` and records the pair.
///
/// # Errors
/// A real (`fake_quant = false`) quantizer: exports hold fake-quant models only.
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
    SCOPE.with(|s| {
        if let State::Lowering(recording) = &mut *s.borrow_mut() {
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

/// Runs `f` (a model walk) with quantizer handles reporting themselves; see
/// [`take_walked`].
pub(crate) fn walking<R>(f: impl FnOnce() -> R) -> R {
    scoped(State::Walking(Vec::new()), f).0
}

/// Called by a visited handle: reports it to the running walk, if any.
pub(crate) fn walked(handle: &QuantizerHandle) {
    SCOPE.with(|s| {
        if let State::Walking(found) = &mut *s.borrow_mut() {
            found.push(handle.clone());
        }
    });
}

/// The handles visited since the last call, in visiting order.
pub(crate) fn take_walked() -> Vec<QuantizerHandle> {
    SCOPE.with(|s| match &mut *s.borrow_mut() {
        State::Walking(found) => std::mem::take(found),
        _ => Vec::new(),
    })
}

/// Runs `f` (a `map` over a model) in quantizing mode; returns its result and the
/// first failure a layer reported.
pub(crate) fn quantizing<R>(f: impl FnOnce() -> R) -> (R, Option<Error>) {
    let (out, state) = scoped(State::Quantizing(None), f);
    match state {
        State::Quantizing(failure) => (out, failure),
        _ => (out, None),
    }
}

/// Reports a layer that could not be quantized (the first one wins).
pub(crate) fn quantize_failed(e: Error) {
    SCOPE.with(|s| {
        if let State::Quantizing(failure @ None) = &mut *s.borrow_mut() {
            *failure = Some(e);
        }
    });
}
