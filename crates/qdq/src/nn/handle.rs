//! The runtime state of a quantizer (switches, calibrator), shared by the module and
//! the handles a model walk returns, and the walk itself.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
    Param,
};
use burn::prelude::*;

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

/// A shared reference to a quantizer's switches and calibrator.
///
/// Every clone of a [`super::TensorQuantizer`] (and so of a model holding it) shares
/// this state, the way a PyTorch module is one object: toggling a switch through a
/// handle from [`named_quantizers`] changes the model's behaviour. Records do not
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

// The handle is a module with no parameters. Its `visit` reports it to an active
// `named_quantizers` walk, which is how a walk finds quantizers inside any model.
impl Module for QuantizerHandle {
    fn visit<V: ModuleVisitor>(&self, _visitor: &mut V) {
        WALK.with(|w| {
            if let Some(walk) = w.borrow_mut().as_mut() {
                walk.found.push((walk.path.clone(), self.clone()));
            }
        });
    }

    fn map<M: ModuleMapper>(self, _mapper: &mut M) -> Self {
        self
    }

    fn to_device(self, _: &Device) -> Self {
        self
    }

    fn fork(self, _: &Device) -> Self {
        self
    }

    fn collect_devices(&self, devices: Devices) -> Devices {
        devices
    }

    fn materialize(self) -> Self {
        self
    }

    fn valid(&self) -> Self {
        self.clone()
    }

    fn train(self) -> Self {
        self
    }
}

impl ModuleDisplayDefault for QuantizerHandle {
    fn content(&self, content: Content) -> Option<Content> {
        content.add_formatted(&"QuantizerHandle").optional()
    }
}

impl ModuleDisplay for QuantizerHandle {}

struct Walk {
    path: Vec<String>,
    /// (path of the handle field, handle)
    found: Vec<(Vec<String>, QuantizerHandle)>,
    /// (path of every float parameter, its values) for `_amax`
    amaxes: Vec<(Vec<String>, Option<Vec<f32>>)>,
}

thread_local! {
    static WALK: RefCell<Option<Walk>> = const { RefCell::new(None) };
}

struct PathVisitor;

impl ModuleVisitor for PathVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        WALK.with(|w| {
            w.borrow_mut()
                .as_mut()
                .map(|walk| walk.path.push(name.to_string()))
        });
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        WALK.with(|w| w.borrow_mut().as_mut().map(|walk| walk.path.pop()));
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        WALK.with(|w| {
            if let Some(walk) = w.borrow_mut().as_mut()
                && D == 1
                && walk.path.last().is_some_and(|p| p == "_amax")
            {
                let values = crate::tensor_quant::host_values(&param.val()).ok();
                let values = values.filter(|v| super::tensor_quantizer::amax_is_set(v));
                walk.amaxes.push((walk.path.clone(), values));
            }
        });
    }
}

/// One quantizer found in a model: its name (`layer1.0.conv1._input_quantizer`),
/// its shared state, and its amax when the walk ran.
#[derive(Clone, Debug)]
pub struct NamedQuantizer {
    /// Dotted path of the quantizer in the model.
    pub name: String,
    /// Switches and calibrator.
    pub handle: QuantizerHandle,
    /// Amax at the time of the walk (`None`: dynamic).
    pub amax: Option<Vec<f32>>,
}

impl fmt::Display for NamedQuantizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.handle.describe(self.amax.as_deref()))
    }
}

/// Every [`super::TensorQuantizer`] in `model`, by name, in field order — the
/// analogue of filtering `model.named_modules()` for `TensorQuantizer`.
pub fn named_quantizers<M: Module>(model: &M) -> Vec<NamedQuantizer> {
    WALK.with(|w| {
        *w.borrow_mut() = Some(Walk {
            path: Vec::new(),
            found: Vec::new(),
            amaxes: Vec::new(),
        })
    });
    model.visit(&mut PathVisitor);
    let walk = WALK
        .with(|w| w.borrow_mut().take())
        .expect("walk state was set above");
    walk.found
        .into_iter()
        .map(|(mut path, handle)| {
            path.pop(); // the `handle` field itself
            let amax = walk
                .amaxes
                .iter()
                .find(|(p, _)| p.len() == path.len() + 1 && p.starts_with(&path))
                .and_then(|(_, v)| v.clone());
            NamedQuantizer {
                name: path.join("."),
                handle,
                amax,
            }
        })
        .collect()
}
