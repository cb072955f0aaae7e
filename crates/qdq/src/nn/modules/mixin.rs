//! The helpers for writing quantized modules (`nn/modules/_utils.py` of the
//! reference): per-class default descriptors, the [`QuantInputMixin`] /
//! [`QuantMixin`] traits, descriptor resolution and quantizer construction.
//!
//! A custom quantized module holds a [`TensorQuantizer`] per quantized tensor,
//! implements the traits, and builds its quantizers with
//! [`init_input_quantizer`] / [`init_weight_quantizer`] from the descriptors that
//! [`pop_quant_desc_in_kwargs`] resolved; `examples/custom_module.rs` shows one.

use std::sync::{LazyLock, RwLock};

use burn::prelude::*;

use crate::error::Result;
use crate::nn::tensor_quantizer::TensorQuantizer;
use crate::tensor_quant::QuantDescriptor;
// Defined beside the descriptor, so that `quant_modules` can check descriptors
// without importing `nn`; kept here under its old name.
pub use crate::tensor_quant::check_fake_quant;
use crate::tensor_quant::reduce::normalize_axis;

/// A class's process-wide default descriptor (the reference's class attributes
/// `default_quant_desc_input` / `default_quant_desc_weight`).
///
/// Each quantized class owns its own slot, so setting `QuantConv2d`'s default does
/// not change `QuantConv3d`'s. An unset slot reads as its built-in base descriptor.
#[derive(Debug)]
pub struct DefaultQuantDesc {
    slot: RwLock<Option<QuantDescriptor>>,
    base: &'static LazyLock<QuantDescriptor>,
}

impl DefaultQuantDesc {
    /// A slot that reads as `base` until [`DefaultQuantDesc::set`] is called.
    pub const fn new(base: &'static LazyLock<QuantDescriptor>) -> Self {
        Self {
            slot: RwLock::new(None),
            base,
        }
    }

    /// The current default (a copy: later changes do not reach modules built before).
    pub fn get(&self) -> QuantDescriptor {
        // A poisoned lock still holds a whole descriptor: writers only assign.
        let slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
        slot.clone().unwrap_or_else(|| (*self.base).clone())
    }

    /// Replaces the default for modules initialized from now on.
    pub fn set(&self, desc: QuantDescriptor) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = Some(desc);
    }

    /// Restores the built-in default.
    pub fn reset(&self) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A module that quantizes its input (`QuantInputMixin` of the reference).
pub trait QuantInputMixin {
    /// The class's default input descriptor slot.
    fn input_default() -> &'static DefaultQuantDesc
    where
        Self: Sized;

    /// The class's current default input descriptor.
    fn default_quant_desc_input() -> QuantDescriptor
    where
        Self: Sized,
    {
        Self::input_default().get()
    }

    /// Sets the class's default input descriptor, used by modules of this class
    /// initialized afterwards without an explicit input descriptor.
    fn set_default_quant_desc_input(desc: QuantDescriptor)
    where
        Self: Sized,
    {
        Self::input_default().set(desc);
    }

    /// The input quantizer (e.g. to `disable()` it or read its amax).
    fn input_quantizer(&self) -> &TensorQuantizer;

    /// The input quantizer, mutably (e.g. to `load_calib_amax()`).
    fn input_quantizer_mut(&mut self) -> &mut TensorQuantizer;
}

/// A module that quantizes its input and its weight (`QuantMixin` of the reference).
pub trait QuantMixin: QuantInputMixin {
    /// The class's default weight descriptor slot.
    fn weight_default() -> &'static DefaultQuantDesc
    where
        Self: Sized;

    /// The class's current default weight descriptor.
    fn default_quant_desc_weight() -> QuantDescriptor
    where
        Self: Sized,
    {
        Self::weight_default().get()
    }

    /// Sets the class's default weight descriptor, used by modules of this class
    /// initialized afterwards without an explicit weight descriptor.
    fn set_default_quant_desc_weight(desc: QuantDescriptor)
    where
        Self: Sized,
    {
        Self::weight_default().set(desc);
    }

    /// The weight quantizer.
    fn weight_quantizer(&self) -> &TensorQuantizer;

    /// The weight quantizer, mutably.
    fn weight_quantizer_mut(&mut self) -> &mut TensorQuantizer;
}

/// The input descriptor for class `M`: `input`, or the class default
/// (`pop_quant_desc_in_kwargs(cls, input_only=True)`).
pub fn pop_quant_desc_input<M: QuantInputMixin>(input: Option<QuantDescriptor>) -> QuantDescriptor {
    input.unwrap_or_else(M::default_quant_desc_input)
}

/// The (input, weight) descriptors for class `M`: each given one, or the class
/// default (`pop_quant_desc_in_kwargs(cls)`). Rust's named arguments cannot be
/// misspelt, so the reference's "Unused keys" error has no counterpart.
pub fn pop_quant_desc_in_kwargs<M: QuantMixin>(
    input: Option<QuantDescriptor>,
    weight: Option<QuantDescriptor>,
) -> (QuantDescriptor, QuantDescriptor) {
    (
        pop_quant_desc_input::<M>(input),
        weight.unwrap_or_else(M::default_quant_desc_weight),
    )
}

/// The input quantizer of a quantized module (`init_quantizer` for inputs).
///
/// # Errors
/// A `fake_quant = false` descriptor, or any [`TensorQuantizer::new`] error.
pub fn init_input_quantizer(desc: &QuantDescriptor, device: &Device) -> Result<TensorQuantizer> {
    check_fake_quant(desc)?;
    TensorQuantizer::new(desc, device)
}

/// The weight quantizer for a weight of shape `weight_dims`.
///
/// A per-channel quantizer gets one (unset) amax entry per kept channel up front,
/// so a calibrated record loads into a freshly initialized module.
///
/// # Errors
/// A `fake_quant = false` descriptor, an axis outside the weight's rank, or any
/// [`TensorQuantizer::new`] error.
pub fn init_weight_quantizer(
    desc: &QuantDescriptor,
    weight_dims: &[usize],
    device: &Device,
) -> Result<TensorQuantizer> {
    check_fake_quant(desc)?;
    let quantizer = TensorQuantizer::new(desc, device)?;
    match desc.axis() {
        // learn_amax quantizers are per tensor (the descriptor rejects an axis).
        Some(axis) if desc.amax().is_none() => {
            let channels = normalize_axis(axis, weight_dims.len())?
                .iter()
                .map(|&a| weight_dims[a])
                .product();
            Ok(quantizer.with_channels(channels))
        }
        _ => Ok(quantizer),
    }
}

/// The (input, weight) quantizers of a module of class `M` whose weight has shape
/// `weight_dims` (the reference's `QuantMixin.init_quantizer`), from optional
/// descriptors resolved against `M`'s defaults.
///
/// # Errors
/// As [`init_input_quantizer`] and [`init_weight_quantizer`].
pub fn init_quantizers<M: QuantMixin>(
    input: Option<QuantDescriptor>,
    weight: Option<QuantDescriptor>,
    weight_dims: &[usize],
    device: &Device,
) -> Result<(TensorQuantizer, TensorQuantizer)> {
    let (input, weight) = pop_quant_desc_in_kwargs::<M>(input, weight);
    // Check both before building either, so the error names the first bad one.
    check_fake_quant(&input)?;
    check_fake_quant(&weight)?;
    Ok((
        init_input_quantizer(&input, device)?,
        init_weight_quantizer(&weight, weight_dims, device)?,
    ))
}
