//! Element types of every tensor of a graph, so placement quantizes only real numbers
//! (a `Concat` of int64 shape values feeding a `Reshape` is never quantized).
//!
//! Sources, in order of trust: graph inputs, outputs and `value_info` (declared),
//! initializers, `Constant` nodes, then each op's ONNX type constraints: the slots that
//! share one type variable (`Conv`'s X, W, B and Y are all `T`) and the slots of a fixed
//! type (`Shape` → int64). Inference runs both ways through a shared variable, so an
//! undeclared graph input read by a `Conv` with a float weight is float too. A tensor
//! no rule reaches has no entry: unknown, and so never quantized.
//!
//! A sequence or optional value counts with the element type of the tensors it holds
//! (ONNX's `S: seq(tensor(T))` shares `T`), so types flow through SequenceInsert,
//! SequenceAt or OptionalGetElement; no quantizable op reads a sequence, so placement
//! never puts Q/DQ on one.

use std::collections::HashMap;

use onnx_ir::{GraphProto, NodeProto, ValueInfoProto};

use crate::proto::elem as dt;

/// One input or output slot of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    In(usize),
    Out(usize),
}

/// An op's type constraints: groups of slots sharing one type, and slots of a fixed type.
#[derive(Debug, Default)]
struct Constraints {
    same: Vec<Vec<Slot>>,
    fixed: Vec<(Slot, i32)>,
}

/// Element type (ONNX `TensorProto.DataType` code) of every tensor of `graph` whose type
/// is declared or can be inferred; unknown tensors are absent.
pub fn elem_types(graph: &GraphProto) -> HashMap<String, i32> {
    elem_types_within(graph, HashMap::new())
}

/// [`elem_types`] of a subgraph, `outer` giving the types of the enclosing graphs' values
/// it reads (they seed the inference; the subgraph's own declarations come first).
pub fn elem_types_within(graph: &GraphProto, outer: HashMap<String, i32>) -> HashMap<String, i32> {
    let mut types: HashMap<String, i32> = HashMap::new();
    let declared = |v: &ValueInfoProto| {
        v.type_
            .as_ref()
            .filter(|t| t.has_tensor_type())
            .map(|t| t.tensor_type().elem_type)
            .filter(|&e| e != 0)
    };
    for v in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        if let Some(e) = declared(v) {
            types.entry(v.name.clone()).or_insert(e);
        }
    }
    for t in &graph.initializer {
        if t.data_type != 0 {
            types.entry(t.name.clone()).or_insert(t.data_type);
        }
    }
    for (name, e) in outer {
        types.entry(name).or_insert(e);
    }
    let rules: Vec<Constraints> = graph.node.iter().map(constraints).collect();
    // Each pass only fills unknown tensors, so it ends after at most one pass per
    // tensor; the cap keeps a hostile graph's cost at a few linear passes.
    for _ in 0..16 {
        let mut changed = false;
        for (node, rule) in graph.node.iter().zip(&rules) {
            changed |= propagate(node, rule, &mut types);
        }
        if !changed {
            break;
        }
    }
    types
}

/// The element type of `tensor` in `types` is float32, float16, bfloat16 or double.
pub fn is_float_tensor(types: &HashMap<String, i32>, tensor: &str) -> bool {
    types
        .get(tensor)
        .is_some_and(|&e| crate::proto::elem::is_float(e))
}

fn slot_name(node: &NodeProto, slot: Slot) -> Option<&str> {
    let name = match slot {
        Slot::In(i) => node.input.get(i),
        Slot::Out(i) => node.output.get(i),
    };
    name.map(String::as_str).filter(|s| !s.is_empty())
}

fn fill(types: &mut HashMap<String, i32>, name: &str, elem: i32) -> bool {
    if types.contains_key(name) {
        return false;
    }
    types.insert(name.to_string(), elem);
    true
}

fn propagate(node: &NodeProto, rule: &Constraints, types: &mut HashMap<String, i32>) -> bool {
    let mut changed = false;
    for &(slot, elem) in &rule.fixed {
        if let Some(name) = slot_name(node, slot) {
            changed |= fill(types, name, elem);
        }
    }
    for group in &rule.same {
        let names: Vec<&str> = group.iter().filter_map(|&s| slot_name(node, s)).collect();
        if let Some(elem) = names.iter().find_map(|n| types.get(*n).copied()) {
            for n in names {
                changed |= fill(types, n, elem);
            }
        }
    }
    changed
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a onnx_ir::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// The type of a `Constant`'s value attribute.
fn constant_type(node: &NodeProto) -> Option<i32> {
    node.attribute.iter().find_map(|a| match a.name.as_str() {
        "value" => a.t.as_ref().map(|t| t.data_type).filter(|&e| e != 0),
        "value_float" | "value_floats" => Some(dt::FLOAT),
        "value_int" | "value_ints" => Some(dt::INT64),
        "value_string" | "value_strings" => Some(dt::STRING),
        _ => None,
    })
}

/// Slots `In(from..node.input.len())`.
fn ins_from(node: &NodeProto, from: usize) -> Vec<Slot> {
    (from..node.input.len()).map(Slot::In).collect()
}

fn outs(node: &NodeProto) -> Vec<Slot> {
    (0..node.output.len()).map(Slot::Out).collect()
}

/// The ONNX type constraints of `node` (empty for an op not known here).
fn constraints(node: &NodeProto) -> Constraints {
    use Slot::{In, Out};
    let default_domain = node.domain.is_empty() || node.domain == "ai.onnx";
    let internal = node.domain == crate::runtime::INTERNAL_DOMAIN;
    let mut c = Constraints::default();
    if !default_domain {
        if internal && node.op_type == "FakeQuantizeLinear" {
            c.same.push(vec![In(0), Out(0)]);
        }
        if node.domain == crate::runtime::ML_DOMAIN && node.op_type == "Scaler" {
            c.fixed.push((Out(0), dt::FLOAT));
        }
        return c;
    }
    let all = || {
        let mut v = ins_from(node, 0);
        v.extend(outs(node));
        v
    };
    match node.op_type.as_str() {
        // Every input and output one type.
        "Abs"
        | "Acos"
        | "Acosh"
        | "Add"
        | "Asin"
        | "Asinh"
        | "Atan"
        | "Atanh"
        | "Ceil"
        | "Celu"
        | "Clip"
        | "Cos"
        | "Cosh"
        | "Div"
        | "Elu"
        | "Erf"
        | "Exp"
        | "Floor"
        | "Gelu"
        | "HardSigmoid"
        | "HardSwish"
        | "LeakyRelu"
        | "Log"
        | "Max"
        | "Mean"
        | "Min"
        | "Mod"
        | "Mul"
        | "Neg"
        | "PRelu"
        | "Reciprocal"
        | "Relu"
        | "Round"
        | "Selu"
        | "Sigmoid"
        | "Sign"
        | "Sin"
        | "Sinh"
        | "Softplus"
        | "Softsign"
        | "Sqrt"
        | "Sub"
        | "Sum"
        | "Tan"
        | "Tanh"
        | "ThresholdedRelu"
        | "Gemm"
        | "MatMul"
        | "Conv"
        | "ConvTranspose"
        | "InstanceNormalization"
        | "Concat"
        | "Range"
        | "Einsum" => c.same.push(all()),
        // The data input and every output.
        "AveragePool" | "GlobalAveragePool" | "GlobalMaxPool" | "LRN" | "Softmax"
        | "LogSoftmax" | "Flatten" | "Gather" | "GatherElements" | "Identity" | "Slice"
        | "Split" | "Squeeze" | "Unsqueeze" | "Transpose" | "Expand" | "Tile" | "Reshape"
        | "Pow" | "DepthToSpace" | "SpaceToDepth" => {
            let mut v = vec![In(0)];
            v.extend(outs(node));
            c.same.push(v);
            if matches!(
                node.op_type.as_str(),
                "Expand" | "Tile" | "Reshape" | "Squeeze" | "Unsqueeze" | "Split"
            ) {
                c.fixed.push((In(1), dt::INT64));
            }
        }
        o if o.starts_with("Reduce") => {
            c.same.push(vec![In(0), Out(0)]);
            c.fixed.push((In(1), dt::INT64));
        }
        "MaxPool" | "TopK" => {
            c.same.push(vec![In(0), Out(0)]);
            c.fixed.push((Out(1), dt::INT64));
            if node.op_type == "TopK" {
                c.fixed.push((In(1), dt::INT64));
            }
        }
        // X, W, R, B, initial states, P and every output one type; sequence_lens int32.
        "LSTM" | "GRU" | "RNN" => {
            let mut v: Vec<Slot> = (0..node.input.len()).filter(|&i| i != 4).map(In).collect();
            v.extend(outs(node));
            c.same.push(v);
            c.fixed.push((In(4), dt::INT32));
        }
        "NonMaxSuppression" => {
            c.same.push(vec![In(0), In(1)]);
            c.fixed.push((In(2), dt::INT64));
            c.fixed.push((In(3), dt::FLOAT));
            c.fixed.push((In(4), dt::FLOAT));
            c.fixed.push((Out(0), dt::INT64));
        }
        // Outputs take their types from the subgraphs, which this pass does not enter.
        "If" => c.fixed.push((In(0), dt::BOOL)),
        "Loop" => {
            c.fixed.push((In(0), dt::INT64));
            c.fixed.push((In(1), dt::BOOL));
            // loop-carried values keep their type
            let carried = node.input.len().saturating_sub(2);
            c.same.extend((0..carried).map(|j| vec![In(j + 2), Out(j)]));
        }
        "Scan" => {
            let scans = attr(node, "num_scan_inputs").map_or(0, |a| a.i.max(0) as usize);
            let states = node.input.len().saturating_sub(scans);
            c.same.extend((0..states).map(|j| vec![In(j), Out(j)]));
        }
        "BatchNormalization" => {
            c.same.push(vec![In(0), In(1), In(2), Out(0)]);
            c.same.push(vec![In(3), In(4), Out(1), Out(2)]);
        }
        "LayerNormalization" => {
            c.same.push(vec![In(0), In(1), In(2), Out(0)]);
            let stash = attr(node, "stash_type").map_or(dt::FLOAT, |a| a.i as i32);
            c.fixed.push((Out(1), stash));
            c.fixed.push((Out(2), stash));
        }
        "Dropout" => {
            c.same.push(vec![In(0), Out(0)]);
            c.fixed.push((Out(1), dt::BOOL));
        }
        "Pad" => {
            c.same.push(vec![In(0), In(2), Out(0)]);
            c.fixed.push((In(1), dt::INT64));
        }
        "Resize" | "Upsample" => {
            c.same.push(vec![In(0), Out(0)]);
            let scales = if node.op_type == "Upsample" { 1 } else { 2 };
            c.fixed.push((In(scales), dt::FLOAT));
            c.fixed.push((In(3), dt::INT64));
        }
        "Where" => {
            c.fixed.push((In(0), dt::BOOL));
            c.same.push(vec![In(1), In(2), Out(0)]);
        }
        "Equal" | "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual" => {
            c.same.push(vec![In(0), In(1)]);
            c.fixed.push((Out(0), dt::BOOL));
        }
        "Not" | "And" | "Or" | "Xor" => {
            c.fixed.extend(all().into_iter().map(|s| (s, dt::BOOL)));
        }
        "Shape" | "Size" | "ArgMax" | "ArgMin" | "NonZero" | "SequenceLength" => {
            c.fixed.push((Out(0), dt::INT64))
        }
        // Sequences and optionals: typed by the tensors they hold (see the module doc).
        "SequenceConstruct" => c.same.push(all()),
        "SequenceInsert" => c.same.push(vec![In(0), In(1), Out(0)]),
        "SequenceAt" | "SequenceErase" | "SplitToSequence" | "ConcatFromSequence" | "Optional"
        | "OptionalGetElement" => c.same.push(vec![In(0), Out(0)]),
        "SequenceEmpty" => {
            let elem = attr(node, "dtype").map_or(dt::FLOAT, |a| a.i as i32);
            c.fixed.push((Out(0), elem));
        }
        "OptionalHasElement" => c.fixed.push((Out(0), dt::BOOL)),
        // The body's declared inputs and outputs: element j of input j (or the whole
        // tensor), and the elements of output k.
        "SequenceMap" => {
            if let Some(body) = attr(node, "body").and_then(|a| a.g.as_ref()) {
                let declared = |v: &ValueInfoProto| {
                    let mut t = v.type_.as_ref()?;
                    if t.has_sequence_type() {
                        t = t.sequence_type().elem_type.as_ref()?;
                    }
                    Some(t.tensor_type().elem_type).filter(|&e| e != 0)
                };
                for (j, v) in body.input.iter().enumerate() {
                    c.fixed.extend(declared(v).map(|e| (In(j), e)));
                }
                for (k, v) in body.output.iter().enumerate() {
                    c.fixed.extend(declared(v).map(|e| (Out(k), e)));
                }
            }
        }
        "Cast" => {
            if let Some(to) = attr(node, "to").map(|a| a.i as i32).filter(|&e| e != 0) {
                c.fixed.push((Out(0), to));
            }
        }
        "CastLike" => c.same.push(vec![In(1), Out(0)]),
        "Constant" => {
            if let Some(e) = constant_type(node) {
                c.fixed.push((Out(0), e));
            }
        }
        "ConstantOfShape" => {
            let e = attr(node, "value")
                .and_then(|a| a.t.as_ref())
                .map_or(dt::FLOAT, |t| t.data_type);
            c.fixed.push((In(0), dt::INT64));
            c.fixed.push((Out(0), e));
        }
        "OneHot" => c.same.push(vec![In(2), Out(0)]),
        "QuantizeLinear" => {
            c.same.push(vec![In(0), In(1)]);
            if slot_name(node, In(2)).is_some() {
                c.same.push(vec![In(2), Out(0)]);
            } else {
                // Opset 21's output_dtype, else uint8 (the op's default).
                let e = attr(node, "output_dtype")
                    .map(|a| a.i as i32)
                    .filter(|&e| e != 0)
                    .unwrap_or(dt::UINT8);
                c.fixed.push((Out(0), e));
            }
        }
        "DequantizeLinear" => {
            c.same.push(vec![In(0), In(2)]);
            c.same.push(vec![In(1), Out(0)]);
        }
        _ => host_kernel_constraints(node, &mut c),
    }
    c
}

/// Type rules of the runtime's host-kernel ops (gathers, scatters, losses, signal and
/// integer ops), from their ONNX schemas.
fn host_kernel_constraints(node: &NodeProto, c: &mut Constraints) {
    use Slot::{In, Out};
    let float_out = |c: &mut Constraints| {
        let e = attr(node, "output_datatype").map_or(dt::FLOAT, |a| a.i as i32);
        c.fixed.push((Out(0), e));
    };
    match node.op_type.as_str() {
        "BitShift" => c.same.push(vec![In(0), In(1), Out(0)]),
        "GatherND"
        | "Compress"
        | "ReverseSequence"
        | "Trilu"
        | "CumSum"
        | "Hardmax"
        | "Shrink"
        | "MeanVarianceNormalization"
        | "Det"
        | "DFT"
        | "GridSample" => {
            c.same.push(vec![In(0), Out(0)]);
        }
        "ScatterElements" | "Scatter" | "ScatterND" => c.same.push(vec![In(0), In(2), Out(0)]),
        "EyeLike" | "RandomNormalLike" | "RandomUniformLike" => {
            match attr(node, "dtype").map(|a| a.i as i32).filter(|&e| e != 0) {
                Some(e) => c.fixed.push((Out(0), e)),
                None => c.same.push(vec![In(0), Out(0)]),
            }
        }
        "RandomNormal" | "RandomUniform" => {
            let e = attr(node, "dtype").map_or(dt::FLOAT, |a| a.i as i32);
            c.fixed.push((Out(0), e));
        }
        "Unique" => {
            c.same.push(vec![In(0), Out(0)]);
            c.fixed.extend([1, 2, 3].map(|k| (Out(k), dt::INT64)));
        }
        "IsInf" | "IsNaN" => c.fixed.push((Out(0), dt::BOOL)),
        "NegativeLogLikelihoodLoss" => c.same.push(vec![In(0), In(2), Out(0)]),
        "SoftmaxCrossEntropyLoss" => c.same.push(vec![In(0), In(2), Out(0), Out(1)]),
        "STFT" => c.same.push(vec![In(0), In(2), Out(0)]),
        "HannWindow" | "HammingWindow" | "BlackmanWindow" | "MelWeightMatrix" => float_out(c),
        "DynamicQuantizeLinear" => {
            c.fixed.push((In(0), dt::FLOAT));
            c.fixed.push((Out(0), dt::UINT8));
            c.fixed.push((Out(1), dt::FLOAT));
            c.fixed.push((Out(2), dt::UINT8));
        }
        "MatMulInteger" | "ConvInteger" => {
            c.same.push(vec![In(0), In(2)]);
            c.same.push(vec![In(1), In(3)]);
            c.fixed.push((Out(0), dt::INT32));
        }
        "QLinearMatMul" | "QLinearConv" => {
            c.same.push(vec![In(0), In(2)]);
            c.same.push(vec![In(3), In(5)]);
            c.same.push(vec![In(7), Out(0)]);
            c.fixed.push((In(1), dt::FLOAT));
            if node.op_type == "QLinearConv" {
                c.fixed.push((In(8), dt::INT32));
            }
        }
        "RoiAlign" => {
            c.same.push(vec![In(0), In(1), Out(0)]);
            c.fixed.push((In(2), dt::INT64));
        }
        "MaxUnpool" => {
            c.same.push(vec![In(0), Out(0)]);
            c.fixed.push((In(1), dt::INT64));
            c.fixed.push((In(2), dt::INT64));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{node, tensor_f32, tensor_i64, value_info_named};

    fn graph(nodes: Vec<NodeProto>) -> GraphProto {
        let mut g = GraphProto::new();
        g.node = nodes;
        g
    }

    #[test]
    fn every_supported_op_has_a_rule() {
        for &op in crate::runtime::supported_ops() {
            let mut n = node(op, "n", &["a", "b", "c"], &["y"]);
            if op == "Cast" {
                n.attribute
                    .push(crate::proto::attr_int("to", i64::from(dt::INT32)));
            }
            if op == "Constant" {
                n.attribute.push(crate::proto::attr_int("value_int", 3));
            }
            if op == "SequenceMap" {
                let mut body = graph(vec![node("Identity", "i", &["x"], &["y"])]);
                body.input
                    .push(value_info_named("x", dt::FLOAT, &[2], None));
                body.output
                    .push(value_info_named("y", dt::FLOAT, &[2], None));
                let mut a = onnx_ir::AttributeProto::new();
                a.name = "body".into();
                a.g = Some(body).into();
                n.attribute.push(a);
            }
            let c = constraints(&n);
            assert!(
                !c.same.is_empty() || !c.fixed.is_empty(),
                "`{op}` has no type rule"
            );
        }
    }

    #[test]
    fn shape_arithmetic_is_int64_and_conv_is_float() {
        // x (undeclared) -> Conv(w float) ; Shape(x) -> Gather -> Unsqueeze -> Concat
        // with an int64 constant -> Reshape(conv, concat) ; Equal -> Where.
        let mut g = graph(vec![
            node("Conv", "conv", &["x", "w"], &["c"]),
            node("Shape", "shape", &["c"], &["s"]),
            node("Gather", "gather", &["s", "i0"], &["g"]),
            node("Unsqueeze", "unsq", &["g", "axes"], &["u"]),
            node("Concat", "cat", &["u", "minus1"], &["target"]),
            node("Reshape", "reshape", &["c", "target"], &["r"]),
            node("Equal", "eq", &["r", "r"], &["m"]),
            node("Cast", "cast", &["m"], &["mf"]),
            node("Where", "where", &["m", "r", "h"], &["out"]),
            node("QuantizeLinear", "q", &["out", "sc"], &["q"]),
            node("DequantizeLinear", "dq", &["q", "sc"], &["dq"]),
        ]);
        g.node[7]
            .attribute
            .push(crate::proto::attr_int("to", i64::from(dt::FLOAT16)));
        g.initializer = vec![
            tensor_f32("w", &[2, 1, 1, 1], &[1.0, 2.0]),
            tensor_i64("i0", &[], &[0]),
            tensor_i64("axes", &[1], &[0]),
            tensor_i64("minus1", &[1], &[-1]),
            tensor_f32("sc", &[], &[0.1]),
        ];
        g.value_info
            .push(value_info_named("h", dt::FLOAT, &[1], None));
        let t = elem_types(&g);
        let want = [
            ("x", dt::FLOAT),
            ("c", dt::FLOAT),
            ("s", dt::INT64),
            ("g", dt::INT64),
            ("u", dt::INT64),
            ("target", dt::INT64),
            ("r", dt::FLOAT),
            ("m", dt::BOOL),
            ("mf", dt::FLOAT16),
            ("out", dt::FLOAT),
            ("h", dt::FLOAT),
            ("q", dt::UINT8),
            ("dq", dt::FLOAT),
        ];
        for (name, e) in want {
            assert_eq!(t.get(name), Some(&e), "{name}");
        }
        assert!(is_float_tensor(&t, "r") && !is_float_tensor(&t, "target"));
    }

    #[test]
    fn unreachable_tensors_stay_unknown() {
        let g = graph(vec![
            node("Relu", "relu", &["x"], &["y"]),
            node("Custom", "c", &["y"], &["z"]),
        ]);
        let t = elem_types(&g);
        assert!(t.is_empty(), "{t:?}");
        assert!(!is_float_tensor(&t, "x"));
    }
}
