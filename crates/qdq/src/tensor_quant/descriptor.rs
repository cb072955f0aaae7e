//! `QuantDescriptor`: how a tensor is quantized, and the predefined descriptors.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::LazyLock;

use super::amax::Amax;
use super::format::{IntRange, NumBits};
use crate::error::{Error, Result};

/// Which calibrator a quantizer built from the descriptor collects statistics with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalibMethod {
    /// Running max of |x| ([`crate::calib::MaxCalibrator`]).
    #[default]
    Max,
    /// Histogram of |x| ([`crate::calib::HistogramCalibrator`]); amax by entropy, mse or percentile.
    Histogram,
}

impl fmt::Display for CalibMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CalibMethod::Max => "max",
            CalibMethod::Histogram => "histogram",
        })
    }
}

impl std::str::FromStr for CalibMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "max" => Ok(CalibMethod::Max),
            "histogram" => Ok(CalibMethod::Histogram),
            other => Err(Error::UnknownCalibMethod(other.to_string())),
        }
    }
}

/// Describes how a tensor is quantized (pytorch-quantization's `QuantDescriptor`).
///
/// Built with [`QuantDescriptor::builder`], validated once, then read-only. Defaults
/// are the reference's: 8 bits, fake quant, per tensor, no amax, max calibration,
/// signed, full range (`narrow_range = false`).
///
/// ```
/// use qdq::tensor_quant::{QuantDescriptor, CalibMethod};
/// let desc = QuantDescriptor::builder().num_bits(4).axis([0]).unsigned(true).build().unwrap();
/// assert_eq!(desc.to_string(), "QuantDescriptor(unsigned 4bit fake axis=0)");
/// assert_eq!(desc.calib_method(), CalibMethod::Max);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DescriptorFields", into = "DescriptorFields")]
pub struct QuantDescriptor {
    f: DescriptorFields,
}

/// The fields of a descriptor, as serialized. Missing keys take their defaults;
/// unknown keys are an error (the reference's "Unused keys").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DescriptorFields {
    num_bits: NumBits,
    name: Option<String>,
    fake_quant: bool,
    #[serde(with = "axis_serde")]
    axis: Option<Vec<isize>>,
    amax: Option<Amax>,
    learn_amax: bool,
    scale_amax: Option<f32>,
    calib_method: CalibMethod,
    unsigned: bool,
    narrow_range: bool,
}

impl Default for DescriptorFields {
    fn default() -> Self {
        Self {
            num_bits: NumBits::Int(8),
            name: None,
            fake_quant: true,
            axis: None,
            amax: None,
            learn_amax: false,
            scale_amax: None,
            calib_method: CalibMethod::Max,
            unsigned: false,
            narrow_range: false,
        }
    }
}

impl TryFrom<DescriptorFields> for QuantDescriptor {
    type Error = Error;
    fn try_from(f: DescriptorFields) -> Result<Self> {
        let fail = |message: String| Error::Descriptor {
            name: f.name.clone(),
            message,
        };
        match f.num_bits {
            NumBits::Int(b) => {
                IntRange::new(b, f.unsigned, f.narrow_range).map_err(|e| fail(e.to_string()))?;
            }
            NumBits::E4M3(_) if f.unsigned => {
                return Err(fail("FP8 E4M3 (num_bits (4, 3)) cannot be unsigned".into()));
            }
            NumBits::E4M3(_) => {}
        }
        if f.learn_amax && f.axis.is_some() {
            return Err(fail(format!(
                "axis is ignored and must be None when learn_amax is true, got {:?}",
                f.axis
            )));
        }
        if f.axis.as_ref().is_some_and(Vec::is_empty) {
            return Err(fail(
                "axis must name at least one dimension, or be None for per-tensor".into(),
            ));
        }
        if let Some(amax) = f
            .amax
            .as_ref()
            .filter(|a| a.values().iter().any(|v| v.is_nan() || *v < 0.0))
        {
            return Err(fail(format!(
                "amax must be non-negative numbers, got {:?}",
                amax.values()
            )));
        }
        if let Some(s) = f.scale_amax.filter(|s| !s.is_finite() || *s <= 0.0) {
            return Err(fail(format!(
                "scale_amax must be a positive finite number, got {s}"
            )));
        }
        Ok(Self { f })
    }
}

impl From<QuantDescriptor> for DescriptorFields {
    fn from(d: QuantDescriptor) -> Self {
        d.f
    }
}

impl QuantDescriptor {
    /// A builder starting from the defaults.
    pub fn builder() -> QuantDescriptorBuilder {
        QuantDescriptorBuilder {
            f: DescriptorFields::default(),
        }
    }

    /// A builder starting from this descriptor's fields (to derive a variant).
    pub fn to_builder(&self) -> QuantDescriptorBuilder {
        QuantDescriptorBuilder { f: self.f.clone() }
    }

    /// Bit width or E4M3.
    pub fn num_bits(&self) -> NumBits {
        self.f.num_bits
    }
    /// Optional name.
    pub fn name(&self) -> Option<&str> {
        self.f.name.as_deref()
    }
    /// Fake (float output) rather than real (integer codes) quantization.
    pub fn fake_quant(&self) -> bool {
        self.f.fake_quant
    }
    /// Axes that keep their own amax (`None`: per tensor).
    pub fn axis(&self) -> Option<&[isize]> {
        self.f.axis.as_deref()
    }
    /// Fixed amax, if given.
    pub fn amax(&self) -> Option<&Amax> {
        self.f.amax.as_ref()
    }
    /// Learn amax through a clip with trainable bounds.
    pub fn learn_amax(&self) -> bool {
        self.f.learn_amax
    }
    /// Multiplier applied to amax at use time.
    pub fn scale_amax(&self) -> Option<f32> {
        self.f.scale_amax
    }
    /// Calibrator kind.
    pub fn calib_method(&self) -> CalibMethod {
        self.f.calib_method
    }
    /// Unsigned grid.
    pub fn unsigned(&self) -> bool {
        self.f.unsigned
    }
    /// Symmetric signed grid `[-max, max]` instead of `[-max-1, max]`.
    pub fn narrow_range(&self) -> bool {
        self.f.narrow_range
    }

    /// The reference's `dict()` plus the fields it drops (`narrow_range`,
    /// `calib_method`), as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("descriptor fields always serialize")
    }

    /// Parses and validates a descriptor from JSON.
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error::Descriptor {
            name: None,
            message: e.to_string(),
        })
    }

    /// YAML, every field kept (the reference's `to_yaml` loses two and fails on an int axis).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("descriptor fields always serialize")
    }

    /// Parses and validates a descriptor from YAML.
    pub fn from_yaml(s: &str) -> Result<Self> {
        serde_yaml::from_str(s).map_err(|e| Error::Descriptor {
            name: None,
            message: e.to_string(),
        })
    }
}

/// Builds a validated [`QuantDescriptor`]; see the field accessors for meanings.
#[derive(Clone, Debug)]
#[must_use]
pub struct QuantDescriptorBuilder {
    f: DescriptorFields,
}

impl QuantDescriptorBuilder {
    /// Integer bit width (1–16; signed needs 2 or more).
    pub fn num_bits(mut self, bits: u32) -> Self {
        self.f.num_bits = NumBits::Int(bits);
        self
    }
    /// FP8 E4M3 (the reference's `num_bits=(4, 3)`).
    pub fn e4m3(mut self) -> Self {
        self.f.num_bits = NumBits::FP8_E4M3;
        self
    }
    /// Name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.f.name = Some(name.into());
        self
    }
    /// Fake (default) or real quantization.
    pub fn fake_quant(mut self, fake: bool) -> Self {
        self.f.fake_quant = fake;
        self
    }
    /// Axes that keep their own amax, e.g. `[0]` for a KCRS weight's output channels.
    pub fn axis(mut self, axis: impl IntoIterator<Item = isize>) -> Self {
        self.f.axis = Some(axis.into_iter().collect());
        self
    }
    /// Per-tensor (no axis).
    pub fn per_tensor(mut self) -> Self {
        self.f.axis = None;
        self
    }
    /// Fixed amax.
    pub fn amax(mut self, amax: Amax) -> Self {
        self.f.amax = Some(amax);
        self
    }
    /// Learn amax.
    pub fn learn_amax(mut self, learn: bool) -> Self {
        self.f.learn_amax = learn;
        self
    }
    /// Multiply amax by this at use time.
    pub fn scale_amax(mut self, scale: f32) -> Self {
        self.f.scale_amax = Some(scale);
        self
    }
    /// Calibrator kind.
    pub fn calib_method(mut self, method: CalibMethod) -> Self {
        self.f.calib_method = method;
        self
    }
    /// Unsigned grid.
    pub fn unsigned(mut self, unsigned: bool) -> Self {
        self.f.unsigned = unsigned;
        self
    }
    /// Narrow (symmetric) signed range.
    pub fn narrow_range(mut self, narrow: bool) -> Self {
        self.f.narrow_range = narrow;
        self
    }
    /// Validates the fields.
    ///
    /// # Errors
    /// [`Error::Descriptor`] naming the descriptor and the field at fault.
    pub fn build(self) -> Result<QuantDescriptor> {
        QuantDescriptor::try_from(self.f)
    }
}

/// Formats an axis list as the reference prints it: `0` for one axis, `(0, 1)` for several.
pub fn fmt_axis(axis: &[isize]) -> String {
    match axis {
        [a] => a.to_string(),
        many => format!(
            "({})",
            many.iter()
                .map(isize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl fmt::Display for QuantDescriptor {
    /// The reference's `__str__`, e.g. `QuantDescriptor(8bit fake axis= per-tensor)`.
    ///
    /// Differences, on purpose: the reference appends ` full_range` whenever amax is
    /// set (a bug, unrelated to the range); we append ` narrow_range` when the range
    /// is narrow and ` calib_method=histogram` when not max, so the string shows every
    /// non-default field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.f;
        match &d.name {
            Some(n) => write!(f, "{n}: (")?,
            None => f.write_str("QuantDescriptor(")?,
        }
        if d.unsigned {
            f.write_str("unsigned ")?;
        }
        write!(f, "{}bit", d.num_bits)?;
        f.write_str(if d.fake_quant { " fake" } else { " real" })?;
        match &d.axis {
            Some(axis) => write!(f, " axis={}", fmt_axis(axis))?,
            None => f.write_str(" axis= per-tensor")?,
        }
        if let Some(amax) = &d.amax {
            match amax.shape() {
                [] => write!(f, " amax={}", amax.values()[0])?,
                _ => write!(f, " amax={:?}", amax.values())?,
            }
        }
        if d.narrow_range {
            f.write_str(" narrow_range")?;
        }
        if d.learn_amax {
            f.write_str(" learn_amax")?;
        }
        if let Some(s) = d.scale_amax {
            write!(f, " scale_amax={s}")?;
        }
        if d.calib_method != CalibMethod::Max {
            write!(f, " calib_method={}", d.calib_method)?;
        }
        f.write_str(")")
    }
}

mod axis_serde {
    //! `axis` reads as an int or a list and is written as a list (as `to_yaml` does).
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(isize),
        Many(Vec<isize>),
    }

    pub fn serialize<S: Serializer>(axis: &Option<Vec<isize>>, s: S) -> Result<S::Ok, S::Error> {
        axis.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<isize>>, D::Error> {
        Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(v) => v,
        }))
    }
}

macro_rules! predefined {
    ($($(#[$doc:meta])* $name:ident = $build:expr;)*) => {$(
        $(#[$doc])*
        pub static $name: LazyLock<QuantDescriptor> =
            LazyLock::new(|| $build.build().expect("predefined descriptors are valid"));
    )*};
}

predefined! {
    /// 8-bit, per tensor (activations).
    QUANT_DESC_8BIT_PER_TENSOR = QuantDescriptor::builder();
    /// Unsigned 8-bit, per tensor.
    QUANT_DESC_UNSIGNED_8BIT_PER_TENSOR = QuantDescriptor::builder().unsigned(true);
    /// 8-bit Conv1d weight, per output channel (axis 0).
    QUANT_DESC_8BIT_CONV1D_WEIGHT_PER_CHANNEL = QuantDescriptor::builder().axis([0]);
    /// 8-bit Conv2d weight, per output channel (axis 0).
    QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL = QuantDescriptor::builder().axis([0]);
    /// 8-bit Conv3d weight, per output channel (axis 0).
    QUANT_DESC_8BIT_CONV3D_WEIGHT_PER_CHANNEL = QuantDescriptor::builder().axis([0]);
    /// 8-bit Linear weight, per row (axis 0).
    QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW = QuantDescriptor::builder().axis([0]);
    /// 8-bit ConvTranspose1d weight, per *input* channel (axis 0 of `[C_in, C_out/g, k]`):
    /// what TensorRT's deconvolution kernels expect (pytorch-quantization 2.2.1 uses axis 1).
    QUANT_DESC_8BIT_CONVTRANSPOSE1D_WEIGHT_PER_CHANNEL = QuantDescriptor::builder().axis([0]);
    /// 8-bit ConvTranspose2d weight, per input channel (axis 0), as TensorRT expects.
    QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL = QuantDescriptor::builder().axis([0]);
    /// 8-bit ConvTranspose3d weight, per input channel (axis 0), as TensorRT expects.
    QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL = QuantDescriptor::builder().axis([0]);
}

/// Quantized modules compute in floating point, so their quantizers must fake
/// quantize (the reference raises "Only fake quantization is supported!").
///
/// # Errors
/// [`Error::Descriptor`] when `desc.fake_quant()` is false.
pub fn check_fake_quant(desc: &QuantDescriptor) -> Result<()> {
    if desc.fake_quant() {
        return Ok(());
    }
    Err(Error::Descriptor {
        name: desc.name().map(str::to_string),
        message: "Only fake quantization is supported in quantized modules (fake_quant = false); \
                  use a TensorQuantizer directly for real quantization"
            .into(),
    })
}
