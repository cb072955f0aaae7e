//! Where TensorRT wants quantizers in a float ONNX graph (spec `tensorrt-qdq-rules.md`):
//! the inputs of weighted ops (activation per tensor, constant weight per channel on the
//! op's axis), pooling inputs, only the skip branch of a residual `Add`, and `Concat`
//! inputs sharing one amax when the Concat feeds a quantized input. Never outputs, never
//! biases, and only tensors known to be floating point ([`super::types`]): integer shape
//! arithmetic and tensors of unknown type stay unquantized. A node none of whose inputs
//! depends on the values of the graph's inputs (only on constants and shapes: an
//! in-graph DFT's index ramps) gets no quantizer either ([`value_dependent`]). Transformer rules (attention
//! MatMuls, what stays float) and their sources: docs/transformer-placement.md.
//!
//! The same rules apply inside subgraphs (the branches of If, the bodies of Loop and
//! Scan), recursively: a site there records the subgraph's path and is keyed for
//! calibration by the scope of the graph defining its tensor ([`Site::key`]); weights
//! may be constants of the subgraph or of an enclosing graph.

use std::collections::{HashMap, HashSet};

use onnx_ir::{GraphProto, NodeProto, TensorProto};

use super::error::{PassError, PassResult};
use super::subgraph::{GraphPath, graph_attrs};
use super::types::{elem_types_within, is_float_tensor};
use crate::proto::decode::constants;
use crate::runtime::{MAX_SUBGRAPH_DEPTH, subgraph_scope};

/// What a site quantizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteKind {
    /// A runtime tensor, per tensor, calibrated on data.
    Activation,
    /// A constant weight, per channel along `axis`, amax from its values.
    Weight {
        /// Channel axis.
        axis: usize,
    },
}

/// One quantizer to insert: a Q/DQ pair on `tensor`, read by `consumers`.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// Name in reports and in the Q/DQ node names, after its first consumer in
    /// pytorch-quantization's style: `conv1._input_quantizer`, `conv1._weight_quantizer`,
    /// `add_3._residual_quantizer`.
    pub name: String,
    /// The tensor quantized.
    pub tensor: String,
    /// (node index, input slot) of every node input rewired to the dequantized tensor.
    pub consumers: Vec<(usize, usize)>,
    /// Activation or weight.
    pub kind: SiteKind,
    /// Sites with the same group share one amax (the inputs of a `Concat`).
    pub group: Option<usize>,
    /// The graph holding the consumers: empty for the main graph, else the (node index,
    /// graph attribute) at each level down to the subgraph.
    pub graph: GraphPath,
    /// Scope prefix of the graph that defines `tensor`: empty for the main graph, else
    /// the chained [`subgraph_scope`]s (`If_0/then_branch/`), as the runtime names the
    /// values it shows observers.
    pub scope: String,
}

impl Site {
    /// The name calibration collects the tensor under, and the cache's key:
    /// `scope` + `tensor` (the plain tensor name in the main graph).
    pub fn key(&self) -> String {
        format!("{}{}", self.scope, self.tensor)
    }

    /// Whether the site's consumers sit inside a subgraph.
    pub fn in_subgraph(&self) -> bool {
        !self.graph.is_empty()
    }
}

/// Which nodes to leave in float.
#[derive(Clone, Debug, Default)]
pub struct PlacementOptions {
    /// Op types not to quantize (`Gemm`, `MatMul`, ...).
    pub skip_op_types: Vec<String>,
    /// Node-name patterns not to quantize; `*` matches any run of characters
    /// (`/head/*`, `*classifier*`).
    pub skip_names: Vec<String>,
    /// Axis of ConvTranspose weights `[C_in, C_out/g, k...]`: 0, what TensorRT expects.
    pub conv_transpose_axis: usize,
    /// Leave the MatMuls of two activations (attention's Q·Kᵀ and probabilities·V) in
    /// float, as ModelOpt's `disable_mha_qdq` does; default false: both inputs quantized
    /// (docs/transformer-placement.md).
    pub keep_attention_float: bool,
}

/// `*`-wildcard match of `name` against `pattern`.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// How reports and `--skip` patterns name node `index`: its name, else its first
/// output, else `OpType_index`.
pub fn node_label(n: &NodeProto, index: usize) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else if let Some(o) = n.output.first().filter(|o| !o.is_empty()) {
        o.clone()
    } else {
        format!("{}_{index}", n.op_type)
    }
}

/// The quantizer sites of `graph`, in node order, then those of each node's subgraphs
/// (recursively, at most [`MAX_SUBGRAPH_DEPTH`] deep). Site names are unique across
/// the model (a repeat gets `_2`, `_3`...).
///
/// # Errors
/// The graph already holds Q/DQ nodes (it is quantized already).
pub fn place(graph: &GraphProto, options: &PlacementOptions) -> PassResult<Vec<Site>> {
    let mut sites = Vec::new();
    let mut groups = 0;
    let level = Level::new(graph, None, String::new(), GraphPath::new());
    place_in(&level, options, &mut groups, &mut sites)?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in &mut sites {
        let n = seen.entry(s.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            s.name = format!("{}_{n}", s.name);
        }
    }
    Ok(sites)
}

/// One graph as placement sees it: its constants and element types (with those of the
/// enclosing graphs' values it reads), the names it defines, its scope and path.
struct Level<'a> {
    graph: &'a GraphProto,
    consts: HashMap<&'a str, &'a TensorProto>,
    types: HashMap<String, i32>,
    defined: HashSet<&'a str>,
    prefix: String,
    path: GraphPath,
    parent: Option<&'a Level<'a>>,
}

impl<'a> Level<'a> {
    fn new(
        graph: &'a GraphProto,
        parent: Option<&'a Level<'a>>,
        prefix: String,
        path: GraphPath,
    ) -> Self {
        let mut consts = constants(graph);
        let defined: HashSet<&str> = graph
            .input
            .iter()
            .map(|v| v.name.as_str())
            .chain(graph.initializer.iter().map(|t| t.name.as_str()))
            .chain(
                graph
                    .node
                    .iter()
                    .flat_map(|n| n.output.iter().map(String::as_str)),
            )
            .collect();
        let mut seed = HashMap::new();
        for name in graph.node.iter().flat_map(|n| &n.input) {
            if name.is_empty() || defined.contains(name.as_str()) {
                continue;
            }
            if let Some(l) = parent.and_then(|p| p.owner(name)) {
                if let Some(c) = l.consts.get(name.as_str()) {
                    consts.insert(name, c);
                }
                if let Some(&t) = l.types.get(name) {
                    seed.insert(name.clone(), t);
                }
            }
        }
        let types = elem_types_within(graph, seed);
        Self {
            graph,
            consts,
            types,
            defined,
            prefix,
            path,
            parent,
        }
    }

    /// The level (this one or an enclosing one) that defines `name`.
    fn owner(&self, name: &str) -> Option<&Level<'a>> {
        let mut level = Some(self);
        while let Some(l) = level {
            if l.defined.contains(name) {
                return Some(l);
            }
            level = l.parent;
        }
        None
    }
}

/// Places the sites of `level`'s graph, then of its subgraphs.
fn place_in(
    level: &Level,
    options: &PlacementOptions,
    groups: &mut usize,
    all: &mut Vec<Site>,
) -> PassResult<()> {
    let graph = level.graph;
    if let Some(n) = graph
        .node
        .iter()
        .find(|n| n.op_type.contains("QuantizeLinear"))
    {
        return Err(PassError::Graph(format!(
            "node `{}` is a {}: the model is quantized already; start from the FP32 model",
            n.name, n.op_type
        )));
    }
    let consts = &level.consts;
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            producer.insert(o, i);
        }
    }
    let depth = depths(graph, &producer);
    // Tensors a comparison reads, directly or through ops that only move values (a
    // TensorFlow export puts Transpose/Reshape/Squeeze between a pool and its Equal);
    // nodes come in topological order, so one pass backwards reaches them all.
    let mut compared: HashSet<&str> = HashSet::new();
    for n in graph.node.iter().rev() {
        match n.op_type.as_str() {
            "Equal" | "Greater" | "Less" | "GreaterOrEqual" | "LessOrEqual" => {
                compared.extend(n.input.iter().map(String::as_str));
            }
            "Transpose" | "Reshape" | "Squeeze" | "Unsqueeze" | "Flatten" | "Identity"
                if n.output.iter().any(|o| compared.contains(o.as_str())) =>
            {
                compared.extend(n.input.first().map(String::as_str));
            }
            _ => {}
        }
    }
    let types = &level.types;
    let varies = value_dependent(graph, |t| consts.contains_key(t));
    let mut sites: Vec<Site> = Vec::new();
    let scope_of = |tensor: &str| {
        level
            .owner(tensor)
            .map_or_else(|| level.prefix.clone(), |l| l.prefix.clone())
    };
    let add = |sites: &mut Vec<Site>, tensor: &str, slot: (usize, usize), kind, name: String| {
        // ONNX Runtime and the checker reject Q/DQ on anything but real numbers.
        if !is_float_tensor(types, tensor) {
            return;
        }
        match sites
            .iter_mut()
            .find(|s| s.tensor == tensor && s.kind == kind)
        {
            Some(s) => s.consumers.push(slot),
            None => sites.push(Site {
                name,
                tensor: tensor.to_string(),
                consumers: vec![slot],
                kind,
                group: None,
                graph: level.path.clone(),
                scope: scope_of(tensor),
            }),
        }
    };
    for (i, n) in graph.node.iter().enumerate() {
        let label = node_label(n, i);
        let skipped = options.skip_op_types.contains(&n.op_type)
            || options
                .skip_names
                .iter()
                .any(|p| matches_pattern(p, &label));
        // Fixed once the input shapes are: TensorRT folds it at build time, and INT8
        // would only round it (an outer product of index ramps 0..2047, read by a Sin,
        // lost every phase at a step of 16).
        let fixed = !n.input.iter().any(|t| varies.contains(t.as_str()));
        if skipped || fixed {
            continue;
        }
        let input = |k: usize| n.input.get(k).map(String::as_str).filter(|s| !s.is_empty());
        let is_const = |t: &str| consts.contains_key(t);
        let rank = |t: &str| consts.get(t).map_or(0, |c| c.dims.len());
        let activation = |sites: &mut Vec<Site>, k: usize, what: &str| {
            if let Some(t) = input(k).filter(|t| !is_const(t)) {
                add(
                    sites,
                    t,
                    (i, k),
                    SiteKind::Activation,
                    format!("{label}._{what}_quantizer"),
                );
            }
        };
        match n.op_type.as_str() {
            "Conv" | "ConvTranspose" | "Gemm" | "MatMul" => {
                let Some(w) = input(1) else {
                    activation(&mut sites, 0, "input");
                    continue;
                };
                if !is_const(w) {
                    // activation x activation (attention's Q·Kᵀ, probabilities·V):
                    // both inputs, per tensor, unless attention stays in float.
                    let attention = matches!(n.op_type.as_str(), "MatMul" | "Gemm");
                    if !(attention && options.keep_attention_float) {
                        activation(&mut sites, 0, "input");
                        activation(&mut sites, 1, "input1");
                    }
                    continue;
                }
                activation(&mut sites, 0, "input");
                let axis = match n.op_type.as_str() {
                    "Conv" => 0,
                    "ConvTranspose" => options.conv_transpose_axis,
                    "Gemm" => {
                        let trans_b = n.attribute.iter().any(|a| a.name == "transB" && a.i != 0);
                        if trans_b { 0 } else { 1 }
                    }
                    _ => rank(w).saturating_sub(1),
                };
                add(
                    &mut sites,
                    w,
                    (i, 1),
                    SiteKind::Weight { axis },
                    format!("{label}._weight_quantizer"),
                );
            }
            // Peak picking (`Equal(MaxPool(x), x)`, keypoint and CenterNet heads) needs
            // the pooled value to equal the float input exactly: quantized, no peak
            // survives (a fingerprint detector lost all 169 minutiae).
            "MaxPool" | "AveragePool" | "GlobalAveragePool"
                if !n.output.iter().any(|o| compared.contains(o.as_str())) =>
            {
                activation(&mut sites, 0, "input");
            }
            "Add" | "Sum" if n.input.len() == 2 => {
                // A residual: the branch that TensorRT fuses into the convolution is the
                // deeper one ending in Conv (or Conv -> BatchNormalization); the other,
                // the skip branch, gets the quantizer.
                let (Some(a), Some(b)) = (input(0), input(1)) else {
                    continue;
                };
                if is_const(a) || is_const(b) {
                    continue;
                }
                let conv_like = |t: &str| {
                    producer.get(t).is_some_and(|&p| {
                        let op = graph.node[p].op_type.as_str();
                        op == "Conv"
                            || (op == "BatchNormalization"
                                && graph.node[p]
                                    .input
                                    .first()
                                    .and_then(|x| producer.get(x.as_str()))
                                    .is_some_and(|&q| graph.node[q].op_type == "Conv"))
                    })
                };
                let d = |t: &str| producer.get(t).map_or(0, |&p| depth[p]);
                let skip = match (conv_like(a), conv_like(b)) {
                    (true, false) => 1,
                    (false, true) => 0,
                    (true, true) if d(a) >= d(b) => 1,
                    (true, true) => 0,
                    (false, false) => continue,
                };
                activation(&mut sites, skip, "residual");
            }
            "Concat" => {
                for k in 0..n.input.len() {
                    activation(&mut sites, k, &format!("input{k}"));
                }
                // One amax for all inputs, so the Concat needs no requantization. A
                // tensor already grouped by another Concat keeps its first group.
                let group = Some(*groups);
                *groups += 1;
                for s in sites.iter_mut().filter(|s| {
                    s.kind == SiteKind::Activation
                        && s.group.is_none()
                        && n.input.contains(&s.tensor)
                }) {
                    s.group = group;
                }
            }
            _ => {}
        }
    }
    drop_float_concats(graph, &mut sites);
    drop_half_concats(graph, &level.types, &mut sites);
    all.append(&mut sites);
    if level.path.len() >= MAX_SUBGRAPH_DEPTH {
        return Ok(());
    }
    for (i, n) in graph.node.iter().enumerate() {
        for (attr, g) in graph_attrs(n) {
            let mut path = level.path.clone();
            path.push((i, attr.to_string()));
            let prefix = format!("{}{}", level.prefix, subgraph_scope(n, attr));
            let child = Level::new(g, Some(level), prefix, path);
            place_in(&child, options, groups, all)?;
        }
    }
    Ok(())
}

/// Ops that move values without arithmetic: TensorRT runs them in INT8 when their
/// input is quantized, so a quantized input reached through them stays INT8.
const COPY_OPS: [&str; 6] = [
    "Reshape",
    "Transpose",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Identity",
];

/// Removes the quantizers of every `Concat` whose output reaches no quantized input
/// (directly or through [`COPY_OPS`]): such a Concat runs in float anyway (ViT's class
/// token `Concat` feeding the position `Add` and a LayerNorm), so Q/DQ there would only
/// round. A tensor that is also quantized for another consumer keeps that site.
fn drop_float_concats(graph: &GraphProto, sites: &mut Vec<Site>) {
    let mut readers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (j, n) in graph.node.iter().enumerate() {
        for (k, t) in n.input.iter().enumerate() {
            readers.entry(t.as_str()).or_default().push((j, k));
        }
    }
    let quantized =
        |slot: (usize, usize), sites: &[Site]| sites.iter().any(|s| s.consumers.contains(&slot));
    // Last first, so a Concat feeding only a dropped Concat is dropped too.
    for (c, n) in graph.node.iter().enumerate().rev() {
        if n.op_type != "Concat" {
            continue;
        }
        // Walks the copy-op chains below the Concat; each tensor is visited once.
        let mut stack: Vec<&str> = n.output.iter().map(String::as_str).collect();
        let mut seen: Vec<&str> = Vec::new();
        let mut reaches = false;
        while let Some(t) = stack.pop() {
            if reaches || seen.contains(&t) {
                continue;
            }
            seen.push(t);
            for &(j, k) in readers.get(t).map_or(&[][..], Vec::as_slice) {
                if quantized((j, k), sites) {
                    reaches = true;
                } else if COPY_OPS.contains(&graph.node[j].op_type.as_str()) {
                    stack.extend(graph.node[j].output.iter().map(String::as_str));
                }
            }
        }
        if !reaches {
            unquantize_concat(graph, sites, c);
        }
    }
}

/// Removes the input quantizers of every `Concat` whose output is float16 or bfloat16:
/// ONNX Runtime (1.32) fuses DQ -> Concat -> Q into its QLinearConcat, whose kernel
/// takes float32 scales only, and then refuses to load the file ("Type
/// 'tensor(float16)' of input parameter ... of operator (QLinearConcat) is invalid");
/// its Conv, MatMul, Add, Mul and pooling fusions check the type and load. TensorRT
/// runs such a Concat in half precision between the quantized tensors around it; the
/// quantizer of the Concat's consumer stays. `types`: the level's element types.
fn drop_half_concats(graph: &GraphProto, types: &HashMap<String, i32>, sites: &mut Vec<Site>) {
    for (c, n) in graph.node.iter().enumerate() {
        let half = n
            .output
            .first()
            .and_then(|o| types.get(o))
            .is_some_and(|&t| {
                t == crate::proto::elem::FLOAT16 || t == crate::proto::elem::BFLOAT16
            });
        if n.op_type == "Concat" && half {
            unquantize_concat(graph, sites, c);
        }
    }
}

/// Takes Concat node `c` off every site's consumers, dropping sites left with none
/// and the shared amax group of a tensor no other Concat reads.
fn unquantize_concat(graph: &GraphProto, sites: &mut Vec<Site>, c: usize) {
    for s in sites.iter_mut() {
        let before = s.consumers.len();
        s.consumers.retain(|&(j, _)| j != c);
        let other_concat = s
            .consumers
            .iter()
            .any(|&(j, _)| graph.node[j].op_type == "Concat");
        if s.consumers.len() != before && !other_concat {
            s.group = None;
        }
    }
    sites.retain(|s| !s.consumers.is_empty());
}

/// The tensors of `graph` whose values depend on the values of its inputs (graph
/// inputs not held by `is_const`, and names from enclosing graphs that are not
/// constants, counted as varying). Shape and Size outputs depend on their input's shape
/// only, and so do ConstantOfShape's, EyeLike's and the random `*Like` ops' on a
/// varying input; a node holding subgraphs is taken as varying whatever its inputs.
pub(crate) fn value_dependent(
    graph: &GraphProto,
    is_const: impl Fn(&str) -> bool,
) -> HashSet<&str> {
    let produced: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .collect();
    let initialized: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut varies: HashSet<&str> = graph
        .input
        .iter()
        .map(|v| v.name.as_str())
        .filter(|n| !is_const(n) && !initialized.contains(n))
        .collect();
    // Names read here but defined in an enclosing graph (a Loop body's outer values).
    for t in graph.node.iter().flat_map(|n| &n.input) {
        let t = t.as_str();
        let outer = !t.is_empty() && !produced.contains(t) && !initialized.contains(t);
        if outer && !is_const(t) {
            varies.insert(t);
        }
    }
    for n in &graph.node {
        let shape_only = matches!(
            n.op_type.as_str(),
            "Shape"
                | "Size"
                | "ConstantOfShape"
                | "EyeLike"
                | "RandomNormalLike"
                | "RandomUniformLike"
        );
        let reads = n.input.iter().any(|t| varies.contains(t.as_str()));
        if (reads && !shape_only) || !graph_attrs(n).is_empty() {
            varies.extend(n.output.iter().map(String::as_str));
        }
    }
    varies
}

/// Longest path (in nodes) from the graph inputs to each node.
fn depths(graph: &GraphProto, producer: &HashMap<&str, usize>) -> Vec<usize> {
    let mut depth = vec![0usize; graph.node.len()];
    for (i, n) in graph.node.iter().enumerate() {
        depth[i] = n
            .input
            .iter()
            .filter_map(|t| producer.get(t.as_str()))
            .filter(|&&p| p < i)
            .map(|&p| depth[p] + 1)
            .max()
            .unwrap_or(0);
    }
    depth
}
