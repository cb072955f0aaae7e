//! Sequence and optional ops on small graphs with exact expected values: the ops the
//! ONNX node test data leaves out (SplitToSequence, ConcatFromSequence, SequenceErase,
//! negative positions), and the errors for a bad position, mixed element types, an
//! empty optional and a sequence given to a tensor op, each naming the node.

use burn::tensor::Device;
use onnx_ir::{NodeProto, TensorProto};

use super::*;
use crate::proto::{attr_int, model, node, tensor_f32, tensor_i64};

fn dev() -> Device {
    Device::flex()
}

/// Runs `nodes` on the initializers `inits` (no graph inputs, opset 17) and returns the
/// values of `outputs`, or the error.
fn run(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    outputs: &[&str],
) -> Result<Vec<Value>, RunError> {
    let m = model(nodes, vec![], outputs, inits, 17);
    let g = OnnxGraph::from_model(&m, &dev())?;
    Ok(g.run(vec![])?.into_iter().map(|(_, v)| v).collect())
}

/// The `[2, 3]` tensor 0..6 as `x`, positions `p1` = 1, `m1` = -1, `m2` = -2, `big` = 3.
fn inits() -> Vec<TensorProto> {
    vec![
        tensor_f32("x", &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
        tensor_i64("p1", &[], &[1]),
        tensor_i64("m1", &[], &[-1]),
        tensor_i64("m2", &[], &[-2]),
        tensor_i64("big", &[], &[3]),
        tensor_i64("min", &[], &[i64::MIN]),
        tensor_i64("i", &[2], &[7, 8]),
    ]
}

fn with(mut n: NodeProto, attrs: &[(&str, i64)]) -> NodeProto {
    n.attribute
        .extend(attrs.iter().map(|&(k, v)| attr_int(k, v)));
    n
}

/// Items of a sequence value as (shape, values).
fn items(v: &Value) -> Vec<(Vec<usize>, Vec<f32>)> {
    let Value::Sequence(items, _) = v else {
        panic!("expected a sequence, got {}", v.describe());
    };
    items
        .iter()
        .map(|t| (t.shape(), t.to_f32().unwrap()))
        .collect()
}

#[test]
fn split_erase_at_and_concat_give_exact_values() {
    let out = run(
        vec![
            with(
                node("SplitToSequence", "split", &["x"], &["cols"]),
                &[("axis", 1)],
            ),
            node("SequenceErase", "erase", &["cols", "m2"], &["ends"]),
            node("SequenceLength", "len", &["ends"], &["n"]),
            node("SequenceAt", "at", &["ends", "m1"], &["last"]),
            with(
                node("ConcatFromSequence", "cat", &["ends"], &["y"]),
                &[("axis", 1)],
            ),
            with(
                node("ConcatFromSequence", "stack", &["ends"], &["z"]),
                &[("axis", -1), ("new_axis", 1)],
            ),
        ],
        inits(),
        &["cols", "n", "last", "y", "z"],
    )
    .unwrap();
    assert_eq!(
        items(&out[0]),
        [
            (vec![2, 1], vec![0.0, 3.0]),
            (vec![2, 1], vec![1.0, 4.0]),
            (vec![2, 1], vec![2.0, 5.0])
        ]
    );
    assert_eq!(
        (out[1].shape(), out[1].to_i64().unwrap()),
        (vec![], vec![2])
    );
    assert_eq!(
        (out[2].shape(), out[2].to_f32().unwrap()),
        (vec![2, 1], vec![2.0, 5.0])
    );
    assert_eq!(
        (out[3].shape(), out[3].to_f32().unwrap()),
        (vec![2, 2], vec![0.0, 2.0, 3.0, 5.0])
    );
    assert_eq!(
        (out[4].shape(), out[4].to_f32().unwrap()),
        (vec![2, 1, 2], vec![0.0, 2.0, 3.0, 5.0])
    );
}

#[test]
fn split_to_sequence_by_sizes_and_without_keepdims() {
    let out = run(
        vec![
            with(
                node("SplitToSequence", "by2", &["x", "two"], &["a"]),
                &[("axis", 1)],
            ),
            with(
                node("SplitToSequence", "sizes", &["x", "i12"], &["b"]),
                &[("axis", -1)],
            ),
            with(
                node("SplitToSequence", "rows", &["x"], &["c"]),
                &[("keepdims", 0)],
            ),
        ],
        vec![
            tensor_f32("x", &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
            tensor_i64("two", &[], &[2]),
            tensor_i64("i12", &[2], &[1, 2]),
        ],
        &["a", "b", "c"],
    )
    .unwrap();
    // a scalar split: pieces of 2, the last one shorter
    assert_eq!(
        items(&out[0]),
        [
            (vec![2, 2], vec![0.0, 1.0, 3.0, 4.0]),
            (vec![2, 1], vec![2.0, 5.0])
        ]
    );
    assert_eq!(
        items(&out[1]),
        [
            (vec![2, 1], vec![0.0, 3.0]),
            (vec![2, 2], vec![1.0, 2.0, 4.0, 5.0])
        ]
    );
    assert_eq!(
        items(&out[2]),
        [
            (vec![3], vec![0.0, 1.0, 2.0]),
            (vec![3], vec![3.0, 4.0, 5.0])
        ]
    );
}

#[test]
fn insert_at_negative_and_end_positions() {
    let out = run(
        vec![
            node("SequenceConstruct", "make", &["x", "x"], &["s"]),
            node("Neg", "neg", &["x"], &["nx"]),
            node("SequenceInsert", "front", &["s", "nx", "m2"], &["t"]),
            node("SequenceInsert", "back", &["t", "nx"], &["u"]),
            node("SequenceAt", "first", &["u", "p1"], &["y"]),
            node("SequenceLength", "len", &["u"], &["n"]),
        ],
        inits(),
        &["y", "n"],
    )
    .unwrap();
    // -2 in a sequence of 2 is its front: the negated tensor is then at 0, not 1
    assert_eq!(out[0].to_f32().unwrap(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(out[1].to_i64().unwrap(), [4]);
}

#[test]
fn optionals_hold_a_value_or_nothing() {
    let mut empty = node("Optional", "none", &[], &["o0"]);
    let mut ty = onnx_ir::TypeProto::new();
    ty.mut_tensor_type().elem_type = dt::FLOAT;
    let mut a = onnx_ir::AttributeProto::new();
    a.name = "type".into();
    a.tp = Some(ty).into();
    empty.attribute.push(a);
    let out = run(
        vec![
            node("Optional", "some", &["x"], &["o1"]),
            empty,
            node("OptionalHasElement", "has1", &["o1"], &["h1"]),
            node("OptionalHasElement", "has0", &["o0"], &["h0"]),
            node("OptionalGetElement", "get", &["o1"], &["y"]),
        ],
        inits(),
        &["h1", "h0", "y", "o0"],
    )
    .unwrap();
    assert_eq!(out[0].to_i64().unwrap(), [1]);
    assert_eq!(out[1].to_i64().unwrap(), [0]);
    assert_eq!(out[2].to_f32().unwrap(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert!(matches!(out[3], Value::Optional(None)));
    let err = run(
        vec![
            node("Optional", "none", &[], &["o"]),
            node("OptionalGetElement", "get", &["o"], &["y"]),
        ],
        vec![],
        &["y"],
    )
    .unwrap_err();
    assert_node_error(&err, "get", "the optional input is empty");
}

fn assert_node_error(err: &RunError, name: &str, needle: &str) {
    assert!(
        matches!(err, RunError::Node { node, message, .. }
            if node == name && message.contains(needle)),
        "{err}"
    );
}

#[test]
fn positions_out_of_range_name_the_node() {
    let seq = || node("SequenceConstruct", "make", &["x", "x"], &["s"]);
    for (op, pos, needle) in [
        (
            "SequenceAt",
            "big",
            "position 3 is out of range for a sequence of 2 tensors ([-2, 1])",
        ),
        (
            "SequenceAt",
            "min",
            "out of range for a sequence of 2 tensors",
        ),
        ("SequenceErase", "big", "position 3 is out of range"),
        (
            "SequenceInsert",
            "i",
            "position (input #2) must hold one value",
        ),
    ] {
        let ins: &[&str] = match op {
            "SequenceInsert" => &["s", "x", pos],
            _ => &["s", pos],
        };
        let err = run(vec![seq(), node(op, "bad", ins, &["y"])], inits(), &["y"]).unwrap_err();
        assert_node_error(&err, "bad", needle);
    }
    // inserting past the end (3 in a sequence of 2; the end, 2, is allowed)
    let err = run(
        vec![
            seq(),
            node("SequenceInsert", "bad", &["s", "x", "big"], &["y"]),
        ],
        inits(),
        &["y"],
    )
    .unwrap_err();
    assert_node_error(
        &err,
        "bad",
        "position 3 is out of range for a sequence of 2 tensors ([-2, 2])",
    );
}

#[test]
fn mixed_element_types_are_refused() {
    let err = run(
        vec![node("SequenceConstruct", "mixed", &["x", "i"], &["y"])],
        inits(),
        &["y"],
    )
    .unwrap_err();
    assert_node_error(
        &err,
        "mixed",
        "sequence element #1 is int64, the sequence holds float32",
    );
    let err = run(
        vec![
            node("SequenceConstruct", "make", &["x"], &["s"]),
            node("SequenceInsert", "ins", &["s", "i"], &["y"]),
        ],
        inits(),
        &["y"],
    )
    .unwrap_err();
    assert_node_error(&err, "ins", "is int64, the sequence holds float32");
    // SequenceEmpty's dtype fixes the element type even with nothing in it
    let err = run(
        vec![
            with(node("SequenceEmpty", "e", &[], &["s"]), &[("dtype", 7)]),
            node("SequenceInsert", "ins", &["s", "x"], &["y"]),
        ],
        inits(),
        &["y"],
    )
    .unwrap_err();
    assert_node_error(&err, "ins", "is float32, the sequence holds int64");
}

#[test]
fn tensor_ops_refuse_sequences_and_sequence_ops_tensors() {
    let err = run(
        vec![
            node("SequenceConstruct", "make", &["x"], &["s"]),
            node("Add", "add", &["x", "s"], &["y"]),
        ],
        inits(),
        &["y"],
    )
    .unwrap_err();
    assert_node_error(
        &err,
        "add",
        "input #1 is a sequence of float32 (1 tensors); Add takes tensors",
    );
    let err = run(
        vec![node("SequenceAt", "at", &["x", "p1"], &["y"])],
        inits(),
        &["y"],
    )
    .unwrap_err();
    assert_node_error(
        &err,
        "at",
        "input #0 must be a sequence, got a float32 [2, 3]",
    );
    let err = run(
        vec![
            node("SequenceEmpty", "e", &[], &["s"]),
            node("ConcatFromSequence", "cat", &["s"], &["y"]),
        ],
        vec![],
        &["y"],
    )
    .unwrap_err();
    assert_node_error(&err, "cat", "ConcatFromSequence of an empty sequence");
}

/// `SequenceMap(a, b)` whose body adds its two inputs.
fn add_map(a: &str, b: &str) -> NodeProto {
    let named = |n: &str| {
        let mut v = onnx_ir::ValueInfoProto::new();
        v.name = n.into();
        v
    };
    let mut g = onnx_ir::GraphProto::new();
    g.node = vec![node("Add", "body_add", &["p", "q"], &["r"])];
    g.input = vec![named("p"), named("q")];
    g.output = vec![named("r")];
    let mut attr = onnx_ir::AttributeProto::new();
    attr.name = "body".into();
    attr.g = Some(g).into();
    let mut n = node("SequenceMap", "map", &[a, b], &["y"]);
    n.attribute.push(attr);
    n
}

#[test]
fn sequence_map_pairs_elements_and_checks_lengths() {
    let make = node("SequenceConstruct", "make", &["x", "nx"], &["s"]);
    let neg = || node("Neg", "neg", &["x"], &["nx"]);
    // a tensor as the second input is passed whole to every step
    let out = run(
        vec![neg(), make.clone(), add_map("s", "x")],
        inits(),
        &["y"],
    )
    .unwrap();
    assert_eq!(
        items(&out[0]),
        [
            (vec![2, 3], vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]),
            (vec![2, 3], vec![0.0; 6])
        ]
    );
    let short = node("SequenceConstruct", "short", &["x"], &["t"]);
    let err = run(vec![neg(), make, short, add_map("s", "t")], inits(), &["y"]).unwrap_err();
    assert_node_error(
        &err,
        "map",
        "input #1 is a sequence of 1 tensors, input #0 of 2",
    );
}

#[test]
fn sequences_of_empty_tensors_are_bounded_in_length() {
    // an empty axis split into 2^20 + 1 empty pieces: no elements, but too many tensors
    let zeros = vec![0i64; MAX_SEQUENCE_LEN + 1];
    let err = run(
        vec![node("SplitToSequence", "split", &["e", "z"], &["y"])],
        vec![
            tensor_f32("e", &[0], &[]),
            tensor_i64("z", &[zeros.len()], &zeros),
        ],
        &["y"],
    )
    .unwrap_err();
    assert_node_error(
        &err,
        "split",
        "a sequence of 1048577 tensors exceeds the runtime's limit",
    );
}

#[test]
fn every_sequence_op_is_in_the_supported_table() {
    // `ops::SUPPORTED` repeats the sequence ops (a const slice cannot be concatenated);
    // the executor's non-tensor check reads `sequence::OPS`: the two lists must agree.
    for op in ops::sequence::OPS {
        assert!(ops::SUPPORTED.contains(op), "{op} missing from SUPPORTED");
    }
}
