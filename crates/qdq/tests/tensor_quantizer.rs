//! `TensorQuantizer`: forward order, switches, amax, calibration, printing, walks and records.

mod common;

use burn::module::Module;
use common::{Lcg, bits, dev, tensor, values};
use qdq::nn::{TensorQuantizer, named_quantizers};
use qdq::tensor_quant::{QuantDescriptor, fake_tensor_quant, scaled_e4m3};
use qdq::{Amax, Error};

fn quantizer(desc: QuantDescriptor) -> TensorQuantizer {
    TensorQuantizer::new(&desc, &dev()).unwrap()
}

#[test]
fn module_equals_function_with_dynamic_amax() {
    let d = dev();
    let x = tensor(Lcg(1).vec(60, -2.0, 2.0), [3, 4, 5], &d);
    let q = quantizer(QuantDescriptor::default());
    let amax = x.clone().abs().max().reshape([1, 1, 1]);
    // Descriptor default: full range (narrow_range = false).
    let want = fake_tensor_quant(x.clone(), amax, 8, false, false).unwrap();
    assert_eq!(bits(&values(q.forward(x))), bits(&values(want)));
    assert_eq!(
        q.to_string(),
        "TensorQuantizer(8bit fake per-tensor amax=dynamic calibrator=MaxCalibrator scale=1.0 quant)"
    );
}

#[test]
fn per_channel_static_amax_with_scale_amax() {
    let d = dev();
    let x = tensor(Lcg(2).vec(24, -1.0, 1.0), [4, 6], &d);
    let desc = QuantDescriptor::builder()
        .axis([0])
        .scale_amax(0.7)
        .build()
        .unwrap();
    let mut q = quantizer(desc);
    q.set_amax(&Amax::new(vec![0.5, 1.0, 0.25, 0.8], vec![4, 1]).unwrap())
        .unwrap();
    // amax * 0.7 in f32, per row.
    let scaled: Vec<f32> = [0.5f32, 1.0, 0.25, 0.8]
        .iter()
        .map(|a| a * 0.7f32)
        .collect();
    let want = fake_tensor_quant(x.clone(), tensor(scaled, [4, 1], &d), 8, false, false).unwrap();
    assert_eq!(bits(&values(q.forward(x))), bits(&values(want)));
    assert_eq!(
        q.to_string(),
        "TensorQuantizer(8bit fake axis=0 amax=[0.2500, 1.0000](4) *0.7 calibrator=MaxCalibrator scale=1.0 quant)"
    );
    // A different number of entries is refused.
    assert!(matches!(
        q.set_amax(&Amax::scalar(1.0)),
        Err(Error::AmaxShapeChanged { .. })
    ));
}

#[test]
fn amax_setter_and_step_size() {
    let mut q = quantizer(QuantDescriptor::default());
    assert_eq!(q.amax(), None);
    q.set_amax(&Amax::scalar(0.577)).unwrap();
    assert_eq!(q.amax(), Some(vec![0.577]));
    assert_eq!(q.step_size(), Some(vec![0.577 / 127.0]));
    assert_eq!(q.maxbound(), 127.0);
    assert!(q.set_amax(&Amax::scalar(-1.0)).is_err());
    let u4 = quantizer(
        QuantDescriptor::builder()
            .num_bits(4)
            .unsigned(true)
            .narrow_range(true)
            .amax(Amax::scalar(2.0))
            .scale_amax(0.5)
            .build()
            .unwrap(),
    );
    assert_eq!(u4.maxbound(), 15.0);
    assert_eq!(
        u4.to_string(),
        "TensorQuantizer(unsigned 4bit narrow fake per-tensor amax=2.0000 *0.5 calibrator=MaxCalibrator scale=1.0 quant)"
    );
}

#[test]
fn switches_follow_the_reference_forward_order() {
    let d = dev();
    let x = tensor(vec![0.3, -1.7, 2.2, 0.01], [4], &d);
    let q = quantizer(
        QuantDescriptor::builder()
            .amax(Amax::scalar(1.0))
            .build()
            .unwrap(),
    );
    q.disable();
    assert_eq!(q.to_string(), "TensorQuantizer(disabled)");
    assert_eq!(values(q.forward(x.clone())), values(x.clone()));
    q.enable();
    q.disable_quant();
    assert_eq!(values(q.forward(x.clone())), values(x.clone()));
    // Calibrating while not quantizing collects full-precision statistics.
    q.enable_calib();
    let _ = q.forward(x.clone());
    assert!(q.to_string().ends_with("scale=1.0 calib)"), "{q}");
    q.disable_calib();
    q.enable_quant();
    let out = values(q.forward(x));
    // Full range (descriptor default): -215.9 clamps to -128.
    assert_eq!(out, vec![38.0 / 127.0, -128.0 / 127.0, 1.0, 1.0 / 127.0]);
}

#[test]
fn max_calibration_and_strict_load() {
    let d = dev();
    let mut q = quantizer(QuantDescriptor::builder().axis([0]).build().unwrap());
    let err = q.load_calib_amax().unwrap_err();
    assert!(matches!(err, Error::NoData { .. }), "{err}");
    q.enable_calib();
    q.disable_quant();
    let _ = q.forward(tensor(
        vec![0.5, -2.2035, 0.0, 0.0, 1.0, -0.25, 0.1, 0.2],
        [4, 2],
        &d,
    ));
    q.load_calib_amax().unwrap();
    q.disable_calib();
    q.enable_quant();
    assert_eq!(q.amax(), Some(vec![2.2035, 0.0, 1.0, 0.2]));
    assert_eq!(
        q.to_string(),
        "TensorQuantizer(8bit fake axis=0 amax=[0.0000, 2.2035](4) calibrator=MaxCalibrator scale=1.0 quant)"
    );
    // Non-strict on a quantizer without data: disabled, not NaN.
    let mut empty = quantizer(QuantDescriptor::default());
    empty.load_calib_amax_opts(None, false).unwrap();
    assert_eq!(empty.to_string(), "TensorQuantizer(disabled)");
}

#[test]
fn learn_amax_clips_then_quantizes_with_the_learned_range() {
    let d = dev();
    let x = tensor(vec![-0.9, -0.2, 0.26, 0.7], [4], &d);
    let q = quantizer(
        QuantDescriptor::builder()
            .learn_amax(true)
            .amax(Amax::scalar(0.5))
            .build()
            .unwrap(),
    );
    let clipped = tensor(vec![-0.5, -0.2, 0.26, 0.5], [4], &d);
    let want = fake_tensor_quant(clipped, tensor(vec![0.5], [1], &d), 8, false, false).unwrap();
    assert_eq!(bits(&values(q.forward(x))), bits(&values(want)));
    assert!(q.to_string().contains("learned"), "{q}");
    assert!(q.to_string().ends_with("quant clip)"), "{q}");
}

#[test]
fn a_calibrated_quantizer_becomes_learnable_at_its_amax() {
    let d = dev();
    let mut q = quantizer(QuantDescriptor::builder().unsigned(true).build().unwrap());
    q.enable_calib();
    q.disable_quant();
    let _ = q.forward(tensor(vec![0.1, 0.6, 0.3], [3], &d));
    q.load_calib_amax().unwrap();
    q.disable_calib();
    q.enable_quant();
    let learn = q.to_learnable().unwrap();
    let clip = learn.clip.as_ref().unwrap();
    assert_eq!(values(clip.clip_value_max.val()), vec![0.6]);
    assert_eq!(values(clip.clip_value_min.val()), vec![-0.6]);
    assert!(learn.config().learn_amax && learn.config().unsigned);
    // Same output inside the range; beyond it, clipped to the learned bound.
    let x = tensor(vec![0.05, 0.33, 0.6], [3], &d);
    assert_eq!(
        bits(&values(learn.forward(x.clone()))),
        bits(&values(q.forward(x)))
    );
    assert_eq!(values(learn.forward(tensor(vec![0.9], [1], &d))), vec![0.6]);
    // Its switches are its own.
    learn.handle.disable();
    assert!(!q.handle.is_disabled());
    // Per-channel ranges are not learnable.
    let mut w = quantizer(QuantDescriptor::builder().axis([0]).build().unwrap());
    w.set_amax(&Amax::new(vec![1.0, 2.0], vec![2, 1]).unwrap())
        .unwrap();
    let err = w.to_learnable().unwrap_err();
    assert!(err.to_string().contains("scalar amax"), "{err}");
}

#[test]
fn e4m3_quantizer_and_real_quant() {
    let d = dev();
    let x = tensor(vec![0.2, -1.8, 0.6], [3], &d);
    let fp8 = quantizer(
        QuantDescriptor::builder()
            .e4m3()
            .amax(Amax::scalar(2.0))
            .build()
            .unwrap(),
    );
    let want = scaled_e4m3(x.clone(), Some(tensor(vec![2.0], [1], &d))).unwrap();
    assert_eq!(values(fp8.forward(x.clone())), values(want));
    assert_eq!(fp8.maxbound(), 448.0);
    assert!(
        fp8.to_string()
            .starts_with("TensorQuantizer((4, 3)bit fake per-tensor amax=2.0000"),
        "{fp8}"
    );
    // Real quantization forces the narrow range, as the reference does.
    let real = quantizer(
        QuantDescriptor::builder()
            .fake_quant(false)
            .amax(Amax::scalar(1.0))
            .build()
            .unwrap(),
    );
    assert_eq!(
        values(real.forward(tensor(vec![-1.5, 0.5], [2], &d))),
        vec![-127.0, 64.0]
    );
    assert!(
        real.to_string().contains("scale=[127.0000, 127.0000](1)"),
        "{real}"
    );
}

#[test]
fn forward_errors_are_recorded_not_panicked() {
    let d = dev();
    let q = quantizer(QuantDescriptor::builder().unsigned(true).build().unwrap());
    let x = tensor(vec![0.5, -0.5], [2], &d);
    assert!(matches!(
        q.try_forward(x.clone()),
        Err(Error::NegativeInputUnsigned { .. })
    ));
    assert_eq!(values(q.forward(x.clone())), values(x));
    assert!(matches!(
        q.handle.take_error(),
        Some(Error::NegativeInputUnsigned { .. })
    ));
}

#[derive(Module, Debug)]
struct Block {
    _input_quantizer: TensorQuantizer,
    inner: Inner,
}

#[derive(Module, Debug)]
struct Inner {
    layers: Vec<TensorQuantizer>,
}

#[test]
fn walk_finds_quantizers_by_name_and_records_round_trip() {
    let d = dev();
    let make = || Block {
        _input_quantizer: quantizer(QuantDescriptor::default()),
        inner: Inner {
            layers: vec![
                quantizer(QuantDescriptor::default()),
                quantizer(QuantDescriptor::builder().axis([0]).build().unwrap()).with_channels(2),
            ],
        },
    };
    let mut block = make();
    let names: Vec<String> = named_quantizers(&block)
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(
        names,
        ["_input_quantizer", "inner.layers.0", "inner.layers.1"]
    );
    block.inner.layers[1]
        .set_amax(&Amax::new(vec![0.5, 1.5], vec![2, 1]).unwrap())
        .unwrap();
    block._input_quantizer.set_amax(&Amax::scalar(3.0)).unwrap();
    let found = named_quantizers(&block);
    assert_eq!(found[0].amax, Some(vec![3.0]));
    assert_eq!(found[1].amax, None);
    assert_eq!(found[2].amax, Some(vec![0.5, 1.5]));
    // Switches set through a handle act on the model.
    found[0].handle.disable();
    assert_eq!(
        block._input_quantizer.to_string(),
        "TensorQuantizer(disabled)"
    );
    // amax survives a record round trip into a fresh model.
    let record = block.into_record();
    let fresh = make().load_record(record);
    assert_eq!(fresh._input_quantizer.amax(), Some(vec![3.0]));
    assert_eq!(fresh.inner.layers[1].amax(), Some(vec![0.5, 1.5]));
    assert_eq!(fresh.inner.layers[0].amax(), None);
    let _ = d;
}

#[test]
fn histogram_calibration_with_an_axis_is_refused() {
    let desc = QuantDescriptor::builder()
        .axis([0])
        .calib_method(qdq::tensor_quant::CalibMethod::Histogram)
        .build()
        .unwrap();
    let err = TensorQuantizer::new(&desc, &dev()).unwrap_err();
    assert_eq!(err, Error::HistogramAxis { axis: vec![0] });
}

#[test]
fn learned_amax_receives_pact_gradients_through_the_quantizer() {
    let d = dev().autodiff();
    let desc = QuantDescriptor::builder()
        .learn_amax(true)
        .amax(Amax::scalar(1.0))
        .build()
        .unwrap();
    let q = TensorQuantizer::new(&desc, &d).unwrap();
    let x = common::tensor(vec![-2.0, -0.5, 0.25, 1.0, 3.0], [5], &d).require_grad();
    let g = q.forward(x.clone()).sum().backward();
    // Inside (-1, 1) the input gets the gradient; at or beyond a bound, the bound does.
    assert_eq!(values(x.grad(&g).unwrap()), vec![0.0, 1.0, 1.0, 0.0, 0.0]);
    let clip = q.clip.as_ref().unwrap();
    assert_eq!(
        values(clip.clip_value_min.val().grad(&g).unwrap()),
        vec![1.0]
    );
    assert_eq!(
        values(clip.clip_value_max.val().grad(&g).unwrap()),
        vec![2.0]
    );
}

#[test]
fn lowering_mode_records_the_qdq_parameters_instead_of_quantizing() {
    use qdq::nn::lowering::{QuantLowering, record_quantizers};
    use qdq::tensor_quant::NumBits;
    let d = dev();
    let x = tensor(Lcg(3).vec(24, -1.0, 1.0), [2, 4, 3], &d);
    let desc = QuantDescriptor::builder()
        .axis([1])
        .scale_amax(0.5)
        .build()
        .unwrap();
    let mut q = quantizer(desc);
    q.set_amax(&Amax::new(vec![0.5, 1.0, 0.25, 0.8], vec![1, 4, 1]).unwrap())
        .unwrap();
    let (y, rec) = record_quantizers(|| q.forward(x.clone()));
    let records = rec.records;
    // The marker passes values through; the record carries amax * scale_amax, axis 1.
    assert_eq!(bits(&values(y)), bits(&values(x.clone())));
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].lowering,
        QuantLowering {
            amax: vec![0.25, 0.5, 0.125, 0.4],
            axis: Some(1),
            num_bits: NumBits::Int(8),
            unsigned: false,
            narrow_range: false,
        }
    );
    assert!(records[0].handle.same(&q.handle));
    // Outside lowering mode the quantizer quantizes again.
    let (_, none) = record_quantizers(|| ());
    assert!(none.records.is_empty() && none.failures.is_empty());
    assert_ne!(
        bits(&values(q.forward(x.clone()))),
        bits(&values(x.clone()))
    );

    // A learned range lowers to max(-min, max) of the clip bounds.
    let learned = quantizer(
        QuantDescriptor::builder()
            .learn_amax(true)
            .amax(Amax::scalar(0.75))
            .build()
            .unwrap(),
    );
    let (_, rec) = record_quantizers(|| learned.forward(x.clone()));
    assert_eq!(rec.records[0].lowering.amax, vec![0.75]);

    // An uncalibrated quantizer records no pair and reports Uncalibrated to the
    // recording, not to itself: the pass leaves the quantizer as it was.
    let bare = quantizer(QuantDescriptor::default());
    let (y, rec) = record_quantizers(|| bare.forward(x.clone()));
    assert!(rec.records.is_empty());
    assert_eq!(bits(&values(y)), bits(&values(x.clone())));
    assert_eq!(rec.failures.len(), 1);
    assert!(rec.failures[0].0.same(&bare.handle));
    assert!(matches!(rec.failures[0].1, Error::Uncalibrated));
    assert!(bare.handle.take_error().is_none());

    // A signed narrow grid lowers with the full grid's scale (QuantizeLinear saturates
    // at -128, a documented difference from the fake quant's -127); an unsigned one
    // ignores narrow_range, since unsigned wins.
    let narrow = |unsigned: bool| {
        let desc = QuantDescriptor::builder()
            .narrow_range(true)
            .unsigned(unsigned)
            .amax(Amax::scalar(2.0))
            .build()
            .unwrap();
        quantizer(desc)
    };
    let signed = narrow(false);
    let (_, rec) = record_quantizers(|| signed.forward(x.clone()));
    assert!(rec.failures.is_empty());
    let l = &rec.records[0].lowering;
    assert!(l.narrow_range);
    assert_eq!((l.bound(), l.scales()), (127.0, vec![2.0 / 127.0]));
    let unsigned = narrow(true);
    let positive = x.clone().abs();
    let (_, rec) = record_quantizers(|| unsigned.forward(positive));
    assert!(rec.failures.is_empty());
    assert_eq!(rec.records[0].lowering.bound(), 255.0);
}

#[test]
fn scopes_nest_a_walk_inside_an_export_pass_keeps_the_pass() {
    use qdq::nn::lowering::record_quantizers;
    let d = dev();
    let x = tensor(Lcg(5).vec(8, -1.0, 1.0), [8], &d);
    let mut q = quantizer(QuantDescriptor::default());
    q.set_amax(&Amax::scalar(1.0)).unwrap();
    // A walk (its own scope) inside the pass, then a forward: the pass records it.
    let (names, rec) = record_quantizers(|| {
        let names = named_quantizers(&q);
        q.forward(x.clone());
        names
    });
    assert_eq!(names.len(), 1);
    assert_eq!(rec.records.len(), 1);
    // A panic inside a pass ends the pass: the next forward quantizes again.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        record_quantizers(|| panic!("inside the pass"))
    }));
    assert!(caught.is_err());
    assert_ne!(bits(&values(q.forward(x.clone()))), bits(&values(x)));
}

#[test]
fn lowering_scales_are_amax_over_the_bound() {
    use qdq::nn::lowering::QuantLowering;
    use qdq::tensor_quant::NumBits;
    let l = |amax: Vec<f32>, num_bits, unsigned| QuantLowering {
        amax,
        axis: None,
        num_bits,
        unsigned,
        narrow_range: false,
    };
    // Spec §6: input amax 2.435065 -> 2.435065/127; an amax of 0 gives scale 1.
    let int8 = l(vec![2.435065, 0.0], NumBits::Int(8), false);
    assert_eq!(
        (int8.bound(), int8.scales()),
        (127.0, vec![2.435065f32 / 127.0, 1.0])
    );
    assert_eq!(l(vec![255.0], NumBits::Int(8), true).scales(), vec![1.0]);
    // modelopt's FP8 example: amax 2 -> 0.004464286.
    let fp8 = l(vec![2.0], NumBits::FP8_E4M3, false);
    assert_eq!(format!("{:.9}", fp8.scales()[0]), "0.004464286");
}
