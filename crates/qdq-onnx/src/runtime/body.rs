//! A graph body: the nodes of the main graph or of a subgraph (the `then_branch`,
//! `else_branch` or `body` attribute of If, Loop and Scan), checked once when the model
//! is loaded and then run node by node. A subgraph reads values of the enclosing
//! graphs by name (its captures); the executor resolves them through a chain of
//! [`Scope`]s and never frees them, while each body frees its own values after their
//! last reader (a node whose subgraph captures a value counts as one of its readers).

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::Device;
use onnx_ir::{GraphProto, NodeProto};

use super::control;
use super::error::RunError;
use super::ops;
use super::value::Value;

/// Deepest nesting of subgraphs the loader accepts (If inside Loop inside If...).
pub const MAX_SUBGRAPH_DEPTH: usize = 16;

/// A checked graph body.
pub(crate) struct Body {
    /// Nodes in execution order.
    pub nodes: Vec<NodeProto>,
    /// The body's own initializers.
    pub initializers: HashMap<String, Value>,
    /// Per node, its subgraphs by attribute name (empty for ordinary nodes).
    pub subgraphs: Vec<Vec<(String, Body)>>,
    /// Formal input names (a subgraph's iteration number, condition, states...).
    pub inputs: Vec<String>,
    /// Output names, in declaration order.
    pub outputs: Vec<String>,
    /// Names read from enclosing graphs.
    pub captures: Vec<String>,
    /// Index of the last node reading each local value (outputs excluded).
    pub last_use: HashMap<String, usize>,
}

/// What every node of a run shares: the model's opset, the device, the Loop bound.
#[derive(Clone, Copy)]
pub(crate) struct RunCtx<'a> {
    /// Default-domain opset of the model.
    pub opset: i64,
    /// Device the values live on.
    pub device: &'a Device,
    /// Most iterations of one Loop node.
    pub loop_limit: usize,
}

/// The values visible to a running body: its own, its initializers, then the enclosing
/// scopes'.
pub(crate) struct Scope<'a> {
    /// Values computed (or fed) in this body.
    pub env: &'a HashMap<String, Value>,
    /// The body (for its initializers).
    pub body: &'a Body,
    /// The enclosing scope, for a subgraph.
    pub parent: Option<&'a Scope<'a>>,
}

impl Scope<'_> {
    /// The value named `name`, searching outwards.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.env
            .get(name)
            .or_else(|| self.body.initializers.get(name))
            .or_else(|| self.parent.and_then(|p| p.get(name)))
    }
}

/// Node name, or its first output when unnamed.
pub(crate) fn node_label(n: &NodeProto) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else {
        n.output.first().cloned().unwrap_or_default()
    }
}

/// The graph-valued attributes of a node, by attribute name.
pub(crate) fn graph_attrs(n: &NodeProto) -> Vec<(&str, &GraphProto)> {
    let mut v = Vec::new();
    for a in &n.attribute {
        if let Some(g) = a.g.as_ref() {
            v.push((a.name.as_str(), g));
        }
        v.extend(a.graphs.iter().map(|g| (a.name.as_str(), g)));
    }
    v
}

/// Adds every op of `graph` (and of its subgraphs) that the runtime cannot run to
/// `found`, with counts; ops inside a subgraph are listed as `Op in If `node``.
pub(crate) fn collect_unsupported(
    graph: &GraphProto,
    within: Option<&str>,
    depth: usize,
    found: &mut Vec<(String, usize)>,
) {
    for n in &graph.node {
        if !ops::supports(n) {
            let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
            let mut name = if default_domain {
                n.op_type.clone()
            } else {
                format!("{}:{}", n.domain, n.op_type)
            };
            if let Some(w) = within {
                name = format!("{name} in {w}");
            }
            match found.iter_mut().find(|(o, _)| *o == name) {
                Some((_, c)) => *c += 1,
                None => found.push((name, 1)),
            }
        }
        if depth < MAX_SUBGRAPH_DEPTH {
            let here = format!("{} `{}`", n.op_type, node_label(n));
            for (_, g) in graph_attrs(n) {
                collect_unsupported(g, Some(&here), depth + 1, found);
            }
        }
    }
}

impl Body {
    /// Checks `graph` and loads its initializers: every value read is defined before
    /// (locally, or by `outer` for a subgraph), subgraphs are checked recursively, and
    /// the subgraph nesting is at most [`MAX_SUBGRAPH_DEPTH`] deep. `inputs` are the
    /// body's fed values (for the main graph, its runtime inputs).
    pub fn compile(
        graph: &GraphProto,
        inputs: Vec<String>,
        outer: &HashSet<String>,
        depth: usize,
        device: &Device,
    ) -> Result<Self, RunError> {
        if depth > MAX_SUBGRAPH_DEPTH {
            return Err(RunError::Graph(format!(
                "subgraphs nest more than {MAX_SUBGRAPH_DEPTH} deep"
            )));
        }
        let mut initializers = HashMap::new();
        for t in &graph.initializer {
            let v = Value::from_tensor_proto(t, device).map_err(|e| match e {
                e @ RunError::TooLarge { .. } => e,
                e => RunError::Graph(format!("initializer `{}`: {e}", t.name)),
            })?;
            initializers.insert(t.name.clone(), v);
        }
        let mut local: HashSet<String> = initializers.keys().cloned().collect();
        local.extend(inputs.iter().cloned());
        let mut captures: Vec<String> = Vec::new();
        let mut last_use = HashMap::new();
        let mut subgraphs = Vec::with_capacity(graph.node.len());
        let read = |name: &str,
                    k: usize,
                    local: &HashSet<String>,
                    captures: &mut Vec<String>,
                    last_use: &mut HashMap<String, usize>|
         -> bool {
            if local.contains(name) {
                last_use.insert(name.to_string(), k);
                true
            } else if outer.contains(name) {
                if !captures.iter().any(|c| c == name) {
                    captures.push(name.to_string());
                }
                true
            } else {
                false
            }
        };
        for (k, n) in graph.node.iter().enumerate() {
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                if !read(i, k, &local, &mut captures, &mut last_use) {
                    return Err(RunError::Graph(format!(
                        "node `{}` ({}) reads `{i}`, which no earlier node, input or initializer defines",
                        node_label(n),
                        n.op_type
                    )));
                }
            }
            let mut subs = Vec::new();
            let attrs = graph_attrs(n);
            if !attrs.is_empty() {
                let visible: HashSet<String> = outer.union(&local).cloned().collect();
                for (attr, g) in attrs {
                    let sub_inputs = g.input.iter().map(|v| v.name.clone()).collect();
                    let sub =
                        Self::compile(g, sub_inputs, &visible, depth + 1, device).map_err(|e| {
                            RunError::Graph(format!(
                                "subgraph `{attr}` of node `{}` ({}): {e}",
                                node_label(n),
                                n.op_type
                            ))
                        })?;
                    for c in &sub.captures {
                        read(c, k, &local, &mut captures, &mut last_use);
                    }
                    subs.push((attr.to_string(), sub));
                }
            }
            subgraphs.push(subs);
            local.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
        }
        let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
        for o in &outputs {
            if !read(o, usize::MAX, &local, &mut captures, &mut last_use) {
                return Err(RunError::Graph(format!(
                    "graph output `{o}` is never computed"
                )));
            }
            last_use.remove(o);
        }
        Ok(Self {
            // CastLike to a declared float16/bfloat16 becomes a rounding Cast (values
            // carry no float type of their own).
            nodes: super::half_cast::resolve_cast_like(graph),
            initializers,
            subgraphs,
            inputs,
            outputs,
            captures,
            last_use,
        })
    }

    /// Runs the nodes on `env` (the fed values) within `parent`, calling `observe` on
    /// every node output; returns the body's outputs in declaration order. A Loop
    /// inside runs at most `loop_limit` iterations.
    pub fn exec(
        &self,
        mut env: HashMap<String, Value>,
        parent: Option<&Scope>,
        run: RunCtx,
        observe: &mut dyn FnMut(&str, &Value) -> Result<(), RunError>,
    ) -> Result<Vec<(String, Value)>, RunError> {
        let RunCtx {
            opset,
            device,
            loop_limit,
        } = run;
        for (k, node) in self.nodes.iter().enumerate() {
            let fail = |message: String| RunError::Node {
                node: node_label(node),
                op: node.op_type.clone(),
                message,
            };
            let read = Scope {
                env: &env,
                body: self,
                parent,
            };
            let mut ins: Vec<Option<Value>> = node
                .input
                .iter()
                .map(|i| match i.is_empty() {
                    true => None,
                    false => read.get(i).cloned(),
                })
                .collect();
            // A value read for the last time by a node without subgraphs, once, leaves
            // `env` now rather than after the node: the node holds it alone (unless an
            // observer kept a copy), so a kernel may reuse its buffer.
            if self.subgraphs[k].is_empty() {
                for (slot, i) in node.input.iter().enumerate() {
                    let once = node.input.iter().filter(|j| *j == i).count() == 1;
                    if once && self.last_use.get(i) == Some(&k) && env.contains_key(i) {
                        ins[slot] = env.remove(i);
                    }
                }
            }
            let scope = Scope {
                env: &env,
                body: self,
                parent,
            };
            let mut ctx = ops::Ctx {
                node,
                opset,
                inputs: ins,
                device,
            };
            let subs = &self.subgraphs[k];
            let res = catch_unwind(AssertUnwindSafe(|| match subs.is_empty() {
                true => ops::run_op(&node.op_type, &mut ctx),
                false => control::run(&ctx, subs, &scope, loop_limit, &mut *observe),
            }));
            drop(ctx);
            let outs = match res {
                Ok(Ok(o)) => o,
                Ok(Err(RunError::TooLarge {
                    tensor,
                    shape,
                    limit,
                    ..
                })) => {
                    // Kernels know the shape; the executor knows the node and output.
                    let tensor = match tensor.is_empty() {
                        true => node.output.first().cloned().unwrap_or_default(),
                        false => tensor,
                    };
                    return Err(RunError::TooLarge {
                        node: node_label(node),
                        tensor,
                        shape,
                        limit,
                    });
                }
                Ok(Err(RunError::Op(m))) => return Err(fail(m)),
                Ok(Err(e)) => return Err(fail(e.to_string())),
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    return Err(fail(format!("burn panicked: {msg}")));
                }
            };
            let mut outs = outs.into_iter();
            for name in &node.output {
                let v = outs.next();
                if name.is_empty() {
                    continue;
                }
                let v =
                    v.ok_or_else(|| fail(format!("the runtime does not produce output `{name}`")))?;
                observe(name, &v)?;
                env.insert(name.clone(), v);
            }
            for i in node.input.iter().chain(&self.captures_of(k)) {
                if self.last_use.get(i) == Some(&k) {
                    env.remove(i);
                }
            }
        }
        let scope = Scope {
            env: &env,
            body: self,
            parent,
        };
        self.outputs
            .iter()
            .map(|o| {
                let v = scope
                    .get(o)
                    .cloned()
                    .ok_or_else(|| RunError::Graph(format!("output `{o}` missing")))?;
                Ok((o.clone(), v))
            })
            .collect()
    }

    /// The outer values node `k`'s subgraphs read.
    fn captures_of(&self, k: usize) -> Vec<String> {
        self.subgraphs[k]
            .iter()
            .flat_map(|(_, b)| b.captures.iter().cloned())
            .collect()
    }
}
