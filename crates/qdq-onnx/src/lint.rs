//! TensorRT's rules for QDQ ONNX models (spec `tensorrt-qdq-rules.md`), as a linter:
//! each violation names the node and says how to fix it. It is the last gate before a
//! file is written, so it also checks what every runtime rejects, quantized or not
//! ([`graph`]: opset, empty graph, producers, order; and Q/DQ element types and shapes).

mod graph;

use std::collections::HashMap;
use std::fmt;

use onnx_ir::{ModelProto, NodeProto, TensorProto};

use crate::passes::types::elem_types;
use crate::proto::decode::{all_zero, constants, floats, numel};
use crate::proto::elem as dtype;
use crate::proto::elem::{dtype_name, is_float};
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
    let opset = model_opset(model);
    let consts = constants(graph);
    let types = elem_types(graph);
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
    for node in graph.node.iter().filter(|n| qdq_kind(n).is_some()) {
        ctx.check(node, &mut out);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Q,
    Dq,
}

fn qdq_kind(n: &NodeProto) -> Option<Kind> {
    match (n.domain.as_str(), n.op_type.as_str()) {
        ("" | "ai.onnx", "QuantizeLinear") | ("trt", "TRT_FP8QuantizeLinear") => Some(Kind::Q),
        ("" | "ai.onnx", "DequantizeLinear") | ("trt", "TRT_FP8DequantizeLinear") => Some(Kind::Dq),
        _ => None,
    }
}

fn node_name(n: &NodeProto) -> String {
    if n.name.is_empty() {
        n.output
            .first()
            .cloned()
            .unwrap_or_else(|| n.op_type.clone())
    } else {
        n.name.clone()
    }
}

/// The zero-point types some opset of Q/DQ allows (the opset itself is checked apart).
fn zero_point_type(e: i32) -> bool {
    matches!(
        e,
        dtype::INT8
            | dtype::UINT8
            | dtype::INT16
            | dtype::UINT16
            | dtype::INT4
            | dtype::UINT4
            | dtype::FLOAT8E4M3FN
            | dtype::FLOAT8E4M3FNUZ
            | dtype::FLOAT8E5M2
            | dtype::FLOAT8E5M2FNUZ
            | dtype::FLOAT4E2M1
    )
}

fn first_output(n: &NodeProto) -> &str {
    n.output.first().map_or("", String::as_str)
}

fn int_attr(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

struct Context<'a> {
    opset: i64,
    consts: HashMap<&'a str, &'a TensorProto>,
    types: HashMap<String, i32>,
    producers: HashMap<&'a str, &'a NodeProto>,
    consumers: HashMap<&'a str, Vec<(&'a NodeProto, usize)>>,
    options: &'a LintOptions,
}

impl Context<'_> {
    fn check(&self, node: &NodeProto, out: &mut Vec<Violation>) {
        let name = node_name(node);
        let mut push = |rule, message: String, fix: &str| {
            out.push(Violation {
                rule,
                node: name.clone(),
                message,
                fix: fix.to_string(),
            })
        };
        let kind = qdq_kind(node).expect("only Q/DQ nodes are checked");

        // Scale: a positive finite constant.
        let scale = node.input.get(1).and_then(|s| self.consts.get(s.as_str()));
        let scale_len = match scale {
            None => {
                push(
                    Rule::Scale,
                    format!(
                        "scale `{}` is not a constant",
                        node.input.get(1).map_or("", |s| s)
                    ),
                    "make the scale a float32 initializer",
                );
                None
            }
            Some(t) => match floats(t) {
                Some(v) if v.iter().all(|s| s.is_finite() && *s > 0.0) => Some(v.len()),
                Some(v) => {
                    let bad = v
                        .iter()
                        .find(|s| !(s.is_finite() && **s > 0.0))
                        .copied()
                        .unwrap_or(f32::NAN);
                    push(
                        Rule::Scale,
                        format!("scale holds {bad}; TensorRT needs positive finite scales"),
                        "recalibrate: every amax must be > 0 (an amax of 0 gets scale 1)",
                    );
                    Some(v.len())
                }
                None => {
                    // A non-float scale is a QdqType violation (below).
                    if is_float(t.data_type) {
                        push(
                            Rule::Scale,
                            format!(
                                "scale is {}; TensorRT needs float32 scales",
                                dtype_name(t.data_type)
                            ),
                            "store the scale as float32",
                        );
                    }
                    Some(numel(t))
                }
            },
        };

        // Element types: what ONNX Runtime and the ONNX checker accept.
        let ty = |t| self.typed(t);
        if kind == Kind::Q
            && let Some((x, e)) = ty(node.input.first())
            && !is_float(e)
        {
            push(
                Rule::QdqType,
                format!(
                    "QuantizeLinear input `{x}` is {}; only float32, float16, bfloat16 and double tensors can be quantized",
                    dtype_name(e)
                ),
                "remove this Q/DQ pair: integer and bool tensors (shapes, indices, masks) stay unquantized",
            );
        }
        if kind == Kind::Dq
            && let Some((y, e)) = ty(node.output.first())
            && !is_float(e)
        {
            push(
                Rule::QdqType,
                format!(
                    "DequantizeLinear output `{y}` is {}; it must be floating point",
                    dtype_name(e)
                ),
                "give the DequantizeLinear a float32 scale (its output takes the scale's type)",
            );
        }
        if let Some((sc, e)) = ty(node.input.get(1))
            && !is_float(e)
        {
            push(
                Rule::QdqType,
                format!(
                    "scale `{sc}` is {}; scales are floating point",
                    dtype_name(e)
                ),
                "store the scale as float32",
            );
        }
        if let Some((zp, e)) = ty(node.input.get(2))
            && !zero_point_type(e)
        {
            push(
                Rule::QdqType,
                format!(
                    "zero point `{zp}` is {}; zero points are int8 or uint8 (int4, uint4, int16, uint16 from opset 21, FP8 from 19, FP4 from 23)",
                    dtype_name(e)
                ),
                "store the zero point as int8 (0, symmetric)",
            );
        }

        // Shapes: a scalar or 1-D scale (blocked quantization aside), and a zero point
        // of the scale's shape.
        let blocked = int_attr(node, "block_size").is_some_and(|b| b != 0);
        let scale_t = node.input.get(1).and_then(|s| self.consts.get(s.as_str()));
        if let Some(sc) = scale_t.filter(|t| !blocked && t.dims.len() > 1) {
            push(
                Rule::QdqShape,
                format!(
                    "scale `{}` has shape {:?}; a scale is a scalar (per tensor) or 1-D (per axis)",
                    sc.name, sc.dims
                ),
                "store one scale, or one per channel as a 1-D tensor",
            );
        }
        let zp_t = node
            .input
            .get(2)
            .filter(|s| !s.is_empty())
            .and_then(|s| self.consts.get(s.as_str()));
        if let (Some(sc), Some(zp)) = (scale_t, zp_t)
            && sc.dims != zp.dims
        {
            push(
                Rule::QdqShape,
                format!(
                    "zero point `{}` has shape {:?} but scale `{}` has shape {:?}",
                    zp.name, zp.dims, sc.name, sc.dims
                ),
                "give the zero point the scale's shape",
            );
        }

        // Zero point: constant, zero, signed; its type must fit the opset.
        if let Some(zp_name) = node.input.get(2).filter(|s| !s.is_empty()) {
            match self.consts.get(zp_name.as_str()) {
                None => push(
                    Rule::ZeroPoint,
                    format!("zero point `{zp_name}` is not a constant"),
                    "use a constant zero point of 0",
                ),
                Some(zp) => {
                    if !all_zero(zp) {
                        push(
                            Rule::ZeroPoint,
                            "zero point is not 0; TensorRT only supports symmetric quantization"
                                .into(),
                            "quantize symmetrically (zero point 0)",
                        );
                    }
                    match zp.data_type {
                        dtype::UINT8 | dtype::UINT4 if !self.options.allow_uint8 => push(
                            Rule::ZeroPoint,
                            "unsigned zero point; TensorRT treats it as signed or rejects it"
                                .into(),
                            "use an INT8 (signed) zero point (a signed quantizer), or set LintOptions::allow_uint8 for other runtimes",
                        ),
                        dtype::FLOAT8E4M3FN
                        | dtype::FLOAT8E4M3FNUZ
                        | dtype::FLOAT8E5M2
                        | dtype::FLOAT8E5M2FNUZ
                            if self.opset < 19 =>
                        {
                            push(
                                Rule::Opset,
                                format!(
                                    "{} needs opset 19, model has {}",
                                    dtype_name(zp.data_type),
                                    self.opset
                                ),
                                "export with opset >= 19",
                            )
                        }
                        dtype::INT4 | dtype::UINT4 | dtype::INT16 | dtype::UINT16
                            if self.opset < 21 =>
                        {
                            push(
                                Rule::Opset,
                                format!(
                                    "{} needs opset 21, model has {}",
                                    dtype_name(zp.data_type),
                                    self.opset
                                ),
                                "export with opset >= 21",
                            )
                        }
                        dtype::FLOAT4E2M1 if self.opset < 23 => push(
                            Rule::Opset,
                            format!("float4e2m1 needs opset 23, model has {}", self.opset),
                            "export with opset >= 23",
                        ),
                        _ => {}
                    }
                }
            }
        }

        // Per-axis: weights only, opset 13+, on the axis the consumer expects.
        let per_axis = scale_len.is_some_and(|n| n > 1);
        if per_axis {
            if self.opset < 13 {
                push(
                    Rule::Opset,
                    format!(
                        "per-axis quantization needs opset 13, model has {}",
                        self.opset
                    ),
                    "export with opset >= 13",
                );
            }
            let source = self.weight_source(node, kind);
            match source {
                None => push(
                    Rule::PerAxisActivation,
                    "per-axis scales on an activation; TensorRT quantizes activations per tensor"
                        .into(),
                    "use one scale for this tensor",
                ),
                Some(weight) => {
                    let rank = weight.dims.len() as i64;
                    let axis = int_attr(node, "axis").unwrap_or(1);
                    let axis = if axis < 0 { axis + rank } else { axis };
                    if let Some(n) = scale_len {
                        let dim = weight.dims.get(axis.max(0) as usize).copied().unwrap_or(-1);
                        if dim != n as i64 {
                            push(
                                Rule::Scale,
                                format!(
                                    "{n} scales for axis {axis} of a weight of shape {:?}",
                                    weight.dims
                                ),
                                "give one scale per channel of the quantized axis",
                            );
                        }
                    }
                    if kind == Kind::Dq {
                        for (consumer, slot) in
                            self.consumers.get(first_output(node)).into_iter().flatten()
                        {
                            if let Some(want) = self.expected_axis(consumer, *slot, rank)
                                && want != axis
                            {
                                push(
                                    Rule::WeightAxis,
                                    format!(
                                        "weight of {} `{}` is quantized on axis {axis}; TensorRT expects axis {want}",
                                        consumer.op_type,
                                        node_name(consumer)
                                    ),
                                    "requantize the weight per channel on that axis",
                                );
                            }
                        }
                    }
                }
            }
        }

        // Pairs and biases.
        match kind {
            Kind::Q => {
                for (consumer, _) in self.consumers.get(first_output(node)).into_iter().flatten() {
                    if qdq_kind(consumer) != Some(Kind::Dq) {
                        push(
                            Rule::Pairing,
                            format!(
                                "QuantizeLinear output feeds {} `{}`",
                                consumer.op_type,
                                node_name(consumer)
                            ),
                            "follow every QuantizeLinear with a DequantizeLinear",
                        );
                    } else if consumer.input.get(1) != node.input.get(1)
                        && !self.same_constant(consumer.input.get(1), node.input.get(1))
                    {
                        push(
                            Rule::Pairing,
                            format!(
                                "DequantizeLinear `{}` uses another scale than its QuantizeLinear",
                                node_name(consumer)
                            ),
                            "share one scale (and zero point) between the pair",
                        );
                    }
                }
            }
            Kind::Dq => {
                let input = node.input.first().map_or("", String::as_str);
                let from_q = self
                    .producers
                    .get(input)
                    .is_some_and(|p| qdq_kind(p) == Some(Kind::Q));
                if !from_q && !self.consts.contains_key(input) {
                    push(
                        Rule::Pairing,
                        format!(
                            "DequantizeLinear input `{input}` comes from neither a QuantizeLinear nor a constant"
                        ),
                        "insert the QuantizeLinear of the pair",
                    );
                }
                for (consumer, slot) in self.consumers.get(first_output(node)).into_iter().flatten()
                {
                    if *slot == 2
                        && matches!(consumer.op_type.as_str(), "Conv" | "ConvTranspose" | "Gemm")
                    {
                        push(
                            Rule::BiasDequantize,
                            format!(
                                "DequantizeLinear feeds the bias of {} `{}`",
                                consumer.op_type,
                                node_name(consumer)
                            ),
                            "keep the bias a float32 initializer without Q/DQ",
                        );
                    }
                }
            }
        }
    }

    /// A named tensor and its element type, when known.
    fn typed<'n>(&self, t: Option<&'n String>) -> Option<(&'n str, i32)> {
        let t = t.filter(|t| !t.is_empty())?;
        Some((t.as_str(), *self.types.get(t.as_str())?))
    }

    /// The weight constant behind a Q (its input) or a DQ (its Q's input, or its own
    /// constant input), or `None` for an activation.
    fn weight_source(&self, node: &NodeProto, kind: Kind) -> Option<&TensorProto> {
        let input = node.input.first()?.as_str();
        if let Some(t) = self.consts.get(input) {
            return Some(t);
        }
        if kind == Kind::Dq {
            let q = self
                .producers
                .get(input)
                .filter(|p| qdq_kind(p) == Some(Kind::Q))?;
            return self.consts.get(q.input.first()?.as_str()).copied();
        }
        None
    }

    /// The per-channel axis TensorRT's kernels expect for a weight at `slot` of `op`.
    fn expected_axis(&self, op: &NodeProto, slot: usize, rank: i64) -> Option<i64> {
        match (op.op_type.as_str(), slot) {
            ("Conv", 1) => Some(0),
            ("ConvTranspose", 1) => Some(self.options.conv_transpose_axis),
            ("Gemm", 1) => Some(if int_attr(op, "transB").unwrap_or(0) == 1 {
                0
            } else {
                1
            }),
            ("MatMul", 1) => Some(rank - 1),
            _ => None,
        }
    }

    fn same_constant(&self, a: Option<&String>, b: Option<&String>) -> bool {
        match (
            a.and_then(|a| self.consts.get(a.as_str())),
            b.and_then(|b| self.consts.get(b.as_str())),
        ) {
            (Some(x), Some(y)) => floats(x) == floats(y) && x.dims == y.dims,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_ir::{AttributeProto, GraphProto};

    fn floats_t(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.dims = dims.to_vec();
        t.data_type = dtype::FLOAT;
        t.float_data = v.to_vec();
        t
    }

    fn zp(name: &str, data_type: i32, v: &[i32]) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.dims = if v.len() == 1 {
            vec![]
        } else {
            vec![v.len() as i64]
        };
        t.data_type = data_type;
        t.int32_data = v.to_vec();
        t
    }

    fn node(
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        ints: &[(&str, i64)],
    ) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.name = name.into();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = outputs.iter().map(|s| s.to_string()).collect();
        for (k, v) in ints {
            let mut a = AttributeProto::new();
            a.name = k.to_string();
            a.i = *v;
            n.attribute.push(a);
        }
        n
    }

    /// A model reading graph input `x` and returning `y`.
    fn model(opset: i64, nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> ModelProto {
        let mut g = GraphProto::new();
        g.node = nodes;
        g.initializer = inits;
        g.input
            .push(crate::proto::value_info("x", dtype::FLOAT, &[1, 1, 1, 1]));
        g.output
            .push(crate::proto::value_info("y", dtype::FLOAT, &[1, 2, 1, 1]));
        let mut m = ModelProto::new();
        m.graph = Some(g).into();
        m.opset_import.push(Default::default());
        m.opset_import[0].version = opset;
        m
    }

    /// x -> Q/DQ -> Conv(., DQ(Q(w)) per channel on `w_axis`, bias) with `w` of shape `w_dims`.
    fn conv(
        op: &str,
        w_dims: &[i64],
        w_axis: i64,
        scales: &[f32],
    ) -> (Vec<NodeProto>, Vec<TensorProto>) {
        let n: i64 = w_dims.iter().product();
        let nodes = vec![
            node("QuantizeLinear", "x_q", &["x", "sx", "zx"], &["xq"], &[]),
            node(
                "DequantizeLinear",
                "x_dq",
                &["xq", "sx", "zx"],
                &["xd"],
                &[],
            ),
            node(
                "QuantizeLinear",
                "w_q",
                &["w", "sw", "zw"],
                &["wq"],
                &[("axis", w_axis)],
            ),
            node(
                "DequantizeLinear",
                "w_dq",
                &["wq", "sw", "zw"],
                &["wd"],
                &[("axis", w_axis)],
            ),
            node(op, "conv", &["xd", "wd", "b"], &["y"], &[]),
        ];
        let inits = vec![
            floats_t("sx", &[], &[0.02]),
            zp("zx", dtype::INT8, &[0]),
            floats_t("w", w_dims, &vec![0.5; n as usize]),
            floats_t("sw", &[scales.len() as i64], scales),
            zp("zw", dtype::INT8, &vec![0; scales.len()]),
            floats_t("b", &[2], &[0.0, 0.0]),
        ];
        (nodes, inits)
    }

    fn rules(v: &[Violation]) -> Vec<(Rule, String)> {
        v.iter().map(|x| (x.rule, x.node.clone())).collect()
    }

    #[test]
    fn a_tensorrt_ready_conv_passes() {
        let (nodes, inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
        assert_eq!(lint(&model(13, nodes, inits)), vec![]);
    }

    #[test]
    fn per_channel_needs_opset_13() {
        let (nodes, inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
        let v = lint(&model(10, nodes, inits));
        assert_eq!(
            rules(&v),
            vec![(Rule::Opset, "w_q".into()), (Rule::Opset, "w_dq".into())]
        );
        assert!(
            v[0].to_string().contains("export with opset >= 13"),
            "{}",
            v[0]
        );
    }

    #[test]
    fn zero_points_must_be_zero_and_signed() {
        let (nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
        inits[1] = zp("zx", dtype::INT8, &[3]);
        let v = lint(&model(13, nodes.clone(), inits.clone()));
        assert_eq!(
            rules(&v),
            vec![
                (Rule::ZeroPoint, "x_q".into()),
                (Rule::ZeroPoint, "x_dq".into())
            ]
        );
        inits[1] = zp("zx", dtype::UINT8, &[0]);
        let m = model(13, nodes, inits);
        let v = lint(&m);
        assert!(
            v.iter()
                .all(|x| x.rule == Rule::ZeroPoint && x.message.contains("unsigned")),
            "{v:?}"
        );
        assert_eq!(v.len(), 2);
        let other_runtimes = LintOptions {
            allow_uint8: true,
            ..Default::default()
        };
        assert_eq!(lint_with(&m, &other_runtimes), vec![]);
    }

    #[test]
    fn scales_must_be_positive_finite_constants_with_one_per_channel() {
        let (nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.0]);
        let v = lint(&model(13, nodes.clone(), inits.clone()));
        assert_eq!(
            rules(&v),
            vec![(Rule::Scale, "w_q".into()), (Rule::Scale, "w_dq".into())]
        );
        inits.retain(|t| t.name != "sx");
        let v = lint(&model(13, nodes, inits));
        assert!(
            v.iter().any(|x| x.rule == Rule::Scale
                && x.node == "x_q"
                && x.message.contains("not a constant")),
            "{v:?}"
        );
        let (nodes, inits) = conv("Conv", &[3, 1, 1, 1], 0, &[0.1, 0.2]);
        let v = lint(&model(13, nodes, inits));
        assert!(
            v.iter()
                .any(|x| x.rule == Rule::Scale && x.message.contains("2 scales for axis 0")),
            "{v:?}"
        );
    }

    #[test]
    fn weight_axes_per_op() {
        let (nodes, inits) = conv("Conv", &[2, 2, 1, 1], 1, &[0.1, 0.2]);
        let v = lint(&model(13, nodes, inits));
        assert_eq!(rules(&v), vec![(Rule::WeightAxis, "w_dq".into())]);
        assert!(v[0].message.contains("expects axis 0"), "{}", v[0]);
        // ConvTranspose: axis 0 by default, configurable.
        let (nodes, inits) = conv("ConvTranspose", &[2, 2, 1, 1], 1, &[0.1, 0.2]);
        let m = model(13, nodes, inits);
        assert_eq!(rules(&lint(&m)), vec![(Rule::WeightAxis, "w_dq".into())]);
        assert_eq!(
            lint_with(
                &m,
                &LintOptions {
                    conv_transpose_axis: 1,
                    ..Default::default()
                }
            ),
            vec![]
        );
        // Gemm: [N, K] with transB = 1 is axis 0; [K, N] without is axis 1.
        let (mut nodes, mut inits) = conv("Gemm", &[2, 3], 0, &[0.1, 0.2]);
        nodes[4].attribute.push({
            let mut a = AttributeProto::new();
            a.name = "transB".into();
            a.i = 1;
            a
        });
        assert_eq!(lint(&model(13, nodes.clone(), inits.clone())), vec![]);
        nodes[4].attribute.clear();
        inits[2] = floats_t("w", &[3, 2], &[0.5; 6]);
        assert_eq!(
            rules(&lint(&model(13, nodes, inits))),
            vec![
                (Rule::Scale, "w_q".into()),
                (Rule::Scale, "w_dq".into()),
                (Rule::WeightAxis, "w_dq".into())
            ]
        );
    }

    #[test]
    fn per_axis_activations_biases_and_pairs() {
        // Per-axis scale on the activation x.
        let (mut nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
        inits[0] = floats_t("sx", &[2], &[0.1, 0.2]);
        inits[1] = zp("zx", dtype::INT8, &[0, 0]);
        let v = lint(&model(13, nodes.clone(), inits.clone()));
        assert_eq!(
            rules(&v),
            vec![
                (Rule::PerAxisActivation, "x_q".into()),
                (Rule::PerAxisActivation, "x_dq".into())
            ]
        );
        // A dequantized bias.
        let (_, good_inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
        // Before the conv that reads it: nodes stay in topological order.
        nodes.insert(
            4,
            node("DequantizeLinear", "b_dq", &["bq", "sb"], &["bd"], &[]),
        );
        nodes[5].input[2] = "bd".into();
        inits = good_inits;
        inits.push(floats_t("sb", &[], &[0.001]));
        let mut bq = zp("bq", 6, &[1, 2]);
        bq.dims = vec![2];
        inits.push(bq);
        let v = lint(&model(13, nodes, inits));
        assert_eq!(rules(&v), vec![(Rule::BiasDequantize, "b_dq".into())]);
        // Q into a non-DQ, DQ from an activation, and mismatched pair scales.
        let (mut nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
        nodes.push(node("Relu", "relu", &["xq"], &["r"], &[]));
        nodes.push(node(
            "DequantizeLinear",
            "orphan",
            &["r", "sx"],
            &["o"],
            &[],
        ));
        nodes[1].input[1] = "sx2".into();
        inits.push(floats_t("sx2", &[], &[0.03]));
        let v = lint(&model(13, nodes, inits));
        assert_eq!(
            rules(&v),
            vec![
                (Rule::Pairing, "x_q".into()),
                (Rule::Pairing, "x_q".into()),
                (Rule::Pairing, "orphan".into())
            ]
        );
    }

    #[test]
    fn files_round_trip_and_bad_files_are_named_errors() {
        use onnx_ir::Message;
        let dir = std::env::temp_dir().join(format!("qdq-onnx-lint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (nodes, inits) = conv("Conv", &[2, 2, 1, 1], 1, &[0.1, 0.2]);
        let bytes = model(13, nodes, inits).write_to_bytes().unwrap();
        let good = dir.join("m.onnx");
        std::fs::write(&good, &bytes).unwrap();
        assert_eq!(
            rules(&lint_file(&good).unwrap()),
            vec![(Rule::WeightAxis, "w_dq".into())]
        );
        let cut = dir.join("cut.onnx");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = lint_file(&cut).unwrap_err();
        assert!(
            matches!(&err, ReadError::Parse { path, .. } if path.ends_with("cut.onnx")),
            "{err}"
        );
        assert!(matches!(
            lint_file(dir.join("missing.onnx")),
            Err(ReadError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fp8_zero_points_need_opset_19() {
        let (nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
        inits[1] = zp("zx", dtype::FLOAT8E4M3FN, &[0]);
        let v = lint(&model(17, nodes.clone(), inits.clone()));
        assert_eq!(
            rules(&v),
            vec![(Rule::Opset, "x_q".into()), (Rule::Opset, "x_dq".into())]
        );
        assert_eq!(lint(&model(19, nodes, inits)), vec![]);
    }
    #[test]
    fn qdq_element_types_are_what_runtimes_accept() {
        // Q/DQ on an int64 shape tensor: the Q input is not float.
        let mut nodes = vec![
            node("Shape", "shape", &["x"], &["s"], &[]),
            node("QuantizeLinear", "s_q", &["s", "sx", "zx"], &["sq"], &[]),
            node(
                "DequantizeLinear",
                "s_dq",
                &["sq", "sx", "zx"],
                &["sd"],
                &[],
            ),
            node("Reshape", "reshape", &["x", "sd"], &["y"], &[]),
        ];
        let inits = vec![floats_t("sx", &[], &[0.02]), zp("zx", dtype::INT8, &[0])];
        let v = lint(&model(13, nodes.clone(), inits.clone()));
        assert_eq!(rules(&v), vec![(Rule::QdqType, "s_q".into())]);
        assert!(v[0].message.contains("input `s` is int64"), "{}", v[0]);
        // An int64 scale makes the DQ output int64; an int32 zero point is no Q/DQ type.
        nodes.truncate(3);
        nodes[0] = node("Relu", "relu", &["x"], &["s"], &[]);
        nodes.push(node("Relu", "out", &["sd"], &["y"], &[]));
        let mut bad = inits.clone();
        bad[0] = zp("sx", dtype::INT64, &[1]);
        bad[1] = zp("zx", dtype::INT32, &[0]);
        let v = lint(&model(13, nodes.clone(), bad));
        let types: Vec<&str> = v
            .iter()
            .filter(|x| x.rule == Rule::QdqType)
            .map(|x| x.message.split(';').next().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "scale `sx` is int64",
                "zero point `zx` is int32",
                "DequantizeLinear output `sd` is int64",
                "scale `sx` is int64",
                "zero point `zx` is int32",
            ]
        );
        assert_eq!(lint(&model(13, nodes, inits)), vec![]);
    }

    /// Found by the `onnx_model` fuzz target: the pairing rule read the first output
    /// of a Q node that has none.
    #[test]
    fn a_qdq_node_without_outputs_is_reported_not_a_panic() {
        let nodes = vec![
            node("QuantizeLinear", "q", &["x", "sx", "zx"], &[], &[]),
            node("DequantizeLinear", "dq", &["x8", "sx", "zx"], &[], &[]),
            node("Relu", "out", &["x"], &["y"], &[]),
        ];
        let inits = vec![floats_t("sx", &[], &[0.02]), zp("zx", dtype::INT8, &[0])];
        let v = lint(&model(13, nodes, inits));
        assert!(!v.is_empty());
    }

    #[test]
    fn scale_and_zero_point_shapes() {
        let (nodes, mut inits) = conv("Conv", &[2, 1, 1, 1], 0, &[0.1, 0.2]);
        inits[0] = floats_t("sx", &[1, 1], &[0.02]);
        inits[1] = zp("zx", dtype::INT8, &[0]);
        let v = lint(&model(13, nodes.clone(), inits.clone()));
        assert_eq!(
            rules(&v),
            vec![
                (Rule::QdqShape, "x_q".into()),
                (Rule::QdqShape, "x_q".into()),
                (Rule::QdqShape, "x_dq".into()),
                (Rule::QdqShape, "x_dq".into())
            ]
        );
        assert!(v[0].message.contains("shape [1, 1]"), "{}", v[0]);
        assert!(
            v[1].message
                .contains("zero point `zx` has shape [] but scale `sx` has shape [1, 1]"),
            "{}",
            v[1]
        );
        inits[0] = floats_t("sx", &[], &[0.02]);
        assert_eq!(lint(&model(13, nodes, inits)), vec![]);
    }
}
