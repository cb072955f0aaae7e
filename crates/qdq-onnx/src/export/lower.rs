//! Lowering a recorded burn forward pass to ONNX nodes.
//!
//! Operations are lowered in recording order. Three things are not one-to-one:
//! - a quantizer marker becomes a `QuantizeLinear → DequantizeLinear` pair;
//! - a marker on a constant (a weight) is held back: a following transpose or
//!   permute of it is folded into the weight initializer, its axis moved along, so a
//!   `Linear` exports as `MatMul` on a `[in, out]` weight quantized on axis 1
//!   instead of a Transpose between the DequantizeLinear and the MatMul;
//! - reshapes and transposes of constants (a bias reshaped for broadcasting) are
//!   folded into initializers.

use std::collections::HashMap;

use burn::backend::capture::TensorId;
use burn::backend::ir::{
    ActivationOperationIr, BaseOperationIr, FloatOperationIr, ModuleOperationIr,
    NumericOperationIr, OperationIr, PadModeIr, ScalarIr, TensorIr,
};
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use onnx_ir::{GraphProto, NodeProto};
use qdq::tensor_quant::NumBits;

use super::trace::{QuantSite, Trace};
use super::{ExportOptions, Fp8Style, UnsupportedOp};
use crate::error::{Error, Result};
use crate::proto::{attr_float, attr_int, attr_ints, node, tensor_f32, tensor_i64};
use crate::qdq::{QdqFormat, insert_qdq_scaled};
use crate::tensor::dtype;

/// A weight quantizer held back until its consumer is known.
struct Deferred {
    konst: TensorId,
    site: QuantSite,
}

pub(crate) struct Lowerer<'a> {
    trace: &'a Trace,
    options: &'a ExportOptions,
    pub graph: GraphProto,
    /// ONNX value name of each emitted tensor.
    names: HashMap<TensorId, String>,
    /// Constant data by id: the trace's values plus folded constants.
    consts: HashMap<TensorId, (TensorData, String)>,
    deferred: HashMap<TensorId, Deferred>,
    /// How often each quantizer (by name) was lowered, to name repeated uses.
    quant_uses: HashMap<String, usize>,
    counter: usize,
    unsupported: Vec<UnsupportedOp>,
    /// Whether the `trt` domain is used.
    pub uses_trt_domain: bool,
}

impl<'a> Lowerer<'a> {
    pub fn new(trace: &'a Trace, options: &'a ExportOptions) -> Self {
        let mut consts = HashMap::new();
        for (id, data) in &trace.values {
            if *id != trace.input.0 {
                let name = trace
                    .params
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| format!("const_{}", id.value()));
                consts.insert(*id, (data.clone(), name));
            }
        }
        let mut names = HashMap::new();
        names.insert(trace.input.0, options.input_name.clone());
        Self {
            trace,
            options,
            graph: GraphProto::new(),
            names,
            consts,
            deferred: HashMap::new(),
            quant_uses: HashMap::new(),
            counter: 0,
            unsupported: Vec::new(),
            uses_trt_domain: false,
        }
    }

    /// Lowers every operation; the graph's output is renamed to the output name.
    pub fn run(mut self) -> Result<Self> {
        for (index, op) in self.trace.ops.iter().enumerate() {
            if let Err(e) = self.lower(op) {
                match e {
                    Lower::Unsupported(why) => self.unsupported.push(UnsupportedOp {
                        op: op_name(op),
                        index,
                        detail: why,
                        near: self.near(op),
                    }),
                    Lower::Fatal(e) => return Err(e),
                }
            }
        }
        if !self.unsupported.is_empty() {
            return Err(Error::UnsupportedOps(self.unsupported));
        }
        let out = self.trace.output.0;
        let produced = self.value(out)?;
        let wanted = self.options.output_name.clone();
        // Rename the producer's output (or add an Identity when the output is an
        // input or a constant).
        match self
            .graph
            .node
            .iter_mut()
            .rev()
            .find(|n| n.output.contains(&produced))
        {
            Some(n) => {
                for o in n.output.iter_mut().filter(|o| **o == produced) {
                    o.clone_from(&wanted);
                }
                for n in self.graph.node.iter_mut() {
                    for i in n.input.iter_mut().filter(|i| **i == produced) {
                        i.clone_from(&wanted);
                    }
                }
            }
            None => {
                let name = self.fresh("Identity");
                self.graph
                    .node
                    .push(node("Identity", &name, &[&produced], &[&wanted]));
            }
        }
        Ok(self)
    }

    /// Names of the parameters an unsupported op reads, or the last quantizer before it.
    fn near(&self, op: &OperationIr) -> String {
        let params: Vec<&str> = op
            .nodes()
            .iter()
            .filter_map(|t| self.trace.params.get(&t.id).map(String::as_str))
            .collect();
        if !params.is_empty() {
            return format!("reads {}", params.join(", "));
        }
        let last = self
            .trace
            .quant
            .values()
            .filter(|s| self.names.contains_key(&s.input))
            .map(|s| s.name.as_str())
            .last();
        match last {
            Some(q) => format!("after {q}"),
            None => "before any quantizer".into(),
        }
    }

    fn fresh(&mut self, op: &str) -> String {
        self.counter += 1;
        format!("{op}_{}", self.counter)
    }

    /// The ONNX name of tensor `id`, emitting its initializer or held-back Q/DQ pair
    /// on first use.
    fn value(&mut self, id: TensorId) -> Result<String> {
        if let Some(name) = self.names.get(&id) {
            return Ok(name.clone());
        }
        if let Some(d) = self.deferred.remove(&id) {
            let input = self.value(d.konst)?;
            let out = self.qdq(&input, &d.site)?;
            self.names.insert(id, out.clone());
            return Ok(out);
        }
        if let Some((data, name)) = self.consts.remove(&id) {
            let name = self.unique(name);
            self.graph.initializer.push(initializer(&name, &data)?);
            self.names.insert(id, name.clone());
            return Ok(name);
        }
        Err(Error::Capture(format!(
            "tensor {} is read before it is computed",
            id.value()
        )))
    }

    fn unique(&self, name: String) -> String {
        if self.graph.initializer.iter().any(|t| t.name == name) {
            format!("{name}_{}", self.graph.initializer.len())
        } else {
            name
        }
    }

    /// Emits the Q/DQ pair for `site` on `input`; returns the dequantized name.
    fn qdq(&mut self, input: &str, site: &QuantSite) -> Result<String> {
        let l = &site.lowering;
        let fail = |what: String, needed: i64| Error::Opset {
            quantizer: site.name.clone(),
            what,
            needed,
            opset: self.options.opset,
        };
        let format = match (l.num_bits, l.unsigned) {
            (NumBits::Int(8), false) => QdqFormat::Int8,
            (NumBits::Int(8), true) => QdqFormat::Uint8,
            (NumBits::E4M3(_), _) => match self.options.fp8 {
                Fp8Style::Onnx => QdqFormat::Fp8E4M3,
                Fp8Style::TensorRt => QdqFormat::TrtFp8E4M3,
            },
            (bits, _) => {
                return Err(Error::Quantizer(qdq::Error::Quantizer {
                    name: site.name.clone(),
                    source: Box::new(qdq::Error::Unsupported {
                        what: "ONNX export",
                        format: format!(
                            "{bits}-bit quantizers; TensorRT Q/DQ is 8-bit (INT8) or FP8 E4M3"
                        ),
                    }),
                }));
            }
        };
        if format == QdqFormat::TrtFp8E4M3 && l.axis.is_some() {
            return Err(Error::Quantizer(qdq::Error::Quantizer {
                name: site.name.clone(),
                source: Box::new(qdq::Error::Unsupported {
                    what: "per-channel amax",
                    format: "TensorRT's TRT_FP8 custom ops (scalar scale only); use Fp8Style::Onnx"
                        .into(),
                }),
            }));
        }
        let needed = format.min_opset(l.axis.is_some());
        if self.options.opset < needed {
            let what = match format {
                QdqFormat::Fp8E4M3 => "FP8 E4M3 QuantizeLinear (FLOAT8E4M3FN)".to_string(),
                _ => format!("per-channel quantization (axis {})", l.axis.unwrap_or(0)),
            };
            return Err(fail(what, needed));
        }
        self.uses_trt_domain |= format == QdqFormat::TrtFp8E4M3;
        let uses = self.quant_uses.entry(site.name.clone()).or_insert(0);
        *uses += 1;
        let prefix = if *uses == 1 {
            site.name.clone()
        } else {
            format!("{}.{}", site.name, *uses - 1)
        };
        // The record's own scales: qdq defines them, for the format it recorded.
        Ok(insert_qdq_scaled(
            &mut self.graph,
            input,
            &prefix,
            &l.scales(),
            l.axis.map(|a| a as i64),
            format,
        ))
    }

    /// Emits `op(inputs)` into a fresh intermediate value; returns its name.
    fn emit_tmp(&mut self, op: &str, inputs: &[&str]) -> String {
        let name = self.fresh(op);
        let out = format!("{name}_out");
        self.graph.node.push(node(op, &name, inputs, &[&out]));
        out
    }

    /// Emits `op(inputs)` computing tensor `out`.
    fn emit(&mut self, op: &str, inputs: &[&str], out: &TensorIr) -> &mut NodeProto {
        let out_name = self.emit_tmp(op, inputs);
        self.names.insert(out.id, out_name);
        self.last()
    }

    /// Emits `op(inputs...)` reading tensors.
    fn emit_t(&mut self, op: &str, inputs: &[&TensorIr], out: &TensorIr) -> Result<&mut NodeProto> {
        let names = inputs
            .iter()
            .map(|t| self.value(t.id))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(self.emit(op, &refs, out))
    }

    /// A new initializer holding `values` (float32, or int64 for shapes and indices).
    fn const_f32(&mut self, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh("const");
        self.graph.initializer.push(tensor_f32(&name, dims, values));
        name
    }

    fn const_i64(&mut self, values: &[i64]) -> String {
        let name = self.fresh("const");
        self.graph
            .initializer
            .push(tensor_i64(&name, &[values.len()], values));
        name
    }

    fn scalar(&mut self, s: &ScalarIr, like: &TensorIr) -> std::result::Result<String, Lower> {
        if like.dtype != DType::F32 {
            return Err(Lower::Unsupported(format!(
                "scalar operand on a {:?} tensor",
                like.dtype
            )));
        }
        Ok(self.const_f32(&[], &[scalar_f32(s)]))
    }

    fn lower(&mut self, op: &OperationIr) -> std::result::Result<(), Lower> {
        use ModuleOperationIr as M;
        match op {
            OperationIr::Init(_) | OperationIr::Drop(_) => {}
            OperationIr::NumericFloat(_, n) => self.numeric(n)?,
            OperationIr::Float(_, f) => self.float(f)?,
            OperationIr::BaseFloat(b) => self.base(b)?,
            OperationIr::Activation(a) => self.activation(a)?,
            OperationIr::Module(m) => match m {
                M::Conv1d(c) => {
                    let o = &c.options;
                    let pads = [o.padding[0].0, o.padding[0].1];
                    self.conv("Conv", &c.x, &c.weight, c.bias.as_ref(), &c.out)?;
                    conv_attrs(self.last(), &o.stride, &pads, &o.dilation, o.groups);
                }
                M::Conv2d(c) => {
                    let o = &c.options;
                    let pads = [
                        o.padding[0].0,
                        o.padding[1].0,
                        o.padding[0].1,
                        o.padding[1].1,
                    ];
                    self.conv("Conv", &c.x, &c.weight, c.bias.as_ref(), &c.out)?;
                    conv_attrs(self.last(), &o.stride, &pads, &o.dilation, o.groups);
                }
                M::Conv3d(c) => {
                    let o = &c.options;
                    let pads = sym_pads(&o.padding);
                    self.conv("Conv", &c.x, &c.weight, c.bias.as_ref(), &c.out)?;
                    conv_attrs(self.last(), &o.stride, &pads, &o.dilation, o.groups);
                }
                M::ConvTranspose1d(c) => conv_transpose!(self, c),
                M::ConvTranspose2d(c) => conv_transpose!(self, c),
                M::ConvTranspose3d(c) => conv_transpose!(self, c),
                M::AvgPool1d(p) => {
                    let n = self.emit_t("AveragePool", &[&p.x], &p.out)?;
                    pool_attrs(n, &[p.kernel_size], &[p.stride], &[p.padding], p.ceil_mode);
                    n.attribute
                        .push(attr_int("count_include_pad", p.count_include_pad as i64));
                }
                M::AvgPool2d(p) => {
                    let n = self.emit_t("AveragePool", &[&p.x], &p.out)?;
                    pool_attrs(n, &p.kernel_size, &p.stride, &p.padding, p.ceil_mode);
                    n.attribute
                        .push(attr_int("count_include_pad", p.count_include_pad as i64));
                }
                M::MaxPool1d(p) => {
                    let n = self.emit_t("MaxPool", &[&p.x], &p.out)?;
                    pool_attrs(n, &[p.kernel_size], &[p.stride], &[p.padding], p.ceil_mode);
                    n.attribute
                        .push(attr_ints("dilations", [p.dilation as i64]));
                }
                M::MaxPool2d(p) => {
                    let n = self.emit_t("MaxPool", &[&p.x], &p.out)?;
                    pool_attrs(n, &p.kernel_size, &p.stride, &p.padding, p.ceil_mode);
                    n.attribute.push(attr_ints("dilations", ints(&p.dilation)));
                }
                M::AdaptiveAvgPool1d(p) => self.adaptive(&p.x, &[p.output_size], &p.out)?,
                M::AdaptiveAvgPool2d(p) => self.adaptive(&p.x, &p.output_size, &p.out)?,
                M::AdaptiveAvgPool3d(p) => self.adaptive(&p.x, &p.output_size, &p.out)?,
                M::BatchNorm(b) => {
                    let inputs = [&b.x, &b.gamma, &b.beta, &b.mean, &b.variance];
                    let n = self.emit_t("BatchNormalization", &inputs, &b.out)?;
                    n.attribute
                        .push(attr_float("epsilon", scalar_f32(&b.epsilon)));
                }
                M::LayerNorm(l) => {
                    if self.options.opset < 17 {
                        return Err(Lower::Unsupported(
                            "LayerNormalization needs opset 17 or newer".into(),
                        ));
                    }
                    let mut inputs = vec![&l.input, &l.gamma];
                    inputs.extend(l.beta.as_ref());
                    let n = self.emit_t("LayerNormalization", &inputs, &l.out)?;
                    n.attribute.push(attr_int("axis", -1));
                    n.attribute
                        .push(attr_float("epsilon", scalar_f32(&l.epsilon)));
                }
                M::Linear(l) => match &l.bias {
                    None => {
                        self.emit_t("MatMul", &[&l.x, &l.weight], &l.out)?;
                    }
                    Some(b) => {
                        let (x, w) = (self.value(l.x.id)?, self.value(l.weight.id)?);
                        let mm = self.emit_tmp("MatMul", &[&x, &w]);
                        let b = self.value(b.id)?;
                        self.emit("Add", &[&mm, &b], &l.out);
                    }
                },
                _ => return Err(Lower::Unsupported(String::new())),
            },
            _ => return Err(Lower::Unsupported(String::new())),
        }
        Ok(())
    }

    /// With a dynamic batch: whether `out` keeps `input`'s batch dimension.
    fn keeps_batch(&self, input: &TensorIr, out: &TensorIr) -> bool {
        let batch = self.trace.input.1.first().copied();
        self.options.dynamic_batch
            && input.shape.first().copied() == batch
            && out.shape.first().copied() == batch
    }

    fn last(&mut self) -> &mut NodeProto {
        self.graph.node.last_mut().expect("a node was emitted")
    }

    fn conv(
        &mut self,
        op: &str,
        x: &TensorIr,
        w: &TensorIr,
        b: Option<&TensorIr>,
        out: &TensorIr,
    ) -> Result<()> {
        let mut inputs = vec![x, w];
        inputs.extend(b);
        let n = self.emit_t(op, &inputs, out)?;
        let kernel: Vec<i64> = w.shape.to_vec()[2..].iter().map(|&d| d as i64).collect();
        n.attribute.push(attr_ints("kernel_shape", kernel));
        Ok(())
    }

    fn adaptive(
        &mut self,
        x: &TensorIr,
        output: &[usize],
        out: &TensorIr,
    ) -> std::result::Result<(), Lower> {
        let spatial = &x.shape.to_vec()[2..];
        if output.iter().all(|&o| o == 1) {
            self.emit_t("GlobalAveragePool", &[x], out)?;
            return Ok(());
        }
        if spatial
            .iter()
            .zip(output)
            .any(|(&i, &o)| o == 0 || i % o != 0)
        {
            return Err(Lower::Unsupported(format!(
                "adaptive average pooling from {spatial:?} to {output:?} (ONNX pools need the output size to divide the input)"
            )));
        }
        let kernel: Vec<usize> = spatial.iter().zip(output).map(|(&i, &o)| i / o).collect();
        let n = self.emit_t("AveragePool", &[x], out)?;
        pool_attrs(n, &kernel, &kernel, &vec![0; kernel.len()], false);
        Ok(())
    }

    fn quant_marker(&mut self, input: &TensorIr, out: &TensorIr) -> Result<bool> {
        let Some(site) = self.trace.quant.get(&out.id).cloned() else {
            return Ok(false);
        };
        debug_assert_eq!(site.input, input.id);
        if self.consts.contains_key(&input.id) {
            self.deferred.insert(
                out.id,
                Deferred {
                    konst: input.id,
                    site,
                },
            );
        } else {
            let x = self.value(input.id)?;
            let y = self.qdq(&x, &site)?;
            self.names.insert(out.id, y);
        }
        Ok(true)
    }

    /// Folds a layout op on a constant (or a held-back weight quantizer) into a new
    /// constant. `axis_map` maps an old axis to the new one (None: not expressible).
    fn fold_layout(
        &mut self,
        input: &TensorIr,
        out: &TensorIr,
        apply: impl Fn(Tensor<6>) -> Tensor<6>,
        axis_map: impl Fn(usize) -> Option<usize>,
    ) -> Result<bool> {
        let fold = |data: &TensorData| -> TensorData {
            // Rank-generic: pad to rank 6 with trailing ones, apply; the result's
            // row-major data is the output's (whose padded shape it has).
            let mut padded = data.shape().to_vec();
            padded.resize(6, 1);
            let values = data.clone().convert::<f32>().try_into_vec::<f32>();
            let t = Tensor::<6>::from_data(
                TensorData::new(values.unwrap_or_default(), padded),
                &Device::flex(),
            );
            let values = apply(t).into_data().try_into_vec::<f32>();
            TensorData::new(values.unwrap_or_default(), out.shape.to_vec())
        };
        if let Some(d) = self.deferred.get(&input.id) {
            let (data, name) = self
                .consts
                .get(&d.konst)
                .cloned()
                .expect("held-back constant");
            let mut site = d.site.clone();
            let axis = match site.lowering.axis {
                Some(a) => match axis_map(a) {
                    Some(b) => Some(b),
                    None => return Ok(false),
                },
                None => None,
            };
            site.lowering.axis = axis;
            let folded = fold(&data);
            let new_const = TensorId::new(u64::MAX - self.counter as u64 - 1);
            self.counter += 1;
            self.consts.insert(new_const, (folded, name));
            self.deferred.insert(
                out.id,
                Deferred {
                    konst: new_const,
                    site,
                },
            );
            return Ok(true);
        }
        if let Some((data, name)) = self.consts.get(&input.id).cloned() {
            if data.dtype() != DType::F32 {
                return Ok(false);
            }
            self.consts.insert(out.id, (fold(&data), name));
            return Ok(true);
        }
        Ok(false)
    }
}

/// Why an op was not lowered.
pub(crate) enum Lower {
    Unsupported(String),
    Fatal(Error),
}

impl From<Error> for Lower {
    fn from(e: Error) -> Self {
        Lower::Fatal(e)
    }
}

/// ConvTranspose of any rank: burn's 1/2/3-D ops differ only in their array lengths.
macro_rules! conv_transpose {
    ($self:ident, $c:ident) => {{
        let o = &$c.options;
        $self.conv(
            "ConvTranspose",
            &$c.x,
            &$c.weight,
            $c.bias.as_ref(),
            &$c.out,
        )?;
        let n = $self.last();
        conv_attrs(n, &o.stride, &sym_pads(&o.padding), &o.dilation, o.groups);
        n.attribute
            .push(attr_ints("output_padding", ints(&o.padding_out)));
    }};
}
use conv_transpose;

fn ints(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

fn sym_pads(p: &[usize]) -> Vec<usize> {
    p.iter().chain(p).copied().collect()
}

fn conv_attrs(
    n: &mut NodeProto,
    stride: &[usize],
    pads: &[usize],
    dilation: &[usize],
    groups: usize,
) {
    n.attribute.push(attr_ints("strides", ints(stride)));
    n.attribute.push(attr_ints("pads", ints(pads)));
    n.attribute.push(attr_ints("dilations", ints(dilation)));
    n.attribute.push(attr_int("group", groups as i64));
}

fn pool_attrs(
    n: &mut NodeProto,
    kernel: &[usize],
    stride: &[usize],
    padding: &[usize],
    ceil: bool,
) {
    n.attribute.push(attr_ints("kernel_shape", ints(kernel)));
    n.attribute.push(attr_ints("strides", ints(stride)));
    n.attribute
        .push(attr_ints("pads", ints(&sym_pads(padding))));
    n.attribute.push(attr_int("ceil_mode", ceil as i64));
}

fn scalar_f32(s: &ScalarIr) -> f32 {
    match *s {
        ScalarIr::Float(v) => v as f32,
        ScalarIr::Int(v) => v as f32,
        ScalarIr::UInt(v) => v as f32,
        ScalarIr::Bool(v) => v as u8 as f32,
    }
}

/// An initializer from burn tensor data (float32, int64 or int32 -> int64).
fn initializer(name: &str, data: &TensorData) -> Result<onnx_ir::TensorProto> {
    let dims = data.shape().to_vec();
    match data.dtype() {
        DType::F32 => Ok(tensor_f32(
            name,
            &dims,
            data.as_slice::<f32>().unwrap_or(&[]),
        )),
        DType::I64 | DType::I32 => {
            let v: Vec<i64> = data
                .clone()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .unwrap_or_default();
            Ok(tensor_i64(name, &dims, &v))
        }
        other => Err(Error::Capture(format!(
            "constant `{name}` has data type {other:?}; export supports float32 and integer constants"
        ))),
    }
}

/// The op's variant name, e.g. `Conv2d` or `CumSum`.
pub(crate) fn op_name(op: &OperationIr) -> String {
    let s = format!("{op:?}");
    let mut parts = s.split('(');
    let outer = parts.next().unwrap_or_default();
    let inner = parts.next().unwrap_or_default();
    let inner = inner.rsplit(", ").next().unwrap_or(inner).trim();
    if inner.is_empty() || inner.contains(' ') || inner.ends_with("Ir") {
        outer.to_string()
    } else {
        inner.to_string()
    }
}

// The op families, each in one place.
impl Lowerer<'_> {
    fn numeric(&mut self, n: &NumericOperationIr) -> std::result::Result<(), Lower> {
        use NumericOperationIr as N;
        match n {
            N::MulScalar(s) if self.quant_marker(&s.lhs, &s.out)? => {}
            N::Add(b) | N::Sub(b) | N::Mul(b) | N::Div(b) => {
                let op = match n {
                    N::Add(_) => "Add",
                    N::Sub(_) => "Sub",
                    N::Mul(_) => "Mul",
                    _ => "Div",
                };
                self.emit_t(op, &[&b.lhs, &b.rhs], &b.out)?;
            }
            N::AddScalar(s) | N::SubScalar(s) | N::MulScalar(s) | N::DivScalar(s) => {
                let op = match n {
                    N::AddScalar(_) => "Add",
                    N::SubScalar(_) => "Sub",
                    N::MulScalar(_) => "Mul",
                    _ => "Div",
                };
                let c = self.scalar(&s.rhs, &s.lhs)?;
                let x = self.value(s.lhs.id)?;
                self.emit(op, &[&x, &c], &s.out);
            }
            N::Abs(u) => {
                self.emit_t("Abs", &[&u.input], &u.out)?;
            }
            N::Neg(u) => {
                self.emit_t("Neg", &[&u.input], &u.out)?;
            }
            N::ClampMin(s) | N::ClampMax(s) => {
                let op = if matches!(n, N::ClampMin(_)) {
                    "Max"
                } else {
                    "Min"
                };
                let c = self.scalar(&s.rhs, &s.lhs)?;
                let x = self.value(s.lhs.id)?;
                self.emit(op, &[&x, &c], &s.out);
            }
            N::Clamp(c) if self.options.opset < 11 => {
                let n = self.emit_t("Clip", &[&c.tensor], &c.out)?;
                n.attribute.push(attr_float("min", scalar_f32(&c.min)));
                n.attribute.push(attr_float("max", scalar_f32(&c.max)));
            }
            N::Clamp(c) => {
                let lo = self.scalar(&c.min, &c.tensor)?;
                let hi = self.scalar(&c.max, &c.tensor)?;
                let x = self.value(c.tensor.id)?;
                self.emit("Clip", &[&x, &lo, &hi], &c.out);
            }
            N::MeanDim(r) | N::SumDim(r) => {
                let op = if matches!(n, N::MeanDim(_)) {
                    "ReduceMean"
                } else {
                    "ReduceSum"
                };
                let y = self.reduce(op, &r.input, &[r.axis], true)?;
                self.names.insert(r.out.id, y);
            }
            N::Mean(r) | N::Sum(r) => {
                let op = if matches!(n, N::Mean(_)) {
                    "ReduceMean"
                } else {
                    "ReduceSum"
                };
                let axes: Vec<usize> = (0..r.input.shape.to_vec().len()).collect();
                // burn's full reductions give shape [1]: reduce keeping dims, reshape.
                let kept = self.reduce(op, &r.input, &axes, true)?;
                let shape = self.const_i64(&ints(&r.out.shape.to_vec()));
                self.emit("Reshape", &[&kept, &shape], &r.out);
            }
            N::Pad(p) => {
                let PadModeIr::Constant(v) = &p.mode else {
                    return Err(Lower::Unsupported(format!("{:?} padding", p.mode)));
                };
                if self.options.opset < 11 {
                    return Err(Lower::Unsupported("Pad needs opset 11 or newer".into()));
                }
                let rank = p.input.shape.to_vec().len();
                // burn lists (before, after) from the last dimension backwards.
                let mut begins = vec![0i64; rank];
                let mut ends = vec![0i64; rank];
                for (i, (b, e)) in p.padding.iter().enumerate() {
                    begins[rank - 1 - i] = *b as i64;
                    ends[rank - 1 - i] = *e as i64;
                }
                let pads = self.const_i64(&[begins, ends].concat());
                let value = self.scalar(v, &p.input)?;
                let x = self.value(p.input.id)?;
                self.emit("Pad", &[&x, &pads, &value], &p.out);
            }
            _ => return Err(Lower::Unsupported(String::new())),
        }
        Ok(())
    }

    fn reduce(
        &mut self,
        op: &str,
        input: &TensorIr,
        axes: &[usize],
        keepdims: bool,
    ) -> Result<String> {
        let axes = ints(axes);
        // Axes became an input in opset 13 for ReduceSum and 18 for the others.
        let as_input = self.options.opset >= if op == "ReduceSum" { 13 } else { 18 };
        let x = self.value(input.id)?;
        let y = if as_input {
            let a = self.const_i64(&axes);
            self.emit_tmp(op, &[&x, &a])
        } else {
            let y = self.emit_tmp(op, &[&x]);
            self.last().attribute.push(attr_ints("axes", axes));
            y
        };
        self.last()
            .attribute
            .push(attr_int("keepdims", keepdims as i64));
        Ok(y)
    }

    fn float(&mut self, f: &FloatOperationIr) -> std::result::Result<(), Lower> {
        use FloatOperationIr as F;
        let unary = match f {
            F::Exp(u) => Some(("Exp", u)),
            F::Log(u) => Some(("Log", u)),
            F::Erf(u) => Some(("Erf", u)),
            F::Sqrt(u) => Some(("Sqrt", u)),
            F::Tanh(u) => Some(("Tanh", u)),
            F::Cos(u) => Some(("Cos", u)),
            F::Sin(u) => Some(("Sin", u)),
            F::Round(u) => Some(("Round", u)),
            F::Floor(u) => Some(("Floor", u)),
            F::Ceil(u) => Some(("Ceil", u)),
            F::Recip(u) => Some(("Reciprocal", u)),
            _ => None,
        };
        if let Some((op, u)) = unary {
            self.emit_t(op, &[&u.input], &u.out)?;
            return Ok(());
        }
        match f {
            F::Matmul(m) => {
                self.emit_t("MatMul", &[&m.lhs, &m.rhs], &m.out)?;
            }
            F::Powf(b) => {
                self.emit_t("Pow", &[&b.lhs, &b.rhs], &b.out)?;
            }
            F::PowfScalar(s) => {
                let c = self.scalar(&s.rhs, &s.lhs)?;
                let x = self.value(s.lhs.id)?;
                self.emit("Pow", &[&x, &c], &s.out);
            }
            _ => return Err(Lower::Unsupported(String::new())),
        }
        Ok(())
    }

    fn base(&mut self, b: &BaseOperationIr) -> std::result::Result<(), Lower> {
        use BaseOperationIr as B;
        match b {
            B::Reshape(r) => {
                let (from, to) = (r.input.shape.to_vec().clone(), r.out.shape.to_vec().clone());
                // A per-channel axis survives a reshape that keeps it and everything before.
                let keep =
                    move |a: usize| (from[..=a] == to.get(..=a).unwrap_or(&[])[..]).then_some(a);
                if !self.fold_layout(&r.input, &r.out, |t| t, keep)? {
                    let mut dims = ints(&r.out.shape.to_vec());
                    if self.keeps_batch(&r.input, &r.out) {
                        dims[0] = 0; // copy the (dynamic) batch from the input
                    }
                    let shape = self.const_i64(&dims);
                    let x = self.value(r.input.id)?;
                    self.emit("Reshape", &[&x, &shape], &r.out);
                }
            }
            B::SwapDims(s) => {
                let rank = s.input.shape.to_vec().len();
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.swap(s.dim1, s.dim2);
                self.transpose(&s.input, &s.out, perm)?;
            }
            B::Permute(p) => self.transpose(&p.input, &p.out, p.axes.clone())?,
            B::Expand(e) => {
                let mut dims = ints(&e.out.shape.to_vec());
                if self.keeps_batch(&e.input, &e.out) {
                    dims[0] = 1; // broadcasting keeps the input's batch
                }
                let shape = self.const_i64(&dims);
                let x = self.value(e.input.id)?;
                self.emit("Expand", &[&x, &shape], &e.out);
            }
            B::Cat(c) => {
                let inputs: Vec<&TensorIr> = c.tensors.iter().collect();
                let n = self.emit_t("Concat", &inputs, &c.out)?;
                n.attribute.push(attr_int("axis", c.dim as i64));
            }
            B::RepeatDim(r) => {
                let mut reps = vec![1i64; r.tensor.shape.to_vec().len()];
                reps[r.dim] = r.times as i64;
                let reps = self.const_i64(&reps);
                let x = self.value(r.tensor.id)?;
                self.emit("Tile", &[&x, &reps], &r.out);
            }
            B::Slice(s) => {
                let dims = &s.tensor.shape.to_vec();
                let (mut starts, mut ends, mut axes, mut steps) = (vec![], vec![], vec![], vec![]);
                for (axis, r) in s.ranges.iter().enumerate() {
                    let len = dims[axis] as i64;
                    let norm = |v: isize| if v < 0 { v as i64 + len } else { v as i64 };
                    let (start, mut end) = (norm(r.start), r.end.map_or(len, norm));
                    if axis == 0 && start == 0 && end == len && self.keeps_batch(&s.tensor, &s.out)
                    {
                        end = i64::MAX; // the whole (dynamic) batch
                    }
                    if r.step < 0 {
                        return Err(Lower::Unsupported("a slice with a negative step".into()));
                    }
                    starts.push(start);
                    ends.push(end);
                    axes.push(axis as i64);
                    steps.push(r.step as i64);
                }
                let names = [starts, ends, axes, steps].map(|v| self.const_i64(&v));
                let x = self.value(s.tensor.id)?;
                let inputs = [x.as_str(), &names[0], &names[1], &names[2], &names[3]];
                self.emit("Slice", &inputs, &s.out);
            }
            B::Cast(c) if c.input.dtype == c.out.dtype => {
                self.emit_t("Identity", &[&c.input], &c.out)?;
            }
            B::Zeros(c) | B::Ones(c) => {
                let v = if matches!(b, B::Zeros(_)) { 0.0 } else { 1.0 };
                let n = c.out.shape.num_elements();
                let data = TensorData::new(vec![v; n], c.out.shape.to_vec().clone());
                self.consts
                    .insert(c.out.id, (data, format!("const_{}", c.out.id.value())));
            }
            _ => return Err(Lower::Unsupported(String::new())),
        }
        Ok(())
    }

    fn transpose(
        &mut self,
        input: &TensorIr,
        out: &TensorIr,
        perm: Vec<usize>,
    ) -> std::result::Result<(), Lower> {
        let rank = perm.len();
        let p = perm.clone();
        let apply = move |t: Tensor<6>| {
            let mut full: Vec<usize> = p.clone();
            full.extend(rank..6);
            t.permute(<[usize; 6]>::try_from(full).expect("rank 6"))
        };
        let q = perm.clone();
        let axis_map = move |a: usize| q.iter().position(|&d| d == a);
        if !self.fold_layout(input, out, apply, axis_map)? {
            let x = self.value(input.id)?;
            self.emit("Transpose", &[&x], out)
                .attribute
                .push(attr_ints("perm", ints(&perm)));
        }
        Ok(())
    }

    fn activation(&mut self, a: &ActivationOperationIr) -> std::result::Result<(), Lower> {
        use ActivationOperationIr as A;
        match a {
            A::Relu(u) => {
                self.emit_t("Relu", &[&u.input], &u.out)?;
            }
            A::Sigmoid(u) => {
                self.emit_t("Sigmoid", &[&u.input], &u.out)?;
            }
            A::LeakyRelu(s) => {
                self.emit_t("LeakyRelu", &[&s.lhs], &s.out)?
                    .attribute
                    .push(attr_float("alpha", scalar_f32(&s.rhs)));
            }
            A::HardSigmoid(h) => {
                let n = self.emit_t("HardSigmoid", &[&h.tensor], &h.out)?;
                n.attribute.push(attr_float("alpha", scalar_f32(&h.alpha)));
                n.attribute.push(attr_float("beta", scalar_f32(&h.beta)));
            }
            A::Softmax(d) | A::LogSoftmax(d)
                if self.options.opset < 13 && d.axis + 1 != d.input.shape.len() =>
            {
                return Err(Lower::Unsupported(
                    "softmax over a non-last axis needs opset 13 or newer".into(),
                ));
            }
            A::Softmax(d) | A::LogSoftmax(d) => {
                let op = if matches!(a, A::Softmax(_)) {
                    "Softmax"
                } else {
                    "LogSoftmax"
                };
                self.emit_t(op, &[&d.input], &d.out)?
                    .attribute
                    .push(attr_int("axis", d.axis as i64));
            }
            A::Gelu(u) => {
                if self.options.opset >= 20 {
                    self.emit_t("Gelu", &[&u.input], &u.out)?;
                } else {
                    // 0.5 * x * (1 + erf(x / sqrt(2)))
                    let x = self.value(u.input.id)?;
                    let sqrt2 = self.const_f32(&[], &[std::f32::consts::SQRT_2]);
                    let one = self.const_f32(&[], &[1.0]);
                    let half = self.const_f32(&[], &[0.5]);
                    let d = self.emit_tmp("Div", &[&x, &sqrt2]);
                    let e = self.emit_tmp("Erf", &[&d]);
                    let p = self.emit_tmp("Add", &[&e, &one]);
                    let m = self.emit_tmp("Mul", &[&x, &p]);
                    self.emit("Mul", &[&m, &half], &u.out);
                }
            }
            _ => return Err(Lower::Unsupported(String::new())),
        }
        Ok(())
    }
}

/// ONNX element type of a burn dtype.
pub(crate) fn onnx_type(d: DType) -> i32 {
    match d {
        DType::F32 => dtype::FLOAT,
        DType::I64 => dtype::INT64,
        _ => 0,
    }
}
