//! Gradients through the operators of transformer graphs, as `qdq finetune --distill`
//! takes them under burn's autodiff: each checked against a central finite difference
//! of the same graph run without autodiff.
//!
//! The checked scalar is `L = Σ_outputs Σ_i w_i · y_i` with fixed, distinct weights
//! `w_i` (a plain sum would hide errors: a softmax row sums to 1 whatever its input).
//! f64 is not available on the CPU backend, so the difference runs in f32 with step
//! `H = 1e-2` on inputs of magnitude ≤ 2: the truncation error is `H²/6 · |L'''|`
//! (≈ 2e-5 for these smooth ops) and the rounding error of `L` (≤ 40 terms of
//! magnitude ≤ 4, so |L| ≲ 50 and ε·|L| ≈ 6e-6) divided by `2H` is ≈ 3e-4. The
//! tolerance `2e-3 + 1e-2·|g|` is several times both, yet far below what a missing
//! term, a wrong sign or a dropped broadcast reduction would give (≥ 0.05 here).

use burn::prelude::*;
use burn::tensor::TensorData;
use onnx_ir::{ModelProto, TensorProto};

use crate::proto::elem as dtype;
use crate::proto::{
    attr_int, attr_ints, model, node, raw_tensor, tensor_f32, tensor_i64, value_info,
};
use crate::runtime::{DynTensor, OnnxGraph, Value};

const H: f32 = 1e-2;

fn dev() -> Device {
    Device::flex()
}

/// `n` values in [-2, 2), distinct, from a fixed hash of `seed`.
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let h = i
                .wrapping_mul(2654435761)
                .wrapping_add(seed.wrapping_mul(40503))
                .rotate_left(7)
                .wrapping_mul(0x9e37_79b9);
            ((h >> 8) % 4000) as f32 / 1000.0 - 2.0
        })
        .collect()
}

/// The weights of output `k`'s elements in `L`.
fn weights(k: usize, n: usize) -> Vec<f32> {
    values(n, 1000 + k as u32).iter().map(|v| v * 0.5).collect()
}

/// `L` of a plain run (no autodiff), summed in f64.
fn loss(graph: &OnnxGraph, inputs: &[(&str, Vec<f32>, Vec<usize>)]) -> f64 {
    let feed = inputs
        .iter()
        .map(|(n, v, s)| (n.to_string(), Value::from_f32(v.clone(), s, &dev())))
        .collect();
    graph
        .run(feed)
        .unwrap()
        .iter()
        .enumerate()
        .map(|(k, (_, y))| {
            let y = y.to_f32().unwrap();
            let w = weights(k, y.len());
            y.iter()
                .zip(&w)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
        })
        .sum()
}

/// Checks the autodiff gradient of `L` with respect to every input of `m` (all float,
/// given with their values and shapes) against the central difference; returns the
/// largest gradient magnitude seen, so a caller can also check it is not trivially 0.
fn check(m: &ModelProto, inputs: &[(&str, Vec<f32>, Vec<usize>)]) -> f32 {
    let graph = OnnxGraph::from_model(m, &dev()).unwrap();
    let ad = dev().autodiff();
    let leaves: Vec<Tensor<1>> = inputs
        .iter()
        .map(|(_, v, _)| {
            Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &ad).require_grad()
        })
        .collect();
    let feed = inputs
        .iter()
        .zip(&leaves)
        .map(|((n, _, s), t)| {
            let v = Value::Float(DynTensor::from_tensor(t.clone()).reshape(s).unwrap());
            (n.to_string(), v)
        })
        .collect();
    let mut total: Option<Tensor<1>> = None;
    for (k, (_, y)) in graph.run(feed).unwrap().into_iter().enumerate() {
        let n = y.shape().iter().product::<usize>();
        let Value::Float(y) = y else {
            panic!("output {k} is not float")
        };
        let y = y.reshape(&[n]).unwrap().to_rank::<1>().unwrap();
        let w = Tensor::<1>::from_data(TensorData::new(weights(k, n), [n]), &ad);
        let term = (y * w).sum();
        total = Some(match total {
            Some(t) => t + term,
            None => term,
        });
    }
    let grads = total.expect("the graph has outputs").backward();
    let mut largest = 0.0f32;
    for (i, ((name, v, _), leaf)) in inputs.iter().zip(&leaves).enumerate() {
        let g: Vec<f32> = match leaf.grad(&grads) {
            Some(g) => g.into_data().try_into_vec::<f32>().unwrap(),
            None => vec![0.0; v.len()],
        };
        assert_eq!(g.len(), v.len(), "gradient of {name}");
        for (j, &gj) in g.iter().enumerate() {
            let at = |d: f32| {
                let mut moved = inputs.to_vec();
                moved[i].1[j] += d;
                loss(&graph, &moved)
            };
            let fd = ((at(H) - at(-H)) / (2.0 * f64::from(H))) as f32;
            let tol = 2e-3 + 1e-2 * fd.abs();
            assert!(
                (gj - fd).abs() <= tol,
                "d L / d {name}[{j}]: autodiff {} vs finite difference {fd}",
                gj
            );
            largest = largest.max(gj.abs());
        }
    }
    largest
}

/// One input `(name, values, shape)` seeded by `seed`.
fn input(name: &'static str, shape: &[usize], seed: u32) -> (&'static str, Vec<f32>, Vec<usize>) {
    (name, values(shape.iter().product(), seed), shape.to_vec())
}

fn float_inputs(inputs: &[(&str, Vec<f32>, Vec<usize>)]) -> Vec<onnx_ir::ValueInfoProto> {
    inputs
        .iter()
        .map(|(n, _, s)| value_info(n, dtype::FLOAT, s))
        .collect()
}

/// A graph of `nodes` over float `inputs`, integer/bool initializers `inits`.
fn graph(
    nodes: Vec<onnx_ir::NodeProto>,
    inputs: &[(&str, Vec<f32>, Vec<usize>)],
    outputs: &[&str],
    inits: Vec<TensorProto>,
) -> ModelProto {
    model(nodes, float_inputs(inputs), outputs, inits, 17)
}

fn with(mut n: onnx_ir::NodeProto, attrs: Vec<onnx_ir::AttributeProto>) -> onnx_ir::NodeProto {
    n.attribute = attrs;
    n
}

#[test]
fn softmax_gradient_matches_finite_differences() {
    let ins = [input("x", &[2, 3, 4], 1)];
    let m = graph(
        vec![with(
            node("Softmax", "sm", &["x"], &["y"]),
            vec![attr_int("axis", -1)],
        )],
        &ins,
        &["y"],
        Vec::new(),
    );
    assert!(check(&m, &ins) > 0.05);
}

#[test]
fn layer_normalization_gradient_matches_finite_differences() {
    let ins = [
        input("x", &[2, 3, 4], 2),
        input("scale", &[4], 3),
        input("bias", &[4], 4),
    ];
    let m = graph(
        vec![with(
            node("LayerNormalization", "ln", &["x", "scale", "bias"], &["y"]),
            vec![attr_int("axis", -1)],
        )],
        &ins,
        &["y"],
        Vec::new(),
    );
    assert!(check(&m, &ins) > 0.05);
}

/// LayerNormalization as exporters before opset 17 write it: ReduceMean, Sub, Pow,
/// ReduceMean, Add, Sqrt, Div, Mul, Add.
#[test]
fn decomposed_layer_normalization_gradient_matches_finite_differences() {
    let ins = [
        input("x", &[2, 3, 4], 5),
        input("gamma", &[4], 6),
        input("beta", &[4], 7),
    ];
    let mean = |name: &str, i: &str, o: &str| {
        with(
            node("ReduceMean", name, &[i], &[o]),
            vec![attr_ints("axes", [-1])],
        )
    };
    let m = graph(
        vec![
            mean("m1", "x", "mu"),
            node("Sub", "sub", &["x", "mu"], &["d"]),
            node("Pow", "pow", &["d", "two"], &["d2"]),
            mean("m2", "d2", "var"),
            node("Add", "add_eps", &["var", "eps"], &["ve"]),
            node("Sqrt", "sqrt", &["ve"], &["sd"]),
            node("Div", "div", &["d", "sd"], &["n"]),
            node("Mul", "mul", &["n", "gamma"], &["ng"]),
            node("Add", "add", &["ng", "beta"], &["y"]),
        ],
        &ins,
        &["y"],
        vec![
            tensor_f32("two", &[], &[2.0]),
            tensor_f32("eps", &[], &[1e-5]),
        ],
    );
    assert!(check(&m, &ins) > 0.05);
}

/// GELU as BERT exports it: 0.5 · x · (1 + Erf(x / √2)).
#[test]
fn erf_gelu_gradient_matches_finite_differences() {
    let ins = [input("x", &[3, 4], 8)];
    let m = graph(
        vec![
            node("Div", "div", &["x", "sqrt2"], &["xs"]),
            node("Erf", "erf", &["xs"], &["e"]),
            node("Add", "add", &["e", "one"], &["e1"]),
            node("Mul", "mul", &["x", "e1"], &["xe"]),
            node("Mul", "half", &["xe", "h"], &["y"]),
        ],
        &ins,
        &["y"],
        vec![
            tensor_f32("sqrt2", &[], &[std::f32::consts::SQRT_2]),
            tensor_f32("one", &[], &[1.0]),
            tensor_f32("h", &[], &[0.5]),
        ],
    );
    assert!(check(&m, &ins) > 0.05);
}

/// An embedding lookup: rows read twice get both gradients; the int64 indices get none.
#[test]
fn gather_gradient_accumulates_repeated_rows() {
    let ins = [input("table", &[5, 4], 9)];
    let m = graph(
        vec![with(
            node("Gather", "g", &["table", "ids"], &["y"]),
            vec![attr_int("axis", 0)],
        )],
        &ins,
        &["y"],
        vec![tensor_i64("ids", &[2, 3], &[4, 0, 4, 1, -1, 2])],
    );
    assert!(check(&m, &ins) > 0.05);
}

/// Where with a broadcast branch (a [1, 3] row against [2, 3]): the row's gradient
/// sums over the rows that chose it.
#[test]
fn where_gradient_follows_the_condition() {
    let ins = [input("a", &[2, 3], 10), input("b", &[1, 3], 11)];
    let cond = raw_tensor("c", &[2, 3], dtype::BOOL, vec![1, 0, 1, 0, 0, 1]);
    let m = graph(
        vec![node("Where", "w", &["c", "a", "b"], &["y"])],
        &ins,
        &["y"],
        vec![cond],
    );
    assert!(check(&m, &ins) > 0.05);
}

#[test]
fn expand_gradient_sums_over_the_broadcast() {
    let ins = [input("x", &[3, 1], 12)];
    let m = graph(
        vec![node("Expand", "e", &["x", "shape"], &["y"])],
        &ins,
        &["y"],
        vec![tensor_i64("shape", &[3], &[2, 3, 4])],
    );
    assert!(check(&m, &ins) > 0.05);
}

#[test]
fn split_gradient_reaches_every_part() {
    let ins = [input("x", &[2, 6], 13)];
    let m = graph(
        vec![with(
            node("Split", "s", &["x", "split"], &["y0", "y1", "y2"]),
            vec![attr_int("axis", 1)],
        )],
        &ins,
        &["y0", "y1", "y2"],
        vec![tensor_i64("split", &[3], &[1, 2, 3])],
    );
    assert!(check(&m, &ins) > 0.05);
}

/// A strided slice: elements not read get exactly 0.
#[test]
fn slice_gradient_is_zero_where_not_read() {
    let ins = [input("x", &[3, 5], 14)];
    let m = graph(
        vec![node(
            "Slice",
            "s",
            &["x", "starts", "ends", "axes", "steps"],
            &["y"],
        )],
        &ins,
        &["y"],
        vec![
            tensor_i64("starts", &[2], &[1, 0]),
            tensor_i64("ends", &[2], &[3, 5]),
            tensor_i64("axes", &[2], &[0, 1]),
            tensor_i64("steps", &[2], &[1, 2]),
        ],
    );
    assert!(check(&m, &ins) > 0.05);
}

#[test]
fn transpose_reshape_concat_gradients_match_finite_differences() {
    let ins = [input("x", &[2, 3, 4], 15), input("z", &[4, 2], 16)];
    let m = graph(
        vec![
            with(
                node("Transpose", "t", &["x"], &["xt"]),
                vec![attr_ints("perm", [1, 2, 0])],
            ),
            node("Reshape", "r", &["xt", "shape"], &["xr"]),
            with(
                node("Concat", "c", &["xr", "z"], &["y"]),
                vec![attr_int("axis", 1)],
            ),
        ],
        &ins,
        &["y"],
        vec![tensor_i64("shape", &[2], &[4, -1])],
    );
    assert!(check(&m, &ins) > 0.05);
}

/// Self-attention's core on three activations: Softmax(Q·Kᵀ · s + mask) · V, the
/// MatMuls of two activations and the additive mask of a BERT export.
#[test]
fn attention_matmuls_of_two_activations_match_finite_differences() {
    let ins = [
        input("q", &[2, 3, 4], 17),
        input("k", &[2, 3, 4], 18),
        input("v", &[2, 3, 4], 19),
    ];
    let m = graph(
        vec![
            with(
                node("Transpose", "kt", &["k"], &["ktr"]),
                vec![attr_ints("perm", [0, 2, 1])],
            ),
            node("MatMul", "qk", &["q", "ktr"], &["s"]),
            node("Mul", "scale", &["s", "inv_sqrt_d"], &["ss"]),
            node("Add", "mask", &["ss", "m"], &["sm"]),
            with(
                node("Softmax", "p", &["sm"], &["p"]),
                vec![attr_int("axis", -1)],
            ),
            node("MatMul", "pv", &["p", "v"], &["y"]),
        ],
        &ins,
        &["y"],
        vec![
            tensor_f32("inv_sqrt_d", &[], &[0.5]),
            tensor_f32("m", &[1, 1, 3], &[0.0, 0.0, -10000.0]),
        ],
    );
    assert!(check(&m, &ins) > 0.05);
}
