//! TensorRT's rules for QDQ ONNX models (spec `tensorrt-qdq-rules.md`), as a linter:
//! each violation names the node and says how to fix it. It is the last gate before a
//! file is written, so it also checks what every runtime rejects, quantized or not
//! (`graph`: opset, empty graph, producers, order; and Q/DQ element types and shapes).

mod context;
mod graph;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use onnx_ir::{GraphProto, ModelProto, NodeProto, TensorProto};

use context::{Context, node_name, qdq_kind};
use rules::{QdqNode, RULES};

use crate::passes::types::elem_types_within;
use crate::proto::decode::constants;
use crate::proto::version::model_opset;
use crate::proto::{ReadError, read_model};

/// Which rule a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Zero points must be 0 (TensorRT is symmetric only) and signed.
    ZeroPoint,
    /// Scales must be positive, finite, build-time constants.
    Scale,
    /// Per-axis quantization is for weights only.
    PerAxisActivation,
    /// A weight's per-channel axis must be the one the consuming op's kernels expect.
    WeightAxis,
    /// Biases stay float: no `DequantizeLinear` into a bias input.
    BiasDequantize,
    /// The opset must support the attributes and types used.
    Opset,
    /// `QuantizeLinear` and `DequantizeLinear` come in pairs with equal parameters.
    Pairing,
    /// Q/DQ element types: a `QuantizeLinear` input and a `DequantizeLinear` output
    /// are floating point, scales are a float type, zero points int8/uint8 (or the
    /// INT4/INT16/FP8/FP4 types the opset allows).
    QdqType,
    /// Q/DQ parameter shapes: a scale is a scalar or 1-D (per axis), and a zero point
    /// has the scale's shape.
    QdqShape,
    /// The default-domain opset is one the ONNX standard defines (1 to
    /// [`crate::proto::version::MAX_OPSET`]).
    OpsetRange,
    /// The model has a graph with nodes and outputs.
    EmptyGraph,
    /// Exactly one node writes each tensor, and none writes a graph input or initializer.
    SingleProducer,
    /// Initializer names are unique.
    UniqueInitializer,
    /// Every node input is defined before it is read; the graph has no cycle.
    Topology,
}

/// One broken rule at one node.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// Name of the node at fault (its first output when it has no name).
    pub node: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, in one line.
    pub fix: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{:?}]: {} (fix: {})",
            self.node, self.rule, self.message, self.fix
        )
    }
}

/// Choices where TensorRT versions differ. The default expects ConvTranspose
/// weights on axis 0.
#[derive(Clone, Debug, Default)]
pub struct LintOptions {
    /// Axis of a ConvTranspose weight `[C_in, C_out/g, k...]` that per-channel scales
    /// must use: 0 (per input channel), what TensorRT's deconvolution kernels expect.
    pub conv_transpose_axis: i64,
    /// Accept UINT8/UINT4 zero points (unsigned quantizers), which TensorRT rejects,
    /// for models meant for other runtimes such as ONNX Runtime.
    pub allow_uint8: bool,
}

/// Reads an ONNX file and lints it with the default options.
///
/// # Errors
/// The file cannot be read, or is not an ONNX model (e.g. truncated).
pub fn lint_file(path: impl AsRef<std::path::Path>) -> Result<Vec<Violation>, ReadError> {
    Ok(lint(&read_model(path)?))
}

/// Lints `model` with the default options.
pub fn lint(model: &ModelProto) -> Vec<Violation> {
    lint_with(model, &LintOptions::default())
}

/// Lints `model`: the rules every runtime enforces (a non-empty, acyclic, sorted graph
/// with one producer per tensor and a defined opset), then every Q/DQ node against
/// ONNX's types and shapes, TensorRT's hard constraints and the placement rules that
/// decide whether it runs in INT8/FP8. An empty result means the model passes.
pub fn lint_with(model: &ModelProto, options: &LintOptions) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(graph) = graph::check_model(model, &mut out) else {
        return out;
    };
    let outer = (HashMap::new(), HashMap::new());
    lint_graph(graph, model_opset(model), options, &outer, 0, &mut out);
    out
}

/// The Q/DQ rules on the nodes of `graph`, then of its subgraphs (If branches, Loop
/// and Scan bodies), each seeing the constants and element types of the values it
/// reads from the graphs around it (`outer`).
fn lint_graph<'a>(
    graph: &'a GraphProto,
    opset: i64,
    options: &'a LintOptions,
    outer: &(HashMap<&'a str, &'a TensorProto>, HashMap<String, i32>),
    depth: usize,
    out: &mut Vec<Violation>,
) {
    let mut consts = constants(graph);
    let mut seed = HashMap::new();
    if depth > 0 {
        for name in crate::passes::subgraph::reads(graph) {
            if let Some(c) = outer.0.get(name) {
                consts.entry(name).or_insert(c);
            }
            if let Some(&t) = outer.1.get(name) {
                seed.insert(name.to_string(), t);
            }
        }
    }
    let types = elem_types_within(graph, seed);
    let mut producers: HashMap<&str, &NodeProto> = HashMap::new();
    let mut consumers: HashMap<&str, Vec<(&NodeProto, usize)>> = HashMap::new();
    for node in &graph.node {
        for out in &node.output {
            producers.insert(out, node);
        }
        for (i, input) in node.input.iter().enumerate() {
            consumers.entry(input).or_default().push((node, i));
        }
    }
    let ctx = Context {
        opset,
        consts,
        types,
        producers,
        consumers,
        options,
    };
    for node in &graph.node {
        if let Some(kind) = qdq_kind(node) {
            let n = QdqNode::new(&ctx, node, kind);
            for rule in RULES {
                rule(&ctx, &n, out);
            }
        }
    }
    if depth >= crate::runtime::MAX_SUBGRAPH_DEPTH {
        return;
    }
    let view = (ctx.consts, ctx.types);
    for node in &graph.node {
        for (_, g) in crate::passes::subgraph::graph_attrs(node) {
            lint_graph(g, opset, options, &view, depth + 1, out);
        }
    }
}
