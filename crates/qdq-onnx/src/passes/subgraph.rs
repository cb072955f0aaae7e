//! Subgraphs (the `then_branch`/`else_branch` of If, the `body` of Loop and Scan) as the
//! passes reach them: by a [`GraphPath`] from the main graph.

use onnx_ir::{GraphProto, NodeProto, TensorProto};

/// Where a graph sits in a model: the (node index, graph attribute name) at each level
/// from the main graph down; empty for the main graph.
pub type GraphPath = Vec<(usize, String)>;

/// The graph-valued attributes (`g`) of `node`, by attribute name.
pub fn graph_attrs(node: &NodeProto) -> Vec<(&str, &GraphProto)> {
    node.attribute
        .iter()
        .filter_map(|a| a.g.as_ref().map(|g| (a.name.as_str(), g)))
        .collect()
}

/// The graph at `path` below `graph`, if the path leads to one.
pub fn subgraph<'a>(graph: &'a GraphProto, path: &[(usize, String)]) -> Option<&'a GraphProto> {
    path.iter().try_fold(graph, |g, (i, attr)| {
        g.node
            .get(*i)?
            .attribute
            .iter()
            .find(|a| a.name == *attr)?
            .g
            .as_ref()
    })
}

/// [`subgraph`], mutably.
pub fn subgraph_mut<'a>(
    graph: &'a mut GraphProto,
    path: &[(usize, String)],
) -> Option<&'a mut GraphProto> {
    path.iter().try_fold(graph, |g, (i, attr)| {
        g.node
            .get_mut(*i)?
            .attribute
            .iter_mut()
            .find(|a| a.name == *attr)?
            .g
            .as_mut()
    })
}

/// The constant `name` as the graph at `path` sees it: its own initializer or
/// `Constant` output, else the nearest enclosing graph's.
pub fn visible_constant<'a>(
    graph: &'a GraphProto,
    path: &[(usize, String)],
    name: &str,
) -> Option<&'a TensorProto> {
    // A linear scan, no map: called once per weight quantizer.
    (0..=path.len()).rev().find_map(|depth| {
        let g = subgraph(graph, &path[..depth])?;
        g.initializer.iter().find(|t| t.name == name).or_else(|| {
            g.node
                .iter()
                .filter(|n| n.op_type == "Constant" && n.output.first().is_some_and(|o| o == name))
                .find_map(|n| n.attribute.iter().find(|a| a.name == "value")?.t.as_ref())
        })
    })
}

/// Every name read by a node of `graph` or of its subgraphs (at most
/// [`crate::runtime::MAX_SUBGRAPH_DEPTH`] deep): what a subgraph may take from the
/// graphs around it.
pub fn reads(graph: &GraphProto) -> std::collections::HashSet<&str> {
    fn walk<'a>(g: &'a GraphProto, depth: usize, out: &mut std::collections::HashSet<&'a str>) {
        for n in &g.node {
            out.extend(n.input.iter().map(String::as_str).filter(|i| !i.is_empty()));
            if depth < crate::runtime::MAX_SUBGRAPH_DEPTH {
                for (_, sub) in graph_attrs(n) {
                    walk(sub, depth + 1, out);
                }
            }
        }
    }
    let mut out = std::collections::HashSet::new();
    walk(graph, 0, &mut out);
    out
}

/// The scope prefix (as [`crate::runtime::subgraph_scope`]s chain) under which the
/// runtime shows value `name` read in the graph at `path`: that of the innermost graph
/// on the path defining it (an input, initializer or node output), else the main
/// graph's (empty).
pub fn scope_of(graph: &GraphProto, path: &[(usize, String)], name: &str) -> String {
    let defines = |g: &GraphProto| {
        g.input.iter().any(|v| v.name == name)
            || g.initializer.iter().any(|t| t.name == name)
            || g.node.iter().any(|n| n.output.iter().any(|o| o == name))
    };
    let depth = (0..=path.len())
        .rev()
        .find(|&d| subgraph(graph, &path[..d]).is_some_and(defines))
        .unwrap_or(0);
    path_scope(graph, &path[..depth])
}

/// The scope prefix of the graph at `path` ([`crate::runtime::subgraph_scope`]s
/// chained, `If_0/then_branch/`; empty for the main graph), as far as the path leads.
pub fn path_scope(graph: &GraphProto, path: &[(usize, String)]) -> String {
    let mut prefix = String::new();
    let mut g = graph;
    for (i, attr) in path {
        let Some(n) = g.node.get(*i) else { break };
        prefix.push_str(&crate::runtime::subgraph_scope(n, attr));
        match n
            .attribute
            .iter()
            .find(|a| a.name == *attr)
            .and_then(|a| a.g.as_ref())
        {
            Some(sub) => g = sub,
            None => break,
        }
    }
    prefix
}
