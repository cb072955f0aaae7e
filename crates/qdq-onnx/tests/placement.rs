//! Automatic quantizer placement on float ONNX graphs, the TensorRT way, and writing
//! the pairs in: exact site lists on a small graph, and the structure of ONNX's own
//! ResNet-50 after placement, checked by the ONNX checker and ONNX Runtime.

mod common;
use qdq_onnx::proto::value_info;

use std::collections::HashMap;
use std::path::PathBuf;

use onnx_ir::{
    AttributeProto, AttributeType, GraphProto, Message, ModelProto, NodeProto, TensorProto,
};
use qdq_onnx::passes::{
    PlacementOptions, Site, SiteKind, fold_constant_nodes, insert_sites, matches_pattern, place,
    upgrade_opset,
};
use qdq_onnx::proto::elem;
use qdq_onnx::{QdqFormat, lint};

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.into()];
    n
}

fn weight(name: &str, dims: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = 1;
    let n: i64 = dims.iter().product();
    t.float_data = (0..n).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    t
}

/// x -> conv1 -> bn1 -> relu1 (r1) -> conv2 -> bn2 -> add(bn2, r1) -> relu2 -> pool
///   -> concat(pool, pool2) -> flatten -> gemm(transB) ; plus matmul(r1, r1) (attention-like).
fn small_graph() -> GraphProto {
    let mut g = GraphProto::new();
    for (name, dims) in [
        ("w1", &[4i64, 3, 3, 3][..]),
        ("b1", &[4]),
        ("w2", &[4, 4, 3, 3]),
        ("s", &[4]),
        ("wf", &[10, 32]),
    ] {
        g.initializer.push(weight(name, dims));
    }
    g.node = vec![
        node("Conv", "conv1", &["x", "w1", "b1"], "c1"),
        node(
            "BatchNormalization",
            "bn1",
            &["c1", "s", "s", "s", "s"],
            "n1",
        ),
        node("Relu", "relu1", &["n1"], "r1"),
        node("Conv", "conv2", &["r1", "w2"], "c2"),
        node(
            "BatchNormalization",
            "bn2",
            &["c2", "s", "s", "s", "s"],
            "n2",
        ),
        node("Add", "add", &["n2", "r1"], "a"),
        node("Relu", "relu2", &["a"], "r2"),
        node("MaxPool", "pool", &["r2"], "p"),
        node("AveragePool", "pool2", &["r2"], "p2"),
        node("Concat", "cat", &["p", "p2"], "cat_out"),
        node("Flatten", "flat", &["cat_out"], "f"),
        node("Gemm", "fc", &["f", "wf"], "y"),
        node("MatMul", "attn", &["r1", "r1"], "m"),
    ];
    let mut trans_b = AttributeProto::new();
    trans_b.name = "transB".into();
    trans_b.i = 1;
    trans_b.type_ = AttributeType::INT.into();
    g.node[11].attribute.push(trans_b);
    let mut x = onnx_ir::ValueInfoProto::new();
    x.name = "x".into();
    g.input.push(x);
    for out in ["y", "m"] {
        let mut v = onnx_ir::ValueInfoProto::new();
        v.name = out.into();
        g.output.push(v);
    }
    g
}

fn site(
    name: &str,
    tensor: &str,
    consumers: &[(usize, usize)],
    kind: SiteKind,
    group: Option<usize>,
) -> Site {
    Site {
        name: name.into(),
        tensor: tensor.into(),
        consumers: consumers.to_vec(),
        kind,
        group,
        graph: Vec::new(),
        scope: String::new(),
    }
}

#[test]
fn sites_follow_tensorrt_rules() {
    use SiteKind::*;
    let sites = place(&small_graph(), &PlacementOptions::default()).unwrap();
    assert_eq!(
        sites,
        vec![
            site("conv1._input_quantizer", "x", &[(0, 0)], Activation, None),
            site(
                "conv1._weight_quantizer",
                "w1",
                &[(0, 1)],
                Weight { axis: 0 },
                None
            ),
            // r1 feeds conv2, the residual Add's skip input and both MatMul inputs: one
            // quantizer for the tensor, read by all four.
            site(
                "conv2._input_quantizer",
                "r1",
                &[(3, 0), (5, 1), (12, 0), (12, 1)],
                Activation,
                None
            ),
            site(
                "conv2._weight_quantizer",
                "w2",
                &[(3, 1)],
                Weight { axis: 0 },
                None
            ),
            site(
                "pool._input_quantizer",
                "r2",
                &[(7, 0), (8, 0)],
                Activation,
                None
            ),
            site("cat._input0_quantizer", "p", &[(9, 0)], Activation, Some(0)),
            site(
                "cat._input1_quantizer",
                "p2",
                &[(9, 1)],
                Activation,
                Some(0)
            ),
            site("fc._input_quantizer", "f", &[(11, 0)], Activation, None),
            site(
                "fc._weight_quantizer",
                "wf",
                &[(11, 1)],
                Weight { axis: 0 },
                None
            ),
        ]
    );
    // No bias (b1), no BatchNormalization parameter, no output, no Add main branch (n2).
    assert!(
        sites
            .iter()
            .all(|s| !["b1", "s", "y", "n2"].contains(&s.tensor.as_str()))
    );
}

/// In a float16 or bfloat16 model no quantizer feeds a Concat: ONNX Runtime fuses
/// DQ -> Concat -> Q into QLinearConcat, which takes float32 scales only, and refuses
/// the file. The float32 model's Concat keeps its grouped input quantizers; the
/// Gemm after the Concat keeps its own either way.
#[test]
fn a_half_precision_concat_gets_no_input_quantizers() {
    let reads_cat = |sites: &[Site]| {
        sites
            .iter()
            .filter(|s| s.consumers.iter().any(|&(j, _)| j == 9))
            .count()
    };
    let fc = |sites: &[Site]| sites.iter().any(|s| s.name == "fc._input_quantizer");
    let sites = place(&small_graph(), &PlacementOptions::default()).unwrap();
    assert_eq!((reads_cat(&sites), fc(&sites)), (2, true));
    for half in [elem::FLOAT16, elem::BFLOAT16] {
        let mut g = small_graph();
        g.input[0] = value_info("x", half, &[1, 3, 8, 8]);
        let sites = place(&g, &PlacementOptions::default()).unwrap();
        assert_eq!((reads_cat(&sites), fc(&sites)), (0, true), "{half}");
        // Nothing else changes: the float32 sites less the Concat's two.
        let full = place(&small_graph(), &PlacementOptions::default()).unwrap();
        assert_eq!(sites.len(), full.len() - 2);
    }
}

#[test]
fn skip_lists_by_op_type_and_name_pattern() {
    let options = PlacementOptions {
        skip_op_types: vec!["MatMul".into(), "Concat".into()],
        skip_names: vec!["conv*".into()],
        ..Default::default()
    };
    let sites = place(&small_graph(), &options).unwrap();
    let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "add._residual_quantizer",
            "pool._input_quantizer",
            "fc._input_quantizer",
            "fc._weight_quantizer"
        ]
    );
    assert!(matches_pattern("*classifier*", "model/classifier/fc"));
    assert!(matches_pattern("/head/*", "/head/conv"));
    assert!(!matches_pattern("/head/*", "/body/head/conv"));
    assert!(matches_pattern("a*b*c", "aXXbYYc"));
    assert!(!matches_pattern("a*b*c", "aXXcYYb"));
}

/// Peak picking, `Equal(MaxPool(h), h)` (keypoint and CenterNet heads, a fingerprint
/// minutiae detector, there with Transposes in between): a quantized pool input would
/// never equal the float `h`, so that pool stays float; a pool nothing compares is
/// quantized as before.
#[test]
fn a_pool_compared_with_its_input_is_not_quantized() {
    let mut g = GraphProto::new();
    g.name = "peaks".into();
    g.input.push(value_info("x", elem::FLOAT, &[1, 2, 8, 8]));
    g.output.push(value_info("y", elem::FLOAT, &[1, 2, 4, 4]));
    g.initializer.push(weight("w", &[2, 2, 1, 1]));
    let ints_attr = |name: &str, v: &[i64]| {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.ints = v.to_vec();
        a.type_ = AttributeType::INTS.into();
        a
    };
    let mut nms = node("MaxPool", "nms", &["h"], "p");
    nms.attribute.push(ints_attr("kernel_shape", &[3, 3]));
    nms.attribute.push(ints_attr("pads", &[1, 1, 1, 1]));
    let mut cast = node("Cast", "cast", &["m"], "mf");
    let mut to = AttributeProto::new();
    to.name = "to".into();
    to.i = i64::from(elem::FLOAT);
    to.type_ = AttributeType::INT.into();
    cast.attribute.push(to);
    let mut pool = node("MaxPool", "pool", &["peaks"], "y");
    pool.attribute.push(ints_attr("kernel_shape", &[2, 2]));
    pool.attribute.push(ints_attr("strides", &[2, 2]));
    g.node = vec![
        node("Conv", "conv", &["x", "w"], "h"),
        nms,
        node("Transpose", "layout", &["p"], "pt"),
        node("Transpose", "layout_back", &["pt"], "pb"),
        node("Equal", "is_peak", &["pb", "h"], "m"),
        cast,
        node("Mul", "keep", &["h", "mf"], "peaks"),
        pool,
    ];
    let sites = place(&g, &PlacementOptions::default()).unwrap();
    let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv._input_quantizer",
            "conv._weight_quantizer",
            "pool._input_quantizer"
        ]
    );
}

/// An in-graph constant built from the input's shape (an outer product of ramps, as a
/// DFT's basis is) is fixed once the shape is: the MatMul computing it gets no
/// quantizer, while the MatMul reading it with the data is quantized on both inputs.
#[test]
fn a_node_fixed_by_the_input_shape_is_not_quantized() {
    let mut g = GraphProto::new();
    g.name = "dft".into();
    g.input.push(value_info("x", elem::FLOAT, &[1, 8]));
    g.output.push(value_info("y", elem::FLOAT, &[1, 8]));
    g.initializer.push(weight("one", &[1, 8]));
    g.node = vec![
        node("Shape", "shape", &["x"], "s"),
        node("ConstantOfShape", "zeros", &["s"], "z"),
        node("Add", "ramp", &["z", "one"], "r"),
        node("Transpose", "column", &["r"], "rt"),
        node("MatMul", "outer", &["rt", "r"], "basis"),
        node("MatMul", "transform", &["x", "basis"], "y"),
    ];
    let sites = place(&g, &PlacementOptions::default()).unwrap();
    let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["transform._input_quantizer", "transform._input1_quantizer"]
    );
}

#[test]
fn inserted_pairs_precede_their_consumers_and_pass_the_linter() {
    let mut g = small_graph();
    let sites = place(&g, &PlacementOptions::default()).unwrap();
    let amaxes: HashMap<String, Vec<f32>> = sites
        .iter()
        .map(|s| {
            let n = match s.kind {
                SiteKind::Weight { .. } => {
                    let w = g.initializer.iter().find(|t| t.name == s.tensor).unwrap();
                    w.dims[0] as usize
                }
                SiteKind::Activation => 1,
            };
            (s.name.clone(), (1..=n).map(|k| k as f32 * 0.5).collect())
        })
        .collect();
    insert_sites(&mut g, &sites, &amaxes, QdqFormat::Int8, false).unwrap();
    // Topological order: every input is produced before it is read.
    let mut known: Vec<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    known.push("x".into());
    for n in &g.node {
        for i in &n.input {
            assert!(known.contains(i), "{} reads {i} before it exists", n.name);
        }
        known.extend(n.output.iter().cloned());
    }
    // The Add reads its main branch in float and its skip branch dequantized.
    let add = g.node.iter().find(|n| n.name == "add").unwrap();
    assert_eq!(add.input, ["n2", "conv2._input_quantizer_dequantized"]);
    let mut m = ModelProto::new();
    m.graph = Some(g).into();
    m.opset_import.push(Default::default());
    m.opset_import[0].version = 13;
    assert_eq!(lint(&m), vec![]);
    // A missing amax is a named error.
    let mut g = small_graph();
    let err = insert_sites(&mut g, &sites, &HashMap::new(), QdqFormat::Int8, false).unwrap_err();
    assert!(err.to_string().contains("conv1._input_quantizer"), "{err}");
}

/// ONNX's ResNet-50 from the onnx wheel's light model zoo (opset 9, `Sum` residuals).
fn light_resnet50() -> ModelProto {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
    let dir = std::fs::read_dir(&venv)
        .expect("the .venv of .ci/run (onnx wheel)")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/onnx/backend/test/data/light"))
        .find(|p| p.exists())
        .expect("onnx's light model zoo in .venv");
    let bytes = std::fs::read(dir.join("light_resnet50.onnx")).unwrap();
    let mut model = ModelProto::parse_from_bytes(&bytes).unwrap();
    // Its weights are ConstantOfShape nodes: fold them into initializers first.
    let folded = fold_constant_nodes(&mut model);
    assert_eq!(folded, 239);
    model
}

#[test]
fn resnet50_gets_a_quantizer_on_each_skip_branch_only() {
    let model = light_resnet50();
    let g = model.graph.as_ref().unwrap();
    let sites = place(g, &PlacementOptions::default()).unwrap();
    let weights = sites
        .iter()
        .filter(|s| matches!(s.kind, SiteKind::Weight { .. }))
        .count();
    assert_eq!(weights, 54, "53 Conv + 1 Gemm");
    // Each of the 16 residual Sums: exactly one input quantized, the shallower branch.
    let sums: Vec<usize> = g
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "Sum")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(sums.len(), 16);
    for &i in &sums {
        let quantized: Vec<usize> = sites
            .iter()
            .flat_map(|s| s.consumers.iter())
            .filter(|c| c.0 == i)
            .map(|c| c.1)
            .collect();
        assert_eq!(quantized.len(), 1, "Sum #{i}: {quantized:?}");
        let main = &g.node[i].input[1 - quantized[0]];
        let producer = g.node.iter().find(|n| n.output.contains(main)).unwrap();
        assert_eq!(
            producer.op_type, "BatchNormalization",
            "main branch is conv+bn"
        );
    }
    // 4 skip branches come from a downsampling conv; 12 are block inputs, which the
    // next block's first conv reads too, so they share that conv's quantizer.
    assert_eq!(
        sites
            .iter()
            .filter(|s| s.name.ends_with("_residual_quantizer"))
            .count(),
        4
    );
}

#[test]
fn quantized_resnet50_passes_checker_lint_and_runs() {
    let dir = common::scratch("resnet50-qdq");
    let mut model = light_resnet50();
    let sites = {
        let g = model.graph.as_ref().unwrap();
        place(g, &PlacementOptions::default()).unwrap()
    };
    let g = model.graph.as_mut().unwrap();
    let amaxes: HashMap<String, Vec<f32>> = sites
        .iter()
        .map(|s| {
            let n = match s.kind {
                SiteKind::Weight { axis } => {
                    let w = g.initializer.iter().find(|t| t.name == s.tensor).unwrap();
                    w.dims[axis] as usize
                }
                SiteKind::Activation => 1,
            };
            (s.name.clone(), vec![4.0; n])
        })
        .collect();
    insert_sites(g, &sites, &amaxes, QdqFormat::Int8, false).unwrap();
    upgrade_opset(&mut model, 13).unwrap();
    // The IR version opset 13 shipped with (onnx.helper.VERSION_TABLE).
    assert_eq!((model.opset_import[0].version, model.ir_version), (13, 7));
    assert_eq!(lint(&model), vec![]);
    std::fs::write(dir.join("q.onnx"), model.write_to_bytes().unwrap()).unwrap();
    common::onnx_check(&model, &dir);
}

#[test]
fn opset_upgrade_keeps_what_the_model_computes() {
    // Opset 9 -> 13 rewrites ResNet-50's Softmax (flattening semantics before 13);
    // ONNX Runtime gives the same output for both files.
    let dir = common::scratch("upgrade");
    let old = light_resnet50();
    let mut new = old.clone();
    upgrade_opset(&mut new, 13).unwrap();
    let ops: Vec<&str> = new
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    assert!(
        ops.ends_with(&["Shape", "Flatten", "Softmax", "Reshape"]),
        "{ops:?}"
    );
    let x = common::tensor(
        common::Lcg(5).vec(3 * 224 * 224, 0.0, 1.0),
        [1, 3, 224, 224],
    );
    let a = common::ort_run(&old, &x, &dir);
    let b = common::ort_run(&new, &x, &dir);
    assert_eq!(a, b);
}

/// Opset 11 -> 19 crosses both of Split's changes: 13 moved `split` to an input, 18
/// requires `num_outputs` for an even split (found on a Keras CRNN whose Splits sit in
/// Loop bodies: ONNX Runtime refused the file qdq wrote). Both files give ONNX Runtime
/// the same output, and the checker passes the new one.
#[test]
fn opset_upgrade_rewrites_both_forms_of_split() {
    let dir = common::scratch("upgrade-split");
    let int_attr = |name: &str, i: i64| {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.i = i;
        a.type_ = AttributeType::INT.into();
        a
    };
    let mut g = GraphProto::new();
    g.name = "splits".into();
    g.input.push(value_info("x", elem::FLOAT, &[1, 4, 2]));
    g.output.push(value_info("y", elem::FLOAT, &[1, 4, 2]));
    let mut sized = node("Split", "sized", &["x"], "a");
    sized.output.push("b".into());
    sized.attribute.push(int_attr("axis", 1));
    let mut split = AttributeProto::new();
    split.name = "split".into();
    split.ints = vec![1, 3];
    split.type_ = AttributeType::INTS.into();
    sized.attribute.push(split);
    let mut even = node("Split", "even", &["b"], "c");
    even.output.extend(["d".to_string(), "e".to_string()]);
    even.attribute.push(int_attr("axis", 1));
    let mut cat = node("Concat", "cat", &["a", "e", "d", "c"], "y");
    cat.attribute.push(int_attr("axis", 1));
    g.node = vec![sized, even, cat];
    let mut old = ModelProto::new();
    old.ir_version = 6;
    old.graph = Some(g).into();
    old.opset_import.push(Default::default());
    old.opset_import[0].version = 11;
    let mut new = old.clone();
    upgrade_opset(&mut new, 19).unwrap();
    let nodes = &new.graph.as_ref().unwrap().node;
    let attrs = |n: &NodeProto| -> Vec<(String, i64)> {
        n.attribute
            .iter()
            .map(|a| (a.name.to_string(), a.i))
            .collect()
    };
    assert_eq!(nodes[0].input.len(), 2, "{:?}", nodes[0]);
    assert_eq!(attrs(&nodes[0]), [("axis".to_string(), 1)]);
    assert_eq!(
        attrs(&nodes[1]),
        [("axis".to_string(), 1), ("num_outputs".to_string(), 3)]
    );
    common::onnx_check(&new, &dir);
    let x = common::tensor((0..8).map(|v| v as f32).collect(), [1, 4, 2]);
    let a = common::ort_run(&old, &x, &dir);
    assert_eq!(a, [0.0, 1.0, 6.0, 7.0, 4.0, 5.0, 2.0, 3.0]);
    assert_eq!(common::ort_run(&new, &x, &dir), a);
}

/// Weights computed from constants are folded into float initializers before
/// placement, so they get per-channel weight quantizers: a float16 weight cast to
/// float32 (an FP16-stored model), INT8 storage cast and scaled (`Cast -> Mul`); the
/// stored originals go. A Cast of an initializer that is also a graph input (a default
/// the caller may replace) is not a constant and stays. ONNX Runtime gives both models
/// the same output, bit for bit, and the checker passes the folded one.
#[test]
fn weights_computed_from_constants_are_folded_into_weights() {
    use qdq_onnx::passes::fold_weight_chains;
    let dir = common::scratch("fold-weights");
    let raw = |name: &str, dims: &[i64], data_type: i32, bytes: Vec<u8>| {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.dims = dims.to_vec();
        t.data_type = data_type;
        t.raw_data = bytes.into();
        t
    };
    let cast = |name: &str, input: &str, output: &str| {
        let mut n = node("Cast", name, &[input], output);
        let mut to = AttributeProto::new();
        to.name = "to".into();
        to.i = i64::from(elem::FLOAT);
        to.type_ = AttributeType::INT.into();
        n.attribute.push(to);
        n
    };
    // float16 0.5, -0.25, 1.0, -1.5, 0.75, 2.0 as a [3, 2, 1, 1] Conv weight.
    let half: [u16; 6] = [0x3800, 0xB400, 0x3C00, 0xBE00, 0x3A00, 0x4000];
    let w16 = raw(
        "w16",
        &[3, 2, 1, 1],
        elem::FLOAT16,
        half.iter().flat_map(|b| b.to_le_bytes()).collect(),
    );
    let w8 = raw(
        "w8",
        &[3, 3],
        elem::INT8,
        [-127i8, 5, 90, 3, -64, 127, 0, 33, -8]
            .iter()
            .map(|&v| v as u8)
            .collect(),
    );
    let mut scale = weight("s", &[3]);
    scale.float_data = vec![0.01, 0.02, 0.003];
    let mut g = GraphProto::new();
    g.name = "stored".into();
    g.input.push(value_info("x", elem::FLOAT, &[1, 2, 4, 4]));
    g.input.push(value_info("gw", elem::FLOAT, &[3, 2, 1, 1]));
    g.output.push(value_info("y", elem::FLOAT, &[1, 4, 4, 3]));
    g.initializer = vec![w16, w8, scale, weight("gw", &[3, 2, 1, 1])];
    let mut perm = AttributeProto::new();
    perm.name = "perm".into();
    perm.ints = vec![0, 2, 3, 1];
    perm.type_ = AttributeType::INTS.into();
    let mut tr = node("Transpose", "nhwc", &["h"], "ht");
    tr.attribute.push(perm);
    g.node = vec![
        cast("cast16", "w16", "wf"),
        node("Conv", "conv", &["x", "wf"], "h1"),
        cast("cast_gw", "gw", "gwf"),
        node("Conv", "conv_gw", &["x", "gwf"], "h2"),
        node("Add", "sum", &["h1", "h2"], "h"),
        tr,
        cast("cast8", "w8", "w8f"),
        node("Mul", "scaled", &["w8f", "s"], "wm"),
        node("MatMul", "mm", &["ht", "wm"], "y"),
    ];
    let mut old = ModelProto::new();
    old.ir_version = 7;
    old.graph = Some(g).into();
    old.opset_import.push(Default::default());
    old.opset_import[0].version = 13;
    let mut new = old.clone();
    assert_eq!(fold_weight_chains(&mut new), 3);
    let g = new.graph.as_ref().unwrap();
    let ops: Vec<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(ops, ["conv", "cast_gw", "conv_gw", "sum", "nhwc", "mm"]);
    let inits: Vec<(&str, i32)> = g
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t.data_type))
        .collect();
    assert_eq!(
        inits,
        [
            ("gw", elem::FLOAT),
            ("wf", elem::FLOAT),
            ("wm", elem::FLOAT)
        ]
    );
    let wf = g.initializer.iter().find(|t| t.name == "wf").unwrap();
    let values: Vec<f32> = wf
        .raw_data
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(values, [0.5, -0.25, 1.0, -1.5, 0.75, 2.0]);
    let sites = place(g, &PlacementOptions::default()).unwrap();
    let weights: Vec<(&str, &str)> = sites
        .iter()
        .filter(|s| matches!(s.kind, SiteKind::Weight { .. }))
        .map(|s| (s.name.as_str(), s.tensor.as_str()))
        .collect();
    assert_eq!(
        weights,
        [
            ("conv._weight_quantizer", "wf"),
            ("mm._weight_quantizer", "wm")
        ]
    );
    common::onnx_check(&new, &dir);
    let x = common::tensor(common::Lcg(3).vec(32, -1.0, 1.0), [1, 2, 4, 4]);
    assert_eq!(
        common::ort_run(&new, &x, &dir),
        common::ort_run(&old, &x, &dir)
    );
}

fn ints(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = 7;
    t.int64_data = v.to_vec();
    t
}

/// What PyTorch writes for `conv(x).view(x.size(0), -1) @ w`: the batch size comes from
/// Shape -> Gather -> Unsqueeze and is concatenated with -1 (int64) into the Reshape's
/// target; an int Add rides along. Only the four float tensors may be quantized.
fn pytorch_style_model() -> ModelProto {
    let mut g = GraphProto::new();
    g.name = "torch_jit".into();
    g.input.push(value_info("x", elem::FLOAT, &[1, 3, 4, 4]));
    g.output.push(value_info("y", elem::FLOAT, &[1, 5]));
    g.initializer = vec![
        weight("w", &[2, 3, 1, 1]),
        weight("wm", &[32, 5]),
        ints("i0", &[], &[0]),
        ints("zero", &[], &[0]),
        ints("axes", &[1], &[0]),
        ints("minus1", &[1], &[-1]),
    ];
    g.node = vec![
        node("Conv", "conv", &["x", "w"], "c"),
        node("Shape", "shape", &["c"], "s"),
        node("Gather", "gather", &["s", "i0"], "b"),
        node("Add", "int_add", &["b", "zero"], "b0"),
        node("Unsqueeze", "unsqueeze", &["b0", "axes"], "bu"),
        node("Concat", "cat", &["bu", "minus1"], "target"),
        node("Reshape", "reshape", &["c", "target"], "r"),
        node("MatMul", "fc", &["r", "wm"], "y"),
    ];
    let mut axis = AttributeProto::new();
    axis.name = "axis".into();
    axis.i = 0;
    axis.type_ = AttributeType::INT.into();
    g.node[5].attribute.push(axis);
    let mut m = ModelProto::new();
    m.ir_version = 7;
    m.graph = Some(g).into();
    m.opset_import.push(Default::default());
    m.opset_import[0].version = 13;
    m
}

#[test]
fn integer_shape_arithmetic_is_never_quantized() {
    use qdq_onnx::quantize::{CalibrationCache, Entry, QuantizeOptions, apply, prepare};
    let model = pytorch_style_model();
    let options = QuantizeOptions::default();
    let prepared = prepare(&model, &options).unwrap();
    let tensors: Vec<&str> = prepared.sites.iter().map(|s| s.tensor.as_str()).collect();
    assert_eq!(tensors, ["x", "w", "r", "wm"]);
    let mut cache = CalibrationCache::default();
    for (t, amax) in [("x", 1.0), ("r", 2.0)] {
        cache.entries.insert(
            t.into(),
            Entry {
                amax: vec![amax],
                method: "max".into(),
            },
        );
    }
    let q = apply(&prepared, &cache, &options).unwrap();
    let quantized: Vec<&str> = q
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear")
        .map(|n| n.input[0].as_str())
        .collect();
    assert_eq!(quantized, ["x", "w", "r", "wm"]);
    assert_eq!(lint(&q), vec![]);
    // The outside judges: the ONNX checker (full_check=True) and ONNX Runtime.
    let dir = common::scratch("int-shapes");
    let x = common::tensor(common::Lcg(3).vec(48, -1.0, 1.0), [1, 3, 4, 4]);
    assert_eq!(common::ort_run(&q, &x, &dir).len(), 5);
}

#[test]
fn opsets_onnx_does_not_define_are_refused_by_name() {
    use qdq_onnx::Error;
    use qdq_onnx::quantize::{CalibrationCache, QuantizeOptions, apply, prepare};
    let model = pytorch_style_model();
    let options = QuantizeOptions {
        opset: Some(999),
        ..Default::default()
    };
    let prepared = prepare(&model, &options).unwrap();
    let mut cache = CalibrationCache::default();
    for t in ["x", "r"] {
        cache.entries.insert(
            t.into(),
            qdq_onnx::quantize::Entry {
                amax: vec![1.0],
                method: "max".into(),
            },
        );
    }
    let err = apply(&prepared, &cache, &options).unwrap_err();
    assert!(
        matches!(err, Error::OpsetRange { opset: 999, min: 1, max, .. } if max == qdq_onnx::passes::MAX_OPSET),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "opset 999 is not supported by quantize; choose 1 to 28 (the default-domain opsets the ONNX standard defines)"
    );
    let mut m = model.clone();
    let err = upgrade_opset(&mut m, 0).unwrap_err();
    assert!(
        matches!(
            err,
            qdq_onnx::passes::PassError::OpsetRange { opset: 0, .. }
        ),
        "{err}"
    );
    assert_eq!(m, model, "a refused upgrade changes nothing");
    // The newest opset ONNX defines is accepted.
    let options = QuantizeOptions {
        opset: Some(qdq_onnx::passes::MAX_OPSET),
        ..Default::default()
    };
    apply(&prepared, &cache, &options).unwrap();
}
