//! Boilerplate shared by the `Quant*` classes: the mixin impls with a per-class default slot, and the
//! weighted-layer skeleton (struct, config, `init`, `from_float`, `forward`).

/// `with_quant_desc_input` (and `with_quant_desc_weight`) on a quantized config.
macro_rules! quant_desc_setters {
    (input) => {
        /// The input quantizer's descriptor (default: the class default at `init`).
        pub fn with_quant_desc_input(
            mut self,
            desc: $crate::tensor_quant::QuantDescriptor,
        ) -> Self {
            self.quant_desc_input = Some(desc);
            self
        }
    };
    (input, weight) => {
        $crate::nn::modules::macros::quant_desc_setters!(input);

        /// The weight quantizer's descriptor (default: the class default at `init`).
        pub fn with_quant_desc_weight(
            mut self,
            desc: $crate::tensor_quant::QuantDescriptor,
        ) -> Self {
            self.quant_desc_weight = Some(desc);
            self
        }
    };
}

/// `QuantInputMixin` for `$ty` (field `_input_quantizer`), with its own default
/// slot starting at `$base`.
macro_rules! impl_input_mixin {
    ($ty:ty, $base:path) => {
        impl $crate::nn::modules::mixin::QuantInputMixin for $ty {
            fn input_default() -> &'static $crate::nn::modules::mixin::DefaultQuantDesc {
                // A static per impl: one slot per class.
                static SLOT: $crate::nn::modules::mixin::DefaultQuantDesc =
                    $crate::nn::modules::mixin::DefaultQuantDesc::new(&$base);
                &SLOT
            }

            fn input_quantizer(&self) -> &$crate::nn::tensor_quantizer::TensorQuantizer {
                &self._input_quantizer
            }

            fn input_quantizer_mut(
                &mut self,
            ) -> &mut $crate::nn::tensor_quantizer::TensorQuantizer {
                &mut self._input_quantizer
            }
        }
    };
}

/// `QuantMixin` for `$ty` (field `_weight_quantizer`), default slot starting at `$base`.
macro_rules! impl_weight_mixin {
    ($ty:ty, $base:path) => {
        impl $crate::nn::modules::mixin::QuantMixin for $ty {
            fn weight_default() -> &'static $crate::nn::modules::mixin::DefaultQuantDesc {
                static SLOT: $crate::nn::modules::mixin::DefaultQuantDesc =
                    $crate::nn::modules::mixin::DefaultQuantDesc::new(&$base);
                &SLOT
            }

            fn weight_quantizer(&self) -> &$crate::nn::tensor_quantizer::TensorQuantizer {
                &self._weight_quantizer
            }

            fn weight_quantizer_mut(
                &mut self,
            ) -> &mut $crate::nn::tensor_quantizer::TensorQuantizer {
                &mut self._weight_quantizer
            }
        }
    };
}

/// A quantized weighted layer wrapping burn's `$float` layer.
///
/// Generates the module (`weight`, `bias`, the option fields moved from the float
/// layer, `_input_quantizer`, `_weight_quantizer`), its config wrapping burn's
/// `$float_config` (`new`, forwarded setters, descriptor setters, `init`),
/// `from_float`, the mixin impls, and `forward` / `try_forward`, which call the
/// class's hand-written `fn apply(&self, input, weight) -> Tensor` with the
/// quantized input and weight; and the drop-in layer's API (`dropin_weighted!`).
macro_rules! quant_weighted_layer {
    (
        $(#[$doc:meta])*
        $name:ident($float:ty) rank $rank:literal;
        $(#[$cdoc:meta])*
        config $config:ident($float_config:ty) {
            new($($arg:ident: $arg_ty:ty),*);
            setters { $($setter:ident($sfield:ident: $sty:ty)),* $(,)? }
            check($c:ident) = $check:expr;
            init($ic:ident, $idev:ident) = $init:expr;
        }
        fields { $($(#[$fattr:meta])* $field:ident: $fty:ty),* $(,)? }
        weight_default = $wdefault:path;
    ) => {
        $(#[$doc])*
        #[derive(burn::module::Module, Debug)]
        pub struct $name {
            /// The float weight, in burn's layout for the layer.
            pub weight: burn::module::Param<burn::tensor::Tensor<$rank>>,
            /// The bias, added unquantized.
            pub bias: Option<burn::module::Param<burn::tensor::Tensor<1>>>,
            $($(#[$fattr])* pub $field: $fty,)*
            /// Quantizes the input (record name `_input_quantizer`, as the reference's state dict).
            pub _input_quantizer: $crate::nn::tensor_quantizer::TensorQuantizer,
            /// Quantizes the weight (record name `_weight_quantizer`).
            pub _weight_quantizer: $crate::nn::tensor_quantizer::TensorQuantizer,
        }

        $(#[$cdoc])*
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        pub struct $config {
            /// burn's float-layer configuration (shapes, options, initializer).
            pub layer: $float_config,
            /// Input descriptor; `None` takes the class default at `init`.
            pub quant_desc_input: Option<$crate::tensor_quant::QuantDescriptor>,
            /// Weight descriptor; `None` takes the class default at `init`.
            pub quant_desc_weight: Option<$crate::tensor_quant::QuantDescriptor>,
        }

        impl burn::config::Config for $config {}

        impl $config {
            #[doc = concat!("A config with the arguments and defaults of burn's `", stringify!($float_config), "::new`.")]
            pub fn new($($arg: $arg_ty),*) -> Self {
                Self {
                    layer: <$float_config>::new($($arg),*),
                    quant_desc_input: None,
                    quant_desc_weight: None,
                }
            }

            $crate::nn::dropin::layer::forward_setters!(layer; $($setter($sfield: $sty)),*);
            $crate::nn::modules::macros::quant_desc_setters!(input, weight);

            #[doc = concat!("Initializes a [`", stringify!($name), "`]: burn's float initialization, then the quantizers.")]
            ///
            /// # Errors
            /// A `fake_quant = false` descriptor, a per-channel axis outside the
            /// weight's rank, or channels not divisible by `groups`.
            pub fn init(&self, device: &burn::tensor::Device) -> $crate::Result<$name> {
                let (input, weight) = $crate::nn::modules::mixin::pop_quant_desc_in_kwargs::<$name>(
                    self.quant_desc_input.clone(),
                    self.quant_desc_weight.clone(),
                );
                // Validate before burn's init, which panics on what we report as errors.
                $crate::nn::modules::mixin::check_fake_quant(&input)?;
                $crate::nn::modules::mixin::check_fake_quant(&weight)?;
                let $c = &self.layer;
                $check?;
                let ($ic, $idev) = (&self.layer, device);
                $name::from_float($init, input, weight)
            }
        }

        impl $name {
            #[doc = concat!("Quantizes a float `", stringify!($float), "`: keeps its parameters (values and ids) and options, adds quantizers.")]
            ///
            /// A descriptor given as `None` takes the class default.
            ///
            /// # Errors
            /// A `fake_quant = false` descriptor, or a per-channel axis outside the
            /// weight's rank.
            pub fn from_float(
                layer: $float,
                quant_desc_input: impl Into<Option<$crate::tensor_quant::QuantDescriptor>>,
                quant_desc_weight: impl Into<Option<$crate::tensor_quant::QuantDescriptor>>,
            ) -> $crate::Result<Self> {
                let device = layer.weight.lazy_device();
                let dims = layer.weight.lazy_shape();
                let (_input_quantizer, _weight_quantizer) = $crate::nn::modules::mixin::init_quantizers::<Self>(
                    quant_desc_input.into(),
                    quant_desc_weight.into(),
                    dims.as_slice(),
                    &device,
                )?;
                Ok(Self {
                    weight: layer.weight,
                    bias: layer.bias,
                    $($field: layer.$field,)*
                    _input_quantizer,
                    _weight_quantizer,
                })
            }

            /// The float op on the quantized input and weight; the bias is added as is.
            /// Never panics on a quantizer error (see [`TensorQuantizer::forward`](crate::nn::tensor_quantizer::TensorQuantizer::forward)).
            pub fn forward(&self, input: burn::tensor::Tensor<$rank>) -> burn::tensor::Tensor<$rank> {
                let input = self._input_quantizer.forward(input);
                let weight = self._weight_quantizer.forward(self.weight.val());
                self.apply(input, weight)
            }

            /// [`Self::forward`], returning the first quantizer error instead of
            /// passing the tensor through.
            pub fn try_forward(&self, input: burn::tensor::Tensor<$rank>) -> $crate::Result<burn::tensor::Tensor<$rank>> {
                let input = self._input_quantizer.try_forward(input)?;
                let weight = self._weight_quantizer.try_forward(self.weight.val())?;
                Ok(self.apply(input, weight))
            }
        }

        $crate::nn::modules::macros::impl_input_mixin!($name, $crate::tensor_quant::QUANT_DESC_8BIT_PER_TENSOR);
        $crate::nn::modules::macros::impl_weight_mixin!($name, $wdefault);

        // The drop-in (`qdq::nn::Conv2dConfig` ...), from the same declaration.
        $crate::nn::dropin::layer::dropin_weighted! {
            $name($float) rank $rank;
            config $config($float_config) {
                new($($arg: $arg_ty),*);
                setters { $($setter($sfield: $sty)),* }
                check($c) = $check;
            }
        }
    };
}

pub(crate) use {impl_input_mixin, impl_weight_mixin, quant_desc_setters, quant_weighted_layer};
