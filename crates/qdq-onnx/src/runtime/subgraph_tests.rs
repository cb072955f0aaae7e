//! Subgraphs at load and run time: unsupported ops and undefined names inside them are
//! reported with the node that holds them, outer values they read live until that
//! node has run, and a Loop that never ends stops with an error.

use burn::tensor::Device;
use onnx_ir::{AttributeProto, GraphProto, NodeProto, ValueInfoProto};

use super::*;
use crate::proto::{model, node, value_info};

fn dev() -> Device {
    Device::flex()
}

/// A graph attribute `name` holding `nodes` with formal `inputs` and named `outputs`.
fn graph_attr(
    name: &str,
    nodes: Vec<NodeProto>,
    inputs: &[&str],
    outputs: &[&str],
) -> AttributeProto {
    let named = |n: &&str| {
        let mut v = ValueInfoProto::new();
        v.name = n.to_string();
        v
    };
    let mut g = GraphProto::new();
    g.node = nodes;
    g.input = inputs.iter().map(named).collect();
    g.output = outputs.iter().map(named).collect();
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = onnx_ir::AttributeType::GRAPH.into();
    a.g = Some(g).into();
    a
}

/// `If(c)` choosing `then` or `else_` (each yielding `t`).
fn if_node(then: Vec<NodeProto>, else_: Vec<NodeProto>) -> NodeProto {
    let mut n = node("If", "the_if", &["c"], &["y"]);
    n.attribute
        .push(graph_attr("then_branch", then, &[], &["t"]));
    n.attribute
        .push(graph_attr("else_branch", else_, &[], &["t"]));
    n
}

fn cond_model(nodes: Vec<NodeProto>, outputs: &[&str]) -> onnx_ir::ModelProto {
    model(
        nodes,
        vec![value_info("x", 1, &[3]), value_info("c", 9, &[])],
        outputs,
        vec![],
        17,
    )
}

fn feed(c: bool) -> Vec<(String, Value)> {
    vec![
        (
            "x".into(),
            Value::from_f32(vec![-1.0, 0.5, 2.0], &[3], &dev()),
        ),
        (
            "c".into(),
            Value::try_from_bool(vec![c], &[], &dev()).unwrap(),
        ),
    ]
}

#[test]
fn branches_read_outer_values_that_live_until_the_if_runs() {
    // `a` is last read at top level by Neg, before the If whose branches read it.
    let nodes = vec![
        node("Relu", "relu", &["x"], &["a"]),
        node("Neg", "neg", &["a"], &["b"]),
        if_node(
            vec![node("Identity", "t_id", &["a"], &["t"])],
            vec![node("Add", "e_add", &["a", "b"], &["t"])],
        ),
    ];
    let g = OnnxGraph::from_model(&cond_model(nodes, &["y", "b"]), &dev()).unwrap();
    let then = g.run(feed(true)).unwrap();
    assert_eq!(then[0].1.to_f32().unwrap(), [0.0, 0.5, 2.0]);
    let els = g.run(feed(false)).unwrap();
    assert_eq!(els[0].1.to_f32().unwrap(), [0.0, 0.0, 0.0]);
    assert_eq!(els[1].1.to_f32().unwrap(), [0.0, -0.5, -2.0]);
}

#[test]
fn unsupported_ops_in_branches_are_listed_with_their_node() {
    let nodes = vec![if_node(
        vec![node("NoSuchOp", "bad", &["x"], &["t"])],
        vec![node("Identity", "ok", &["x"], &["t"])],
    )];
    match OnnxGraph::from_model(&cond_model(nodes, &["y"]), &dev()) {
        Err(RunError::UnsupportedOps(v)) => {
            assert_eq!(v, [("NoSuchOp in If `the_if`".to_string(), 1)])
        }
        Err(e) => panic!("expected UnsupportedOps, got {e}"),
        Ok(_) => panic!("expected UnsupportedOps"),
    }
}

#[test]
fn undefined_names_in_branches_name_the_node() {
    let nodes = vec![if_node(
        vec![node("Identity", "reader", &["nowhere"], &["t"])],
        vec![node("Identity", "ok", &["x"], &["t"])],
    )];
    let Err(e) = OnnxGraph::from_model(&cond_model(nodes, &["y"]), &dev()) else {
        panic!("the load must fail");
    };
    let msg = e.to_string();
    assert!(
        msg.contains("then_branch") && msg.contains("the_if") && msg.contains("`nowhere`"),
        "{msg}"
    );
}

#[test]
fn a_failing_branch_node_is_named_with_its_if() {
    let nodes = vec![if_node(
        vec![node("Reshape", "bad_reshape", &["x", "x"], &["t"])],
        vec![node("Identity", "ok", &["x"], &["t"])],
    )];
    let g = OnnxGraph::from_model(&cond_model(nodes, &["y"]), &dev()).unwrap();
    let msg = g.run(feed(true)).unwrap_err().to_string();
    assert!(
        msg.starts_with("node `the_if` (If): node `bad_reshape` (Reshape)"),
        "{msg}"
    );
}

#[test]
fn an_endless_loop_stops_with_an_error() {
    // no trip count, and the body passes its condition (true) through
    let mut lp = node("Loop", "forever", &["", "c", "x"], &["y"]);
    lp.attribute.push(graph_attr(
        "body",
        vec![
            node("Identity", "keep", &["cond_in"], &["cond_out"]),
            node("Identity", "carry", &["v_in"], &["v_out"]),
        ],
        &["i", "cond_in", "v_in"],
        &["cond_out", "v_out"],
    ));
    let mut g = OnnxGraph::from_model(&cond_model(vec![lp], &["y"]), &dev()).unwrap();
    // the default (65536) takes about a second here; a lower limit keeps the test fast
    g.set_loop_limit(500);
    let msg = g.run(feed(true)).unwrap_err().to_string();
    assert!(
        msg.contains("`forever` (Loop)") && msg.contains("after 500 iterations"),
        "{msg}"
    );
    // a false condition runs no iteration and returns the initial value
    let out = g.run(feed(false)).unwrap();
    assert_eq!(out[0].1.to_f32().unwrap(), [-1.0, 0.5, 2.0]);
}

#[test]
fn observers_see_the_branch_taken_under_its_scope() {
    let nodes = vec![
        node("Relu", "relu", &["x"], &["a"]),
        if_node(
            vec![node("Neg", "t_neg", &["a"], &["t"])],
            vec![node("Identity", "e_id", &["a"], &["t"])],
        ),
    ];
    let g = OnnxGraph::from_model(&cond_model(nodes, &["y"]), &dev()).unwrap();
    for (c, inner, value) in [
        (true, "the_if/then_branch/t", [0.0, -0.5, -2.0]),
        (false, "the_if/else_branch/t", [0.0, 0.5, 2.0]),
    ] {
        let mut seen: Vec<(String, Vec<f32>)> = Vec::new();
        g.run_with(feed(c), &mut |n, v| {
            seen.push((n.to_string(), v.to_f32().unwrap()));
            Ok(())
        })
        .unwrap();
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", inner, "y"]);
        assert_eq!(seen[1].1, value);
    }
}
