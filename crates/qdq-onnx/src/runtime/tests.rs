//! Unit tests of the runtime's tricky semantics: broadcasting, Reshape 0/-1, Softmax's
//! opset < 13 coercion, Q/DQ rounding and saturation, and error messages.

use burn::tensor::Device;
use onnx_ir::{ModelProto, TensorProto};

use super::ops::quant::{e4m3_bits, e4m3_value};
use super::*;
use crate::proto::{
    attr_int, attr_ints, model, model_io, node, raw_tensor, tensor_f32, tensor_i64, value_info,
};

fn dev() -> Device {
    Device::flex()
}

fn run1(m: &ModelProto, inputs: Vec<(&str, Value)>) -> Result<Value, RunError> {
    let g = OnnxGraph::from_model(m, &dev())?;
    let outs = g.run(
        inputs
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
    )?;
    Ok(outs.into_iter().next().expect("one output").1)
}

fn f32v(data: &[f32], shape: &[usize]) -> Value {
    Value::from_f32(data.to_vec(), shape, &dev())
}

#[test]
fn add_broadcasts_numpy_style() {
    let m = model(
        vec![node("Add", "add", &["a", "b"], &["y"])],
        vec![value_info("a", 1, &[2, 1]), value_info("b", 1, &[3])],
        &["y"],
        vec![],
        17,
    );
    let y = run1(
        &m,
        vec![
            ("a", f32v(&[10., 20.], &[2, 1])),
            ("b", f32v(&[1., 2., 3.], &[3])),
        ],
    )
    .unwrap();
    assert_eq!(y.shape(), vec![2, 3]);
    assert_eq!(y.to_f32().unwrap(), vec![11., 12., 13., 21., 22., 23.]);
    // scalar with a vector keeps the vector's shape; scalar with scalar stays rank 0
    let m = model(
        vec![node("Mul", "mul", &["a", "s"], &["y"])],
        vec![value_info("a", 1, &[2])],
        &["y"],
        vec![tensor_f32("s", &[], &[3.0])],
        17,
    );
    let y = run1(&m, vec![("a", f32v(&[1., 2.], &[2]))]).unwrap();
    assert_eq!((y.shape(), y.to_f32().unwrap()), (vec![2], vec![3., 6.]));
    let y = run1(&m, vec![("a", f32v(&[2.], &[]))]);
    assert!(
        y.is_err(),
        "rank mismatch with the declared [2] is rejected"
    );
}

#[test]
fn reshape_zero_copies_and_minus_one_infers() {
    let m = model(
        vec![node("Reshape", "r", &["x", "s"], &["y"])],
        vec![value_info("x", 1, &[2, 3, 4])],
        &["y"],
        vec![tensor_i64("s", &[3], &[0, -1, 2])],
        14,
    );
    let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
    let y = run1(&m, vec![("x", f32v(&x, &[2, 3, 4]))]).unwrap();
    assert_eq!(y.shape(), vec![2, 6, 2]);
    assert_eq!(y.to_f32().unwrap(), x);
    // allowzero=1 makes 0 a real zero: [0, -1] cannot be inferred from 24 elements
    let mut n = node("Reshape", "r", &["x", "s"], &["y"]);
    n.attribute.push(attr_int("allowzero", 1));
    let m = model(
        vec![n],
        vec![value_info("x", 1, &[2, 3, 4])],
        &["y"],
        vec![tensor_i64("s", &[3], &[0, -1, 2])],
        14,
    );
    let e = run1(&m, vec![("x", f32v(&x, &[2, 3, 4]))]).unwrap_err();
    assert!(e.to_string().contains("node `r` (Reshape)"), "{e}");
}

#[test]
fn softmax_before_13_flattens_at_axis() {
    let x = [0.0f32, 1.0, 2.0, 3.0];
    let mk = |opset| {
        let mut n = node("Softmax", "sm", &["x"], &["y"]);
        n.attribute.push(attr_int("axis", 1));
        model(
            vec![n],
            vec![value_info("x", 1, &[1, 2, 2])],
            &["y"],
            vec![],
            opset,
        )
    };
    // opset 11: one row of 4 values
    let y = run1(&mk(11), vec![("x", f32v(&x, &[1, 2, 2]))])
        .unwrap()
        .to_f32()
        .unwrap();
    let z: f32 = x.iter().map(|v| v.exp()).sum();
    for (a, b) in y.iter().zip(x.iter().map(|v| v.exp() / z)) {
        assert!((a - b).abs() < 1e-6);
    }
    // opset 13: softmax over axis 1 only (pairs (0,2) and (1,3))
    let y = run1(&mk(13), vec![("x", f32v(&x, &[1, 2, 2]))])
        .unwrap()
        .to_f32()
        .unwrap();
    let p = 1.0 / (1.0 + 2f32.exp());
    for (a, b) in y.iter().zip([p, p, 1.0 - p, 1.0 - p]) {
        assert!((a - b).abs() < 1e-6, "{y:?}");
    }
}

#[test]
fn quantize_rounds_half_to_even_and_saturates() {
    let x = [0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 300.0, -300.0];
    let mk = |zp: TensorProto| {
        model(
            vec![node("QuantizeLinear", "q", &["x", "s", "z"], &["y"])],
            vec![value_info("x", 1, &[8])],
            &["y"],
            vec![tensor_f32("s", &[], &[1.0]), zp],
            13,
        )
    };
    let int8 = crate::proto::raw_tensor("z", &[], 3, vec![0]);
    let y = run1(&mk(int8), vec![("x", f32v(&x, &[8]))]).unwrap();
    assert_eq!(y.elem_type(), 3);
    assert_eq!(y.to_i64().unwrap(), vec![0, 2, 2, 0, -2, -2, 127, -128]);
    let uint8 = crate::proto::raw_tensor("z", &[], 2, vec![128]);
    let y = run1(&mk(uint8), vec![("x", f32v(&x, &[8]))]).unwrap();
    assert_eq!(y.elem_type(), 2);
    assert_eq!(
        y.to_i64().unwrap(),
        vec![128, 130, 130, 128, 126, 126, 255, 0]
    );
}

#[test]
fn per_axis_quantize_dequantize() {
    let mut q = node("QuantizeLinear", "q", &["x", "s", "z"], &["q"]);
    q.attribute.push(attr_int("axis", 0));
    let mut d = node("DequantizeLinear", "d", &["q", "s", "z"], &["y"]);
    d.attribute.push(attr_int("axis", 0));
    let m = model(
        vec![q, d],
        vec![value_info("x", 1, &[2, 2])],
        &["y"],
        vec![
            tensor_f32("s", &[2], &[0.5, 2.0]),
            crate::proto::raw_tensor("z", &[2], 3, vec![0, 1]),
        ],
        13,
    );
    let y = run1(&m, vec![("x", f32v(&[0.74, 1.0, 3.0, -1000.0], &[2, 2]))]).unwrap();
    // row 0: scale 0.5 -> 0.74/0.5 = 1.48 -> 1 -> 0.5; 1.0 -> 2 -> 1.0
    // row 1: scale 2, zp 1 -> 3/2 = 1.5 -> 2 (+1 = 3) -> 4.0; -500 -> saturates at -128 -> -258
    assert_eq!(y.to_f32().unwrap(), vec![0.5, 1.0, 4.0, -258.0]);
}

#[test]
fn fp8_e4m3_bits() {
    assert_eq!(e4m3_bits(448.0), 0x7E);
    assert_eq!(e4m3_bits(-448.0), 0xFE);
    assert_eq!(e4m3_bits(2f32.powi(-9)), 0x01);
    assert_eq!(e4m3_bits(1.0), 0x38);
    assert_eq!(e4m3_bits(f32::NAN), 0x7F);
    for b in 0u8..=255 {
        let v = e4m3_value(b);
        if !v.is_nan() {
            assert_eq!(e4m3_bits(v), b, "byte {b:#x} -> {v}");
        }
    }
}

#[test]
fn errors_name_ops_inputs_and_nodes() {
    let m = model(
        vec![
            node("Foo", "f1", &["x"], &["a"]),
            node("Foo", "f2", &["a"], &["b"]),
            node("Bar", "", &["b"], &["y"]),
        ],
        vec![value_info("x", 1, &[2])],
        &["y"],
        vec![],
        17,
    );
    let e = OnnxGraph::from_model(&m, &dev())
        .err()
        .expect("unsupported");
    match &e {
        RunError::UnsupportedOps(v) => {
            assert_eq!(v, &vec![("Bar".to_string(), 1), ("Foo".to_string(), 2)])
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("Foo (x2)"), "{e}");

    let mut t = node("Transpose", "", &["x"], &["y"]);
    t.attribute.push(attr_ints("perm", [0, 0]));
    let m = model(
        vec![t],
        vec![value_info("x", 1, &[2, 3])],
        &["y"],
        vec![],
        17,
    );
    let g = OnnxGraph::from_model(&m, &dev()).unwrap();
    let e = g.run(vec![]).unwrap_err().to_string();
    assert!(e.contains("input `x`") && e.contains("missing"), "{e}");
    let e = g
        .run(vec![("x".into(), f32v(&[0.0; 4], &[4]))])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expected float32 [2, 3], given float32 [4]"),
        "{e}"
    );
    let e = g
        .run(vec![("x".into(), f32v(&[0.0; 6], &[2, 3]))])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("node `y` (Transpose)"), "{e}");
}

#[test]
fn observer_sees_every_node_output_in_order() {
    let m = model(
        vec![
            node("Relu", "r", &["x"], &["a"]),
            node("Neg", "n", &["a"], &["b"]),
            node("Add", "s", &["a", "b"], &["y"]),
        ],
        vec![value_info("x", 1, &[2])],
        &["y"],
        vec![],
        17,
    );
    let g = OnnxGraph::from_model(&m, &dev()).unwrap();
    let mut seen = Vec::new();
    let out = g
        .run_with(vec![("x".into(), f32v(&[-1.0, 2.0], &[2]))], &mut |n, v| {
            seen.push((n.to_string(), v.to_f32()?));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        seen,
        vec![
            ("a".to_string(), vec![0.0, 2.0]),
            ("b".to_string(), vec![-0.0, -2.0]),
            ("y".to_string(), vec![0.0, 0.0])
        ]
    );
    assert_eq!(out[0].0, "y");
}

#[test]
fn runs_on_autodiff_device() {
    let device = Device::flex().autodiff();
    let m = model(
        vec![node("Mul", "m", &["x", "x"], &["y"])],
        vec![value_info("x", 1, &[2])],
        &["y"],
        vec![],
        17,
    );
    let g = OnnxGraph::from_model(&m, &device).unwrap();
    let x = Value::from_f32(vec![1.0, 3.0], &[2], &device);
    let y = g.run(vec![("x".into(), x)]).unwrap();
    assert_eq!(y[0].1.to_f32().unwrap(), vec![1.0, 9.0]);
}

#[test]
fn float16_graphs_compute_in_f32_and_casts_round_through_the_type() {
    use crate::proto::elem as dt;
    // x: float16 input; h = Cast(x, FLOAT16) after an f32 Mul by an f16 weight; the
    // CastLike to a float16-declared initializer rounds too; bfloat16 likewise.
    let w = raw_tensor("w", &[], dt::FLOAT16, 0x3c01u16.to_le_bytes().to_vec()); // 1 + 2^-10
    let like = raw_tensor("like", &[], dt::FLOAT16, vec![0, 0]);
    let mut bf = node("Cast", "bf", &["y"], &["b"]);
    bf.attribute.push(attr_int("to", i64::from(dt::BFLOAT16)));
    let m = model_io(
        vec![
            node("Mul", "mul", &["x", "w"], &["y"]),
            node("CastLike", "cl", &["y", "like"], &["h"]),
            bf,
        ],
        vec![value_info("x", dt::FLOAT16, &[3])],
        vec![
            value_info("h", dt::FLOAT16, &[3]),
            value_info("b", dt::BFLOAT16, &[3]),
        ],
        vec![w, like],
        17,
    );
    let g = OnnxGraph::from_model(&m, &dev()).unwrap();
    let x = vec![1.0, 3.0, 65504.0];
    let outs = g.run(vec![("x".into(), f32v(&x, &[3]))]).unwrap();
    let w = 1.0 + 2f32.powi(-10);
    let f16 = |v: f32| burn::tensor::f16::from_f32(v).to_f32();
    let bf16 = |v: f32| burn::tensor::bf16::from_f32(v).to_f32();
    let want_h: Vec<f32> = x.iter().map(|&v| f16(v * w)).collect();
    let want_b: Vec<f32> = x.iter().map(|&v| bf16(v * w)).collect();
    // 3 * w = 3 + 3 * 2^-10 is not a float16 (ulp 2^-9 at 2..4): rounds to 3 + 2^-8;
    // 65504 * w overflows float16's max to inf.
    assert_eq!(want_h, vec![w, 3.0 + 2f32.powi(-8), f32::INFINITY]);
    assert_eq!(outs[0].1.to_f32().unwrap(), want_h);
    assert_eq!(outs[1].1.to_f32().unwrap(), want_b);
    // An int feed for the float16 input is refused by name.
    let err = g
        .run(vec![(
            "x".into(),
            Value::from_i64(vec![1, 2, 3], &[3], &dev()),
        )])
        .unwrap_err();
    assert!(
        err.to_string().contains("input `x`: expected float16"),
        "{err}"
    );
}
