//! Automatic replacement of float layers by quantized ones (`quant_modules` of the
//! reference).
//!
//! The reference's `quant_modules.initialize()` monkey-patches `torch.nn`, so that
//! `torch.nn.Conv2d(...)` builds a `QuantConv2d` until `deactivate()`. Rust cannot
//! patch burn; the closest thing is a constructor that asks. qdq's drop-in layers
//! ([`qdq::nn::Conv2dConfig`](crate::nn::Conv2dConfig),
//! [`qdq::nn::LinearConfig`](crate::nn::LinearConfig), ...) take the arguments of
//! burn's and look at this module's process-wide state when they `init`: a kind that
//! is replaced comes out as the `Quant` variant, any other as burn's float layer. A
//! model written once against the drop-ins builds float or quantized without code
//! changes:
//!
//! ```rust,standalone_crate
//! use burn::prelude::*;
//! use qdq::nn::{Conv2d, Conv2dConfig};
//! use qdq::quant_modules;
//!
//! let device = Device::flex();
//! let float: Conv2d = Conv2dConfig::new([3, 8], [3, 3]).init(&device);
//! assert!(!float.is_quantized());
//!
//! quant_modules::initialize();
//! let quant = Conv2dConfig::new([3, 8], [3, 3]).init(&device);
//! quant_modules::deactivate();
//! assert!(quant.is_quantized());
//! ```
//!
//! As in the reference, the state only matters while a layer is built: layers that
//! exist keep their variant when replacement is switched on or off. [`quantize`]
//! converts the float drop-ins of a model that is already built (e.g. from a float
//! checkpoint).
//!
//! | reference | qdq |
//! |---|---|
//! | `initialize()` | [`initialize`] |
//! | `initialize(float_module_list, custom_quant_modules)` | [`initialize_with`] with [`ReplacementOptions`] |
//! | `deactivate()` | [`deactivate`] |
//! | a class in `custom_quant_modules` | a [`Replacement`]: descriptors for the kind's quantized layer |
//! | `torch.nn.Conv2d` while patched | [`qdq::nn::Conv2dConfig`](crate::nn::Conv2dConfig)`::new(..).init(&device)` |

use burn::module::{Module, ModuleMapper};

use crate::error::Result;
use crate::nn::dropin::registry::{State, read, write};
use crate::nn::scope;

// The replacement table lives below `nn::dropin`, which reads it; this module, on
// top, is the reference's API over it.
pub use crate::nn::dropin::registry::{LayerKind, Replacement, replacement_for};

/// What [`initialize_with`] replaces (the reference's `initialize` arguments).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplacementOptions {
    /// Kinds of the default map to leave float (the reference's
    /// `float_module_list`, e.g. `["Linear"]`).
    pub float_module_list: Vec<LayerKind>,
    /// Kinds to replace with explicit descriptors (the reference's
    /// `custom_quant_modules`). Applied even to kinds in `float_module_list`, and
    /// the way to replace kinds outside the default map, such as max pooling.
    pub custom_quant_modules: Vec<(LayerKind, Replacement)>,
}

impl ReplacementOptions {
    /// No skips, no custom replacements: what [`initialize`] uses.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves `kinds` float (unless also given a custom replacement).
    #[must_use]
    pub fn with_float_module_list(mut self, kinds: impl IntoIterator<Item = LayerKind>) -> Self {
        self.float_module_list.extend(kinds);
        self
    }

    /// Replaces `kind` with `replacement`'s descriptors.
    #[must_use]
    pub fn with_custom_quant_module(mut self, kind: LayerKind, replacement: Replacement) -> Self {
        self.custom_quant_modules.push((kind, replacement));
        self
    }

    fn check(&self) -> Result<()> {
        self.custom_quant_modules
            .iter()
            .try_for_each(|(kind, replacement)| replacement.check(*kind))
    }
}

/// Turns replacement on for every kind of the default map, with class-default
/// descriptors: from now on qdq's drop-in constructors build quantized layers.
///
/// The default map is the reference's `_DEFAULT_QUANT_MAP` less `LSTMCell`, for
/// which burn has no layer (build a `QuantLSTMCell` directly): LSTM, Conv1d/2d/3d, ConvTranspose1d/2d/3d, Linear,
/// AvgPool1d/2d/3d and AdaptiveAvgPool1d/2d/3d.
pub fn initialize() {
    apply(&ReplacementOptions::default());
}

/// [`initialize`] with the reference's controls: a skip list and custom
/// replacements.
///
/// Like the reference, calls accumulate while replacement is on: a second call adds
/// kinds, its skip list does not remove kinds an earlier call replaced, and a custom
/// replacement overrides what is there. Unlike the reference, [`deactivate`]
/// forgets everything, so the next `initialize` starts afresh (the reference keeps
/// its sets and re-applies earlier entries).
///
/// # Errors
/// A custom descriptor with `fake_quant = false`, or a weight descriptor for a kind
/// without a weight. Nothing changes then.
pub fn initialize_with(options: ReplacementOptions) -> Result<()> {
    options.check()?;
    apply(&options);
    Ok(())
}

fn apply(options: &ReplacementOptions) {
    let mut state = write();
    state.active = true;
    for &kind in LayerKind::ALL {
        if kind.in_default_map() && !options.float_module_list.contains(&kind) {
            // A plain entry never overrides an earlier custom one.
            state.replaced.entry(kind).or_default();
        }
    }
    for (kind, replacement) in &options.custom_quant_modules {
        state.replaced.insert(*kind, replacement.clone());
    }
}

/// Turns replacement off: drop-in constructors build burn's float layers again.
/// Layers built before keep their variant.
pub fn deactivate() {
    *write() = State::default();
}

/// Whether replacement is on (an [`initialize`] not yet followed by [`deactivate`]).
pub fn is_active() -> bool {
    read().active
}

/// The kinds replaced now, in [`LayerKind`] order.
pub fn replaced_kinds() -> Vec<LayerKind> {
    read().replaced.keys().copied().collect()
}

/// Quantizes a model that is already built: every float drop-in layer in `model`
/// whose kind is replaced now becomes its quantized layer, keeping its parameters
/// (values and ids) and options, as `from_float` does. Other layers are kept.
///
/// This is the way to put a float checkpoint into a quantized model whatever its
/// layers: build the model with replacement off, load the checkpoint as usual,
/// [`initialize`], then `quantize`. (Loading the checkpoint straight into a model
/// built with replacement on, with `allow_partial(true)`, works for convolutions and
/// pools but not for `Linear`, whose quantized weight is stored transposed; see
/// [`LinearConfig`](crate::nn::LinearConfig).)
///
/// ```rust,standalone_crate
/// use burn::prelude::*;
/// use qdq::nn::{Linear, LinearConfig};
/// use qdq::quant_modules;
///
/// let device = Device::flex();
/// let float: Linear = LinearConfig::new(4, 2).init(&device); // e.g. then `load_record`
/// quant_modules::initialize();
/// let quant = quant_modules::quantize(float.clone()).unwrap();
/// quant_modules::deactivate();
/// let w = float.as_float().unwrap().weight.val();
/// assert_eq!(quant.as_quant().unwrap().weight.val().into_data(), w.transpose().into_data());
/// ```
///
/// # Errors
/// The first layer that its replacement's descriptors cannot quantize (a
/// per-channel axis outside its weight's rank); that layer stays float, and the
/// partly quantized model is dropped.
pub fn quantize<M: Module>(model: M) -> Result<M> {
    /// Leaves every parameter as it is: the walk is for the drop-ins' `map`.
    struct Keep;
    impl ModuleMapper for Keep {}

    match scope::quantizing(|| model.map(&mut Keep)) {
        (_, Some(e)) => Err(e),
        (model, None) => Ok(model),
    }
}

/// Replacement switched on for a scope: created by [`initialize`] (or with options,
/// or switched off), it puts back the state it found when dropped.
///
/// The state is process-wide and tests run on parallel threads, so tests that build
/// drop-in layers should also hold a lock of their own while a guard is alive.
///
/// ```rust,standalone_crate
/// use qdq::quant_modules::{self, QuantModulesGuard};
///
/// {
///     let _guard = QuantModulesGuard::new();
///     assert!(quant_modules::is_active());
/// }
/// assert!(!quant_modules::is_active());
/// ```
#[must_use = "replacement is restored when the guard is dropped"]
#[derive(Debug)]
pub struct QuantModulesGuard {
    previous: State,
}

impl QuantModulesGuard {
    /// Runs `change` on the state, remembering what it was.
    fn around(change: impl FnOnce()) -> Self {
        let previous = read().clone();
        change();
        Self { previous }
    }

    /// [`initialize`] until the guard is dropped.
    pub fn new() -> Self {
        Self::around(initialize)
    }

    /// [`initialize_with`] until the guard is dropped.
    ///
    /// # Errors
    /// As [`initialize_with`]; nothing changes then.
    pub fn with_options(options: ReplacementOptions) -> Result<Self> {
        options.check()?;
        Ok(Self::around(|| apply(&options)))
    }

    /// Replacement off (as [`deactivate`]) until the guard is dropped.
    pub fn deactivated() -> Self {
        Self::around(deactivate)
    }
}

impl Default for QuantModulesGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for QuantModulesGuard {
    fn drop(&mut self) {
        *write() = std::mem::take(&mut self.previous);
    }
}
