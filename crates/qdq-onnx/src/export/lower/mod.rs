//! Lowering a recorded burn forward pass to ONNX nodes: the walk over the recording
//! and the emitting helpers here, one file per op family ([`elementwise`], [`shape`],
//! [`conv`]), quantizers in [`quant`] and constant folding in [`weights`].
//!
//! Operations are lowered in recording order. Four things are not one-to-one:
//! - a quantizer marker becomes a `QuantizeLinear → DequantizeLinear` pair;
//! - a marker on a constant (a weight) is held back: a following transpose or
//!   permute of it is folded into the weight initializer, its axis moved along, so a
//!   `Linear` exports as `MatMul` on a `[in, out]` weight quantized on axis 1
//!   instead of a Transpose between the DequantizeLinear and the MatMul;
//! - reshapes and transposes of constants (a bias reshaped for broadcasting) are
//!   folded into initializers;
//! - burn's instance norm (group norm's primitive ops) is fused afterwards into one
//!   `InstanceNormalization` node ([`instance_norm`]).

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
use crate::proto::elem as dtype;
use crate::proto::{attr_float, attr_int, attr_ints, node, tensor_f32, tensor_i64};
use crate::qdq::{QdqFormat, insert_qdq_scaled};

mod conv;
mod elementwise;
mod instance_norm;
mod quant;
mod shape;
mod weights;

use weights::initializer;

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
        instance_norm::fuse(&mut self.graph);
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
        match op {
            OperationIr::Init(_) | OperationIr::Drop(_) => {}
            OperationIr::NumericFloat(_, n) => self.numeric(n)?,
            OperationIr::Float(_, f) => self.float(f)?,
            OperationIr::BaseFloat(b) => self.base(b)?,
            OperationIr::Activation(a) => self.activation(a)?,
            OperationIr::Module(m) => self.module(m)?,
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

fn ints(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

fn sym_pads(p: &[usize]) -> Vec<usize> {
    p.iter().chain(p).copied().collect()
}

fn scalar_f32(s: &ScalarIr) -> f32 {
    match *s {
        ScalarIr::Float(v) => v as f32,
        ScalarIr::Int(v) => v as f32,
        ScalarIr::UInt(v) => v as f32,
        ScalarIr::Bool(v) => v as u8 as f32,
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

/// ONNX element type of a burn dtype.
pub(crate) fn onnx_type(d: DType) -> i32 {
    match d {
        DType::F32 => dtype::FLOAT,
        DType::I64 => dtype::INT64,
        _ => 0,
    }
}
