//! `TensorQuantizer`: the module that quantizes one tensor as its descriptor says
//! (`nn/modules/tensor_quantizer.py` of the reference).

use burn::module::{DisplaySettings, ModuleDisplay, Param, ParamId};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::handle::{QuantizerConfig, QuantizerHandle, Runtime};
use super::scope::{self, Mode};
use crate::calib::{Calibrator, HistogramMethod};
use crate::error::{Error, Result};
use crate::tensor_quant::reduce::{kept_shape, normalize_axis};
use crate::tensor_quant::{
    self as tq, Amax, NumBits, QuantDescriptor, QuantLowering, fake_tensor_quant, scaled_e4m3,
    tensor_quant,
};

/// The learnable range of a `learn_amax` quantizer (`clip` of the reference).
#[derive(Module, Debug)]
pub struct LearnableClip {
    /// Lower bound, a scalar parameter.
    pub clip_value_min: Param<Tensor<1>>,
    /// Upper bound, a scalar parameter.
    pub clip_value_max: Param<Tensor<1>>,
}

/// Quantizes one tensor as a [`QuantDescriptor`] says, with the reference's switches
/// (`enable/disable`, `enable_quant/disable_quant`, `enable_calib/disable_calib`,
/// `enable_clip/disable_clip`) and forward order:
///
/// 1. disabled: return the input;
/// 2. calibrating: feed the input to the calibrator;
/// 3. clipping (learned amax): clip to the learnable range;
/// 4. quantizing: fake (or real) quantize with amax = `_amax`, or the input's
///    own per-tensor / per-axis max when no amax is set, times `scale_amax`.
///
/// `_amax` is a (non-trainable) parameter, so it is saved and loaded with the
/// model's record under names such as `conv1._weight_quantizer._amax`. Switches and
/// the calibrator are runtime state shared by clones of the module (see
/// [`QuantizerHandle`]).
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct TensorQuantizer {
    /// Amax, flattened row-major (`[C]` for a `[C,1,1,1]` per-channel amax). NaN
    /// entries mean "not set": the quantizer then uses dynamic amax.
    pub _amax: Param<Tensor<1>>,
    /// Learnable range, when the descriptor has `learn_amax`.
    pub clip: Option<LearnableClip>,
    /// Switches, calibrator and configuration.
    pub handle: QuantizerHandle,
}

impl TensorQuantizer {
    /// A quantizer for `desc` on `device`, enabled, quantizing, not calibrating.
    ///
    /// # Errors
    /// A histogram calibrator with a per-channel axis; `learn_amax` with an amax
    /// holding more than one value.
    pub fn new(desc: &QuantDescriptor, device: &Device) -> Result<Self> {
        let cfg = QuantizerConfig::from_descriptor(desc);
        let calibrator = Calibrator::new(
            desc.calib_method(),
            desc.num_bits(),
            desc.axis().map(<[isize]>::to_vec),
            desc.unsigned(),
        )?;
        let amax_values = desc.amax().map(|a| a.values().to_vec()).unwrap_or_else(|| {
            // Per tensor: one unset value. Per channel: unknown length until calibrated
            // (or `with_channels`).
            if cfg.axis.is_some() {
                Vec::new()
            } else {
                vec![f32::NAN]
            }
        });
        let clip = if desc.learn_amax() {
            let init = match desc.amax() {
                None => 1.0,
                Some(a) if a.numel() == 1 => a.values()[0],
                Some(a) => {
                    return Err(Error::Descriptor {
                        name: desc.name().map(str::to_string),
                        message: format!(
                            "learn_amax needs a scalar amax, got {} values",
                            a.numel()
                        ),
                    });
                }
            };
            Some(LearnableClip {
                clip_value_min: Param::from_tensor(Tensor::from_floats([-init], device)),
                clip_value_max: Param::from_tensor(Tensor::from_floats([init], device)),
            })
        } else {
            None
        };
        let runtime = Runtime {
            disabled: false,
            if_quant: true,
            if_calib: false,
            if_clip: desc.learn_amax(),
            calibrator: Some(calibrator),
            error: None,
            scale: None,
            amax_shape: desc.amax().map(|a| a.shape().to_vec()),
        };
        Ok(Self {
            _amax: amax_param(amax_values, device),
            clip,
            handle: QuantizerHandle::new(cfg, runtime),
        })
    }

    /// Sizes an unset per-channel amax to `channels` entries, so that a saved
    /// calibrated record loads into a fresh model.
    #[must_use]
    pub fn with_channels(mut self, channels: usize) -> Self {
        if self.handle.config().axis.is_some() && self.amax().is_none() {
            self._amax = amax_param(vec![f32::NAN; channels], &self._amax.lazy_device());
        }
        self
    }

    /// The descriptor-derived configuration.
    pub fn config(&self) -> &QuantizerConfig {
        self.handle.config()
    }

    /// Current amax (`None`: dynamic), flattened.
    pub fn amax(&self) -> Option<Vec<f32>> {
        amax_of_param(&self._amax)
    }

    /// Sets amax. A later value must keep the number of entries (reference:
    /// "Changing shape when setting amax is not allowed").
    ///
    /// # Errors
    /// Negative or NaN values, or a changed number of entries.
    pub fn set_amax(&mut self, amax: &Amax) -> Result<()> {
        tq::kernel::check_amax(amax.values())?;
        let current = self._amax.lazy_shape().num_elements();
        if self.amax().is_some() && current != amax.numel() {
            return Err(Error::AmaxShapeChanged {
                previous: vec![current],
                current: vec![amax.numel()],
            });
        }
        let device = self._amax.lazy_device();
        self._amax =
            Param::initialized(self._amax.id, amax_tensor(amax.values().to_vec(), &device));
        Ok(())
    }

    /// Computes amax from the calibrator (max calibrators only; histograms need
    /// [`TensorQuantizer::load_calib_amax_with`]). Strict: a quantizer that saw no
    /// data is an error naming it.
    pub fn load_calib_amax(&mut self) -> Result<()> {
        self.load_calib_amax_opts(None, true)
    }

    /// Computes amax from the calibrator with `method` (ignored by max calibrators).
    pub fn load_calib_amax_with(&mut self, method: HistogramMethod) -> Result<()> {
        self.load_calib_amax_opts(Some(method), true)
    }

    /// [`TensorQuantizer::load_calib_amax_with`] with `strict` control: non-strict, a
    /// quantizer that saw no data is disabled with a warning (the reference stores
    /// NaN, which later poisons every output).
    pub fn load_calib_amax_opts(
        &mut self,
        method: Option<HistogramMethod>,
        strict: bool,
    ) -> Result<()> {
        match self.handle.compute_amax(method)? {
            Some(amax) => self.set_amax(&amax),
            None if strict => Err(self.handle.no_data_error()),
            None => {
                eprintln!(
                    "warning: {} saw no calibration data; it is disabled",
                    self.handle.label()
                );
                self.disable();
                Ok(())
            }
        }
    }

    /// Copies ∓max(amax) into the learnable clip bounds (`init_learn_amax`).
    ///
    /// # Errors
    /// No learnable range, or no amax yet.
    pub fn init_learn_amax(&mut self) -> Result<()> {
        let amax = self.amax().ok_or_else(|| self.handle.no_data_error())?;
        let m = amax.iter().copied().fold(0.0f32, f32::max);
        let clip = self.clip.as_mut().ok_or(Error::Unsupported {
            what: "init_learn_amax",
            format: "a quantizer without learn_amax".into(),
        })?;
        let device = clip.clip_value_min.lazy_device();
        clip.clip_value_min = Param::initialized(
            clip.clip_value_min.id,
            Tensor::from_floats([-m], &device).require_grad_if(&device),
        );
        clip.clip_value_max = Param::initialized(
            clip.clip_value_max.id,
            Tensor::from_floats([m], &device).require_grad_if(&device),
        );
        Ok(())
    }

    /// A quantizer with this one's settings whose range is learned (`learn_amax`),
    /// starting at the largest entry of its amax: how QAT with learned ranges starts
    /// from a calibrated model. Its switches and calibrator are new, not shared with
    /// this one.
    ///
    /// # Errors
    /// No amax yet (calibrate first); a per-channel amax (the reference learns a
    /// scalar range only).
    pub fn to_learnable(&self) -> Result<Self> {
        let cfg = self.handle.config();
        let amax = self.amax().ok_or_else(|| self.handle.no_data_error())?;
        if amax.len() != 1 {
            return Err(Error::Descriptor {
                name: cfg.name.clone(),
                message: format!(
                    "learn_amax needs a scalar amax; {} has {} values (keep per-channel \
                     quantizers fixed)",
                    self.handle.label(),
                    amax.len()
                ),
            });
        }
        let mut desc = match cfg.num_bits {
            NumBits::Int(bits) => QuantDescriptor::builder().num_bits(bits),
            NumBits::E4M3(_) => QuantDescriptor::builder().e4m3(),
        }
        .fake_quant(cfg.fake_quant)
        .unsigned(cfg.unsigned)
        .narrow_range(cfg.narrow_range)
        .learn_amax(true)
        .amax(Amax::scalar(amax[0]));
        if let Some(s) = cfg.scale_amax {
            desc = desc.scale_amax(s);
        }
        if let Some(name) = &cfg.name {
            desc = desc.name(name.clone());
        }
        Self::new(&desc.build()?, &self._amax.lazy_device())
    }

    /// Quantizes `x` as configured. Never panics: an error (negative input to an
    /// unsigned quantizer, a calibration failure) is recorded on the quantizer, the
    /// input passes through unquantized, and the error is returned by the next
    /// `load_calib_amax`/[`crate::nn::check_quantizers`] (use
    /// [`TensorQuantizer::try_forward`] to get it at once).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self.try_forward(x.clone()) {
            Ok(y) => y,
            Err(e) => {
                // During an export the error goes to the export, not the model.
                if let Some(e) = scope::note_failure(&self.handle, e) {
                    self.handle.record_error(e);
                }
                x
            }
        }
    }

    /// [`TensorQuantizer::forward`], returning errors.
    pub fn try_forward<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>> {
        let cfg = self.handle.config();
        let (disabled, if_calib, if_clip, if_quant) = {
            let rt = self.handle.runtime();
            (rt.disabled, rt.if_calib, rt.if_clip, rt.if_quant)
        };
        if disabled {
            return Ok(x);
        }
        if scope::mode() == Mode::Lowering {
            if if_calib {
                return Err(Error::Unsupported {
                    what: "export",
                    format: "a calibrating quantizer; finish calibration (compute_amax) first"
                        .into(),
                });
            }
            if if_quant {
                return scope::lower(x.clone(), self.lowering(&x.dims())?, &self.handle);
            }
        }
        if if_calib {
            let mut rt = self.handle.runtime();
            if let Some(c) = rt.calibrator.as_mut() {
                c.collect(&x)?;
            }
        }
        let mut out = x.clone();
        let clip = self.clip.as_ref().filter(|_| if_clip);
        if let Some(clip) = clip {
            out = tq::clip(
                x.clone(),
                clip.clip_value_min.val(),
                clip.clip_value_max.val(),
            )?;
        }
        if !if_quant {
            return Ok(out);
        }
        let amax = self.amax_for(&x)?;
        Ok(match cfg.num_bits {
            // The reference quantizes the unclipped input for E4M3.
            NumBits::E4M3(_) => scaled_e4m3(x, Some(amax))?,
            NumBits::Int(bits) if cfg.fake_quant => {
                fake_tensor_quant(out, amax, bits, cfg.unsigned, cfg.narrow_range)?
            }
            NumBits::Int(bits) => {
                // Real quantization: the reference forces narrow_range = true here.
                let (q, scale) = tensor_quant(out, amax, bits, cfg.unsigned, true)?;
                self.handle.runtime().scale = Some(Amax::from_tensor(&scale)?);
                q
            }
        })
    }

    /// The Q/DQ parameters for an input of shape `dims` (export).
    fn lowering(&self, dims: &[usize]) -> Result<QuantLowering> {
        let cfg = self.handle.config();
        let mut amax = if let Some(clip) = &self.clip {
            let lo = tq::host_values(&clip.clip_value_min.val())?;
            let hi = tq::host_values(&clip.clip_value_max.val())?;
            vec![(-lo[0]).max(hi[0])]
        } else {
            self.amax().ok_or(Error::Uncalibrated)?
        };
        if let Some(s) = cfg.scale_amax {
            amax.iter_mut().for_each(|a| *a *= s);
        }
        let axis = match (&cfg.axis, amax.len()) {
            (_, 1) => None,
            (Some(axis), n) => {
                let axes = normalize_axis(axis, dims.len())?;
                match axes[..] {
                    [a] if dims[a] == n => Some(a),
                    [_] => {
                        return Err(Error::AmaxShape {
                            amax: vec![n],
                            input: dims.to_vec(),
                        });
                    }
                    _ => {
                        return Err(Error::Unsupported {
                            what: "export",
                            format: format!(
                                "amax over several axes {axis:?}; ONNX Q/DQ takes one axis"
                            ),
                        });
                    }
                }
            }
            (None, n) => {
                return Err(Error::AmaxShape {
                    amax: vec![n],
                    input: dims.to_vec(),
                });
            }
        };
        Ok(QuantLowering {
            amax,
            axis,
            num_bits: cfg.num_bits,
            unsigned: cfg.unsigned,
            narrow_range: cfg.narrow_range,
        })
    }

    /// The amax used for `x`: learned range, stored amax, or dynamic; times `scale_amax`.
    fn amax_for<const D: usize>(&self, x: &Tensor<D>) -> Result<Tensor<D>> {
        let cfg = self.handle.config();
        let dims = x.dims();
        let shape = match &cfg.axis {
            Some(axis) => kept_shape(&dims, &normalize_axis(axis, D)?),
            None => vec![1; D],
        };
        let amax = if let Some(clip) = &self.clip {
            let lo = clip.clip_value_min.val().detach().neg();
            let hi = clip.clip_value_max.val().detach();
            lo.max_pair(hi).reshape([1; D])
        } else if let Some(values) = self.amax() {
            let n: usize = shape.iter().product();
            if values.len() != n && values.len() != 1 {
                return Err(Error::AmaxShape {
                    amax: vec![values.len()],
                    input: dims.to_vec(),
                });
            }
            let shape = if values.len() == 1 { vec![1; D] } else { shape };
            let mut rt = self.handle.runtime();
            if rt.amax_shape.is_none() {
                rt.amax_shape = Some(if values.len() == 1 {
                    vec![]
                } else {
                    shape.clone()
                });
            }
            drop(rt);
            Tensor::from_data(TensorData::new(values, shape), &x.device())
        } else {
            let data = tq::host_values(&x.clone().detach())?;
            let amax = tq::reduce::reduce_amax(&data, &dims, cfg.axis.as_deref())?;
            let shape = if amax.numel() == 1 { vec![1; D] } else { shape };
            Tensor::from_data(TensorData::new(amax.values().to_vec(), shape), &x.device())
        };
        Ok(match cfg.scale_amax {
            Some(s) => amax.mul_scalar(s),
            None => amax,
        })
    }

    /// `maxbound`: `2^(b-1+u) - 1`, or 448 for E4M3.
    pub fn maxbound(&self) -> f32 {
        let cfg = self.handle.config();
        cfg.num_bits.max_bound(cfg.unsigned)
    }

    /// `step_size = amax / maxbound` per entry (`None` without amax).
    pub fn step_size(&self) -> Option<Vec<f32>> {
        let bound = self.maxbound();
        self.amax()
            .map(|a| a.into_iter().map(|v| v / bound).collect())
    }
}

// The switches live on the handle, shared by every clone of the quantizer.
impl TensorQuantizer {
    /// Pass inputs through untouched.
    pub fn disable(&self) {
        self.handle.disable();
    }

    /// Undo [`TensorQuantizer::disable`].
    pub fn enable(&self) {
        self.handle.enable();
    }

    /// Quantize in forward.
    pub fn enable_quant(&self) {
        self.handle.enable_quant();
    }

    /// Do not quantize in forward (e.g. while calibrating on full-precision data).
    pub fn disable_quant(&self) {
        self.handle.disable_quant();
    }

    /// Feed inputs to the calibrator in forward.
    pub fn enable_calib(&self) {
        self.handle.enable_calib();
    }

    /// Stop calibrating.
    pub fn disable_calib(&self) {
        self.handle.disable_calib();
    }

    /// Clip to the learnable range in forward (learn_amax quantizers).
    pub fn enable_clip(&self) {
        self.handle.enable_clip();
    }

    /// Do not clip.
    pub fn disable_clip(&self) {
        self.handle.disable_clip();
    }
}

impl ModuleDisplay for TensorQuantizer {
    /// pytorch-quantization 2.2.1's format (also what `Display` prints), e.g.
    /// `TensorQuantizer(8bit fake axis=0 amax=[0.0000, 0.7817](64) calibrator=MaxCalibrator scale=1.0 quant)`.
    fn format(&self, _settings: DisplaySettings) -> String {
        self.handle.describe(self.amax().as_deref())
    }
}

/// A non-trainable rank-1 parameter holding amax values.
fn amax_param(values: Vec<f32>, device: &Device) -> Param<Tensor<1>> {
    Param::initialized(ParamId::new(), amax_tensor(values, device))
}

fn amax_tensor(values: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// The values of an amax parameter, `None` when empty or unset (NaN).
fn amax_of_param(p: &Param<Tensor<1>>) -> Option<Vec<f32>> {
    tq::host_values(&p.val())
        .ok()
        .filter(|v| tq::amax_is_set(v))
}

/// `require_grad` only where autodiff is on (a plain device cannot track gradients).
trait RequireGradIf {
    fn require_grad_if(self, device: &Device) -> Self;
}

impl RequireGradIf for Tensor<1> {
    fn require_grad_if(self, device: &Device) -> Self {
        if device.is_autodiff() {
            self.require_grad()
        } else {
            self
        }
    }
}
