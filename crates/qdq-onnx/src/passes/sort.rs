//! Node order: ONNX requires a graph's nodes in topological order (each node after the
//! nodes whose outputs it reads), and qdq's runtime and passes read them that way. Some
//! converters append nodes at the end (onnxconverter-common's float16 conversion with
//! `keep_io_types` puts the input Casts last); ONNX Runtime sorts such graphs when it
//! loads them, so users have them. [`sort_nodes`] does what ONNX Runtime does.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use onnx_ir::GraphProto;

use super::error::{PassError, PassResult};
use super::placement::node_label;
use super::subgraph::{graph_attrs, reads};
use crate::runtime::MAX_SUBGRAPH_DEPTH;

/// Puts the nodes of `graph` and of its subgraphs (at most [`MAX_SUBGRAPH_DEPTH`]
/// deep) in topological order, keeping the given order wherever it already is one (a
/// node goes as early as its inputs allow, ties in file order). A node holding
/// subgraphs depends on the values of this graph its subgraphs read. Returns whether
/// any node moved.
///
/// # Errors
/// A cycle (a node that needs its own output, through others), naming a node on it.
pub fn sort_nodes(graph: &mut GraphProto) -> PassResult<bool> {
    sort_within(graph, 0)
}

fn sort_within(graph: &mut GraphProto, depth: usize) -> PassResult<bool> {
    let mut moved = false;
    if depth < MAX_SUBGRAPH_DEPTH {
        for n in &mut graph.node {
            for a in &mut n.attribute {
                if let Some(g) = a.g.as_mut() {
                    moved |= sort_within(g, depth + 1)?;
                }
                for g in &mut a.graphs {
                    moved |= sort_within(g, depth + 1)?;
                }
            }
        }
    }
    let order = order(graph)?;
    if order.iter().enumerate().all(|(k, &i)| k == i) {
        return Ok(moved);
    }
    let mut nodes: Vec<Option<onnx_ir::NodeProto>> = std::mem::take(&mut graph.node)
        .into_iter()
        .map(Some)
        .collect();
    graph.node = order.into_iter().filter_map(|i| nodes[i].take()).collect();
    Ok(true)
}

/// A topological order of `graph`'s nodes (indices), earliest index first among the
/// ready ones.
fn order(graph: &GraphProto) -> PassResult<Vec<usize>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            producer.entry(o.as_str()).or_insert(i);
        }
    }
    // What each node waits for: the nodes of this graph producing what it (or a
    // subgraph of it) reads.
    let mut waits: Vec<HashSet<usize>> = Vec::with_capacity(graph.node.len());
    for (i, n) in graph.node.iter().enumerate() {
        let mut names: HashSet<&str> = n.input.iter().map(String::as_str).collect();
        for (_, g) in graph_attrs(n) {
            names.extend(reads(g));
        }
        waits.push(
            names
                .into_iter()
                .filter_map(|t| producer.get(t).copied())
                .filter(|&p| p != i)
                .collect(),
        );
    }
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
    for (i, w) in waits.iter().enumerate() {
        for &p in w {
            readers[p].push(i);
        }
    }
    let mut left: Vec<usize> = waits.iter().map(HashSet::len).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..graph.node.len())
        .filter(|&i| left[i] == 0)
        .map(Reverse)
        .collect();
    let mut out = Vec::with_capacity(graph.node.len());
    while let Some(Reverse(i)) = ready.pop() {
        out.push(i);
        for &r in &readers[i] {
            left[r] -= 1;
            if left[r] == 0 {
                ready.push(Reverse(r));
            }
        }
    }
    if out.len() < graph.node.len() {
        let stuck = (0..graph.node.len()).find(|&i| left[i] > 0).unwrap_or(0);
        return Err(PassError::Graph(format!(
            "the graph has a cycle: node `{}` ({}) needs its own output, through other nodes",
            node_label(&graph.node[stuck], stuck),
            graph.node[stuck].op_type
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::elem as dtype;
    use crate::proto::{model, node, value_info_named};

    fn names(g: &GraphProto) -> Vec<&str> {
        g.node.iter().map(|n| n.name.as_str()).collect()
    }

    /// A float16 conversion's layout: the input Cast last. Sorted, it comes first and
    /// the rest keeps its order; a sorted graph is left as it is.
    #[test]
    fn nodes_read_before_they_are_made_are_moved_after_their_producers() {
        let mut m = model(
            vec![
                node("Relu", "a", &["xc"], &["h"]),
                node("Neg", "b", &["h"], &["y"]),
                node("Abs", "c", &["x"], &["z"]),
                node("Cast", "cast_in", &["x"], &["xc"]),
            ],
            vec![value_info_named("x", dtype::FLOAT, &[1, 2], None)],
            &["y", "z"],
            vec![],
            13,
        );
        let g = m.graph.as_mut().unwrap();
        assert!(sort_nodes(g).unwrap());
        assert_eq!(names(g), ["c", "cast_in", "a", "b"]);
        assert!(!sort_nodes(g).unwrap());
        assert_eq!(names(g), ["c", "cast_in", "a", "b"]);
    }

    /// An If whose branch reads a value of the main graph made after it: the If waits
    /// for it. A cycle is refused, naming a node on it.
    #[test]
    fn a_node_waits_for_what_its_subgraphs_read_and_a_cycle_is_refused() {
        let branch = |out: &str| {
            let mut g = GraphProto::new();
            g.name = out.into();
            g.node.push(node("Identity", out, &["late"], &[out]));
            g.output
                .push(value_info_named(out, dtype::FLOAT, &[1, 2], None));
            g
        };
        let mut when = node("If", "when", &["flag"], &["y"]);
        for (name, g) in [("then_branch", branch("t")), ("else_branch", branch("e"))] {
            let mut a = onnx_ir::AttributeProto::new();
            a.name = name.into();
            a.type_ = onnx_ir::AttributeType::GRAPH.into();
            a.g = Some(g).into();
            when.attribute.push(a);
        }
        let mut m = model(
            vec![when, node("Relu", "late_node", &["x"], &["late"])],
            vec![
                value_info_named("x", dtype::FLOAT, &[1, 2], None),
                value_info_named("flag", dtype::BOOL, &[], None),
            ],
            &["y"],
            vec![],
            13,
        );
        let g = m.graph.as_mut().unwrap();
        assert!(sort_nodes(g).unwrap());
        assert_eq!(names(g), ["late_node", "when"]);
        g.node.push(node("Neg", "loop_a", &["b_out"], &["a_out"]));
        g.node.push(node("Neg", "loop_b", &["a_out"], &["b_out"]));
        let err = sort_nodes(g).unwrap_err().to_string();
        assert!(err.contains("cycle") && err.contains("loop_a"), "{err}");
    }
}
