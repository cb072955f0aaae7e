//! Rules every model must meet, quantized or not, because runtimes reject the file
//! otherwise: a non-empty graph, a defined opset, unique initializers, one producer per
//! tensor, and nodes in an acyclic topological order.

use std::collections::{HashMap, HashSet};

use onnx_ir::{GraphProto, ModelProto};

use super::{Rule, Violation, node_name};
use crate::proto::version::{MAX_OPSET, model_opset};

fn violation(rule: Rule, node: &str, message: String, fix: &str) -> Violation {
    Violation {
        rule,
        node: node.to_string(),
        message,
        fix: fix.to_string(),
    }
}

/// The model-level rules; returns the graph when there is one to check further.
pub(super) fn check_model<'a>(
    model: &'a ModelProto,
    out: &mut Vec<Violation>,
) -> Option<&'a GraphProto> {
    let opset = model_opset(model);
    if opset == 0 {
        out.push(violation(
            Rule::OpsetRange,
            "model",
            "the model imports no default-domain opset".into(),
            "add an opset_import for the default domain (\"\") with the opset the model was written for",
        ));
    } else if !(1..=MAX_OPSET).contains(&opset) {
        out.push(violation(
            Rule::OpsetRange,
            "model",
            format!("default-domain opset {opset} is not one ONNX defines (1 to {MAX_OPSET})"),
            "re-export or convert the model with an opset ONNX defines",
        ));
    }
    let Some(graph) = model.graph.as_ref() else {
        out.push(violation(
            Rule::EmptyGraph,
            "model",
            "the model has no graph".into(),
            "export the model again; the file holds no computation",
        ));
        return None;
    };
    if graph.node.is_empty() {
        out.push(violation(
            Rule::EmptyGraph,
            "graph",
            "the graph has no nodes".into(),
            "export the model again; the graph computes nothing",
        ));
    }
    if graph.output.is_empty() {
        out.push(violation(
            Rule::EmptyGraph,
            "graph",
            "the graph has no outputs".into(),
            "declare the tensors the model returns as graph outputs",
        ));
    }
    check_graph(graph, out);
    Some(graph)
}

fn check_graph(graph: &GraphProto, out: &mut Vec<Violation>) {
    // Unique initializer names.
    let mut inits: HashSet<&str> = HashSet::new();
    for t in &graph.initializer {
        if !inits.insert(t.name.as_str()) {
            out.push(violation(
                Rule::UniqueInitializer,
                &t.name,
                format!("initializer `{}` is defined more than once", t.name),
                "keep one initializer of each name (rename or drop the duplicate)",
            ));
        }
    }
    let inputs: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    // One producer per tensor, and never a graph input or an initializer.
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if let Some(&first) = producer.get(o.as_str()) {
                out.push(violation(
                    Rule::SingleProducer,
                    &node_name(n),
                    format!(
                        "tensor `{o}` is written by node `{}` and again by this node",
                        node_name(&graph.node[first])
                    ),
                    "give each node output a name of its own",
                ));
                continue;
            }
            if inputs.contains(o.as_str()) || inits.contains(o.as_str()) {
                let what = if inputs.contains(o.as_str()) {
                    "a graph input"
                } else {
                    "an initializer"
                };
                out.push(violation(
                    Rule::SingleProducer,
                    &node_name(n),
                    format!("the node writes `{o}`, which is {what}"),
                    "rename the node's output",
                ));
            }
            producer.insert(o, i);
        }
    }
    check_order(graph, &producer, &inputs, &inits, out);
}

/// Every node input is defined before it is read, and the graph has no cycle.
fn check_order(
    graph: &GraphProto,
    producer: &HashMap<&str, usize>,
    inputs: &HashSet<&str>,
    inits: &HashSet<&str>,
    out: &mut Vec<Violation>,
) {
    let on_cycle = cycle_nodes(graph, producer, inputs, inits);
    if !on_cycle.is_empty() {
        let names: Vec<String> = on_cycle
            .iter()
            .take(5)
            .map(|&i| format!("`{}`", node_name(&graph.node[i])))
            .collect();
        out.push(violation(
            Rule::Topology,
            &node_name(&graph.node[on_cycle[0]]),
            format!(
                "the graph has a cycle: {} node(s) wait on themselves through it: {}{}",
                on_cycle.len(),
                names.join(", "),
                if on_cycle.len() > 5 { ", ..." } else { "" }
            ),
            "break the cycle: a node may read only graph inputs, initializers and earlier outputs",
        ));
    }
    let cyclic: HashSet<usize> = on_cycle.into_iter().collect();
    let defined_outside = |t: &str| inputs.contains(t) || inits.contains(t);
    for (i, n) in graph.node.iter().enumerate() {
        for t in n.input.iter().filter(|t| !t.is_empty()) {
            if defined_outside(t) {
                continue;
            }
            match producer.get(t.as_str()) {
                Some(&p) if p < i => {}
                Some(_) if cyclic.contains(&i) => {}
                Some(&p) => out.push(violation(
                    Rule::Topology,
                    &node_name(n),
                    format!(
                        "the node reads `{t}` before node `{}` writes it",
                        node_name(&graph.node[p])
                    ),
                    "sort the nodes topologically (producers before consumers)",
                )),
                None => out.push(violation(
                    Rule::Topology,
                    &node_name(n),
                    format!(
                        "the node reads `{t}`, which no node, graph input or initializer defines"
                    ),
                    "declare it as a graph input or initializer, or fix the input name",
                )),
            }
        }
    }
    for o in &graph.output {
        if !defined_outside(&o.name) && !producer.contains_key(o.name.as_str()) {
            out.push(violation(
                Rule::Topology,
                &o.name,
                format!("graph output `{}` is never computed", o.name),
                "remove the output or fix its name",
            ));
        }
    }
}

/// Nodes that depend on themselves (Kahn's algorithm: what never becomes ready).
fn cycle_nodes(
    graph: &GraphProto,
    producer: &HashMap<&str, usize>,
    inputs: &HashSet<&str>,
    inits: &HashSet<&str>,
) -> Vec<usize> {
    let n = graph.node.len();
    let mut pending = vec![0usize; n];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in graph.node.iter().enumerate() {
        let mut deps: HashSet<usize> = HashSet::new();
        for t in node.input.iter().filter(|t| !t.is_empty()) {
            if inputs.contains(t.as_str()) || inits.contains(t.as_str()) {
                continue;
            }
            if let Some(&p) = producer.get(t.as_str()) {
                deps.insert(p);
            }
        }
        pending[i] = deps.len();
        for p in deps {
            readers[p].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut done = vec![false; n];
    while let Some(i) = ready.pop() {
        done[i] = true;
        for &r in &readers[i] {
            pending[r] -= 1;
            if pending[r] == 0 {
                ready.push(r);
            }
        }
    }
    (0..n).filter(|&i| !done[i]).collect()
}

#[cfg(test)]
mod tests {
    use crate::lint::{Rule, Violation, lint};
    use crate::proto::elem as dt;
    use crate::proto::{model, node, tensor_f32, value_info};
    use onnx_ir::ModelProto;

    /// x -> Relu (a) -> Relu (y): passes every rule.
    fn good() -> ModelProto {
        model(
            vec![
                node("Relu", "r1", &["x"], &["a"]),
                node("Relu", "r2", &["a"], &["y"]),
            ],
            vec![value_info("x", dt::FLOAT, &[2])],
            &["y"],
            vec![tensor_f32("w", &[1], &[1.0])],
            17,
        )
    }

    fn found(v: &[Violation]) -> Vec<(Rule, &str)> {
        v.iter().map(|x| (x.rule, x.node.as_str())).collect()
    }

    #[test]
    fn a_plain_graph_passes() {
        assert_eq!(lint(&good()), vec![]);
    }

    #[test]
    fn no_graph_no_nodes_and_no_outputs_are_violations() {
        let mut m = good();
        m.graph = None.into();
        let v = lint(&m);
        assert_eq!(found(&v), [(Rule::EmptyGraph, "model")]);
        assert!(v[0].message.contains("no graph"), "{}", v[0]);
        let mut m = good();
        m.graph.as_mut().unwrap().node.clear();
        m.graph.as_mut().unwrap().output.clear();
        let v = lint(&m);
        assert_eq!(
            found(&v),
            [(Rule::EmptyGraph, "graph"), (Rule::EmptyGraph, "graph")]
        );
        assert!(v[0].message.contains("no nodes") && v[1].message.contains("no outputs"));
    }

    #[test]
    fn opsets_onnx_does_not_define_are_violations() {
        for (opset, what) in [
            (99, "opset 99 is not one ONNX defines (1 to 28)"),
            (-1, "opset -1"),
        ] {
            let mut m = good();
            m.opset_import[0].version = opset;
            let v = lint(&m);
            assert_eq!(found(&v), [(Rule::OpsetRange, "model")]);
            assert!(v[0].message.contains(what), "{}", v[0]);
        }
        let mut m = good();
        m.opset_import.clear();
        let v = lint(&m);
        assert_eq!(found(&v), [(Rule::OpsetRange, "model")]);
        assert!(v[0].message.contains("no default-domain opset"), "{}", v[0]);
        let mut m = good();
        m.opset_import[0].version = crate::proto::version::MAX_OPSET;
        assert_eq!(lint(&m), vec![]);
    }

    #[test]
    fn duplicate_producers_and_initializers_are_named() {
        let mut m = good();
        let g = m.graph.as_mut().unwrap();
        g.node.push(node("Relu", "r3", &["x"], &["a"]));
        g.node.push(node("Relu", "r4", &["a"], &["w"]));
        g.node.push(node("Relu", "r5", &["a"], &["x"]));
        g.initializer.push(tensor_f32("w", &[1], &[2.0]));
        let v = lint(&m);
        assert_eq!(
            found(&v),
            [
                (Rule::UniqueInitializer, "w"),
                (Rule::SingleProducer, "r3"),
                (Rule::SingleProducer, "r4"),
                (Rule::SingleProducer, "r5"),
            ]
        );
        assert!(
            v[1].message.contains("`a` is written by node `r1`"),
            "{}",
            v[1]
        );
        assert!(
            v[2].message.contains("`w`, which is an initializer"),
            "{}",
            v[2]
        );
        assert!(
            v[3].message.contains("`x`, which is a graph input"),
            "{}",
            v[3]
        );
    }

    #[test]
    fn cycles_misordered_and_undefined_inputs_are_violations() {
        // r1 reads a, which r2 writes from r1's output: a cycle.
        let mut m = good();
        m.graph.as_mut().unwrap().node = vec![
            node("Add", "r1", &["x", "b"], &["a"]),
            node("Relu", "r2", &["a"], &["b"]),
            node("Relu", "r3", &["a"], &["y"]),
        ];
        let v = lint(&m);
        assert_eq!(found(&v), [(Rule::Topology, "r1")]);
        assert!(v[0].message.contains("cycle"), "{}", v[0]);
        // Acyclic but out of order.
        let mut m = good();
        m.graph.as_mut().unwrap().node.reverse();
        let v = lint(&m);
        assert_eq!(found(&v), [(Rule::Topology, "r2")]);
        assert!(
            v[0].message
                .contains("reads `a` before node `r1` writes it"),
            "{}",
            v[0]
        );
        // An input nothing defines, and an output nothing computes.
        let mut m = good();
        let g = m.graph.as_mut().unwrap();
        g.node[1].input[0] = "nowhere".into();
        g.output[0].name = "z".into();
        let v = lint(&m);
        assert_eq!(found(&v), [(Rule::Topology, "r2"), (Rule::Topology, "z")]);
        assert!(v[0].message.contains("`nowhere`"), "{}", v[0]);
    }
}
