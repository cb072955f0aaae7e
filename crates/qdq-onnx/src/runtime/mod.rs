//! An ONNX interpreter on burn tensors: load a `ModelProto`, check it once (supported
//! ops, defined tensors, initializers), then run it node by node on any burn `Device`.
//! It is the execution engine of calibration (see [`OnnxGraph::run_with`], which shows
//! every activation as it is computed and frees values once no node needs them).
//!
//! ```no_run
//! use burn::tensor::Device;
//! use qdq_onnx::runtime::{OnnxGraph, Value};
//! let device = Device::flex();
//! let graph = OnnxGraph::load("model.onnx", &device)?;
//! let x = Value::from_f32(vec![0.0; 3 * 224 * 224], &[1, 3, 224, 224], &device);
//! let outputs = graph.run(vec![(graph.inputs()[0].name.clone(), x)])?;
//! # Ok::<(), qdq_onnx::runtime::RunError>(())
//! ```

mod body;
mod control;
mod error;
mod half_cast;
mod ops;
mod probe;
pub(crate) mod value;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use burn::tensor::Device;
use onnx_ir::{GraphProto, ModelProto, ValueInfoProto};

use crate::proto::ReadError;
/// The element-type codes, the proto floor's table under the runtime's old name.
pub use crate::proto::elem as dt;
pub use crate::proto::elem::{dtype_name, is_float};
use crate::proto::version::model_opset;
use body::Body;
pub use body::MAX_SUBGRAPH_DEPTH;
pub use control::{MAX_LOOP_ITERATIONS, subgraph_scope};
pub use error::{RunError, RunResult};
pub use ops::ml::DOMAIN as ML_DOMAIN;
pub use ops::quant::INTERNAL_DOMAIN;
pub use ops::sequence::MAX_SEQUENCE_LEN;
pub use probe::{ProbeFill, probe_values};
pub use value::{Dyn, DynTensor, MAX_ELEMENTS, MAX_RANK, Value};

/// Every op type the runtime executes (default ONNX domain), for listing unsupported ops.
pub fn supported_ops() -> &'static [&'static str] {
    ops::SUPPORTED
}

/// The operators of `graph` (subgraphs included) that the runtime cannot execute, each
/// with its count: `Op`, `domain:Op` outside ONNX's default domain, `Op in If `name``
/// inside a subgraph; sorted. Empty when the whole graph runs.
pub fn unsupported_ops(graph: &GraphProto) -> Vec<(String, usize)> {
    let mut unsupported = Vec::new();
    body::collect_unsupported(graph, None, 0, &mut unsupported);
    unsupported.sort();
    unsupported
}

/// One dimension of a graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size (`batch`, `seq`...).
    Named(String),
    /// Unspecified.
    Unknown,
}

/// What a graph input or output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A tensor (also an undeclared type).
    Tensor,
    /// `seq(tensor(elem_type))`, a [`Value::Sequence`].
    Sequence,
    /// `optional(...)` of a tensor or a sequence, a [`Value::Optional`].
    Optional,
}

/// A graph input or output as declared by the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueSpec {
    /// Value name.
    pub name: String,
    /// Tensor, sequence or optional.
    pub kind: ValueKind,
    /// ONNX element type code (1 = float32, 7 = int64, ...; of the tensors inside, for
    /// a sequence or an optional).
    pub elem_type: i32,
    /// Declared dims (empty for a scalar or when the rank is unknown; see `rank_known`).
    pub dims: Vec<Dim>,
    /// Whether the model declares a shape (and so a rank) at all.
    pub rank_known: bool,
}

impl ValueSpec {
    /// What `v` declares.
    pub fn from_proto(v: &ValueInfoProto) -> Self {
        let mut spec = ValueSpec {
            name: v.name.clone(),
            kind: ValueKind::Tensor,
            elem_type: 0,
            dims: Vec::new(),
            rank_known: false,
        };
        // Peel `optional(...)` and `seq(...)` down to the tensor type inside (its dims
        // are checked only for a plain tensor).
        let mut ty = v.type_.as_ref();
        for _ in 0..2 {
            match ty {
                Some(t) if t.has_optional_type() => {
                    spec.kind = ValueKind::Optional;
                    ty = t.optional_type().elem_type.as_ref();
                }
                Some(t) if t.has_sequence_type() => {
                    if spec.kind == ValueKind::Tensor {
                        spec.kind = ValueKind::Sequence;
                    }
                    ty = t.sequence_type().elem_type.as_ref();
                }
                _ => break,
            }
        }
        if let Some(ty) = ty
            && ty.has_tensor_type()
        {
            let t = ty.tensor_type();
            spec.elem_type = t.elem_type;
            if spec.kind != ValueKind::Tensor {
                return spec;
            }
            if let Some(shape) = t.shape.as_ref() {
                spec.rank_known = true;
                spec.dims = shape
                    .dim
                    .iter()
                    .map(|d| {
                        if d.has_dim_value() && d.dim_value() >= 0 {
                            Dim::Fixed(d.dim_value() as usize)
                        } else if d.has_dim_param() && !d.dim_param().is_empty() {
                            Dim::Named(d.dim_param().to_string())
                        } else {
                            Dim::Unknown
                        }
                    })
                    .collect();
            }
        }
        spec
    }

    /// Whether a tensor of `shape` fits the declaration: any shape when no rank is
    /// declared, else the same rank and every fixed dim.
    pub fn fits(&self, shape: &[usize]) -> bool {
        !self.rank_known
            || self.dims.len() == shape.len()
                && self.dims.iter().zip(shape).all(|(d, &g)| match d {
                    Dim::Fixed(n) => *n == g,
                    _ => true,
                })
    }

    fn describe(&self) -> String {
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => n.to_string(),
                Dim::Named(s) => s.clone(),
                Dim::Unknown => "?".into(),
            })
            .collect();
        match self.kind {
            ValueKind::Sequence => format!("a sequence of {}", dtype_name(self.elem_type)),
            ValueKind::Optional => format!("an optional of {}", dtype_name(self.elem_type)),
            ValueKind::Tensor if self.rank_known => {
                format!("{} [{}]", dtype_name(self.elem_type), dims.join(", "))
            }
            ValueKind::Tensor => dtype_name(self.elem_type).to_string(),
        }
    }
}

/// A parsed, validated ONNX graph, ready to run.
pub struct OnnxGraph {
    body: Body,
    loop_limit: usize,
    opset: i64,
    inputs: Vec<ValueSpec>,
    outputs: Vec<ValueSpec>,
    device: Device,
}

impl OnnxGraph {
    /// Reads and prepares an `.onnx` file.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self, RunError> {
        let model = crate::proto::read_model(path).map_err(|e| match e {
            ReadError::Io { path, source } => RunError::Io { path, source },
            ReadError::Parse { path, message } => RunError::Parse { path, message },
            e @ ReadError::External { .. } => RunError::Graph(e.to_string()),
        })?;
        Self::from_model(&model, device)
    }

    /// Prepares a model: checks every op is supported (subgraphs included), every
    /// tensor is defined before use, and loads the initializers onto `device`.
    pub fn from_model(model: &ModelProto, device: &Device) -> Result<Self, RunError> {
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| RunError::Graph("the model has no graph".into()))?;
        // A model that declares no default-domain opset is read as the newest.
        let opset = match model_opset(model) {
            0 => 21,
            v => v,
        };
        // unsupported operators, all at once
        let unsupported = unsupported_ops(graph);
        if !unsupported.is_empty() {
            return Err(RunError::UnsupportedOps(unsupported));
        }
        let init_names: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<ValueSpec> = graph
            .input
            .iter()
            .filter(|i| !init_names.contains(i.name.as_str()))
            .map(ValueSpec::from_proto)
            .collect();
        let outputs: Vec<ValueSpec> = graph.output.iter().map(ValueSpec::from_proto).collect();
        let names = inputs.iter().map(|i| i.name.clone()).collect();
        let body = Body::compile(graph, names, &HashSet::new(), 0, device)?;
        Ok(Self {
            body,
            loop_limit: MAX_LOOP_ITERATIONS,
            opset,
            inputs,
            outputs,
            device: device.clone(),
        })
    }

    /// The device the graph's weights live on and its runs compute on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runtime inputs: graph inputs that are not initializers.
    pub fn inputs(&self) -> &[ValueSpec] {
        &self.inputs
    }

    /// Graph outputs.
    pub fn outputs(&self) -> &[ValueSpec] {
        &self.outputs
    }

    /// Sets the most iterations one Loop node may run (default
    /// [`MAX_LOOP_ITERATIONS`]); a Loop still running then fails with an error naming it.
    pub fn set_loop_limit(&mut self, iterations: usize) {
        self.loop_limit = iterations;
    }

    /// Default-domain opset the model imports.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// Runs the graph; returns the graph outputs in declaration order.
    pub fn run(&self, inputs: Vec<(String, Value)>) -> Result<Vec<(String, Value)>, RunError> {
        self.run_with(inputs, &mut |_, _| Ok(()))
    }

    /// Like [`OnnxGraph::run`], calling `observe(tensor_name, &value)` for every node
    /// output as soon as it is computed, in execution order. Values no longer needed are
    /// dropped as execution goes. Inside an If, Loop, Scan or SequenceMap the subgraph's
    /// inputs and node outputs are observed too, every time it runs, named with the
    /// subgraph's scope prefix ([`subgraph_scope`], chained when nested).
    pub fn run_with(
        &self,
        inputs: Vec<(String, Value)>,
        observe: &mut dyn FnMut(&str, &Value) -> Result<(), RunError>,
    ) -> Result<Vec<(String, Value)>, RunError> {
        self.run_replacing(inputs, Vec::new(), observe)
    }

    /// Like [`OnnxGraph::run_with`], with some initializers replaced for this run by
    /// values of the same shape: how fine-tuning feeds its trained (autodiff-tracked)
    /// weights through a graph whose own initializers stay as loaded.
    pub fn run_replacing(
        &self,
        inputs: Vec<(String, Value)>,
        initializers: Vec<(String, Value)>,
        observe: &mut dyn FnMut(&str, &Value) -> Result<(), RunError>,
    ) -> Result<Vec<(String, Value)>, RunError> {
        let mut env: HashMap<String, Value> = HashMap::new();
        for (name, v) in initializers {
            let Some(own) = self.body.initializers.get(&name) else {
                return Err(RunError::Graph(format!(
                    "`{name}` is not an initializer of the graph"
                )));
            };
            if own.shape() != v.shape() || own.elem_type() != v.elem_type() {
                return Err(RunError::Graph(format!(
                    "initializer `{name}` is {} {:?}; its replacement is {} {:?}",
                    dtype_name(own.elem_type()),
                    own.shape(),
                    dtype_name(v.elem_type()),
                    v.shape()
                )));
            }
            env.insert(name, v);
        }
        for (name, v) in inputs {
            let spec =
                self.inputs
                    .iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| RunError::Input {
                        name: name.clone(),
                        message: format!(
                            "not an input of the graph (inputs: {})",
                            self.inputs
                                .iter()
                                .map(|s| s.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })?;
            let v = check_input(spec, v)?;
            env.insert(name, v);
        }
        for s in &self.inputs {
            if !env.contains_key(&s.name) {
                return Err(RunError::Input {
                    name: s.name.clone(),
                    message: format!("missing; expected {}", s.describe()),
                });
            }
        }
        let run = body::RunCtx {
            opset: self.opset,
            device: &self.device,
            loop_limit: self.loop_limit,
        };
        self.body.exec(env, None, run, observe)
    }
}

/// Checks a provided input against its declared type and shape.
fn check_input(spec: &ValueSpec, v: Value) -> Result<Value, RunError> {
    let bad = |what: String| RunError::Input {
        name: spec.name.clone(),
        message: what,
    };
    let kind_ok = match spec.kind {
        ValueKind::Tensor => v.is_tensor(),
        ValueKind::Sequence => matches!(v, Value::Sequence(..)),
        ValueKind::Optional => matches!(v, Value::Optional(_)),
    };
    // the tensors inside a sequence or optional: the declared element type
    let inner_ok = |e: i32| {
        spec.elem_type == 0
            || e == 0
            || e == spec.elem_type
            || is_float(e) && is_float(spec.elem_type)
    };
    if !kind_ok || !v.is_tensor() && !inner_ok(v.elem_type()) {
        return Err(bad(format!(
            "expected {}, given a {}",
            spec.describe(),
            v.describe()
        )));
    }
    if !v.is_tensor() {
        return Ok(v);
    }
    let given = v.shape();
    let desc = |v: &Value| v.describe();
    let v = match (spec.elem_type, v) {
        (0, v) => v,
        // Every float type is held as f32 (see `Value`).
        (e, v @ Value::Float(_)) if is_float(e) => v,
        (9, v @ Value::Bool(_)) => v,
        (e, Value::Int(t, _)) if ops::is_int_type(e) => Value::Int(t, e),
        (_, v) => {
            return Err(bad(format!(
                "expected {}, given {}",
                spec.describe(),
                desc(&v)
            )));
        }
    };
    if !spec.fits(&given) {
        return Err(bad(format!(
            "expected {}, given {}",
            spec.describe(),
            desc(&v)
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod hostile;
#[cfg(test)]
mod sequence_tests;
#[cfg(test)]
mod subgraph_tests;
#[cfg(test)]
mod tests;
