//! 4-bit weights (W4A8): `quantize::apply` with `weight_bits: 4` writes INT4 per-channel
//! weights (stored packed with `dq_only_weights`) at opset 21; the ONNX checker (full
//! check) and ONNX Runtime take the file, and qdq's runtime computes what ORT does.
//! QuantizeLinear to INT4 saturates to [-8, 7] in both. The opset upgrade refuses, by
//! name, the 20/21 changes it does not rewrite.

mod common;
use qdq_onnx::proto::value_info;

use std::collections::BTreeMap;

use burn::tensor::Device;
use onnx_ir::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
use qdq_onnx::passes::upgrade_opset;
use qdq_onnx::proto::decode::{HostData, decode};
use qdq_onnx::proto::elem;
use qdq_onnx::quantize::{CalibrationCache, Entry, QuantizeOptions, apply, prepare};
use qdq_onnx::runtime::{OnnxGraph, Value};
use qdq_onnx::{QdqFormat, lint};

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = format!("{output}_{op}");
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.into()];
    n
}

fn floats(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = elem::FLOAT;
    t.float_data = v.to_vec();
    t
}

fn model(g: GraphProto, opset: i64) -> ModelProto {
    let mut m = ModelProto::new();
    m.ir_version = qdq_onnx::passes::ir_version_for(opset);
    m.graph = Some(g).into();
    m.opset_import.push(Default::default());
    m.opset_import[0].version = opset;
    m
}

/// Per output channel j of W [3, 5], the scale `2^-e` (exact in float32) and the
/// multiples of it W holds; each column's largest |k| is 7, so amax/7 is the scale.
const SCALES: [f32; 5] = [0.5, 0.25, 1.0, 0.125, 2.0];
const K: [[f32; 5]; 3] = [
    [7.0, -7.0, 2.5, 1.0, -7.0],
    [-3.5, 0.0, 7.0, -7.0, 3.0],
    [1.0, 6.5, -1.0, 7.0, 0.5],
];
/// K rounded half to even: the INT4 values the file must hold (15 of them: an odd count,
/// so the last byte has a padding nibble).
const EXPECTED: [i64; 15] = [7, -7, 2, 1, -7, -4, 0, 7, -7, 3, 1, 6, -1, 7, 0];

/// x [2, 3] · W [3, 5] at opset 17.
fn matmul_model() -> ModelProto {
    let w: Vec<f32> = K
        .iter()
        .flat_map(|row| row.iter().zip(SCALES).map(|(k, s)| k * s))
        .collect();
    let mut g = GraphProto::new();
    g.name = "w4a8".into();
    g.input.push(value_info("x", elem::FLOAT, &[2, 3]));
    g.output.push(value_info("y", elem::FLOAT, &[2, 5]));
    g.initializer.push(floats("w", &[3, 5], &w));
    g.node.push(node("MatMul", &["x", "w"], "y"));
    model(g, 17)
}

fn run(m: &ModelProto, x: &[f32], dims: &[usize]) -> Vec<f32> {
    let device = Device::flex();
    let g = OnnxGraph::from_model(m, &device).unwrap();
    let v = Value::try_from_f32(x.to_vec(), dims, &device).unwrap();
    let out = g.run(vec![("x".into(), v)]).unwrap();
    out.into_iter().next().unwrap().1.to_f32().unwrap()
}

#[test]
fn w4a8_writes_packed_int4_weights_that_onnx_runtime_runs_as_qdq_does() {
    let dir = common::scratch("int4-w4a8");
    let float = matmul_model();
    let options = QuantizeOptions {
        weight_bits: 4,
        dq_only_weights: true,
        ..Default::default()
    };
    let prepared = prepare(&float, &options).unwrap();
    let cache = CalibrationCache {
        entries: BTreeMap::from([(
            "x".to_string(),
            Entry {
                amax: vec![2.0],
                method: "max".into(),
            },
        )]),
    };
    let q = apply(&prepared, &cache, &options).unwrap();
    assert_eq!(q.opset_import[0].version, 21, "INT4 Q/DQ needs opset 21");
    assert_eq!(q.ir_version, 10);
    assert_eq!(lint(&q), vec![]);
    let g = q.graph.as_ref().unwrap();
    let w = g
        .initializer
        .iter()
        .find(|t| t.data_type == elem::INT4 && t.dims == [3, 5])
        .expect("the weight stored as INT4");
    assert_eq!(w.raw_data.len(), 8, "15 values, two a byte");
    let d = decode(w, 100).unwrap();
    assert_eq!(d.data, HostData::I64(EXPECTED.to_vec()));
    // One float32 scale per output channel: amax / 7.
    let scale = g
        .initializer
        .iter()
        .find(|t| t.data_type == elem::FLOAT && t.dims == [5])
        .expect("the weight's per-channel scale");
    assert_eq!(
        decode(scale, 100).unwrap().data,
        HostData::F32(SCALES.to_vec())
    );
    // The activation stays INT8.
    assert!(
        g.initializer
            .iter()
            .any(|t| t.data_type == elem::INT8 && t.dims.is_empty()),
        "an INT8 activation zero point"
    );

    // Checker (full check) and ORT accept it; ORT's output is qdq's runtime's.
    let xs = common::Lcg(3).vec(6, -2.5, 2.5);
    let ours = run(&q, &xs, &[2, 3]);
    let ort = common::ort_run(&q, &common::tensor(xs.clone(), [2, 3]), &dir);
    common::assert_close(&ours, &ort, 1e-5, 1.0);
    // And it is x̂ · (k̂ · scale): the INT4 values times the scales, by hand.
    let x_scale = 2.0f32 / 127.0;
    let xq: Vec<f32> = xs
        .iter()
        .map(|v| (v / x_scale).round_ties_even().clamp(-128.0, 127.0) * x_scale)
        .collect();
    for i in 0..2 {
        for j in 0..5 {
            let want: f32 = (0..3)
                .map(|k| xq[i * 3 + k] * EXPECTED[k * 5 + j] as f32 * SCALES[j])
                .sum();
            assert!((ours[i * 5 + j] - want).abs() < 1e-5, "y[{i},{j}]");
        }
    }

    // Float weights (no dq_only): a Q/DQ pair of INT4, the same output.
    let float_weights = QuantizeOptions {
        dq_only_weights: false,
        ..options.clone()
    };
    let qf = apply(&prepared, &cache, &float_weights).unwrap();
    assert_eq!(run(&qf, &xs, &[2, 3]), ours);
    common::onnx_check(&qf, &dir);

    // 4-bit weights are INT8 activations' partner only.
    let fp8 = QuantizeOptions {
        format: QdqFormat::Fp8E4M3,
        ..options.clone()
    };
    let e = apply(&prepared, &cache, &fp8).unwrap_err().to_string();
    assert!(e.contains("W4A8"), "{e}");
    // An opset below 21 cannot hold INT4: refused, naming what it needs.
    let low = QuantizeOptions {
        opset: Some(19),
        ..options
    };
    let e = apply(&prepared, &cache, &low).unwrap_err().to_string();
    assert!(e.contains("INT4") && e.contains("21"), "{e}");
}

#[test]
fn quantize_linear_to_int4_saturates_to_minus_8_and_7_like_onnx_runtime() {
    let dir = common::scratch("int4-saturate");
    let mut g = GraphProto::new();
    g.name = "q4".into();
    g.input.push(value_info("x", elem::FLOAT, &[1, 7]));
    g.output.push(value_info("y", elem::FLOAT, &[1, 7]));
    g.initializer.push(floats("s", &[], &[0.5]));
    let mut zp = TensorProto::new();
    zp.name = "zp".into();
    zp.data_type = elem::INT4;
    zp.raw_data = vec![0u8].into();
    g.initializer.push(zp);
    g.node.push(node("QuantizeLinear", &["x", "s", "zp"], "q"));
    g.node
        .push(node("DequantizeLinear", &["q", "s", "zp"], "y"));
    let m = model(g, 21);
    let x = [-20.0, -4.2, -3.8, 0.25, 1.25, 3.6, 9.0];
    // /0.5: -40 -8.4 -7.6 0.5 2.5 7.2 18 -> round half even, saturate to [-8, 7].
    let want = [-4.0, -4.0, -4.0, 0.0, 1.0, 3.5, 3.5];
    let ours = run(&m, &x, &[1, 7]);
    assert_eq!(ours, want);
    let ort = common::ort_run(&m, &common::tensor(x.to_vec(), [1, 7]), &dir);
    assert_eq!(ort, want);
}

fn attr_s(name: &str, v: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.s = v.as_bytes().to_vec().into();
    a.type_ = onnx_ir::AttributeType::STRING.into();
    a
}

#[test]
fn upgrade_to_21_renames_grid_sample_modes_and_refuses_what_changed_by_name() {
    let mut g = GraphProto::new();
    let mut gs = node("GridSample", &["x", "grid"], "y");
    gs.attribute.push(attr_s("mode", "bicubic"));
    g.node.push(gs);
    let mut m = model(g, 17);
    upgrade_opset(&mut m, 21).unwrap();
    let n = &m.graph.as_ref().unwrap().node[0];
    assert_eq!(&n.attribute[0].s[..], b"cubic");
    assert_eq!((m.opset_import[0].version, m.ir_version), (21, 10));

    for (op, why) in [("GroupNormalization", "per-channel"), ("DFT", "axis")] {
        let mut g = GraphProto::new();
        g.node.push(node(op, &["x", "a", "b"], "y"));
        let mut m = model(g, 18);
        let e = upgrade_opset(&mut m, 21).unwrap_err().to_string();
        assert!(
            e.contains(&format!("`y_{op}` ({op})")) && e.contains(why),
            "{e}"
        );
        // Below the change the node is fine.
        let mut g = GraphProto::new();
        g.node.push(node(op, &["x", "a", "b"], "y"));
        let mut m = model(g, 18);
        upgrade_opset(&mut m, 19).unwrap();
    }
}
