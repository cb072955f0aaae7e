//! Fusing burn's instance norm back into one `InstanceNormalization` node.
//!
//! burn computes `InstanceNorm` as group norm with one group per channel, which the
//! lowering writes as its primitive ops (x `[B, C, *]`):
//!
//! ```text
//! r = Reshape(x, [B, C, H])  m = ReduceMean(r, axis 2)  d = Sub(r, m)
//! v = ReduceMean(Mul(d, d), axis 2)  n = Div(d, Sqrt(Add(v, eps)))
//! y = Reshape(n, [B, C, *])  [y = Add(Mul(y, gamma [1, C, 1..]), beta [1, C, 1..])]
//! ```
//!
//! [`fuse`] replaces each such chain by `InstanceNormalization(x, scale [C], B [C])`
//! with `epsilon` (scale 1 and B 0 without the affine), so the file holds the op
//! TensorRT and ONNX Runtime have kernels for. A group norm with fewer groups than
//! channels (`B, G, H` with `G ≠ C`) is not an instance norm and is left alone, as is
//! any chain whose intermediate values are read elsewhere.

use std::collections::HashMap;

use onnx_ir::{GraphProto, NodeProto};

use crate::proto::decode::{floats, int64s, numel};
use crate::proto::{attr_float, node, tensor_f32};

/// One recognised chain.
struct Chain {
    /// Indices of the nodes it replaces.
    nodes: Vec<usize>,
    x: String,
    out: String,
    channels: usize,
    epsilon: f32,
    /// The scale and shift, when the chain ends with them.
    affine: Option<Affine>,
}

/// `Add(Mul(y, gamma), beta)`: its nodes, and gamma and beta by name with their `[C]`
/// values.
struct Affine {
    mul: usize,
    add: usize,
    gamma: (String, Vec<f32>),
    beta: (String, Vec<f32>),
}

/// Replaces every instance-norm chain of `graph` by one `InstanceNormalization`
/// node; returns how many were fused. Bounded: each fusion removes nine nodes or more.
pub(crate) fn fuse(graph: &mut GraphProto) -> usize {
    let mut fused = 0;
    loop {
        let chain = {
            let g = Graph::new(graph);
            (0..graph.node.len()).find_map(|i| g.chain(i))
        };
        let Some(chain) = chain else { return fused };
        fused += 1;
        replace(graph, chain, fused);
    }
}

fn replace(graph: &mut GraphProto, chain: Chain, k: usize) {
    let c = chain.channels;
    let prefix = format!("instance_norm_{k}");
    // Without the affine, torch's identity scale and shift; with it, gamma and beta
    // keep their parameter names (as `[C]` tensors) unless something else reads them.
    let (gamma, beta) = match chain.affine {
        Some(a) => (a.gamma, a.beta),
        None => (
            (format!("{prefix}.scale"), vec![1.0; c]),
            (format!("{prefix}.B"), vec![0.0; c]),
        ),
    };
    let read: Vec<String> = chain
        .nodes
        .iter()
        .flat_map(|&i| graph.node[i].input.clone())
        .collect();
    // The fused node takes the place of the chain's last node, after everything the
    // chain read and before everything that reads its output.
    let last = *chain.nodes.iter().max().expect("a chain has nodes");
    let mut others: Vec<usize> = chain.nodes.into_iter().filter(|&i| i != last).collect();
    others.sort_unstable_by(|a, b| b.cmp(a));
    // Emptied first (so its inputs count as unread), filled last.
    graph.node[last] = NodeProto::new();
    let at = last - others.len();
    for i in others {
        graph.node.remove(i);
    }
    // Shapes, epsilon and broadcast gamma/beta that only the chain read.
    let used =
        |name: &str, nodes: &[NodeProto]| nodes.iter().any(|n| n.input.iter().any(|i| i == name));
    let nodes = std::mem::take(&mut graph.node);
    graph
        .initializer
        .retain(|t| !read.contains(&t.name) || used(&t.name, &nodes));
    graph.node = nodes;
    let mut names = Vec::new();
    for (suffix, (name, values)) in [("scale", gamma), ("B", beta)] {
        let taken = graph.initializer.iter().any(|t| t.name == name);
        let name = if taken {
            format!("{prefix}.{suffix}")
        } else {
            name
        };
        graph.initializer.push(tensor_f32(&name, &[c], &values));
        names.push(name);
    }
    let mut fused = node(
        "InstanceNormalization",
        &format!("InstanceNormalization_{k}"),
        &[&chain.x, &names[0], &names[1]],
        &[&chain.out],
    );
    fused.attribute.push(attr_float("epsilon", chain.epsilon));
    graph.node[at] = fused;
}

/// Producers, consumers and constants of a graph, to match chains on.
struct Graph<'g> {
    nodes: &'g [NodeProto],
    consumers: HashMap<&'g str, Vec<usize>>,
    outputs: Vec<&'g str>,
    graph: &'g GraphProto,
}

impl<'g> Graph<'g> {
    fn new(graph: &'g GraphProto) -> Self {
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for input in &n.input {
                let list = consumers.entry(input.as_str()).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        Self {
            nodes: &graph.node,
            consumers,
            outputs: graph.output.iter().map(|o| o.name.as_str()).collect(),
            graph,
        }
    }

    /// The nodes reading `value`, when it is no graph output.
    fn readers(&self, value: &str) -> &[usize] {
        if self.outputs.contains(&value) {
            return &[];
        }
        self.consumers.get(value).map_or(&[], Vec::as_slice)
    }

    /// The one node reading node `i`'s output, if it is of type `op`.
    fn next(&self, i: usize, op: &str) -> Option<usize> {
        match self.readers(self.out(i)) {
            [j] if self.nodes[*j].op_type == op => Some(*j),
            _ => None,
        }
    }

    fn out(&self, i: usize) -> &'g str {
        self.nodes[i].output.first().map_or("", String::as_str)
    }

    fn input(&self, i: usize, k: usize) -> &'g str {
        self.nodes[i].input.get(k).map_or("", String::as_str)
    }

    fn init(&self, name: &str) -> Option<&'g onnx_ir::TensorProto> {
        self.graph.initializer.iter().find(|t| t.name == name)
    }

    /// Whether node `i` is a `ReduceMean` of `input` over the last of three axes,
    /// keeping it (axes as an attribute before opset 18, as an input from 18).
    fn mean_last(&self, i: usize, input: &str) -> bool {
        let n = &self.nodes[i];
        let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
        let axes = match attr("axes") {
            Some(a) => Some(a.ints.clone()),
            None => self.init(self.input(i, 1)).and_then(int64s),
        };
        n.op_type == "ReduceMean"
            && self.input(i, 0) == input
            && matches!(axes.as_deref(), Some([2] | [-1]))
            && attr("keepdims").is_none_or(|a| a.i == 1)
    }

    /// The chain starting at node `r`, if `r` is its first Reshape.
    fn chain(&self, r: usize) -> Option<Chain> {
        if self.nodes[r].op_type != "Reshape" {
            return None;
        }
        let grouped = self.init(self.input(r, 1)).and_then(int64s)?;
        let &[batch, channels, hidden] = grouped.as_slice() else {
            return None;
        };
        let flat = self.out(r);
        // r → ReduceMean m and Sub(r, m).
        let (mut mean, mut sub) = (None, None);
        for &j in self.readers(flat) {
            match self.nodes[j].op_type.as_str() {
                "ReduceMean" if self.mean_last(j, flat) => mean = Some(j),
                "Sub" if self.input(j, 0) == flat => sub = Some(j),
                _ => return None,
            }
        }
        let (mean, sub) = (mean?, sub?);
        if self.readers(flat).len() != 2 || self.input(sub, 1) != self.out(mean) {
            return None;
        }
        // d → Mul(d, d) and Div(d, ·).
        let centered = self.out(sub);
        let (mut square, mut div) = (None, None);
        for &j in self.readers(centered) {
            match self.nodes[j].op_type.as_str() {
                "Mul" if self.nodes[j].input == [centered, centered] => square = Some(j),
                "Div" if self.input(j, 0) == centered => div = Some(j),
                _ => return None,
            }
        }
        let (square, div) = (square?, div?);
        let var = self.next(square, "ReduceMean")?;
        let add = self.next(var, "Add")?;
        let sqrt = self.next(add, "Sqrt")?;
        if !self.mean_last(var, self.out(square))
            || self.input(add, 0) != self.out(var)
            || self.next(sqrt, "Div") != Some(div)
            || self.input(div, 1) != self.out(sqrt)
        {
            return None;
        }
        let epsilon = self.init(self.input(add, 1)).and_then(floats)?;
        let &[epsilon] = epsilon.as_slice() else {
            return None;
        };
        let back = self.next(div, "Reshape")?;
        let shape = self.init(self.input(back, 1)).and_then(int64s)?;
        // One group per channel: the grouped shape keeps the batch and the channels,
        // and its last axis holds every spatial element.
        let spatial = shape.get(2..)?;
        let known = spatial.iter().all(|&d| d > 0);
        if shape.len() < 3
            || shape[0] != batch
            || shape[1] != channels
            || channels <= 0
            || (known && spatial.iter().product::<i64>() != hidden)
        {
            return None;
        }
        let channels = channels as usize;
        let mut nodes = vec![r, mean, sub, square, var, add, sqrt, div, back];
        let affine = self.affine(back, channels, shape.len());
        let out = match &affine {
            Some(a) => {
                nodes.extend([a.mul, a.add]);
                self.out(a.add)
            }
            None => self.out(back),
        };
        Some(Chain {
            nodes,
            x: self.input(r, 0).to_string(),
            out: out.to_string(),
            channels,
            epsilon,
            affine,
        })
    }

    /// `Add(Mul(y, gamma), beta)` after node `y`, gamma and beta constants of shape
    /// `[1, C, 1, ..]` (rank `rank`).
    fn affine(&self, y: usize, c: usize, rank: usize) -> Option<Affine> {
        let per_channel = |name: String| {
            let t = self.init(&name)?;
            let mut want = vec![1i64; rank];
            want[1] = c as i64;
            let values = (t.dims == want && numel(t) == c).then(|| floats(t))??;
            Some((name, values))
        };
        // The operand of binary node `i` that is not `value`.
        let other = |i: usize, value: &str| match self.nodes[i].input.as_slice() {
            [a, b] if a == value => Some(b.clone()),
            [a, b] if b == value => Some(a.clone()),
            _ => None,
        };
        let mul = self.next(y, "Mul")?;
        let gamma = per_channel(other(mul, self.out(y))?)?;
        let add = self.next(mul, "Add")?;
        let beta = per_channel(other(add, self.out(mul))?)?;
        Some(Affine {
            mul,
            add,
            gamma,
            beta,
        })
    }
}
