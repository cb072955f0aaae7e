//! The runtime state of a quantizer (switches, calibrator), shared by the module and
//! the handles a model walk returns, with the switches of the reference.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::calib::{Calibrator, HistogramMethod};
use crate::error::{Error, Result};
use crate::tensor_quant::descriptor_fmt_axis;
use crate::tensor_quant::{Amax, NumBits, QuantDescriptor};

/// What a quantizer copies from its descriptor (fixed for its life).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizerConfig {
    /// Bits or E4M3.
    pub num_bits: NumBits,
    /// Fake quantization.
    pub fake_quant: bool,
    /// Kept axes (`None`: per tensor).
    pub axis: Option<Vec<isize>>,
    /// Multiplier on amax.
    pub scale_amax: Option<f32>,
    /// Learned range.
    pub learn_amax: bool,
    /// Unsigned grid.
    pub unsigned: bool,
    /// Narrow signed range.
    pub narrow_range: bool,
    /// Descriptor name, used in messages.
    pub name: Option<String>,
}

impl QuantizerConfig {
    pub(crate) fn from_descriptor(d: &QuantDescriptor) -> Self {
        Self {
            num_bits: d.num_bits(),
            fake_quant: d.fake_quant(),
            axis: d.axis().map(<[isize]>::to_vec),
            scale_amax: d.scale_amax(),
            learn_amax: d.learn_amax(),
            unsigned: d.unsigned(),
            narrow_range: d.narrow_range(),
            name: d.name().map(str::to_string),
        }
    }
}

/// Switches and calibrator.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub disabled: bool,
    pub if_quant: bool,
    pub if_calib: bool,
    pub if_clip: bool,
    pub calibrator: Option<Calibrator>,
    /// First error raised inside `forward`, reported by the next checked call.
    pub error: Option<Error>,
    /// Scale of the last real (non-fake) quantization.
    pub scale: Option<Amax>,
    /// Keepdims shape of amax, as last calibrated, set or used (for export in
    /// PyTorch's layout; the parameter itself is flat).
    pub amax_shape: Option<Vec<usize>>,
}

#[derive(Debug)]
struct Shared {
    config: QuantizerConfig,
    runtime: Mutex<Runtime>,
}

/// The identity of a quantizer ([`QuantizerHandle::id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuantizerId(usize);

/// A shared reference to a quantizer's switches and calibrator.
///
/// Every clone of a [`super::TensorQuantizer`] (and so of a model holding it) shares
/// this state, the way a PyTorch module is one object: toggling a switch through a
/// handle from [`super::named_quantizers`] changes the model's behaviour. Records do not
/// store it (only `_amax` and the clip bounds are model state).
#[derive(Clone, Debug)]
pub struct QuantizerHandle(Arc<Shared>);

impl QuantizerHandle {
    pub(crate) fn new(config: QuantizerConfig, runtime: Runtime) -> Self {
        Self(Arc::new(Shared {
            config,
            runtime: Mutex::new(runtime),
        }))
    }

    pub(crate) fn runtime(&self) -> MutexGuard<'_, Runtime> {
        // A panic while holding the lock cannot leave the switches inconsistent.
        self.0.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `self` and `other` are the same quantizer (clones of one module).
    pub fn same(&self, other: &QuantizerHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The quantizer's identity, equal for clones of one module: a key to find
    /// handles by (e.g. records of an export pass by name) without a linear search.
    /// Valid while the handle lives.
    pub fn id(&self) -> QuantizerId {
        QuantizerId(Arc::as_ptr(&self.0) as usize)
    }

    /// The configuration.
    pub fn config(&self) -> &QuantizerConfig {
        &self.0.config
    }

    /// Whether the quantizer passes inputs through.
    pub fn is_disabled(&self) -> bool {
        self.runtime().disabled
    }

    /// Whether it quantizes in forward.
    pub fn is_quant(&self) -> bool {
        self.runtime().if_quant
    }

    /// Whether it calibrates in forward.
    pub fn is_calib(&self) -> bool {
        self.runtime().if_calib
    }

    /// Whether it clips in forward.
    pub fn is_clip(&self) -> bool {
        self.runtime().if_clip
    }

    /// Whether it has a calibrator.
    pub fn has_calibrator(&self) -> bool {
        self.runtime().calibrator.is_some()
    }

    /// Calibrator type name, if any.
    pub fn calibrator_kind(&self) -> Option<&'static str> {
        self.runtime().calibrator.as_ref().map(Calibrator::kind)
    }

    /// Amax from the calibrator (`None`: no data).
    pub fn compute_amax(&self, method: Option<HistogramMethod>) -> Result<Option<Amax>> {
        let rt = self.runtime();
        match &rt.calibrator {
            Some(c) => c.compute_amax(method),
            None => Ok(None),
        }
    }

    /// Keepdims shape of amax (`[]` per tensor, `[C, 1, 1, 1]` per channel), once known.
    pub fn amax_shape(&self) -> Option<Vec<usize>> {
        self.runtime().amax_shape.clone()
    }

    pub(crate) fn note_amax_shape(&self, shape: &[usize]) {
        self.runtime().amax_shape = Some(shape.to_vec());
    }

    /// Forgets collected calibration data.
    pub fn reset_calibrator(&self) {
        if let Some(c) = self.runtime().calibrator.as_mut() {
            c.reset();
        }
    }

    /// Takes the first error recorded by `forward`, if any.
    pub fn take_error(&self) -> Option<Error> {
        self.runtime().error.take()
    }

    pub(crate) fn record_error(&self, e: Error) {
        let mut rt = self.runtime();
        if rt.error.is_none() {
            rt.error = Some(e);
        }
    }

    /// Short name for messages: the descriptor's name or "TensorQuantizer".
    pub(crate) fn label(&self) -> String {
        self.0
            .config
            .name
            .clone()
            .unwrap_or_else(|| "TensorQuantizer".into())
    }

    pub(crate) fn no_data_error(&self) -> Error {
        Error::NoData {
            calibrator: format!(
                "quantizer `{}` ({})",
                self.label(),
                self.calibrator_kind().unwrap_or("no calibrator")
            ),
        }
    }

    /// The reference's `extra_repr`, wrapped as `TensorQuantizer(...)`.
    pub(crate) fn describe(&self, amax: Option<&[f32]>) -> String {
        let c = &self.0.config;
        let rt = self.runtime();
        if rt.disabled {
            return "TensorQuantizer(disabled)".into();
        }
        let mut s = String::new();
        if c.unsigned {
            s.push_str("unsigned ");
        }
        s.push_str(&format!("{}bit", c.num_bits));
        if c.narrow_range {
            s.push_str(" narrow");
        }
        if c.fake_quant {
            s.push_str(" fake");
        }
        match &c.axis {
            Some(axis) => s.push_str(&format!(" axis={}", descriptor_fmt_axis(axis))),
            None => s.push_str(" per-tensor"),
        }
        match amax {
            None => s.push_str(" amax=dynamic"),
            Some([v]) => s.push_str(&format!(" amax={v:.4}")),
            Some(v) => {
                let (lo, hi) = v
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                        (a.min(x), b.max(x))
                    });
                s.push_str(&format!(" amax=[{lo:.4}, {hi:.4}]({})", v.len()));
            }
        }
        if let Some(k) = c.scale_amax {
            s.push_str(&format!(" *{k}"));
        }
        if c.learn_amax {
            s.push_str(" learned");
        }
        if let Some(cal) = &rt.calibrator {
            s.push_str(&format!(" calibrator={}", cal.kind()));
        }
        if c.fake_quant {
            s.push_str(" scale=1.0");
        } else if let Some(scale) = &rt.scale {
            let (lo, hi) = scale.min_max();
            s.push_str(&format!(" scale=[{lo:.4}, {hi:.4}]({})", scale.numel()));
        }
        for (on, word) in [
            (rt.if_quant, " quant"),
            (rt.if_clip, " clip"),
            (rt.if_calib, " calib"),
        ] {
            if on {
                s.push_str(word);
            }
        }
        format!("TensorQuantizer({s})")
    }
}

/// The reference's switches, one method each on the handle (and so on every clone of
/// the quantizer); [`super::TensorQuantizer`] forwards its own to them.
macro_rules! switches {
    ($($(#[$doc:meta])* $name:ident => $field:ident = $value:literal;)*) => {
        impl QuantizerHandle {$(
            $(#[$doc])*
            pub fn $name(&self) {
                self.runtime().$field = $value;
            }
        )*}
    };
}

switches! {
    /// Pass inputs through untouched.
    disable => disabled = true;
    /// Undo [`QuantizerHandle::disable`].
    enable => disabled = false;
    /// Quantize in forward.
    enable_quant => if_quant = true;
    /// Do not quantize in forward (e.g. while calibrating on full-precision data).
    disable_quant => if_quant = false;
    /// Feed inputs to the calibrator in forward.
    enable_calib => if_calib = true;
    /// Stop calibrating.
    disable_calib => if_calib = false;
    /// Clip to the learnable range in forward (learn_amax quantizers).
    enable_clip => if_clip = true;
    /// Do not clip.
    disable_clip => if_clip = false;
}
