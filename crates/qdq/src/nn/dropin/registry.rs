//! The replacement table that drop-in constructors read: which [`LayerKind`]s are
//! replaced now, and with what [`Replacement`]. Process-wide, as the reference's
//! patched `torch.nn` is; [`crate::quant_modules`] writes it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};
use crate::tensor_quant::{QuantDescriptor, check_fake_quant};

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

            /// Whether [`initialize`](crate::quant_modules::initialize) replaces this kind: the kinds of the reference's
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
    /// `InstanceNorm1d` → `QuantInstanceNorm1d` (custom replacement only, as in the reference).
    InstanceNorm1d: default = false, weight = false;
    /// `InstanceNorm2d` → `QuantInstanceNorm2d` (custom replacement only).
    InstanceNorm2d: default = false, weight = false;
    /// `InstanceNorm3d` → `QuantInstanceNorm3d` (custom replacement only).
    InstanceNorm3d: default = false, weight = false;
    /// `LSTM` → `QuantLSTM` (burn's `Lstm`, one layer and direction).
    #[allow(clippy::upper_case_acronyms)]
    LSTM: default = true, weight = true;
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
    /// [`Error::Unsupported`] for any other name, including the reference's
    /// `LSTMCell`: burn has no LSTM cell layer to replace (build a `QuantLSTMCell`
    /// directly, or from a burn `Lstm` with `QuantLSTMCell::from_float`).
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
/// `Replacement::default()` is what [`initialize`](crate::quant_modules::initialize) uses for every kind of the default
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

/// The process-wide state: whether replacement is on, and with what per kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct State {
    pub(crate) active: bool,
    pub(crate) replaced: BTreeMap<LayerKind, Replacement>,
}

static STATE: RwLock<State> = RwLock::new(State {
    active: false,
    replaced: BTreeMap::new(),
});

// Writers replace whole values, so a lock poisoned by a panicking thread still
// holds a consistent state.
pub(crate) fn read() -> RwLockReadGuard<'static, State> {
    STATE.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write() -> RwLockWriteGuard<'static, State> {
    STATE.write().unwrap_or_else(|e| e.into_inner())
}

/// How a drop-in constructor builds a layer of `kind` now: `None` for burn's float
/// layer, `Some` for the quantized layer with these descriptors.
pub fn replacement_for(kind: LayerKind) -> Option<Replacement> {
    read().replaced.get(&kind).cloned()
}
