//! `QuantDescriptor`: defaults, validation, printing and serialization.

use qdq::tensor_quant::*;
use qdq::{Amax, Error};

#[test]
fn defaults_are_the_reference_descriptor_defaults() {
    let d = QuantDescriptor::default();
    assert_eq!(d.num_bits(), NumBits::Int(8));
    assert_eq!(d.name(), None);
    assert!(d.fake_quant());
    assert_eq!(d.axis(), None);
    assert_eq!(d.amax(), None);
    assert!(!d.learn_amax());
    assert_eq!(d.scale_amax(), None);
    assert_eq!(d.calib_method(), CalibMethod::Max);
    assert!(!d.unsigned());
    assert!(!d.narrow_range());
    assert_eq!(d, *QUANT_DESC_8BIT_PER_TENSOR);
}

#[test]
fn predefined_descriptors() {
    assert!(QUANT_DESC_UNSIGNED_8BIT_PER_TENSOR.unsigned());
    for d in [
        &*QUANT_DESC_8BIT_CONV1D_WEIGHT_PER_CHANNEL,
        &*QUANT_DESC_8BIT_CONV2D_WEIGHT_PER_CHANNEL,
        &*QUANT_DESC_8BIT_CONV3D_WEIGHT_PER_CHANNEL,
        &*QUANT_DESC_8BIT_LINEAR_WEIGHT_PER_ROW,
        &*QUANT_DESC_8BIT_CONVTRANSPOSE1D_WEIGHT_PER_CHANNEL,
        &*QUANT_DESC_8BIT_CONVTRANSPOSE2D_WEIGHT_PER_CHANNEL,
        &*QUANT_DESC_8BIT_CONVTRANSPOSE3D_WEIGHT_PER_CHANNEL,
    ] {
        assert_eq!(d.axis(), Some(&[0isize][..]));
        assert_eq!(d.num_bits(), NumBits::Int(8));
        assert_eq!(d.to_string(), "QuantDescriptor(8bit fake axis=0)");
    }
}

#[test]
fn display_follows_the_reference_format() {
    assert_eq!(
        QUANT_DESC_8BIT_PER_TENSOR.to_string(),
        "QuantDescriptor(8bit fake axis= per-tensor)"
    );
    let e4m3 = QuantDescriptor::builder().e4m3().build().unwrap();
    assert_eq!(
        e4m3.to_string(),
        "QuantDescriptor((4, 3)bit fake axis= per-tensor)"
    );
    let w = QuantDescriptor::builder()
        .name("w")
        .num_bits(4)
        .amax(Amax::scalar(0.5))
        .learn_amax(true)
        .scale_amax(0.9)
        .build()
        .unwrap();
    // The reference prints " full_range" whenever amax is set (a bug); we do not.
    assert_eq!(
        w.to_string(),
        "w: (4bit fake axis= per-tensor amax=0.5 learn_amax scale_amax=0.9)"
    );
    let multi = QuantDescriptor::builder()
        .axis([0, 1])
        .fake_quant(false)
        .unsigned(true)
        .narrow_range(true)
        .calib_method(CalibMethod::Histogram)
        .build()
        .unwrap();
    assert_eq!(
        multi.to_string(),
        "QuantDescriptor(unsigned 8bit real axis=(0, 1) narrow_range calib_method=histogram)"
    );
}

#[test]
fn validation_errors_name_the_descriptor_and_field() {
    let err = QuantDescriptor::builder()
        .name("act")
        .learn_amax(true)
        .axis([0])
        .build()
        .unwrap_err();
    assert!(matches!(&err, Error::Descriptor { name: Some(n), .. } if n == "act"));
    assert!(err.to_string().contains("learn_amax"), "{err}");
    for bits in [0, 17] {
        let err = QuantDescriptor::builder()
            .num_bits(bits)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("num_bits"), "{err}");
    }
    assert!(
        QuantDescriptor::builder()
            .e4m3()
            .unsigned(true)
            .build()
            .is_err()
    );
    assert!(
        QuantDescriptor::builder()
            .amax(Amax::scalar(-1.0))
            .build()
            .is_err()
    );
    assert!(
        QuantDescriptor::builder()
            .amax(Amax::scalar(f32::NAN))
            .build()
            .is_err()
    );
    assert!(QuantDescriptor::builder().scale_amax(0.0).build().is_err());
    assert!(QuantDescriptor::builder().axis([]).build().is_err());
    assert!("entropy".parse::<CalibMethod>().is_err());
    assert_eq!(
        "histogram".parse::<CalibMethod>().unwrap(),
        CalibMethod::Histogram
    );
}

#[test]
fn json_and_yaml_keep_every_field() {
    let d = QuantDescriptor::builder()
        .name("x")
        .num_bits(6)
        .axis([1, 2])
        .amax(Amax::new(vec![0.5, 1.5], vec![2]).unwrap())
        .scale_amax(0.75)
        .calib_method(CalibMethod::Histogram)
        .unsigned(true)
        .narrow_range(true)
        .fake_quant(false)
        .build()
        .unwrap();
    let json = d.to_json();
    assert!(
        json.contains("\"narrow_range\":true") && json.contains("\"calib_method\":\"histogram\""),
        "{json}"
    );
    assert_eq!(QuantDescriptor::from_json(&json).unwrap(), d);
    let yaml = d.to_yaml();
    assert_eq!(QuantDescriptor::from_yaml(&yaml).unwrap(), d);
    // FP8 serializes as the reference's tuple.
    let fp8 = QuantDescriptor::builder()
        .e4m3()
        .amax(Amax::scalar(2.0))
        .build()
        .unwrap();
    assert!(
        fp8.to_json().contains("\"num_bits\":[4,3]"),
        "{}",
        fp8.to_json()
    );
    assert_eq!(QuantDescriptor::from_json(&fp8.to_json()).unwrap(), fp8);
}

#[test]
fn parsing_accepts_reference_dicts_and_rejects_bad_ones() {
    // The reference's dict(): axis as an int, keys omitted when default.
    let d = QuantDescriptor::from_json(r#"{"num_bits": 8, "name": null, "axis": 0, "amax": 2.5}"#)
        .unwrap();
    assert_eq!(d.axis(), Some(&[0isize][..]));
    assert_eq!(d.amax(), Some(&Amax::scalar(2.5)));
    let y = QuantDescriptor::from_yaml(
        "amax: 3.1415927410125732\naxis:\n- 1\n- 2\nname: a\nnum_bits: 2\n",
    )
    .unwrap();
    assert_eq!(
        (y.num_bits(), y.name(), y.axis()),
        (NumBits::Int(2), Some("a"), Some(&[1isize, 2][..]))
    );
    let unknown = QuantDescriptor::from_json(r#"{"foo": 1}"#).unwrap_err();
    assert!(unknown.to_string().contains("foo"), "{unknown}");
    assert!(QuantDescriptor::from_json(r#"{"num_bits": [5, 2]}"#).is_err());
    assert!(QuantDescriptor::from_json(r#"{"learn_amax": true, "axis": 1}"#).is_err());
}
