//! Hostile graphs: sizes, pads and attributes that overflow or ask for terabytes get a
//! typed error naming the node, the tensor and the shape; nothing panics or allocates
//! past [`MAX_ELEMENTS`].

use burn::tensor::Device;
use onnx_ir::{ModelProto, NodeProto, TensorProto};

use super::*;
use crate::proto::{attr_int, attr_ints, model, node, tensor_f32, tensor_i64, value_info};

fn dev() -> Device {
    Device::flex()
}

/// Runs a model of `nodes` on constants `inits` alone (no graph inputs, opset 17),
/// returning its output `y`.
fn run_consts(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> Vec<(String, Value)> {
    let m = model(nodes, vec![], &["y"], inits, 17);
    OnnxGraph::from_model(&m, &dev())
        .unwrap()
        .run(vec![])
        .unwrap()
}

const BIG: i64 = 1 << 32;

/// Runs `m` on `x` = ones of `shape` and returns the error (the run must fail).
fn fails(m: &ModelProto, shape: &[usize]) -> RunError {
    let g = match OnnxGraph::from_model(m, &dev()) {
        Ok(g) => g,
        Err(e) => return e,
    };
    let n = shape.iter().product();
    let x = Value::from_f32(vec![1.0; n], shape, &dev());
    let Err(err) = g.run(vec![("x".into(), x)]) else {
        panic!("the run must fail");
    };
    assert!(!err.to_string().contains("panicked"), "{err}");
    err
}

fn too_large(err: &RunError, node: &str, tensor: &str) -> Vec<u64> {
    match err {
        RunError::TooLarge {
            node: n,
            tensor: t,
            shape,
            limit,
        } => {
            assert_eq!((n.as_str(), t.as_str()), (node, tensor), "{err}");
            assert_eq!(*limit, MAX_ELEMENTS as u64);
            shape.clone()
        }
        other => panic!("expected TooLarge, got {other}"),
    }
}

fn one(n: NodeProto, inits: Vec<TensorProto>, x: &[usize]) -> ModelProto {
    model(vec![n], vec![value_info("x", 1, x)], &["y"], inits, 17)
}

#[test]
fn initializer_dims_whose_product_overflows_are_refused() {
    let mut t = tensor_f32("w", &[], &[]);
    t.dims = vec![BIG, BIG];
    let m = one(node("Add", "add", &["x", "w"], &["y"]), vec![t], &[1]);
    let Err(err) = OnnxGraph::from_model(&m, &dev()) else {
        panic!("refused");
    };
    assert_eq!(too_large(&err, "initializer", "w"), [1 << 32, 1 << 32]);
    assert!(
        err.to_string()
            .contains("tensor `w` of shape [4294967296, 4294967296]")
    );
    // The same through the public constructors.
    assert!(matches!(
        Value::try_from_f32(vec![], &[1 << 32, 1 << 32], &dev()),
        Err(RunError::TooLarge { .. })
    ));
}

#[test]
fn graph_inputs_declared_huge_are_checked_against_what_is_fed() {
    let mut m = one(node("Relu", "relu", &["x"], &["y"]), vec![], &[1]);
    m.graph.as_mut().unwrap().input[0] = value_info("x", 1, &[1 << 32, 1 << 32]);
    let err = fails(&m, &[1, 1]);
    assert!(matches!(err, RunError::Input { .. }), "{err}");
}

fn conv_with_pads(p: i64) -> ModelProto {
    let mut n = node("Conv", "conv", &["x", "w"], &["y"]);
    n.attribute.push(attr_ints("pads", [p; 4]));
    one(
        n,
        vec![tensor_f32("w", &[1, 1, 3, 3], &[1.0; 9])],
        &[1, 1, 4, 4],
    )
}

#[test]
fn conv_pads_that_overflow_are_an_error() {
    let err = fails(&conv_with_pads(1 << 62), &[1, 1, 4, 4]);
    assert!(
        matches!(&err, RunError::Node { node, .. } if node == "conv")
            && err.to_string().contains("overflow"),
        "{err}"
    );
}

#[test]
fn conv_pads_asking_for_terabytes_are_refused_before_allocating() {
    let err = fails(&conv_with_pads(1 << 31), &[1, 1, 4, 4]);
    let padded = (1u64 << 32) + 4;
    assert_eq!(too_large(&err, "conv", "y"), [1, 1, padded, padded]);
}

#[test]
fn expand_tile_constant_of_shape_and_range_sizes_are_bounded() {
    let x = &[1usize, 1];
    let e = one(
        node("Expand", "expand", &["x", "s"], &["y"]),
        vec![tensor_i64("s", &[2], &[1 << 20, 1 << 20])],
        x,
    );
    assert_eq!(too_large(&fails(&e, x), "expand", "y"), [1 << 20, 1 << 20]);
    let t = one(
        node("Tile", "tile", &["x", "r"], &["y"]),
        vec![tensor_i64("r", &[2], &[BIG, BIG])],
        x,
    );
    too_large(&fails(&t, x), "tile", "y");
    let mut c = model(
        vec![node("ConstantOfShape", "fill", &["s"], &["y"])],
        vec![value_info("x", 1, x)],
        &["y"],
        vec![tensor_i64("s", &[3], &[BIG, BIG, 0])],
        17,
    );
    too_large(&fails(&c, x), "fill", "y");
    c.graph.as_mut().unwrap().initializer[0] = tensor_i64("s", &[1], &[1 << 40]);
    assert_eq!(too_large(&fails(&c, x), "fill", "y"), [1 << 40]);
    let r = model(
        vec![node("Range", "range", &["a", "b", "d"], &["y"])],
        vec![value_info("x", 1, x)],
        &["y"],
        vec![
            tensor_f32("a", &[], &[0.0]),
            tensor_f32("b", &[], &[1e30]),
            tensor_f32("d", &[], &[1.0]),
        ],
        17,
    );
    too_large(&fails(&r, x), "range", "y");
}

#[test]
fn pad_resize_reshape_gather_and_matmul_sizes_are_bounded() {
    let x = &[1usize, 1, 2, 2];
    let p = one(
        node("Pad", "pad", &["x", "p"], &["y"]),
        vec![tensor_i64("p", &[8], &[0, 0, 1 << 40, 0, 0, 0, 0, 0])],
        x,
    );
    too_large(&fails(&p, x), "pad", "y");
    let p = one(
        node("Pad", "pad", &["x", "p"], &["y"]),
        vec![tensor_i64(
            "p",
            &[8],
            &[0, 0, i64::MAX, 0, 0, 0, i64::MAX, 0],
        )],
        x,
    );
    assert!(fails(&p, x).to_string().contains("overflow"));
    let rs = one(
        node("Resize", "resize", &["x", "", "", "sz"], &["y"]),
        vec![tensor_i64("sz", &[4], &[1, 1, 1 << 20, 1 << 20])],
        x,
    );
    too_large(&fails(&rs, x), "resize", "y");
    let rs = one(
        node("Resize", "resize", &["x", "", "sc"], &["y"]),
        vec![tensor_f32("sc", &[4], &[1.0, 1.0, f32::INFINITY, 1.0])],
        x,
    );
    fails(&rs, x);
    let re = one(
        node("Reshape", "reshape", &["x", "s"], &["y"]),
        vec![tensor_i64("s", &[3], &[BIG, BIG, 0])],
        x,
    );
    fails(&re, x);
    // 2^16 indices into rows of 2^16: a 2^32-element result from 768 KiB of input.
    let gi = one(
        node("Gather", "gather", &["x", "i"], &["y"]),
        vec![tensor_i64("i", &[1 << 16], &vec![0; 1 << 16])],
        &[1, 1 << 16],
    );
    let mut gi = gi;
    gi.graph.as_mut().unwrap().node[0]
        .attribute
        .push(attr_int("axis", 0));
    assert_eq!(
        too_large(&fails(&gi, &[1, 1 << 16]), "gather", "y"),
        [1 << 16, 1 << 16]
    );
    let mm = model(
        vec![node("MatMul", "mm", &["a", "b"], &["y"])],
        vec![value_info("x", 1, &[1])],
        &["y"],
        vec![
            tensor_f32("a", &[1 << 17, 1], &vec![1.0; 1 << 17]),
            tensor_f32("b", &[1, 1 << 17], &vec![1.0; 1 << 17]),
        ],
        17,
    );
    assert_eq!(too_large(&fails(&mm, &[1]), "mm", "y"), [1 << 17, 1 << 17]);
}

#[test]
fn attributes_that_would_loop_for_ever_are_bounded() {
    let x = &[1usize, 3, 2, 2];
    // Split into 2^62 outputs.
    let mut s = node("Split", "split", &["x"], &["y"]);
    s.attribute.push(attr_int("num_outputs", 1 << 62));
    s.attribute.push(attr_int("axis", 1));
    let mut m = one(s, vec![], x);
    m.opset_import[0].version = 18;
    assert!(fails(&m, x).to_string().contains("Split into"));
    // From opset 18 an even split must say how many parts (ONNX Runtime refuses it
    // too); at 17 the outputs say it.
    let mut even = node("Split", "split", &["x"], &["y"]);
    even.attribute.push(attr_int("axis", 1));
    let mut m = one(even, vec![], x);
    m.opset_import[0].version = 18;
    let e = fails(&m, x).to_string();
    assert!(
        e.contains("Split at opset 18 has neither a `split` input nor a `num_outputs` attribute"),
        "{e}"
    );
    m.opset_import[0].version = 17;
    let g = OnnxGraph::from_model(&m, &dev()).unwrap();
    let v = Value::from_f32(vec![0.0; 12], x, &dev());
    assert_eq!(g.run(vec![("x".into(), v)]).unwrap()[0].1.shape(), x);
    // LRN with a window of 2^40 channels: same values as a window over all channels.
    let lrn = |size: i64| {
        let mut n = node("LRN", "lrn", &["x"], &["y"]);
        n.attribute.push(attr_int("size", size));
        let g = OnnxGraph::from_model(&one(n, vec![], x), &dev()).unwrap();
        let v = Value::from_f32((0..12).map(|v| v as f32).collect(), x, &dev());
        g.run(vec![("x".into(), v)]).unwrap()[0].1.to_f32().unwrap()
    };
    let (wide, huge) = (lrn(5), lrn(1 << 40));
    assert_eq!(wide.len(), 12);
    // alpha / size differs, so the values differ; both finish and are finite.
    assert!(huge.iter().all(|v| v.is_finite()) && wide != huge);
    // Slice with a step of i64::MAX picks one element.
    let sl = one(
        node("Slice", "slice", &["x", "st", "en", "ax", "sp"], &["y"]),
        vec![
            tensor_i64("st", &[1], &[0]),
            tensor_i64("en", &[1], &[i64::MAX]),
            tensor_i64("ax", &[1], &[1]),
            tensor_i64("sp", &[1], &[i64::MAX]),
        ],
        x,
    );
    let g = OnnxGraph::from_model(&sl, &dev()).unwrap();
    let v = Value::from_f32(vec![1.0; 12], x, &dev());
    assert_eq!(
        g.run(vec![("x".into(), v)]).unwrap()[0].1.shape(),
        [1, 1, 2, 2]
    );
}

/// Found by the `runtime_graph` fuzz target: reductions to one element over an empty
/// axis reached burn kernels that panic.
#[test]
fn arg_and_global_max_over_empty_axes_are_errors() {
    for op in ["ArgMax", "ArgMin"] {
        let m = one(node(op, "arg", &["x"], &["y"]), vec![], &[0, 2]);
        let e = fails(&m, &[0, 2]).to_string();
        assert!(e.contains("over axis 0 of size 0 (shape [0, 2])"), "{e}");
        let mut n = node(op, "arg", &["x"], &["y"]);
        n.attribute.push(attr_int("axis", 1));
        let e = fails(&one(n, vec![], &[2, 0]), &[2, 0]).to_string();
        assert!(e.contains("over axis 1 of size 0 (shape [2, 0])"), "{e}");
    }
    let m = one(
        node("GlobalMaxPool", "gmp", &["x"], &["y"]),
        vec![],
        &[1, 2, 0, 3],
    );
    let e = fails(&m, &[1, 2, 0, 3]).to_string();
    assert!(
        e.contains("GlobalMaxPool of an input with an empty spatial dimension"),
        "{e}"
    );
}

/// Found by the `runtime_graph` fuzz target: LogSoftmax of an empty tensor reached
/// burn's max over an empty axis. An empty input gives an empty output.
#[test]
fn softmax_of_an_empty_tensor_is_empty() {
    for (op, opset) in [("Softmax", 17), ("LogSoftmax", 17), ("LogSoftmax", 11)] {
        let m = model(
            vec![node(op, "sm", &["x"], &["y"])],
            vec![value_info("x", 1, &[0, 3])],
            &["y"],
            vec![],
            opset,
        );
        let g = OnnxGraph::from_model(&m, &dev()).unwrap();
        let x = Value::from_f32(vec![], &[0, 3], &dev());
        let y = g.run(vec![("x".into(), x)]).unwrap();
        assert_eq!(y[0].1.shape(), [0, 3], "{op} opset {opset}");
    }
}

/// Found by the `runtime_graph` fuzz target: a scalar has no axis, yet axis 0 was
/// accepted for it and Split then indexed the empty shape.
#[test]
fn a_scalar_has_no_axis() {
    for op in ["Split", "Gather", "ArgMax", "Concat"] {
        let inputs: &[&str] = if op == "Gather" { &["x", "i"] } else { &["x"] };
        let i = tensor_i64("i", &[], &[0]);
        let m = one(node(op, "n", inputs, &["y"]), vec![i], &[]);
        let e = fails(&m, &[]).to_string();
        // Gather says so before looking at its axis.
        assert!(
            e.contains("axis 0 is out of range for rank 0") || e.contains("Gather on a scalar"),
            "{op}: {e}"
        );
    }
}

/// Found by the `runtime_graph` fuzz target: broadcasting `[4, 0]` against
/// `[0, 3, 4, 0]` lifted an empty tensor to rank 4, and burn's reshape of an empty
/// tensor to another rank indexes past its shape.
#[test]
fn empty_tensors_broadcast_to_empty_results() {
    for op in ["Greater", "Add", "Equal"] {
        let m = model(
            vec![node(op, "n", &["x", "z"], &["y"])],
            vec![
                value_info("x", 1, &[4, 0]),
                value_info("z", 1, &[0, 3, 4, 0]),
            ],
            &["y"],
            vec![],
            7,
        );
        let g = OnnxGraph::from_model(&m, &dev()).unwrap();
        let x = Value::from_f32(vec![], &[4, 0], &dev());
        let z = Value::from_f32(vec![], &[0, 3, 4, 0], &dev());
        let y = g.run(vec![("x".into(), x), ("z".into(), z)]).unwrap();
        assert_eq!(y[0].1.shape(), [0, 3, 4, 0], "{op}");
    }
}

/// Found by the `runtime_graph` fuzz target: burn-flex's integer multiply panics on
/// overflow where debug assertions are on. ONNX (and ONNX Runtime) wrap.
#[test]
fn integer_products_wrap_as_in_onnx() {
    let a = tensor_i64("a", &[2], &[i64::MAX, -3]);
    let b = tensor_i64("b", &[1], &[2]);
    let m = model(
        vec![node("Mul", "mul", &["a", "b"], &["y"])],
        vec![],
        &["y"],
        vec![a, b],
        17,
    );
    let g = OnnxGraph::from_model(&m, &dev()).unwrap();
    let y = g.run(vec![]).unwrap();
    assert_eq!(y[0].1.to_i64().unwrap(), [i64::MAX.wrapping_mul(2), -6]);
}

/// Found by the `runtime_graph` fuzz target after the product was fixed: the same holds
/// for sums and differences.
#[test]
fn integer_sums_and_differences_wrap_as_in_onnx() {
    for (op, want) in [
        ("Add", [i64::MAX.wrapping_add(2), -1]),
        ("Sub", [i64::MAX - 2, -5]),
    ] {
        let a = tensor_i64("a", &[2], &[i64::MAX, -3]);
        let b = tensor_i64("b", &[1], &[2]);
        let y = run_consts(vec![node(op, "op", &["a", "b"], &["y"])], vec![a, b]);
        assert_eq!(y[0].1.to_i64().unwrap(), want, "{op}");
    }
    let a = tensor_i64("a", &[1], &[i64::MIN]);
    let b = tensor_i64("b", &[1], &[1]);
    let y = run_consts(vec![node("Sub", "sub", &["a", "b"], &["y"])], vec![a, b]);
    assert_eq!(y[0].1.to_i64().unwrap(), [i64::MAX]);
}

/// Found by the `runtime_graph` fuzz target: expanding to a shape with a 0 reached
/// burn's expand, which panics on it.
#[test]
fn expanding_to_an_empty_shape_gives_an_empty_tensor() {
    let a = tensor_i64("a", &[1], &[3]);
    let b = tensor_i64("b", &[0, 2], &[]);
    let y = run_consts(vec![node("Mul", "mul", &["a", "b"], &["y"])], vec![a, b]);
    assert_eq!(y[0].1.shape(), [0, 2]);
}

/// Found by the `runtime_graph` fuzz target: an integer Range whose start plus a step
/// overflowed i64 (a panic where debug assertions are on). Integer ranges are now
/// exact, also near i64's ends, where f64 lost the low bits.
#[test]
fn integer_ranges_are_exact_near_the_ends_of_i64() {
    let range = |s: i64, l: i64, d: i64| {
        let m = model(
            vec![node("Range", "range", &["s", "l", "d"], &["y"])],
            vec![],
            &["y"],
            vec![
                tensor_i64("s", &[], &[s]),
                tensor_i64("l", &[], &[l]),
                tensor_i64("d", &[], &[d]),
            ],
            17,
        );
        let g = OnnxGraph::from_model(&m, &dev()).unwrap();
        g.run(vec![]).unwrap()[0].1.to_i64().unwrap()
    };
    assert_eq!(range(i64::MAX - 1, i64::MAX, 1), [i64::MAX - 1]);
    let step = -(1i64 << 62);
    assert_eq!(
        range(i64::MAX - 4, i64::MIN, step),
        [i64::MAX - 4, i64::MAX - 4 + step, -5, -5 + step]
    );
    assert_eq!(
        range(i64::MIN, i64::MAX, i64::MAX),
        [i64::MIN, -1, i64::MAX - 1]
    );
    assert_eq!(range(5, 1, 1), Vec::<i64>::new());
    assert_eq!(range(1, 10, 4), [1, 5, 9]);
    assert_eq!(range(10, 1, -4), [10, 6, 2]);
}

/// Found by the `runtime_graph` fuzz target: padding an empty tensor holds no element
/// yet burn computes its strides, which overflowed (a panic) for huge pads.
#[test]
fn padding_an_empty_tensor_to_huge_dims_is_refused() {
    let pads = [0, 0, 0, 0, 0, 0, 1 << 62, 1 << 62];
    let m = model(
        vec![node("Pad", "pad", &["x", "p"], &["y"])],
        vec![],
        &["y"],
        vec![
            tensor_i64("x", &[3, 0, 4, 1], &[]),
            tensor_i64("p", &[8], &pads),
        ],
        18,
    );
    let g = OnnxGraph::from_model(&m, &dev()).unwrap();
    let Err(e) = g.run(vec![]) else {
        panic!("the run must fail");
    };
    assert!(matches!(e, RunError::TooLarge { .. }), "{e}");
    // The same for expanding an empty tensor: strides of 2^80.
    let m = model(
        vec![node("Expand", "expand", &["x", "s"], &["y"])],
        vec![],
        &["y"],
        vec![
            tensor_i64("x", &[0], &[]),
            tensor_i64("s", &[3], &[1 << 40, 1 << 40, 0]),
        ],
        18,
    );
    let g = OnnxGraph::from_model(&m, &dev()).unwrap();
    let Err(e) = g.run(vec![]) else {
        panic!("the run must fail");
    };
    assert!(matches!(e, RunError::TooLarge { .. }), "{e}");
}

/// Found by the `runtime_graph` fuzz target: a ConvTranspose over an empty spatial axis
/// underflowed burn's output size. Every dim of Conv and ConvTranspose set to 0 in turn
/// gives a result or an error, never a panic.
#[test]
fn convolutions_of_empty_tensors_do_not_panic() {
    for op in ["Conv", "ConvTranspose"] {
        for (which, i) in (0..2).flat_map(|w| (0..4).map(move |i| (w, i))) {
            let mut x = [1usize, 2, 3, 3];
            let mut w = [2usize, 2, 2, 2];
            if which == 0 {
                x[i] = 0;
            } else {
                w[i] = 0;
            }
            let numel = |s: &[usize]| s.iter().product::<usize>();
            let m = model(
                vec![node(op, "conv", &["x", "w"], &["y"])],
                vec![],
                &["y"],
                vec![
                    tensor_f32("x", &x, &vec![1.0; numel(&x)]),
                    tensor_f32("w", &w, &vec![1.0; numel(&w)]),
                ],
                17,
            );
            let g = OnnxGraph::from_model(&m, &dev()).unwrap();
            if let Err(e) = g.run(vec![]) {
                assert!(!e.to_string().contains("panicked"), "{op} {x:?} {w:?}: {e}");
            }
        }
    }
}

/// Found by the `runtime_graph` fuzz target: LRN with an integral `beta` past i64's
/// range reached burn's `powf_scalar`, which unwraps its conversion to i64.
#[test]
fn lrn_with_a_huge_beta_runs() {
    let x = &[1usize, 3, 1, 1];
    let mut n = node("LRN", "lrn", &["x"], &["y"]);
    n.attribute.push(attr_int("size", 3));
    n.attribute
        .push(crate::proto::build::attr_float("beta", 1.157_835_7e27));
    let g = OnnxGraph::from_model(&one(n, vec![], x), &dev()).unwrap();
    let v = Value::from_f32(vec![0.0, 1.0, 2.0], x, &dev());
    let y = g.run(vec![("x".into(), v)]).unwrap()[0].1.to_f32().unwrap();
    // Every window holds a non-zero square, so (1 + alpha/size * sum)^beta is infinite
    // and y = x / den is 0.
    assert_eq!(y, [0.0, 0.0, 0.0]);
}

/// Found by the `runtime_graph` fuzz target: a MaxPool with a window of 2^31 - 1 over
/// an empty axis padded to fit it passed the output check (one element), and burn
/// asked for a 32 GiB buffer. The work (outputs times window) is bounded now.
#[test]
fn pools_with_huge_windows_are_refused_before_allocating() {
    let x = &[1usize, 1, 4];
    let k = (1i64 << 31) - 1;
    let mut n = node("MaxPool", "pool", &["x"], &["y"]);
    n.attribute.push(attr_ints("kernel_shape", [k]));
    n.attribute.push(attr_ints("pads", [k / 2, k / 2]));
    too_large(&fails(&one(n, vec![], x), x), "pool", "y");
}

/// Found by the `runtime_graph` fuzz target: a Conv of an empty input with 2^31 - 1
/// groups passed every shape check (0 channels divide by anything) and burn looped once
/// per group. More groups than channels is refused at once.
#[test]
fn convolutions_with_more_groups_than_channels_are_refused() {
    for op in ["Conv", "ConvTranspose"] {
        let mut n = node(op, "conv", &["x", "w"], &["y"]);
        n.attribute.push(attr_int("group", (1 << 31) - 1));
        let m = model(
            vec![n],
            vec![],
            &["y"],
            vec![
                tensor_f32("x", &[3, 0, 4, 4], &[]),
                tensor_f32("w", &[0, 0, 3, 1], &[]),
            ],
            20,
        );
        let g = OnnxGraph::from_model(&m, &dev()).unwrap();
        let Err(e) = g.run(vec![]) else {
            panic!("{op}: the run must fail");
        };
        assert!(
            e.to_string()
                .contains("group 2147483647 over 0 input channels"),
            "{e}"
        );
    }
}

#[test]
fn einsum_outer_products_past_the_limit_are_refused() {
    // four 2048-vectors: a 2^44-element product before any sum
    let mut n = node("Einsum", "e", &["x", "x", "x", "x"], &["y"]);
    let mut a = onnx_ir::AttributeProto::new();
    a.name = "equation".into();
    a.type_ = onnx_ir::AttributeType::STRING.into();
    a.s = "i,j,k,l->".as_bytes().to_vec().into();
    n.attribute.push(a);
    let err = fails(&one(n, vec![], &[2048]), &[2048]);
    assert_eq!(too_large(&err, "e", "y"), [2048; 4]);
}

#[test]
fn recurrent_weights_of_the_wrong_shape_name_the_input() {
    // W for 3 inputs, X has 2 features
    let mut n = node("GRU", "gru", &["x", "w", "r"], &["y"]);
    n.attribute.push(attr_int("hidden_size", 1));
    let inits = vec![
        tensor_f32("w", &[1, 3, 3], &[0.0; 9]),
        tensor_f32("r", &[1, 3, 1], &[0.0; 3]),
    ];
    let err = fails(&one(n, inits, &[4, 1, 2]), &[4, 1, 2]);
    assert!(
        err.to_string()
            .contains("node `gru` (GRU): W has shape [1, 3, 3], expected [1, 3, 2]"),
        "{err}"
    );
}
/// The run's error is a [`RunError::Node`] naming `name` whose message contains `needle`.
fn node_fails(m: &ModelProto, x: &[usize], name: &str, needle: &str) {
    let err = fails(m, x);
    assert!(
        matches!(&err, RunError::Node { node, message, .. }
            if node == name && message.contains(needle)),
        "{err}"
    );
}

#[test]
fn gathers_and_scatters_check_every_index() {
    let x = &[2usize, 2];
    let ge = one(
        node("GatherElements", "ge", &["x", "i"], &["y"]),
        vec![tensor_i64("i", &[2, 2], &[0, 5, 1, 0])],
        x,
    );
    node_fails(&ge, x, "ge", "index 5 is out of range");
    let gnd = one(
        node("GatherND", "gnd", &["x", "i"], &["y"]),
        vec![tensor_i64("i", &[1, 2], &[0, i64::MIN])],
        x,
    );
    node_fails(&gnd, x, "gnd", "out of range");
    let snd = one(
        node("ScatterND", "snd", &["x", "i", "u"], &["y"]),
        vec![
            tensor_i64("i", &[1, 1], &[7]),
            tensor_f32("u", &[1, 2], &[1.0, 2.0]),
        ],
        x,
    );
    node_fails(&snd, x, "snd", "index 7 is out of range");
    let mut se = node("ScatterElements", "se", &["x", "i", "u"], &["y"]);
    se.attribute.push(attr_int("axis", 1));
    let se = one(
        se,
        vec![
            tensor_i64("i", &[1, 1], &[-3]),
            tensor_f32("u", &[1, 1], &[1.0]),
        ],
        x,
    );
    node_fails(&se, x, "se", "index -3 is out of range");
    let nll = one(
        node("NegativeLogLikelihoodLoss", "nll", &["x", "t"], &["y"]),
        vec![tensor_i64("t", &[2], &[1, 2])],
        x,
    );
    node_fails(&nll, x, "nll", "target class 2 is out of range");
}

#[test]
fn one_hot_depth_and_window_sizes_are_bounded() {
    let x = &[1usize];
    let oh = one(
        node("OneHot", "oh", &["i", "d", "v"], &["y"]),
        vec![
            tensor_i64("i", &[3], &[0, 1, 2]),
            tensor_i64("d", &[], &[1 << 40]),
            tensor_f32("v", &[2], &[0.0, 1.0]),
        ],
        x,
    );
    assert_eq!(too_large(&fails(&oh, x), "oh", "y"), [3, 1 << 40]);
    let hann = one(
        node("HannWindow", "hann", &["n"], &["y"]),
        vec![tensor_i64("n", &[], &[1 << 40])],
        x,
    );
    assert_eq!(too_large(&fails(&hann, x), "hann", "size"), [1 << 40]);
}

#[test]
fn dft_work_is_bounded() {
    let x = &[1usize, 8, 1];
    let dft = |len: i64| {
        let m = one(
            node("DFT", "dft", &["x", "n"], &["y"]),
            vec![tensor_i64("n", &[], &[len])],
            x,
        );
        fails(&m, x)
    };
    // a length past the element limit is refused as a size...
    assert_eq!(too_large(&dft(1 << 40), "dft", "dft_length"), [1 << 40]);
    // ...and one within it but needing 2^40 multiply-adds as work, before looping
    let err = dft(1 << 20);
    assert!(err.to_string().contains("too much work"), "{err}");
}

#[test]
fn roi_align_and_max_unpool_check_regions_and_indices() {
    let x = &[1usize, 1, 4, 4];
    let roi = |rois: [f32; 4], batch: i64| {
        one(
            node("RoiAlign", "roi", &["x", "r", "b"], &["y"]),
            vec![
                tensor_f32("r", &[1, 4], &rois),
                tensor_i64("b", &[1], &[batch]),
            ],
            x,
        )
    };
    node_fails(&roi([0.0, 0.0, 1e30, 1e30], 0), x, "roi", "too large");
    node_fails(&roi([0.0, 0.0, 2.0, 2.0], 3), x, "roi", "batch index 3");
    let mut up = node("MaxUnpool", "unpool", &["x", "i"], &["y"]);
    up.attribute.push(attr_ints("kernel_shape", [2, 2]));
    up.attribute.push(attr_ints("strides", [2, 2]));
    let small = &[1usize, 1, 1, 1];
    let up = one(up, vec![tensor_i64("i", &[1, 1, 1, 1], &[99])], small);
    node_fails(&up, small, "unpool", "index 99 is out of range");
}

#[test]
fn integer_mod_by_zero_and_compress_past_the_axis_are_errors() {
    let x = &[2usize];
    let m = one(
        node("Mod", "mod", &["a", "b"], &["y"]),
        vec![
            tensor_i64("a", &[2], &[5, 7]),
            tensor_i64("b", &[2], &[2, 0]),
        ],
        x,
    );
    node_fails(&m, x, "mod", "by zero");
    let c = model(
        vec![node("Compress", "cmp", &["x", "c"], &["y"])],
        vec![value_info("x", 1, x)],
        &["y"],
        vec![crate::proto::raw_tensor(
            "c",
            &[3],
            crate::proto::elem::BOOL,
            vec![0, 0, 1],
        )],
        17,
    );
    node_fails(&c, x, "cmp", "past axis");
}

#[test]
fn grid_sample_far_outside_the_image_reads_zeros() {
    // A grid point at 1e30 once overflowed the tap arithmetic (x0 + 1 at i64::MAX).
    for mode in ["bilinear", "nearest", "bicubic"] {
        let mut n = node("GridSample", "gs", &["x", "g"], &["y"]);
        let mut a = attr_int("mode", 0);
        a.type_ = onnx_ir::AttributeType::STRING.into();
        a.s = mode.as_bytes().to_vec().into();
        n.attribute.push(a);
        let m = one(
            n,
            vec![tensor_f32("g", &[1, 1, 2, 2], &[1e30, 0.0, -1e30, 1e30])],
            &[1, 1, 2, 2],
        );
        let g = OnnxGraph::from_model(&m, &dev()).unwrap();
        let x = Value::from_f32(vec![1.0; 4], &[1, 1, 2, 2], &dev());
        let y = g.run(vec![("x".into(), x)]).unwrap()[0].1.to_f32().unwrap();
        assert_eq!(y, [0.0, 0.0], "{mode}");
    }
}

#[test]
fn max_pool_indices_with_a_huge_window_are_refused_before_looping() {
    let x = &[1usize, 1, 2, 2];
    let mut p = node("MaxPool", "pool", &["x"], &["y", "i"]);
    p.attribute
        .push(attr_ints("kernel_shape", [1 << 20, 1 << 20]));
    // a 3x3 output, each of whose windows spans 2^40 positions
    p.attribute.push(attr_ints("pads", [1 << 19; 4]));
    node_fails(&one(p, vec![], x), x, "pool", "comparisons");
}
