//! Raising a model's opset so per-channel scales (13), FP8 (19) or INT4 (21) can be
//! written, rewriting the nodes whose form changed on the way (attributes that became
//! inputs, Softmax's axis semantics, GridSample's mode names), and refusing, by name,
//! what it cannot rewrite (Upsample at 10, DFT's axis input at 20, GroupNormalization's
//! per-channel scale at 21).

use onnx_ir::{GraphProto, ModelProto, NodeProto};

use super::error::{PassError, PassResult};
pub use crate::proto::version::{MAX_OPSET, ir_version_for, model_opset};
use crate::proto::{attr_int, node, tensor_i64};

/// Refuses an opset outside `1..=MAX_OPSET` (the ones the ONNX standard defines),
/// naming it and the range; `what` is the step asking (`quantize`, `--opset`...).
///
/// # Errors
/// [`PassError::OpsetRange`].
pub fn check_opset(opset: i64, what: &'static str) -> PassResult<()> {
    if (1..=MAX_OPSET).contains(&opset) {
        return Ok(());
    }
    Err(PassError::OpsetRange {
        opset,
        what,
        min: 1,
        max: MAX_OPSET,
        note: " (the default-domain opsets the ONNX standard defines)",
    })
}

/// Raises `model` to opset `target` (no-op when it is there already).
///
/// # Errors
/// A `target` ONNX does not define ([`PassError::OpsetRange`]); a node whose semantics
/// changed in a way not rewritten here (named, with its op).
pub fn upgrade_opset(model: &mut ModelProto, target: i64) -> PassResult<()> {
    check_opset(target, "the opset upgrade")?;
    let from = model_opset(model);
    if from >= target {
        return Ok(());
    }
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| PassError::Graph("the model has no graph".into()))?;
    upgrade_graph(graph, from, target, &mut 0)?;
    for o in model
        .opset_import
        .iter_mut()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    {
        o.version = target;
    }
    // From IR 4 initializers need not be graph inputs (folded weights are not).
    model.ir_version = model.ir_version.max(ir_version_for(target));
    Ok(())
}

/// Rewrites the nodes of `graph` and, first, of its nodes' subgraphs (If branches,
/// Loop and Scan bodies share the model's opset); `counter` numbers new names across
/// all of them.
fn upgrade_graph(
    graph: &mut GraphProto,
    from: i64,
    target: i64,
    counter: &mut usize,
) -> PassResult<()> {
    let nodes = std::mem::take(&mut graph.node);
    for mut n in nodes {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            graph.node.push(n);
            continue;
        }
        for a in &mut n.attribute {
            if let Some(g) = a.g.as_mut() {
                upgrade_graph(g, from, target, counter)?;
            }
            for g in &mut a.graphs {
                upgrade_graph(g, from, target, counter)?;
            }
        }
        let crosses = |v: i64| from < v && target >= v;
        let name = if n.name.is_empty() {
            n.output.first().cloned().unwrap_or_default()
        } else {
            n.name.clone()
        };
        let mut fresh = |what: &str| {
            *counter += 1;
            format!("{name}_{what}_v{target}_{counter}")
        };
        match n.op_type.as_str() {
            "Upsample" if crosses(10) => {
                return Err(PassError::Graph(format!(
                    "node `{name}` (Upsample) was removed in opset 10; re-export the model with Resize, or keep opset {from} (no per-channel/FP8)"
                )));
            }
            "Slice" if crosses(10) => {
                let starts = take_ints(&mut n, "starts");
                let ends = take_ints(&mut n, "ends");
                let axes = take_ints(&mut n, "axes");
                let mut inputs = vec![n.input[0].clone()];
                for (what, v) in [("starts", starts), ("ends", ends)] {
                    inputs.push(const_input(graph, &fresh(what), &v.unwrap_or_default()));
                }
                if let Some(axes) = axes {
                    inputs.push(const_input(graph, &fresh("axes"), &axes));
                }
                n.input = inputs;
            }
            "Clip" if crosses(11) => {
                let min = take_float(&mut n, "min");
                let max = take_float(&mut n, "max");
                let mut inputs = vec![n.input[0].clone()];
                for (what, v) in [("min", min), ("max", max)] {
                    match v {
                        Some(v) => {
                            let t = fresh(what);
                            graph
                                .initializer
                                .push(crate::proto::tensor_f32(&t, &[], &[v]));
                            inputs.push(t);
                        }
                        None => inputs.push(String::new()),
                    }
                }
                while inputs.last().is_some_and(String::is_empty) {
                    inputs.pop();
                }
                n.input = inputs;
            }
            "Pad" if crosses(11) => {
                let pads = take_ints(&mut n, "pads").unwrap_or_default();
                let value = take_float(&mut n, "value").unwrap_or(0.0);
                let p = const_input(graph, &fresh("pads"), &pads);
                let v = fresh("value");
                graph
                    .initializer
                    .push(crate::proto::tensor_f32(&v, &[], &[value]));
                n.input = vec![n.input[0].clone(), p, v];
            }
            "Dropout" if crosses(12) => {
                take_float(&mut n, "ratio");
            }
            "Squeeze" | "Unsqueeze" if crosses(13) => {
                if let Some(axes) = take_ints(&mut n, "axes") {
                    let a = const_input(graph, &fresh("axes"), &axes);
                    n.input.truncate(1);
                    n.input.push(a);
                }
            }
            "ReduceSum" if crosses(13) => axes_to_input(graph, &mut n, &mut fresh),
            "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2"
            | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare"
                if crosses(18) =>
            {
                axes_to_input(graph, &mut n, &mut fresh)
            }
            "Split" if crosses(13) || crosses(18) => {
                if crosses(13)
                    && let Some(split) = take_ints(&mut n, "split")
                {
                    let s = const_input(graph, &fresh("split"), &split);
                    n.input.truncate(1);
                    n.input.push(s);
                }
                // From 18 an even split names its parts: `num_outputs` (before, the
                // number of outputs said it; ONNX Runtime and the checker refuse a Split
                // with neither).
                let sizes = n.input.get(1).is_some_and(|s| !s.is_empty());
                if crosses(18) && !sizes && !n.attribute.iter().any(|a| a.name == "num_outputs") {
                    n.attribute
                        .push(attr_int("num_outputs", n.output.len() as i64));
                }
            }
            "Softmax" | "LogSoftmax" | "Hardmax" if crosses(13) => {
                // Before 13: flatten to 2-D at `axis` (default 1), normalise rows. From
                // 13: along `axis` only. Rewrite as Flatten -> op(axis=-1) -> Reshape.
                let axis = take_int(&mut n, "axis").unwrap_or(1);
                let (x, y) = (n.input[0].clone(), n.output[0].clone());
                let (shape, flat, inner) = (fresh("shape"), fresh("flat"), fresh("inner"));
                graph.node.push(node("Shape", &shape, &[&x], &[&shape]));
                let mut f = node("Flatten", &flat, &[&x], &[&flat]);
                f.attribute.push(attr_int("axis", axis));
                graph.node.push(f);
                n.input = vec![flat];
                n.output = vec![inner.clone()];
                n.attribute.push(attr_int("axis", -1));
                graph.node.push(n);
                let r = fresh("reshape");
                graph
                    .node
                    .push(node("Reshape", &r, &[&inner, &shape], &[&y]));
                continue;
            }
            // Opset 20 renamed the modes (same sampling): bilinear -> linear, bicubic -> cubic.
            "GridSample" if crosses(20) => {
                for a in n.attribute.iter_mut().filter(|a| a.name == "mode") {
                    match &a.s[..] {
                        b"bilinear" => a.s = b"linear".to_vec().into(),
                        b"bicubic" => a.s = b"cubic".to_vec().into(),
                        _ => {}
                    }
                }
            }
            // Opset 20 moved `axis` (default 1) to an input (default -2).
            "DFT" if crosses(20) => {
                return Err(PassError::Graph(format!(
                    "node `{name}` (DFT) takes its axis as an input from opset 20, which qdq does not rewrite; keep opset {from} (no INT4 weights)"
                )));
            }
            // Opset 21 made scale and bias per channel [C] instead of per group.
            "GroupNormalization" if crosses(21) => {
                return Err(PassError::Graph(format!(
                    "node `{name}` (GroupNormalization) takes per-channel scale and bias from opset 21 (per-group before), which qdq does not rewrite; keep opset {from} (no INT4 weights), or re-export the model at opset 21"
                )));
            }
            // Opset 10's (X, scales) gains an roi input before scales.
            "Resize" if crosses(11) && n.input.len() == 2 => {
                let scales = n.input.pop().unwrap_or_default();
                n.input.push(String::new());
                n.input.push(scales);
            }
            _ => {}
        }
        graph.node.push(n);
    }
    Ok(())
}

fn take_attr(n: &mut NodeProto, name: &str) -> Option<onnx_ir::AttributeProto> {
    let i = n.attribute.iter().position(|a| a.name == name)?;
    Some(n.attribute.remove(i))
}

fn take_ints(n: &mut NodeProto, name: &str) -> Option<Vec<i64>> {
    take_attr(n, name).map(|a| a.ints)
}

fn take_int(n: &mut NodeProto, name: &str) -> Option<i64> {
    take_attr(n, name).map(|a| a.i)
}

fn take_float(n: &mut NodeProto, name: &str) -> Option<f32> {
    take_attr(n, name).map(|a| a.f)
}

fn const_input(graph: &mut GraphProto, name: &str, values: &[i64]) -> String {
    graph
        .initializer
        .push(tensor_i64(name, &[values.len()], values));
    name.to_string()
}

fn axes_to_input(
    graph: &mut GraphProto,
    n: &mut NodeProto,
    fresh: &mut impl FnMut(&str) -> String,
) {
    if let Some(axes) = take_ints(n, "axes") {
        let a = const_input(graph, &fresh("axes"), &axes);
        n.input.truncate(1);
        n.input.push(a);
    }
}
