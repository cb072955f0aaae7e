//! The drop-in machinery, below the `Quant*` classes: [`DropIn`] (float or quantized
//! layer, one path segment), [`DropInConfig`] (burn's config, wrapped) and the macros
//! that write a family's API from its `Quant*` declaration. It imports nothing from
//! `nn::modules`, so the classes' macros can expand into it while the aliases in
//! `conv.rs`, `linear.rs`, ... name the classes: no circle.

use std::fmt;

use burn::module::{
    Content, Devices, DisplaySettings, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper,
    ModuleVisitor,
};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::registry::{LayerKind, Replacement};
use crate::error::Result;
use crate::nn::scope::{self, Mode};

/// `with_*` setters forwarding to the burn config held in field `$inner`, so a
/// wrapping config (a drop-in's, a `Quant*` class's) reads like burn's (`.with_stride([2, 2])`).
macro_rules! forward_setters {
    ($inner:ident; $($setter:ident($field:ident: $ty:ty)),* $(,)?) => {$(
        #[doc = concat!("Sets `", stringify!($field), "` (as burn's float config does).")]
        pub fn $setter(mut self, $field: $ty) -> Self {
            self.$inner = self.$inner.$setter($field);
            self
        }
    )*};
}

/// A quantized layer that a drop-in constructor builds in place of a float one.
pub trait Replaceable: Module + ModuleDisplay {
    /// The float layer it replaces (burn's, or qdq's 3-D pools burn lacks).
    type Float: Module + ModuleDisplay;
    /// The kind [`quant_modules`](crate::quant_modules) knows it by.
    const KIND: LayerKind;

    /// Quantizes a float layer with `replacement`'s descriptors (the class's
    /// `from_float`; a pool's quantizer goes on `Device::default()`).
    ///
    /// # Errors
    /// A descriptor no layer of this kind can use (`fake_quant = false`, a weight
    /// descriptor for a pool, an axis outside the weight's rank).
    fn from_float(float: Self::Float, replacement: Replacement) -> Result<Self>;
}

/// A layer built by a drop-in config: burn's float layer, or its quantized
/// replacement. Use it through its aliases ([`Conv2d`], [`Linear`], ...).
#[derive(Clone, Debug)]
pub enum DropIn<Q: Replaceable> {
    /// Built while replacement was off for this kind.
    Float(Q::Float),
    /// Built while replacement was on.
    Quant(Q),
}

/// `$body` with `$m` bound to whichever layer `$value` holds.
macro_rules! either {
    ($value:expr, $m:ident => $body:expr) => {
        match $value {
            DropIn::Float($m) => $body,
            DropIn::Quant($m) => $body,
        }
    };
}

/// `$body` on whichever layer `$value` holds, wrapped back in the same variant.
macro_rules! rewrap {
    ($value:expr, $m:ident => $body:expr) => {
        match $value {
            DropIn::Float($m) => DropIn::Float($body),
            DropIn::Quant($m) => DropIn::Quant($body),
        }
    };
}

impl<Q: Replaceable> DropIn<Q> {
    /// The layer kind.
    pub fn kind(&self) -> LayerKind {
        Q::KIND
    }

    /// Whether this is the quantized variant.
    pub fn is_quantized(&self) -> bool {
        matches!(self, DropIn::Quant(_))
    }

    /// The quantized layer (its quantizers, `weight_quantizer()`, ...), if built so.
    pub fn as_quant(&self) -> Option<&Q> {
        match self {
            DropIn::Quant(q) => Some(q),
            DropIn::Float(_) => None,
        }
    }

    /// The quantized layer, mutably (e.g. to `load_calib_amax()`), if built so.
    pub fn as_quant_mut(&mut self) -> Option<&mut Q> {
        match self {
            DropIn::Quant(q) => Some(q),
            DropIn::Float(_) => None,
        }
    }

    /// The float layer, if built so.
    pub fn as_float(&self) -> Option<&Q::Float> {
        match self {
            DropIn::Float(f) => Some(f),
            DropIn::Quant(_) => None,
        }
    }

    /// The float layer, mutably, if built so.
    pub fn as_float_mut(&mut self) -> Option<&mut Q::Float> {
        match self {
            DropIn::Float(f) => Some(f),
            DropIn::Quant(_) => None,
        }
    }

    /// This layer quantized with `replacement`'s descriptors, whatever the global
    /// [`quant_modules`](crate::quant_modules) state (a layer already quantized is kept as it is). For model
    /// code that quantizes on request, like the seed's ResNet with `quantize=True`.
    ///
    /// # Errors
    /// As [`Replaceable::from_float`].
    pub fn quantize_with(self, replacement: Replacement) -> Result<Self> {
        match self {
            DropIn::Float(f) => {
                replacement.check(Q::KIND)?;
                Ok(DropIn::Quant(Q::from_float(f, replacement)?))
            }
            quant => Ok(quant),
        }
    }
}

// Written by hand rather than derived: the derive calls `enter_module("Float" |
// "Quant", ...)` around the variant, which would put the variant's name into every
// record key and quantizer name. Delegating keeps the plain layer's paths, so
// records of float and quantized builds line up.
impl<Q: Replaceable> Module for DropIn<Q> {
    fn collect_devices(&self, devices: Devices) -> Devices {
        either!(self, m => m.collect_devices(devices))
    }

    fn fork(self, device: &Device) -> Self {
        rewrap!(self, m => m.fork(device))
    }

    fn to_device(self, device: &Device) -> Self {
        rewrap!(self, m => m.to_device(device))
    }

    fn train(self) -> Self {
        rewrap!(self, m => m.train())
    }

    fn valid(&self) -> Self {
        rewrap!(self, m => m.valid())
    }

    fn materialize(self) -> Self {
        rewrap!(self, m => m.materialize())
    }

    fn num_params(&self) -> usize {
        either!(self, m => Module::num_params(m))
    }

    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        either!(self, m => m.visit(visitor))
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        // `quant_modules::quantize` walks the model with `map`: that is when a float
        // layer whose kind is replaced turns into its quantized layer.
        let this = match self {
            DropIn::Float(float) if scope::mode() == Mode::Quantizing => quantize_layer::<Q>(float),
            this => this,
        };
        rewrap!(this, m => m.map(mapper))
    }
}

// Displays as the layer it holds (`Conv2d {...}` or `QuantConv2d {...}`).
impl<Q: Replaceable> ModuleDisplayDefault for DropIn<Q> {
    fn content(&self, content: Content) -> Option<Content> {
        either!(self, m => m.content(content))
    }

    fn num_params(&self) -> usize {
        Module::num_params(self)
    }
}

impl<Q: Replaceable> ModuleDisplay for DropIn<Q> {
    fn format(&self, settings: DisplaySettings) -> String {
        either!(self, m => m.format(settings))
    }

    fn custom_settings(&self) -> Option<DisplaySettings> {
        either!(self, m => m.custom_settings())
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        either!(self, m => m.custom_content(content))
    }
}

impl<Q: Replaceable> fmt::Display for DropIn<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(DisplaySettings::default()))
    }
}

/// The configuration of a drop-in layer: burn's float-layer config, and nothing
/// else. Use it through its aliases ([`Conv2dConfig`], [`LinearConfig`], ...), which
/// have burn's `new` arguments and `with_*` setters; `init` builds the float or the
/// quantized layer as [`quant_modules`](crate::quant_modules) says at that moment.
///
/// The quantized layer takes its descriptors from the replacement (by default the
/// class defaults); a config converts from burn's with `From`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DropInConfig<C> {
    /// burn's configuration of the float layer; the quantized one is built from it too.
    pub layer: C,
}

impl<C: burn::config::Config> burn::config::Config for DropInConfig<C> {}

impl<C> From<C> for DropInConfig<C> {
    fn from(layer: C) -> Self {
        Self { layer }
    }
}

/// The layer [`quant_modules::quantize`](crate::quant_modules::quantize) makes of `float`: its quantized layer if
/// its kind is replaced now (a failure is reported by `quantize`, the layer stays
/// float), else `float` itself.
fn quantize_layer<Q: Replaceable>(float: Q::Float) -> DropIn<Q> {
    let Some(replacement) = super::registry::replacement_for(Q::KIND) else {
        return DropIn::Float(float);
    };
    // A clone shares the parameters; it is what stays if quantizing fails.
    match Q::from_float(float.clone(), replacement) {
        Ok(quant) => DropIn::Quant(quant),
        Err(e) => {
            scope::quantize_failed(e);
            DropIn::Float(float)
        }
    }
}

/// `init` from `try_init`: burn-style, a bad configuration panics.
#[track_caller]
pub(crate) fn expect_init<T>(result: Result<T>, kind: LayerKind) -> T {
    match result {
        Ok(layer) => layer,
        Err(e) => panic!("qdq::nn::{kind}Config::init: {e}"),
    }
}

/// The drop-in API of a weighted layer, from the declaration of its `Quant*` class
/// (expanded by `quant_weighted_layer!`): `new` and the setters of burn's config,
/// `init` / `try_init`, and `forward` / `try_forward`.
macro_rules! dropin_weighted {
    (
        $name:ident($float:ty) rank $rank:literal;
        config $config:ident($float_config:ty) {
            new($($arg:ident: $arg_ty:ty),*);
            setters { $($setter:ident($sfield:ident: $sty:ty)),* $(,)? }
            check($c:ident) = $check:expr;
        }
    ) => {
        impl $crate::nn::dropin::layer::DropInConfig<$float_config> {
            #[doc = concat!("A config with the arguments and defaults of burn's `", stringify!($float_config), "::new`.")]
            pub fn new($($arg: $arg_ty),*) -> Self {
                Self { layer: <$float_config>::new($($arg),*) }
            }

            $crate::nn::dropin::layer::forward_setters!(layer; $($setter($sfield: $sty)),*);

            #[doc = concat!("Burn's float layer, or a [`", stringify!($name), "`] while replacement is on for its kind.")]
            ///
            /// # Errors
            /// Channels not divisible by `groups` (where burn's `init` panics), and
            /// for the quantized layer what its config's `init` reports (a weight
            /// descriptor's axis outside the weight's rank, ...). burn's own float
            /// `init` may still panic on what it refuses.
            pub fn try_init(
                &self,
                device: &burn::tensor::Device,
            ) -> $crate::Result<$crate::nn::dropin::layer::DropIn<$name>> {
                let $c = &self.layer;
                $check?;
                let kind = <$name as $crate::nn::dropin::layer::Replaceable>::KIND;
                Ok(match $crate::nn::dropin::registry::replacement_for(kind) {
                    None => $crate::nn::dropin::layer::DropIn::Float(self.layer.init(device)),
                    Some(r) => $crate::nn::dropin::layer::DropIn::Quant(
                        $config {
                            layer: self.layer.clone(),
                            quant_desc_input: r.quant_desc_input,
                            quant_desc_weight: r.quant_desc_weight,
                        }
                        .init(device)?,
                    ),
                })
            }

            #[doc = concat!("Burn's float layer, or a [`", stringify!($name), "`] while replacement is on for its kind.")]
            ///
            /// # Panics
            /// Where [`Self::try_init`] fails.
            #[track_caller]
            pub fn init(&self, device: &burn::tensor::Device) -> $crate::nn::dropin::layer::DropIn<$name> {
                let kind = <$name as $crate::nn::dropin::layer::Replaceable>::KIND;
                $crate::nn::dropin::layer::expect_init(self.try_init(device), kind)
            }
        }

        impl $crate::nn::dropin::layer::DropIn<$name> {
            /// The float layer's forward, or the quantized layer's.
            pub fn forward(&self, input: burn::tensor::Tensor<$rank>) -> burn::tensor::Tensor<$rank> {
                match self {
                    Self::Float(layer) => layer.forward(input),
                    Self::Quant(layer) => layer.forward(input),
                }
            }

            #[doc = concat!("[`Self::forward`], returning the quantizers' first error (see [`", stringify!($name), "::try_forward`]).")]
            pub fn try_forward(
                &self,
                input: burn::tensor::Tensor<$rank>,
            ) -> $crate::Result<burn::tensor::Tensor<$rank>> {
                match self {
                    Self::Float(layer) => Ok(layer.forward(input)),
                    Self::Quant(layer) => layer.try_forward(input),
                }
            }
        }
    };
}

/// The drop-in API of a pool, from the declaration of its `Quant*` class (expanded by
/// `quant_pool!`): `new` and the setters of the float pool's config, `init` /
/// `try_init` (no device, as burn's pools), and `forward` / `try_forward`.
macro_rules! dropin_pool {
    (
        $name:ident($pool:ty) rank $rank:literal;
        config $config:ident($pool_config:ty) {
            new($($arg:ident: $arg_ty:ty),*);
            setters { $($setter:ident($sfield:ident: $sty:ty)),* $(,)? }
        }
    ) => {
        impl $crate::nn::dropin::layer::DropInConfig<$pool_config> {
            #[doc = concat!("A config with the arguments and defaults of `", stringify!($pool_config), "::new`.")]
            pub fn new($($arg: $arg_ty),*) -> Self {
                Self { layer: <$pool_config>::new($($arg),*) }
            }

            $crate::nn::dropin::layer::forward_setters!(layer; $($setter($sfield: $sty)),*);

            #[doc = concat!("The float pool, or a [`", stringify!($name), "`] while replacement is on for its kind.")]
            ///
            /// Like burn's pools this takes no device: the input quantizer is made on
            /// `Device::default()`. Its amax is read on the host and rebuilt on the
            /// input's device at each forward, so this matters only for learned
            /// (`learn_amax`) ranges and `devices()`; `Module::to_device` or `fork`
            /// moves it with the model.
            ///
            /// # Errors
            /// What the quantized config's `init` reports.
            pub fn try_init(&self) -> $crate::Result<$crate::nn::dropin::layer::DropIn<$name>> {
                let kind = <$name as $crate::nn::dropin::layer::Replaceable>::KIND;
                Ok(match $crate::nn::dropin::registry::replacement_for(kind) {
                    None => $crate::nn::dropin::layer::DropIn::Float(self.layer.init()),
                    Some(r) => $crate::nn::dropin::layer::DropIn::Quant(
                        $config { pool: self.layer.clone(), quant_desc_input: r.quant_desc_input }
                            .init(&burn::tensor::Device::default())?,
                    ),
                })
            }

            #[doc = concat!("The float pool, or a [`", stringify!($name), "`] while replacement is on for its kind (see [`Self::try_init`]).")]
            ///
            /// # Panics
            /// Where [`Self::try_init`] fails.
            #[track_caller]
            pub fn init(&self) -> $crate::nn::dropin::layer::DropIn<$name> {
                let kind = <$name as $crate::nn::dropin::layer::Replaceable>::KIND;
                $crate::nn::dropin::layer::expect_init(self.try_init(), kind)
            }
        }

        impl $crate::nn::dropin::layer::DropIn<$name> {
            /// The float pool, on the quantized input for the quantized variant.
            pub fn forward(&self, input: burn::tensor::Tensor<$rank>) -> burn::tensor::Tensor<$rank> {
                match self {
                    Self::Float(pool) => pool.forward(input),
                    Self::Quant(pool) => pool.forward(input),
                }
            }

            #[doc = concat!("[`Self::forward`], returning the quantizer's error (see [`", stringify!($name), "::try_forward`]).")]
            pub fn try_forward(
                &self,
                input: burn::tensor::Tensor<$rank>,
            ) -> $crate::Result<burn::tensor::Tensor<$rank>> {
                match self {
                    Self::Float(pool) => Ok(pool.forward(input)),
                    Self::Quant(pool) => pool.try_forward(input),
                }
            }
        }
    };
}

/// The aliases of a family (`Conv2d = DropIn<QuantConv2d>`, `Conv2dConfig =
/// DropInConfig<burn's Conv2dConfig>`) and the [`Replaceable`] impls; the alias
/// name is the [`LayerKind`] variant. `$family` (`weighted` or `pool`) says how
/// `from_float` is called.
macro_rules! dropin_types {
    ($family:ident: $($kind:ident($config:ident) = $quant:ident($float:ty, $float_config:ty);)*) => {$(
        #[doc = concat!("Drop-in for burn's `", stringify!($kind), "`: the float layer, or [`", stringify!($quant), "`] while replacement is on (see [`DropIn`](crate::nn::dropin::layer::DropIn)).")]
        pub type $kind = $crate::nn::dropin::layer::DropIn<$quant>;

        #[doc = concat!("Drop-in for burn's `", stringify!($config), "`: same `new` and setters; `init` builds a [`", stringify!($kind), "`] (see [`DropInConfig`](crate::nn::dropin::layer::DropInConfig)).")]
        pub type $config = $crate::nn::dropin::layer::DropInConfig<$float_config>;

        impl $crate::nn::dropin::layer::Replaceable for $quant {
            type Float = $float;
            const KIND: $crate::nn::dropin::registry::LayerKind = $crate::nn::dropin::registry::LayerKind::$kind;

            fn from_float(
                float: $float,
                replacement: $crate::nn::dropin::registry::Replacement,
            ) -> $crate::Result<Self> {
                replacement.check(Self::KIND)?;
                $crate::nn::dropin::layer::dropin_types!(@from_float $family $quant(float, replacement))
            }
        }
    )*};
    (@from_float weighted $quant:ident($float:ident, $r:ident)) => {
        <$quant>::from_float($float, $r.quant_desc_input, $r.quant_desc_weight)
    };
    (@from_float pool $quant:ident($float:ident, $r:ident)) => {
        <$quant>::from_float($float, $r.quant_desc_input, &burn::tensor::Device::default())
    };
}

pub(crate) use {dropin_pool, dropin_types, dropin_weighted, forward_setters};
