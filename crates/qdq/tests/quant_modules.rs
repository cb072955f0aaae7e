//! `quant_modules` and the drop-in layers: replacement on and off, the skip list,
//! custom replacements, `deactivate`; a model written once against the drop-ins
//! builds float and quantized with the plain layers' names, computes the float
//! output with its quantizers disabled, and takes a float checkpoint.

mod common;

use std::sync::{Mutex, MutexGuard};

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{PaddingConfig2d, Relu};
use burn::prelude::*;
use common::{Lcg, bits, desc, dev, tensor, values};
use qdq::Error;
use qdq::nn::*;
use qdq::quant_modules::{
    self, LayerKind, QuantModulesGuard, Replacement, ReplacementOptions, deactivate, initialize,
    initialize_with,
};
use qdq::tensor_quant::{NumBits, QuantDescriptor};

// ---------------------------------------------------------------- helpers

/// The replacement state is process-wide and tests run on parallel threads: every
/// test here holds this lock, and starts (and ends) with replacement off.
static STATE: Mutex<()> = Mutex::new(());

struct Serial {
    _guard: QuantModulesGuard,
    _lock: MutexGuard<'static, ()>,
}

fn serial() -> Serial {
    // A test that panicked while holding the lock has restored the state on unwind.
    let lock = STATE.lock().unwrap_or_else(|e| e.into_inner());
    Serial {
        _guard: QuantModulesGuard::deactivated(),
        _lock: lock,
    }
}

fn rand<const D: usize>(seed: u64, shape: [usize; D], lo: f32, hi: f32, d: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    tensor(Lcg(seed).vec(n, lo, hi), shape, d)
}

fn assert_bits<const D: usize>(got: Tensor<D>, want: Tensor<D>) {
    assert_eq!(got.dims(), want.dims());
    assert_eq!(bits(&values(got)), bits(&values(want)));
}

/// Record keys: the dotted path of every float parameter, as burn's record uses.
fn param_paths<M: Module>(model: &M) -> Vec<String> {
    #[derive(Default)]
    struct Paths {
        path: Vec<String>,
        found: Vec<String>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
            self.found.push(self.path.join("."));
        }
    }
    let mut paths = Paths::default();
    model.visit(&mut paths);
    paths.found
}

fn quantizer_names<M: Module>(model: &M) -> Vec<String> {
    named_quantizers(model)
        .into_iter()
        .map(|q| q.name)
        .collect()
}

fn disable_quantizers<M: Module>(model: &M) {
    for q in named_quantizers(model) {
        q.handle.disable();
    }
}

/// One layer of every kind, built by the drop-ins; `true` where it came out quantized.
fn build_every_kind(d: &Device) -> Vec<(LayerKind, bool)> {
    vec![
        (
            LayerKind::Conv1d,
            Conv1dConfig::new(2, 3, 3).init(d).is_quantized(),
        ),
        (
            LayerKind::Conv2d,
            Conv2dConfig::new([2, 3], [3, 3]).init(d).is_quantized(),
        ),
        (
            LayerKind::Conv3d,
            Conv3dConfig::new([2, 3], [1, 2, 2]).init(d).is_quantized(),
        ),
        (
            LayerKind::ConvTranspose1d,
            ConvTranspose1dConfig::new([2, 3], 3).init(d).is_quantized(),
        ),
        (
            LayerKind::ConvTranspose2d,
            ConvTranspose2dConfig::new([2, 3], [3, 3])
                .init(d)
                .is_quantized(),
        ),
        (
            LayerKind::ConvTranspose3d,
            ConvTranspose3dConfig::new([2, 3], [1, 2, 2])
                .init(d)
                .is_quantized(),
        ),
        (
            LayerKind::Linear,
            LinearConfig::new(4, 3).init(d).is_quantized(),
        ),
        (
            LayerKind::AvgPool1d,
            AvgPool1dConfig::new(2).init().is_quantized(),
        ),
        (
            LayerKind::AvgPool2d,
            AvgPool2dConfig::new([2, 2]).init().is_quantized(),
        ),
        (
            LayerKind::AvgPool3d,
            AvgPool3dConfig::new([2, 2, 2]).init().is_quantized(),
        ),
        (
            LayerKind::AdaptiveAvgPool1d,
            AdaptiveAvgPool1dConfig::new(2).init().is_quantized(),
        ),
        (
            LayerKind::AdaptiveAvgPool2d,
            AdaptiveAvgPool2dConfig::new([2, 2]).init().is_quantized(),
        ),
        (
            LayerKind::AdaptiveAvgPool3d,
            AdaptiveAvgPool3dConfig::new([2, 2, 2])
                .init()
                .is_quantized(),
        ),
        (
            LayerKind::MaxPool1d,
            MaxPool1dConfig::new(2).init().is_quantized(),
        ),
        (
            LayerKind::MaxPool2d,
            MaxPool2dConfig::new([2, 2]).init().is_quantized(),
        ),
        (
            LayerKind::MaxPool3d,
            MaxPool3dConfig::new([2, 2, 2]).init().is_quantized(),
        ),
        (
            LayerKind::InstanceNorm1d,
            InstanceNorm1dConfig::new(2)
                .init::<QuantInstanceNorm1d>(d)
                .is_quantized(),
        ),
        (
            LayerKind::InstanceNorm2d,
            InstanceNorm2dConfig::new(2)
                .init::<QuantInstanceNorm2d>(d)
                .is_quantized(),
        ),
        (
            LayerKind::InstanceNorm3d,
            InstanceNorm3dConfig::new(2)
                .init::<QuantInstanceNorm3d>(d)
                .is_quantized(),
        ),
        (
            LayerKind::LSTM,
            LstmConfig::new(2, 3, true).init(d).is_quantized(),
        ),
    ]
}

fn quantized_kinds(d: &Device) -> Vec<LayerKind> {
    build_every_kind(d)
        .into_iter()
        .filter(|(_, q)| *q)
        .map(|(k, _)| k)
        .collect()
}

// ---------------------------------------------------------------- the state

#[test]
fn layer_kinds_use_the_reference_names() {
    for &kind in LayerKind::ALL {
        assert_eq!(kind.to_string().parse::<LayerKind>().unwrap(), kind);
    }
    assert_eq!(
        "ConvTranspose2d".parse::<LayerKind>().unwrap(),
        LayerKind::ConvTranspose2d
    );
    assert_eq!(
        LayerKind::AdaptiveAvgPool3d.to_string(),
        "AdaptiveAvgPool3d"
    );
    // The reference's default map has 15 entries; burn has no LSTMCell layer.
    for missing in ["LSTMCell", "conv2d", "Conv4d"] {
        let err = missing.parse::<LayerKind>().unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{missing}: {err}");
        assert!(err.to_string().contains(missing), "{err}");
    }
    let default: Vec<_> = LayerKind::ALL
        .iter()
        .filter(|k| k.in_default_map())
        .map(|k| k.name())
        .collect();
    assert_eq!(
        default,
        [
            "Conv1d",
            "Conv2d",
            "Conv3d",
            "ConvTranspose1d",
            "ConvTranspose2d",
            "ConvTranspose3d",
            "Linear",
            "AvgPool1d",
            "AvgPool2d",
            "AvgPool3d",
            "AdaptiveAvgPool1d",
            "AdaptiveAvgPool2d",
            "AdaptiveAvgPool3d",
            "LSTM"
        ]
    );
}

#[test]
fn replacement_on_and_off_gives_quant_and_float_variants() {
    let _s = serial();
    let d = dev();
    assert!(!quant_modules::is_active());
    assert_eq!(quantized_kinds(&d), []);

    initialize();
    assert!(quant_modules::is_active());
    let default: Vec<_> = LayerKind::ALL
        .iter()
        .copied()
        .filter(|k| k.in_default_map())
        .collect();
    assert_eq!(quant_modules::replaced_kinds(), default);
    // Every kind of the default map, max pooling not (as in the reference).
    assert_eq!(quantized_kinds(&d), default);
    assert_eq!(
        quant_modules::replacement_for(LayerKind::Conv2d),
        Some(Replacement::default())
    );
    assert_eq!(quant_modules::replacement_for(LayerKind::MaxPool2d), None);

    deactivate();
    assert!(!quant_modules::is_active());
    assert_eq!(quant_modules::replaced_kinds(), []);
    assert_eq!(quantized_kinds(&d), []);
}

#[test]
fn variants_hold_the_float_and_the_quantized_layer() {
    let _s = serial();
    let d = dev();
    let float = Conv2dConfig::new([2, 3], [3, 3])
        .with_stride([2, 2])
        .init(&d);
    assert_eq!(float.kind(), LayerKind::Conv2d);
    assert!(float.as_quant().is_none());
    assert_eq!(float.as_float().unwrap().stride, [2, 2]);
    assert!(matches!(float, Conv2d::Float(_)));

    initialize();
    let mut quant = Conv2dConfig::new([2, 3], [3, 3])
        .with_stride([2, 2])
        .init(&d);
    deactivate();
    assert!(quant.as_float().is_none());
    let q: &mut QuantConv2d = quant.as_quant_mut().unwrap();
    assert_eq!(q.stride, [2, 2]);
    q.input_quantizer().disable();
    assert!(
        quant
            .as_quant()
            .unwrap()
            ._input_quantizer
            .handle
            .is_disabled()
    );
    // Same parameter count (the quantizers' amax is a parameter too: 1 + 3 per channel).
    assert_eq!(quant.num_params(), float.num_params() + 1 + 3);
    // Shown as the layer it holds, without a variant name.
    assert!(float.to_string().starts_with("Conv2d"), "{float}");
    assert!(quant.to_string().starts_with("QuantConv2d"), "{quant}");
    assert!(!quant.to_string().contains("Quant("), "{quant}");
}

#[test]
fn skip_list_keeps_linear_float() {
    let _s = serial();
    let d = dev();
    initialize_with(ReplacementOptions::new().with_float_module_list([LayerKind::Linear])).unwrap();
    assert!(!LinearConfig::new(4, 3).init(&d).is_quantized());
    assert!(Conv2dConfig::new([2, 3], [3, 3]).init(&d).is_quantized());
    let quantized = quantized_kinds(&d);
    assert!(!quantized.contains(&LayerKind::Linear));
    assert_eq!(quantized.len(), 13);
    // Names, as the reference's `float_module_list` strings.
    deactivate();
    let skip: Vec<LayerKind> = ["Linear", "Conv2d"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    initialize_with(ReplacementOptions::new().with_float_module_list(skip)).unwrap();
    assert!(!LinearConfig::new(4, 3).init(&d).is_quantized());
    assert!(!Conv2dConfig::new([2, 3], [3, 3]).init(&d).is_quantized());
    assert!(Conv1dConfig::new(2, 3, 3).init(&d).is_quantized());
}

#[test]
fn custom_replacement_applies_even_to_a_skipped_kind() {
    let _s = serial();
    let d = dev();
    let input = desc(4, None);
    let weight = desc(6, None); // per tensor instead of per row
    initialize_with(ReplacementOptions {
        float_module_list: vec![LayerKind::Linear, LayerKind::Conv2d],
        custom_quant_modules: vec![
            (
                LayerKind::Linear,
                Replacement::new()
                    .with_quant_desc_input(input.clone())
                    .with_quant_desc_weight(weight.clone()),
            ),
            // Outside the default map: only as a custom replacement.
            (
                LayerKind::MaxPool2d,
                Replacement::new().with_quant_desc_input(desc(5, None)),
            ),
        ],
    })
    .unwrap();
    let fc = LinearConfig::new(4, 3).init(&d);
    let q = fc
        .as_quant()
        .expect("custom replacement applies to a skipped kind");
    assert_eq!(q.input_quantizer().config().num_bits, NumBits::Int(4));
    assert_eq!(q.weight_quantizer().config().num_bits, NumBits::Int(6));
    assert_eq!(q.weight_quantizer().config().axis, None);
    assert!(!Conv2dConfig::new([2, 3], [3, 3]).init(&d).is_quantized());
    let pool = MaxPool2dConfig::new([2, 2]).init();
    assert_eq!(
        pool.as_quant().unwrap().input_quantizer().config().num_bits,
        NumBits::Int(5)
    );
    // Kinds in neither list keep the class defaults.
    let conv1 = Conv1dConfig::new(2, 3, 3).init(&d);
    let conv1 = conv1.as_quant().unwrap();
    assert_eq!(conv1.weight_quantizer().config().axis, Some(vec![0]));
    assert_eq!(
        quant_modules::replacement_for(LayerKind::Linear),
        Some(Replacement {
            quant_desc_input: Some(input),
            quant_desc_weight: Some(weight),
        })
    );
}

#[test]
fn a_bad_custom_replacement_is_refused_up_front() {
    let _s = serial();
    let weight_for_pool = ReplacementOptions::new().with_custom_quant_module(
        LayerKind::AvgPool2d,
        Replacement::new().with_quant_desc_weight(desc(8, None)),
    );
    let err = initialize_with(weight_for_pool).unwrap_err();
    assert!(err.to_string().contains("AvgPool2d"), "{err}");
    let real = QuantDescriptor::builder()
        .fake_quant(false)
        .build()
        .unwrap();
    let real_quant = ReplacementOptions::new().with_custom_quant_module(
        LayerKind::Conv2d,
        Replacement::new().with_quant_desc_input(real),
    );
    assert!(matches!(
        initialize_with(real_quant.clone()),
        Err(Error::Descriptor { .. })
    ));
    assert!(QuantModulesGuard::with_options(real_quant).is_err());
    // Nothing changed.
    assert!(!quant_modules::is_active());
    assert_eq!(quant_modules::replaced_kinds(), []);
}

#[test]
fn calls_accumulate_until_deactivate() {
    let _s = serial();
    let d = dev();
    let skip_linear = || ReplacementOptions::new().with_float_module_list([LayerKind::Linear]);
    initialize_with(skip_linear()).unwrap();
    assert!(!LinearConfig::new(4, 3).init(&d).is_quantized());
    // A second call adds Linear; a later skip list does not take it away (as the reference).
    initialize();
    assert!(LinearConfig::new(4, 3).init(&d).is_quantized());
    initialize_with(skip_linear()).unwrap();
    assert!(LinearConfig::new(4, 3).init(&d).is_quantized());
    // A plain call does not undo a custom replacement.
    initialize_with(ReplacementOptions::new().with_custom_quant_module(
        LayerKind::Conv1d,
        Replacement::new().with_quant_desc_input(desc(4, None)),
    ))
    .unwrap();
    initialize();
    let c = Conv1dConfig::new(2, 3, 3).init(&d);
    assert_eq!(
        c.as_quant().unwrap().input_quantizer().config().num_bits,
        NumBits::Int(4)
    );
    // deactivate forgets everything (the reference would re-apply Linear here).
    deactivate();
    initialize_with(skip_linear()).unwrap();
    assert!(!LinearConfig::new(4, 3).init(&d).is_quantized());
    assert_eq!(
        quant_modules::replacement_for(LayerKind::Conv1d),
        Some(Replacement::default())
    );
}

#[test]
fn deactivate_restores_float_and_keeps_built_layers() {
    let _s = serial();
    let d = dev();
    initialize();
    let quant = Conv2dConfig::new([2, 3], [3, 3]).init(&d);
    deactivate();
    let float = Conv2dConfig::new([2, 3], [3, 3]).init(&d);
    assert!(quant.is_quantized());
    assert!(!float.is_quantized());
}

#[test]
fn guard_puts_back_the_state_it_found() {
    let _s = serial();
    let d = dev();
    {
        let _on = QuantModulesGuard::new();
        assert!(LinearConfig::new(4, 3).init(&d).is_quantized());
        {
            let _off = QuantModulesGuard::deactivated();
            assert!(!LinearConfig::new(4, 3).init(&d).is_quantized());
        }
        assert!(LinearConfig::new(4, 3).init(&d).is_quantized());
        {
            let _custom = QuantModulesGuard::with_options(
                ReplacementOptions::new()
                    .with_custom_quant_module(LayerKind::MaxPool1d, Replacement::default()),
            )
            .unwrap();
            assert!(MaxPool1dConfig::new(2).init().is_quantized());
        }
        assert!(!MaxPool1dConfig::new(2).init().is_quantized());
    }
    assert!(!quant_modules::is_active());
}

// ---------------------------------------------------------------- the drop-in configs

#[test]
fn drop_in_configs_read_and_build_as_burns() {
    let _s = serial();
    let d = dev();
    let config = Conv2dConfig::new([2, 4], [3, 3])
        .with_stride([2, 1])
        .with_dilation([1, 2])
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false);
    // The wrapped config is burn's, field for field.
    let burn_config = burn::nn::conv::Conv2dConfig::new([2, 4], [3, 3])
        .with_stride([2, 1])
        .with_dilation([1, 2])
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false);
    assert_eq!(format!("{:?}", config.layer), format!("{burn_config:?}"));
    assert_eq!(
        format!("{:?}", Conv2dConfig::from(burn_config)),
        format!("{config:?}")
    );
    let x = rand(1, [1, 2, 7, 6], -1.0, 1.0, &d);
    let float = config.init(&d);
    let f = float.as_float().unwrap();
    assert_eq!(
        (f.stride, f.dilation, f.bias.is_none()),
        ([2, 1], [1, 2], true)
    );
    assert_bits(float.forward(x.clone()), f.forward(x.clone()));

    initialize();
    let quant = config.init(&d);
    deactivate();
    let q = quant.as_quant().unwrap();
    assert_eq!(
        (q.stride, q.dilation, q.bias.is_none()),
        ([2, 1], [1, 2], true)
    );
    // Quantizers off: burn's float conv on the same weight, padding resolved alike.
    quant.as_quant().unwrap().input_quantizer().disable();
    quant.as_quant().unwrap().weight_quantizer().disable();
    let float = Conv2d::Float(burn::nn::conv::Conv2d {
        weight: q.weight.clone(),
        ..f.clone()
    });
    assert_bits(quant.forward(x.clone()), float.forward(x));

    // Pools and Linear too.
    let pool = AvgPool2dConfig::new([2, 2])
        .with_strides([1, 1])
        .with_count_include_pad(false)
        .init();
    assert_eq!(pool.as_float().unwrap().stride, [1, 1]);
    let fc = LinearConfig::new(3, 2)
        .with_bias(false)
        .with_layout(burn::nn::LinearLayout::Col)
        .init(&d);
    assert!(fc.as_float().unwrap().bias.is_none());
    assert_eq!(
        fc.forward(Tensor::<3>::ones([2, 5, 3], &d)).dims(),
        [2, 5, 2]
    );
}

#[test]
fn groups_not_dividing_channels_fail_in_both_variants() {
    let _s = serial();
    let d = dev();
    let config = Conv1dConfig::new(3, 4, 3).with_groups(2);
    assert!(matches!(
        config.try_init(&d),
        Err(Error::Unsupported { .. })
    ));
    initialize();
    assert!(matches!(
        config.try_init(&d),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
#[should_panic(expected = "qdq::nn::Conv2dConfig::init: channel counts not divisible by groups")]
fn init_panics_where_burns_would() {
    let _s = serial();
    let _ = Conv2dConfig::new([3, 4], [3, 3])
        .with_groups(2)
        .init(&dev());
}

#[test]
fn try_init_reports_a_replacement_the_layer_cannot_use() {
    let _s = serial();
    let d = dev();
    // Axis 3 exists for Conv2d's weight but not for Conv1d's (rank 3) or Linear's.
    let axis3 = Replacement::new().with_quant_desc_weight(desc(8, Some(3)));
    initialize_with(
        ReplacementOptions::new()
            .with_custom_quant_module(LayerKind::Conv1d, axis3.clone())
            .with_custom_quant_module(LayerKind::Conv2d, axis3),
    )
    .unwrap();
    assert!(
        Conv2dConfig::new([2, 3], [3, 3])
            .try_init(&d)
            .unwrap()
            .is_quantized()
    );
    assert!(matches!(
        Conv1dConfig::new(2, 3, 3).try_init(&d),
        Err(Error::AxisOutOfRange { .. })
    ));
}

// ---------------------------------------------------------------- a model

/// Written once against the drop-ins: conv → relu → adaptive avg pool → flatten → linear.
#[derive(Module, Debug)]
struct Net {
    conv: Conv2d,
    relu: Relu,
    pool: AdaptiveAvgPool2d,
    fc: Linear,
}

impl Net {
    fn new(device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([2, 4], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            relu: Relu::new(),
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(4, 3).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(self.relu.forward(self.conv.forward(x)));
        self.fc.forward(x.flatten(1, 3))
    }
}

/// The same without the linear layer, whose weight layouts differ.
#[derive(Module, Debug)]
struct ConvNet {
    conv: Conv2d,
    relu: Relu,
    pool: AdaptiveAvgPool2d,
}

impl ConvNet {
    fn new(device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([2, 4], [3, 3]).init(device),
            relu: Relu::new(),
            pool: AdaptiveAvgPool2dConfig::new([2, 2]).init(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pool.forward(self.relu.forward(self.conv.forward(x)))
    }
}

#[test]
fn one_model_builds_float_and_quantized_with_the_plain_names() {
    let _s = serial();
    let d = dev();
    let float = Net::new(&d);
    initialize();
    let quant = Net::new(&d);
    deactivate();
    assert!(!float.conv.is_quantized() && !float.pool.is_quantized() && !float.fc.is_quantized());
    assert!(quant.conv.is_quantized() && quant.pool.is_quantized() && quant.fc.is_quantized());

    assert_eq!(quantizer_names(&float), Vec::<String>::new());
    assert_eq!(
        quantizer_names(&quant),
        [
            "conv._input_quantizer",
            "conv._weight_quantizer",
            "pool._input_quantizer",
            "fc._input_quantizer",
            "fc._weight_quantizer"
        ]
    );
    // Record keys: the float layers' keys, plus the quantizers' amax.
    assert_eq!(
        param_paths(&float),
        ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    );
    assert_eq!(
        param_paths(&quant),
        [
            "conv.weight",
            "conv.bias",
            "conv._input_quantizer._amax",
            "conv._weight_quantizer._amax",
            "pool._input_quantizer._amax",
            "fc.weight",
            "fc.bias",
            "fc._input_quantizer._amax",
            "fc._weight_quantizer._amax"
        ]
    );
    let x = rand(2, [3, 2, 5, 5], -2.0, 2.0, &d);
    assert_eq!(float.forward(x.clone()).dims(), [3, 3]);
    assert_eq!(quant.forward(x).dims(), [3, 3]);
    // Each model round-trips its own record (amax entries included).
    let fresh = {
        let _on = QuantModulesGuard::new();
        Net::new(&d)
    };
    let loaded = fresh.load_record(quant.clone().into_record());
    assert_eq!(
        values(loaded.fc.as_quant().unwrap().weight.val()),
        values(quant.fc.as_quant().unwrap().weight.val())
    );
}

#[test]
fn quantize_turns_a_float_model_into_the_quantized_one() {
    let _s = serial();
    let d = dev();
    let float = Net::new(&d);
    let x = rand(3, [2, 2, 6, 5], -2.0, 2.0, &d);
    let want = float.forward(x.clone());

    // Off: nothing is replaced.
    let same = quant_modules::quantize(float.clone()).unwrap();
    assert!(!same.conv.is_quantized() && !same.fc.is_quantized());

    initialize_with(
        ReplacementOptions::new().with_float_module_list([LayerKind::AdaptiveAvgPool2d]),
    )
    .unwrap();
    let quant = quant_modules::quantize(float.clone()).unwrap();
    deactivate();
    assert!(quant.conv.is_quantized() && quant.fc.is_quantized());
    assert!(!quant.pool.is_quantized());
    assert_eq!(
        quantizer_names(&quant),
        [
            "conv._input_quantizer",
            "conv._weight_quantizer",
            "fc._input_quantizer",
            "fc._weight_quantizer"
        ]
    );
    // Same parameters (ids too); Linear's weight transposed into PyTorch's layout.
    let (fc_f, fc_q) = (float.fc.as_float().unwrap(), quant.fc.as_quant().unwrap());
    assert_eq!(fc_q.weight.id, fc_f.weight.id);
    assert_eq!(
        values(fc_q.weight.val()),
        values(fc_f.weight.val().transpose())
    );
    assert_eq!(
        quant.conv.as_quant().unwrap().weight.id,
        float.conv.as_float().unwrap().weight.id
    );
    // Quantizers disabled: the float output, bit for bit.
    disable_quantizers(&quant);
    assert_bits(quant.forward(x.clone()), want.clone());
    // Enabled they quantize (8 bits, dynamic amax): close, not equal.
    for q in named_quantizers(&quant) {
        q.handle.enable();
    }
    let got = values(quant.forward(x));
    assert_ne!(bits(&got), bits(&values(want.clone())));
    for (g, w) in got.iter().zip(values(want)) {
        assert!((g - w).abs() < 0.1, "{g} vs {w}");
    }
}

#[test]
fn quantize_reports_a_layer_it_cannot_quantize() {
    let _s = serial();
    let d = dev();
    let float = Net::new(&d);
    let float2 = Net::new(&d);
    initialize_with(ReplacementOptions::new().with_custom_quant_module(
        LayerKind::Linear,
        Replacement::new().with_quant_desc_weight(desc(8, Some(2))),
    ))
    .unwrap();
    assert!(matches!(
        quant_modules::quantize(float),
        Err(Error::AxisOutOfRange { axis: 2, rank: 2 })
    ));
    // The walk is over: a later map converts nothing, though replacement is on.
    let mapped = float2.map(&mut NoChange);
    assert!(!mapped.conv.is_quantized());
}

struct NoChange;
impl burn::module::ModuleMapper for NoChange {}

#[test]
fn disabled_quantizers_give_the_float_output_with_the_float_weights() {
    let _s = serial();
    let d = dev();
    let float = ConvNet::new(&d);
    let quant = {
        let _on = QuantModulesGuard::new();
        ConvNet::new(&d)
    };
    // The float checkpoint lacks only the quantizers' `_amax`.
    let record = float.clone().into_record();
    assert!(quant.clone().try_load_record(record.clone()).is_err());
    let quant = quant
        .try_load_record(record.allow_partial(true))
        .expect("a float checkpoint loads with allow_partial");
    let (wf, wq) = (
        float.conv.as_float().unwrap().weight.val(),
        quant.conv.as_quant().unwrap().weight.val(),
    );
    assert_eq!(values(wq), values(wf));
    // Amax stays unset: dynamic until calibrated.
    assert_eq!(
        quant.conv.as_quant().unwrap().input_quantizer().amax(),
        None
    );

    let x = rand(4, [2, 2, 7, 7], -3.0, 3.0, &d);
    disable_quantizers(&quant);
    assert_bits(quant.forward(x.clone()), float.forward(x));
}

#[test]
fn a_float_linear_record_does_not_load_into_a_quantized_linear() {
    let _s = serial();
    let d = dev();
    // burn's [d_input, d_output] against QuantLinear's [d_output, d_input]: refused,
    // not transposed silently (the documented way is `quantize`).
    let float = Net::new(&d);
    let quant = {
        let _on = QuantModulesGuard::new();
        Net::new(&d)
    };
    let err = quant
        .try_load_record(float.into_record().allow_partial(true))
        .unwrap_err();
    assert!(format!("{err:?}").contains("fc.weight"), "{err:?}");
}

#[test]
fn float_checkpoint_files_into_the_quantized_model_as_the_readme_shows() {
    let _s = serial();
    let d = dev();
    let dir = std::env::temp_dir().join(format!("qdq-replacement-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x = rand(5, [2, 2, 6, 6], -2.0, 2.0, &d);

    // Convolutions and pools: the record straight into the quantized build.
    let float = ConvNet::new(&d);
    float.clone().save_file(dir.join("convnet.bpk")).unwrap();
    initialize();
    let record = burn::store::ModuleRecord::load(dir.join("convnet.bpk")).unwrap();
    let quant = ConvNet::new(&d).load_record(record.allow_partial(true));
    deactivate();
    assert!(quant.conv.is_quantized() && quant.pool.is_quantized());
    disable_quantizers(&quant);
    assert_bits(quant.forward(x.clone()), float.forward(x.clone()));

    // Any layers: into the float build, then `quantize`.
    let float = Net::new(&d);
    float.clone().save_file(dir.join("net.bpk")).unwrap();
    let loaded = Net::new(&d).load_file(dir.join("net.bpk"));
    initialize();
    let quant = quant_modules::quantize(loaded).unwrap();
    deactivate();
    assert!(quant.fc.is_quantized());
    disable_quantizers(&quant);
    assert_bits(quant.forward(x.clone()), float.forward(x));
    std::fs::remove_dir_all(&dir).unwrap();
}
