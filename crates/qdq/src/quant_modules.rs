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

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use burn::module::{Module, ModuleMapper};

use crate::error::{Error, Result};
use crate::nn::check_fake_quant;
use crate::tensor_quant::QuantDescriptor;

/// Declares [`LayerKind`] from one table: variant, whether it is in the reference's
/// default map, whether the quantized layer has a weight.
macro_rules! layer_kinds {
    ($($(#[$doc:meta])* $kind:ident: default = $default:literal, weight = $weight:literal;)*) => {
        /// A kind of layer that qdq can replace, named as in `torch.nn` (and burn).
        ///
        /// Parses from and prints as the reference's names (`"Conv2d"`, `"Linear"`,
        /// ...), the strings of its `float_module_list`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum LayerKind {
            $($(#[$doc])* $kind,)*
        }

        impl LayerKind {
            /// Every kind qdq has a quantized layer for, in declaration order.
            pub const ALL: &'static [LayerKind] = &[$(LayerKind::$kind),*];

            /// The reference's name (`"Conv2d"`).
            pub fn name(self) -> &'static str {
                match self {
                    $(LayerKind::$kind => stringify!($kind),)*
                }
            }

            /// Whether [`initialize`] replaces this kind: the kinds of the reference's
            /// `_DEFAULT_QUANT_MAP` that qdq has. Max pooling is not among them (it
            /// is not in the reference's either) but can be added as a custom
            /// replacement.
            pub fn in_default_map(self) -> bool {
                match self {
                    $(LayerKind::$kind => $default,)*
                }
            }

            /// Whether the quantized layer quantizes a weight (and so takes a weight
            /// descriptor).
            pub fn has_weight(self) -> bool {
                match self {
                    $(LayerKind::$kind => $weight,)*
                }
            }
        }
    };
}

layer_kinds! {
    /// `Conv1d` → `QuantConv1d`.
    Conv1d: default = true, weight = true;
    /// `Conv2d` → `QuantConv2d`.
    Conv2d: default = true, weight = true;
    /// `Conv3d` → `QuantConv3d`.
    Conv3d: default = true, weight = true;
    /// `ConvTranspose1d` → `QuantConvTranspose1d`.
    ConvTranspose1d: default = true, weight = true;
    /// `ConvTranspose2d` → `QuantConvTranspose2d`.
    ConvTranspose2d: default = true, weight = true;
    /// `ConvTranspose3d` → `QuantConvTranspose3d`.
    ConvTranspose3d: default = true, weight = true;
    /// `Linear` → `QuantLinear`.
    Linear: default = true, weight = true;
    /// `AvgPool1d` → `QuantAvgPool1d`.
    AvgPool1d: default = true, weight = false;
    /// `AvgPool2d` → `QuantAvgPool2d`.
    AvgPool2d: default = true, weight = false;
    /// `AvgPool3d` → `QuantAvgPool3d`.
    AvgPool3d: default = true, weight = false;
    /// `AdaptiveAvgPool1d` → `QuantAdaptiveAvgPool1d`.
    AdaptiveAvgPool1d: default = true, weight = false;
    /// `AdaptiveAvgPool2d` → `QuantAdaptiveAvgPool2d`.
    AdaptiveAvgPool2d: default = true, weight = false;
    /// `AdaptiveAvgPool3d` → `QuantAdaptiveAvgPool3d`.
    AdaptiveAvgPool3d: default = true, weight = false;
    /// `MaxPool1d` → `QuantMaxPool1d` (custom replacement only).
    MaxPool1d: default = false, weight = false;
    /// `MaxPool2d` → `QuantMaxPool2d` (custom replacement only).
    MaxPool2d: default = false, weight = false;
    /// `MaxPool3d` → `QuantMaxPool3d` (custom replacement only).
    MaxPool3d: default = false, weight = false;
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LayerKind {
    type Err = Error;

    /// The kind named `s` (exact, case-sensitive, as `torch.nn`'s class names).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for any other name, including the reference's `LSTM`
    /// and `LSTMCell`, which qdq has no quantized layer for.
    fn from_str(s: &str) -> Result<Self> {
        LayerKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::Unsupported {
                what: "module replacement",
                format: format!(
                    "`{s}`; qdq replaces {}",
                    LayerKind::ALL
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// The descriptors a replaced kind is built with; `None` takes the quantized class's
/// default at `init` (see [`QuantInputMixin`](crate::nn::QuantInputMixin)).
///
/// `Replacement::default()` is what [`initialize`] uses for every kind of the default
/// map. A custom replacement (the reference's `custom_quant_modules`, which swaps in
/// another class) sets descriptors instead of a class, since the quantized layer
/// types are fixed here.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replacement {
    /// Input descriptor (`None`: the class default).
    pub quant_desc_input: Option<QuantDescriptor>,
    /// Weight descriptor (`None`: the class default). Kinds without a weight
    /// (pools) must leave it `None`.
    pub quant_desc_weight: Option<QuantDescriptor>,
}

impl Replacement {
    /// Class defaults for both descriptors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the input descriptor.
    #[must_use]
    pub fn with_quant_desc_input(mut self, desc: QuantDescriptor) -> Self {
        self.quant_desc_input = Some(desc);
        self
    }

    /// Sets the weight descriptor.
    #[must_use]
    pub fn with_quant_desc_weight(mut self, desc: QuantDescriptor) -> Self {
        self.quant_desc_weight = Some(desc);
        self
    }

    /// Refuses what no layer of `kind` could be built with, so that a bad custom
    /// replacement fails at `initialize_with`, not later inside a model's `init`.
    pub(crate) fn check(&self, kind: LayerKind) -> Result<()> {
        if let Some(desc) = &self.quant_desc_input {
            check_fake_quant(desc)?;
        }
        match &self.quant_desc_weight {
            Some(_) if !kind.has_weight() => Err(Error::Unsupported {
                what: "a weight descriptor",
                format: format!("{kind} (it has no weight; set only quant_desc_input)"),
            }),
            Some(desc) => check_fake_quant(desc),
            None => Ok(()),
        }
    }
}

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

/// The process-wide state: whether replacement is on, and with what per kind.
#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    active: bool,
    replaced: BTreeMap<LayerKind, Replacement>,
}

static STATE: RwLock<State> = RwLock::new(State {
    active: false,
    replaced: BTreeMap::new(),
});

// Writers replace whole values, so a lock poisoned by a panicking thread still
// holds a consistent state.
fn read() -> RwLockReadGuard<'static, State> {
    STATE.read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> RwLockWriteGuard<'static, State> {
    STATE.write().unwrap_or_else(|e| e.into_inner())
}

/// Turns replacement on for every kind of the default map, with class-default
/// descriptors: from now on qdq's drop-in constructors build quantized layers.
///
/// The default map is the reference's `_DEFAULT_QUANT_MAP` less what qdq lacks
/// (`LSTM`, `LSTMCell`): Conv1d/2d/3d, ConvTranspose1d/2d/3d, Linear,
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

/// How a drop-in constructor builds a layer of `kind` now: `None` for burn's float
/// layer, `Some` for the quantized layer with these descriptors.
pub fn replacement_for(kind: LayerKind) -> Option<Replacement> {
    read().replaced.get(&kind).cloned()
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

    /// Ends the walk even if a `map` panics, so later maps convert nothing.
    struct Walk;
    impl Drop for Walk {
        fn drop(&mut self) {
            QUANTIZING.with(|q| q.borrow_mut().take());
        }
    }

    QUANTIZING.with(|q| *q.borrow_mut() = Some(None));
    let walk = Walk;
    let model = model.map(&mut Keep);
    let failure = QUANTIZING.with(|q| q.borrow_mut().take()).flatten();
    drop(walk);
    match failure {
        Some(e) => Err(e),
        None => Ok(model),
    }
}

thread_local! {
    /// `Some` while [`quantize`] walks a model on this thread, holding its first
    /// failure. A thread-local because burn's `map` takes any mapper: the drop-ins
    /// cannot recognise `quantize`'s own.
    static QUANTIZING: RefCell<Option<Option<Error>>> = const { RefCell::new(None) };
}

/// Whether [`quantize`] is walking a model on this thread.
pub(crate) fn quantizing() -> bool {
    QUANTIZING.with(|q| q.borrow().is_some())
}

/// Reports a layer that [`quantize`] could not quantize (the first one wins).
pub(crate) fn quantize_failed(e: Error) {
    QUANTIZING.with(|q| {
        if let Some(failure @ None) = q.borrow_mut().as_mut() {
            *failure = Some(e);
        }
    });
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
