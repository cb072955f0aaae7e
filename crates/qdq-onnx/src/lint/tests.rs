//! The linter's rules on small hand-built models, one test per rule family.

use super::*;
use onnx_ir::{AttributeProto, TensorProto};

use crate::proto::elem as dtype;

fn floats_t(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = dtype::FLOAT;
    t.float_data = v.to_vec();
    t
}

fn zp(name: &str, data_type: i32, v: &[i32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = if v.len() == 1 {
        vec![]
    } else {
        vec![v.len() as i64]
    };
    t.data_type = data_type;
    t.int32_data = v.to_vec();
    t
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    ints: &[(&str, i64)],
) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    for (k, v) in ints {
        let mut a = AttributeProto::new();
        a.name = k.to_string();
        a.i = *v;
        n.attribute.push(a);
    }
    n
}

/// A model reading graph input `x` and returning `y`.
fn model(opset: i64, nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> ModelProto {
    crate::proto::model_io(
        nodes,
        vec![crate::proto::value_info("x", dtype::FLOAT, &[1, 1, 1, 1])],
        vec![crate::proto::value_info("y", dtype::FLOAT, &[1, 2, 1, 1])],
        inits,
        opset,
    )
}

/// x -> Q/DQ -> Conv(., DQ(Q(w)) per channel on `w_axis`, bias) with `w` of shape `w_dims`.
fn conv(
    op: &str,
    w_dims: &[i64],
    w_axis: i64,
    scales: &[f32],
) -> (Vec<NodeProto>, Vec<TensorProto>) {
    let n: i64 = w_dims.iter().product();
    let nodes = vec![
        node("QuantizeLinear", "x_q", &["x", "sx", "zx"], &["xq"], &[]),
        node(
            "DequantizeLinear",
            "x_dq",
            &["xq", "sx", "zx"],
            &["xd"],
            &[],
        ),
        node(
            "QuantizeLinear",
            "w_q",
            &["w", "sw", "zw"],
            &["wq"],
            &[("axis", w_axis)],
        ),
        node(
            "DequantizeLinear",
            "w_dq",
            &["wq", "sw", "zw"],
            &["wd"],
            &[("axis", w_axis)],
        ),
        node(op, "conv", &["xd", "wd", "b"], &["y"], &[]),
    ];
    let inits = vec![
        floats_t("sx", &[], &[0.02]),
        zp("zx", dtype::INT8, &[0]),
        floats_t("w", w_dims, &vec![0.5; n as usize]),
        floats_t("sw", &[scales.len() as i64], scales),
        zp("zw", dtype::INT8, &vec![0; scales.len()]),
        floats_t("b", &[2], &[0.0, 0.0]),
    ];
    (nodes, inits)
}

fn rules(v: &[Violation]) -> Vec<(Rule, String)> {
    v.iter().map(|x| (x.rule, x.node.clone())).collect()
}

#[test]
fn a_tensorrt_ready_conv_passes() {
    let (nodes, inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
    assert_eq!(lint(&model(13, nodes, inits)), vec![]);
}

#[test]
fn per_channel_needs_opset_13() {
    let (nodes, inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
    let v = lint(&model(10, nodes, inits));
    assert_eq!(
        rules(&v),
        vec![(Rule::Opset, "w_q".into()), (Rule::Opset, "w_dq".into())]
    );
    assert!(
        v[0].to_string().contains("export with opset >= 13"),
        "{}",
        v[0]
    );
}

#[test]
fn zero_points_must_be_zero_and_signed() {
    let (nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
    inits[1] = zp("zx", dtype::INT8, &[3]);
    let v = lint(&model(13, nodes.clone(), inits.clone()));
    assert_eq!(
        rules(&v),
        vec![
            (Rule::ZeroPoint, "x_q".into()),
            (Rule::ZeroPoint, "x_dq".into())
        ]
    );
    inits[1] = zp("zx", dtype::UINT8, &[0]);
    let m = model(13, nodes, inits);
    let v = lint(&m);
    assert!(
        v.iter()
            .all(|x| x.rule == Rule::ZeroPoint && x.message.contains("unsigned")),
        "{v:?}"
    );
    assert_eq!(v.len(), 2);
    let other_runtimes = LintOptions {
        allow_uint8: true,
        ..Default::default()
    };
    assert_eq!(lint_with(&m, &other_runtimes), vec![]);
}

#[test]
fn scales_must_be_positive_finite_constants_with_one_per_channel() {
    let (nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.0]);
    let v = lint(&model(13, nodes.clone(), inits.clone()));
    assert_eq!(
        rules(&v),
        vec![(Rule::Scale, "w_q".into()), (Rule::Scale, "w_dq".into())]
    );
    inits.retain(|t| t.name != "sx");
    let v = lint(&model(13, nodes, inits));
    assert!(
        v.iter().any(|x| x.rule == Rule::Scale
            && x.node == "x_q"
            && x.message.contains("not a constant")),
        "{v:?}"
    );
    let (nodes, inits) = conv("Conv", &[3, 1, 1, 1], 0, &[0.1, 0.2]);
    let v = lint(&model(13, nodes, inits));
    assert!(
        v.iter()
            .any(|x| x.rule == Rule::Scale && x.message.contains("2 scales for axis 0")),
        "{v:?}"
    );
}

#[test]
fn weight_axes_per_op() {
    let (nodes, inits) = conv("Conv", &[2, 2, 1, 1], 1, &[0.1, 0.2]);
    let v = lint(&model(13, nodes, inits));
    assert_eq!(rules(&v), vec![(Rule::WeightAxis, "w_dq".into())]);
    assert!(v[0].message.contains("expects axis 0"), "{}", v[0]);
    // ConvTranspose: axis 0 by default, configurable.
    let (nodes, inits) = conv("ConvTranspose", &[2, 2, 1, 1], 1, &[0.1, 0.2]);
    let m = model(13, nodes, inits);
    assert_eq!(rules(&lint(&m)), vec![(Rule::WeightAxis, "w_dq".into())]);
    assert_eq!(
        lint_with(
            &m,
            &LintOptions {
                conv_transpose_axis: 1,
                ..Default::default()
            }
        ),
        vec![]
    );
    // Gemm: [N, K] with transB = 1 is axis 0; [K, N] without is axis 1.
    let (mut nodes, mut inits) = conv("Gemm", &[2, 3], 0, &[0.1, 0.2]);
    nodes[4].attribute.push({
        let mut a = AttributeProto::new();
        a.name = "transB".into();
        a.i = 1;
        a
    });
    assert_eq!(lint(&model(13, nodes.clone(), inits.clone())), vec![]);
    nodes[4].attribute.clear();
    inits[2] = floats_t("w", &[3, 2], &[0.5; 6]);
    assert_eq!(
        rules(&lint(&model(13, nodes, inits))),
        vec![
            (Rule::Scale, "w_q".into()),
            (Rule::Scale, "w_dq".into()),
            (Rule::WeightAxis, "w_dq".into())
        ]
    );
}

#[test]
fn per_axis_activations_biases_and_pairs() {
    // Per-axis scale on the activation x.
    let (mut nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
    inits[0] = floats_t("sx", &[2], &[0.1, 0.2]);
    inits[1] = zp("zx", dtype::INT8, &[0, 0]);
    let v = lint(&model(13, nodes.clone(), inits.clone()));
    assert_eq!(
        rules(&v),
        vec![
            (Rule::PerAxisActivation, "x_q".into()),
            (Rule::PerAxisActivation, "x_dq".into())
        ]
    );
    // A dequantized bias.
    let (_, good_inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
    // Before the conv that reads it: nodes stay in topological order.
    nodes.insert(
        4,
        node("DequantizeLinear", "b_dq", &["bq", "sb"], &["bd"], &[]),
    );
    nodes[5].input[2] = "bd".into();
    inits = good_inits;
    inits.push(floats_t("sb", &[], &[0.001]));
    let mut bq = zp("bq", 6, &[1, 2]);
    bq.dims = vec![2];
    inits.push(bq);
    let v = lint(&model(13, nodes, inits));
    assert_eq!(rules(&v), vec![(Rule::BiasDequantize, "b_dq".into())]);
    // Q into a non-DQ, DQ from an activation, and mismatched pair scales.
    let (mut nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
    nodes.push(node("Relu", "relu", &["xq"], &["r"], &[]));
    nodes.push(node(
        "DequantizeLinear",
        "orphan",
        &["r", "sx"],
        &["o"],
        &[],
    ));
    nodes[1].input[1] = "sx2".into();
    inits.push(floats_t("sx2", &[], &[0.03]));
    let v = lint(&model(13, nodes, inits));
    assert_eq!(
        rules(&v),
        vec![
            (Rule::Pairing, "x_q".into()),
            (Rule::Pairing, "x_q".into()),
            (Rule::Pairing, "orphan".into())
        ]
    );
}

#[test]
fn files_round_trip_and_bad_files_are_named_errors() {
    use onnx_ir::Message;
    let dir = std::env::temp_dir().join(format!("qdq-onnx-lint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (nodes, inits) = conv("Conv", &[2, 2, 1, 1], 1, &[0.1, 0.2]);
    let bytes = model(13, nodes, inits).write_to_bytes().unwrap();
    let good = dir.join("m.onnx");
    std::fs::write(&good, &bytes).unwrap();
    assert_eq!(
        rules(&lint_file(&good).unwrap()),
        vec![(Rule::WeightAxis, "w_dq".into())]
    );
    let cut = dir.join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = lint_file(&cut).unwrap_err();
    assert!(
        matches!(&err, ReadError::Parse { path, .. } if path.ends_with("cut.onnx")),
        "{err}"
    );
    assert!(matches!(
        lint_file(dir.join("missing.onnx")),
        Err(ReadError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fp8_zero_points_need_opset_19() {
    let (nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
    inits[1] = zp("zx", dtype::FLOAT8E4M3FN, &[0]);
    let v = lint(&model(17, nodes.clone(), inits.clone()));
    assert_eq!(
        rules(&v),
        vec![(Rule::Opset, "x_q".into()), (Rule::Opset, "x_dq".into())]
    );
    assert_eq!(lint(&model(19, nodes, inits)), vec![]);
}
#[test]
fn qdq_element_types_are_what_runtimes_accept() {
    // Q/DQ on an int64 shape tensor: the Q input is not float.
    let mut nodes = vec![
        node("Shape", "shape", &["x"], &["s"], &[]),
        node("QuantizeLinear", "s_q", &["s", "sx", "zx"], &["sq"], &[]),
        node(
            "DequantizeLinear",
            "s_dq",
            &["sq", "sx", "zx"],
            &["sd"],
            &[],
        ),
        node("Reshape", "reshape", &["x", "sd"], &["y"], &[]),
    ];
    let inits = vec![floats_t("sx", &[], &[0.02]), zp("zx", dtype::INT8, &[0])];
    let v = lint(&model(13, nodes.clone(), inits.clone()));
    assert_eq!(rules(&v), vec![(Rule::QdqType, "s_q".into())]);
    assert!(v[0].message.contains("input `s` is int64"), "{}", v[0]);
    // An int64 scale makes the DQ output int64; an int32 zero point is no Q/DQ type.
    nodes.truncate(3);
    nodes[0] = node("Relu", "relu", &["x"], &["s"], &[]);
    nodes.push(node("Relu", "out", &["sd"], &["y"], &[]));
    let mut bad = inits.clone();
    bad[0] = zp("sx", dtype::INT64, &[1]);
    bad[1] = zp("zx", dtype::INT32, &[0]);
    let v = lint(&model(13, nodes.clone(), bad));
    let types: Vec<&str> = v
        .iter()
        .filter(|x| x.rule == Rule::QdqType)
        .map(|x| x.message.split(';').next().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "scale `sx` is int64",
            "zero point `zx` is int32",
            "DequantizeLinear output `sd` is int64",
            "scale `sx` is int64",
            "zero point `zx` is int32",
        ]
    );
    assert_eq!(lint(&model(13, nodes, inits)), vec![]);
}

#[test]
fn scale_types_follow_the_tensor_and_the_opset() {
    // x (float16) -> Q -> DQ -> Relu -> y, the scale in `scale_type`.
    let build = |opset: i64, scale_type: i32| {
        let nodes = vec![
            node("QuantizeLinear", "x_q", &["x", "sx", "zx"], &["xq"], &[]),
            node(
                "DequantizeLinear",
                "x_dq",
                &["xq", "sx", "zx"],
                &["xd"],
                &[],
            ),
            node("Relu", "relu", &["xd"], &["y"], &[]),
        ];
        let mut sx = TensorProto::new();
        sx.name = "sx".into();
        sx.data_type = scale_type;
        match scale_type {
            dtype::FLOAT => sx.float_data = vec![0.5],
            dtype::DOUBLE => sx.double_data = vec![0.5],
            _ => sx.int32_data = vec![0x3800], // 0.5 in float16
        }
        crate::proto::model_io(
            nodes,
            vec![crate::proto::value_info("x", dtype::FLOAT16, &[2])],
            vec![crate::proto::value_info("y", scale_type, &[2])],
            vec![sx, zp("zx", dtype::INT8, &[0])],
            opset,
        )
    };
    assert_eq!(lint(&build(19, dtype::FLOAT16)), vec![]);
    let messages = |m| -> Vec<(Rule, String)> {
        lint(&m)
            .iter()
            .map(|v| (v.rule, v.message.split(';').next().unwrap().to_string()))
            .collect()
    };
    // float16 scales below opset 19, on both nodes.
    let below = (Rule::QdqType, "scale `sx` is float16".to_string());
    assert_eq!(
        messages(build(17, dtype::FLOAT16)),
        vec![below.clone(), below]
    );
    // A float32 scale on a float16 input: the Q's types differ.
    assert_eq!(
        messages(build(19, dtype::FLOAT)),
        vec![(
            Rule::QdqType,
            "QuantizeLinear input `x` is float16 but its scale `sx` is float32".to_string()
        )]
    );
    // No Q/DQ takes double scales.
    let v = lint(&build(21, dtype::DOUBLE));
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(
        v[0].message
            .contains("no QuantizeLinear/DequantizeLinear takes double"),
        "{}",
        v[0]
    );
}

#[test]
fn dq_only_weights_pass_and_dq_only_activations_do_not() {
    // The weight stored as INT8 values (`wq`, a constant) read by its DQ: accepted,
    // with the per-channel axis still checked against the weight.
    let (mut nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
    nodes.remove(2);
    inits[2] = zp("wq", dtype::INT8, &[64, -127]);
    inits[2].dims = vec![2, 1, 1, 1];
    assert_eq!(lint(&model(13, nodes.clone(), inits.clone())), vec![]);
    // The activation's DQ reading an int8 tensor computed at run time (no Q): refused.
    nodes.remove(0);
    nodes.insert(0, node("Cast", "x_cast", &["x"], &["xq"], &[("to", 3)]));
    let v = lint(&model(13, nodes, inits));
    assert_eq!(rules(&v), vec![(Rule::Pairing, "x_dq".into())]);
    assert!(
        v[0].message
            .contains("neither a QuantizeLinear nor a constant"),
        "{}",
        v[0]
    );
}

/// Found by the `onnx_model` fuzz target: the pairing rule read the first output
/// of a Q node that has none.
#[test]
fn a_qdq_node_without_outputs_is_reported_not_a_panic() {
    let nodes = vec![
        node("QuantizeLinear", "q", &["x", "sx", "zx"], &[], &[]),
        node("DequantizeLinear", "dq", &["x8", "sx", "zx"], &[], &[]),
        node("Relu", "out", &["x"], &["y"], &[]),
    ];
    let inits = vec![floats_t("sx", &[], &[0.02]), zp("zx", dtype::INT8, &[0])];
    let v = lint(&model(13, nodes, inits));
    assert!(!v.is_empty());
}

#[test]
fn scale_and_zero_point_shapes() {
    let (nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
    inits[0] = floats_t("sx", &[1, 1], &[0.02]);
    inits[1] = zp("zx", dtype::INT8, &[0]);
    let v = lint(&model(13, nodes.clone(), inits.clone()));
    assert_eq!(
        rules(&v),
        vec![
            (Rule::QdqShape, "x_q".into()),
            (Rule::QdqShape, "x_q".into()),
            (Rule::QdqShape, "x_dq".into()),
            (Rule::QdqShape, "x_dq".into())
        ]
    );
    assert!(v[0].message.contains("shape [1, 1]"), "{}", v[0]);
    assert!(
        v[1].message
            .contains("zero point `zx` has shape [] but scale `sx` has shape [1, 1]"),
        "{}",
        v[1]
    );
    inits[0] = floats_t("sx", &[], &[0.02]);
    assert_eq!(lint(&model(13, nodes, inits)), vec![]);
}
