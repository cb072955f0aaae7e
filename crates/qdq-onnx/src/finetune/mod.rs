//! Quantization-aware fine-tuning of an ONNX graph (`qdq finetune`): the QDQ model
//! that [`crate::quantize::apply`] writes, trained like the seed's QAT and written
//! back with the same quantizers.
//!
//! [`TrainableGraph`] is a burn [`Module`] whose parameters are the graph's weights
//! (one rank-1 [`Param`] per trained initializer, reshaped when the graph runs), so
//! burn's optimizers and autodiff train it like any model. The graph runs on qdq's
//! ONNX runtime with every Q→DQ pair fused into one straight-through fake quant
//! (`fuse.rs`): the forward value is exactly the pair's, so the trained model scores
//! the same in ONNX Runtime, and the gradient passes where `|x| <= amax`. Scales stay
//! fixed (amax frozen, the seed's recipe). BatchNormalization runs with its running
//! statistics (inference mode), as TensorRT will run it; its scale and bias train.

pub mod distill;
pub(crate) mod fuse;

pub use distill::{DistillLoss, distill_loss};

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::TensorData;
use onnx_ir::{GraphProto, ModelProto};

use crate::error::{Error, Result};
use crate::proto::decode::floats;
use crate::proto::elem as dtype;
use crate::runtime::{DynTensor, OnnxGraph, RunError, Value};

/// Node inputs that are weights: the initializers found there (directly or through
/// a Q→DQ pair) are trained.
const WEIGHT_INPUTS: &[(&str, &[usize])] = &[
    ("Conv", &[1, 2]),
    ("ConvTranspose", &[1, 2]),
    ("Gemm", &[0, 1, 2]),
    ("MatMul", &[0, 1]),
    ("BatchNormalization", &[1, 2]),
    ("InstanceNormalization", &[1, 2]),
    ("LayerNormalization", &[1, 2]),
    ("PRelu", &[1]),
];

/// Ops whose output a constant `Add` turns into a biased output (MatMul + Add is how
/// exporters write a Linear layer).
const BIASED: &[&str] = &["MatMul", "Conv", "ConvTranspose", "Gemm"];

/// A QDQ ONNX graph as a trainable burn module. Build it on an inference device, then
/// `fork` it to an autodiff device to train (see the module doc).
#[derive(Module, Debug)]
pub struct TrainableGraph {
    /// The trained initializers, flattened, in [`TrainableGraph::names`] order.
    pub params: Vec<Param<Tensor<1>>>,
    #[module(skip)]
    graph: Arc<Fused>,
}

/// The fused graph and what the parameters are.
struct Fused {
    runtime: OnnxGraph,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    pairs: usize,
}

impl fmt::Debug for Fused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fused")
            .field("params", &self.names)
            .field("pairs", &self.pairs)
            .finish()
    }
}

impl TrainableGraph {
    /// Prepares `model` (a QDQ model, or a float one) for training on `device`.
    ///
    /// # Errors
    /// A graph the runtime cannot run, a Q→DQ pair that cannot be fused (named), or a
    /// graph with no weight to train.
    pub fn new(model: &ModelProto, device: &Device) -> Result<Self> {
        let mut fused = model.clone();
        let graph = fused
            .graph
            .as_mut()
            .ok_or_else(|| Error::Graph("the model has no graph".into()))?;
        let pairs = fuse::fuse_qdq_pairs(graph)?;
        let names = trained_initializers(graph);
        let graph = fused.graph.as_ref().expect("checked above");
        if names.is_empty() {
            return Err(Error::Graph(
                "the graph has no weight to train: no float initializer feeds a Conv, ConvTranspose, Gemm, MatMul or normalization".into(),
            ));
        }
        let runtime = OnnxGraph::from_model(&fused, device).map_err(Error::Run)?;
        let inits: HashMap<&str, &onnx_ir::TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let mut params = Vec::with_capacity(names.len());
        let mut shapes = Vec::with_capacity(names.len());
        for name in &names {
            let t = inits[name.as_str()];
            let values = floats(t).unwrap_or_default();
            let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            if values.len() != shape.iter().product::<usize>() {
                return Err(Error::Graph(format!(
                    "initializer `{name}` holds {} values for shape {shape:?}",
                    values.len()
                )));
            }
            let n = values.len();
            params.push(Param::from_tensor(Tensor::from_data(
                TensorData::new(values, [n]),
                device,
            )));
            shapes.push(shape);
        }
        Ok(Self {
            params,
            graph: Arc::new(Fused {
                runtime,
                names,
                shapes,
                pairs,
            }),
        })
    }

    /// Names of the trained initializers.
    pub fn names(&self) -> &[String] {
        &self.graph.names
    }

    /// How many Q→DQ pairs run as straight-through fake quant.
    pub fn quantizers(&self) -> usize {
        self.graph.pairs
    }

    /// Runs the graph with the current parameters; on an autodiff device the outputs
    /// carry the gradient back to [`TrainableGraph::params`].
    ///
    /// # Errors
    /// As [`OnnxGraph::run`]: the error names the node or input at fault.
    pub fn forward(
        &self,
        inputs: Vec<(String, Value)>,
    ) -> std::result::Result<Vec<(String, Value)>, RunError> {
        let mut weights = Vec::with_capacity(self.params.len());
        for ((p, name), shape) in self
            .params
            .iter()
            .zip(&self.graph.names)
            .zip(&self.graph.shapes)
        {
            let v = Value::Float(DynTensor::from_tensor(p.val()).reshape(shape)?);
            weights.push((name.clone(), v));
        }
        self.graph
            .runtime
            .run_replacing(inputs, weights, &mut |_, _| Ok(()))
    }

    /// Logits `[batch, classes]` (the first output) of a batch of images fed to the
    /// first input, reshaped to its declared dims (the dynamic ones taken from
    /// `images`, matched from the right).
    ///
    /// # Errors
    /// As [`TrainableGraph::forward`], or a first output that is not `[batch, classes]`.
    pub fn classify(&self, images: Tensor<4>) -> std::result::Result<Tensor<2>, RunError> {
        let spec = self
            .graph
            .runtime
            .inputs()
            .first()
            .ok_or_else(|| RunError::Graph("the graph has no runtime input".into()))?;
        let given = images.dims();
        let mut shape = given.to_vec();
        if spec.rank_known && !spec.dims.is_empty() {
            let k = spec.dims.len();
            shape = spec
                .dims
                .iter()
                .enumerate()
                .map(|(i, d)| match (i, d) {
                    (0, _) => given[0],
                    (_, crate::runtime::Dim::Fixed(n)) => *n,
                    _ => given[(4 + i).saturating_sub(k).min(3)],
                })
                .collect();
        }
        let x = Value::Float(DynTensor::from_tensor(images).reshape(&shape)?);
        let (name, out) = self
            .forward(vec![(spec.name.clone(), x)])?
            .into_iter()
            .next()
            .ok_or_else(|| RunError::Graph("the graph has no output".into()))?;
        let dims = out.shape();
        if dims.len() != 2 || dims[0] != given[0] {
            return Err(RunError::Graph(format!(
                "fine-tuning needs logits [batch, classes] as the first output; `{name}` is {dims:?} for a batch of {}",
                given[0]
            )));
        }
        out.into_float_tensor::<2>()
    }

    /// `model` with the trained initializers' values replaced by the parameters'
    /// (everything else, Q/DQ scales included, untouched).
    ///
    /// # Errors
    /// `model` lacks one of the trained initializers, or reading a parameter failed.
    pub fn write_into(&self, model: &ModelProto) -> Result<ModelProto> {
        let mut out = model.clone();
        let graph: &mut GraphProto = out
            .graph
            .as_mut()
            .ok_or_else(|| Error::Graph("the model has no graph".into()))?;
        for (p, name) in self.params.iter().zip(&self.graph.names) {
            let values: Vec<f32> = p
                .val()
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| Error::Graph(format!("reading parameter `{name}`: {e:?}")))?;
            let t = graph
                .initializer
                .iter_mut()
                .find(|t| &t.name == name)
                .ok_or_else(|| {
                    Error::Graph(format!("the model has no initializer `{name}` to update"))
                })?;
            t.float_data.clear();
            t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        }
        Ok(out)
    }
}

/// The float initializers a fused graph trains, in graph order.
fn trained_initializers(graph: &GraphProto) -> Vec<String> {
    let float_inits: HashMap<&str, bool> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t.data_type == dtype::FLOAT))
        .collect();
    let producer: HashMap<&str, &onnx_ir::NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    // An initializer itself, or the one a fake quant node reads.
    let source = |name: &str| -> Option<String> {
        let name = match producer.get(name) {
            Some(n) if n.op_type == "FakeQuantizeLinear" => n.input.first()?.as_str(),
            Some(_) => return None,
            None => name,
        };
        (float_inits.get(name) == Some(&true)).then(|| name.to_string())
    };
    let mut found: Vec<String> = Vec::new();
    for n in &graph.node {
        let slots: Vec<usize> = match WEIGHT_INPUTS.iter().find(|(op, _)| *op == n.op_type) {
            Some((_, slots)) => slots.to_vec(),
            None if n.op_type == "Add" => {
                let computed = |i: &String| {
                    producer
                        .get(i.as_str())
                        .is_some_and(|p| BIASED.contains(&p.op_type.as_str()))
                };
                if n.input.iter().any(computed) {
                    vec![0, 1]
                } else {
                    Vec::new()
                }
            }
            None => Vec::new(),
        };
        for s in slots {
            if let Some(name) = n.input.get(s).and_then(|i| source(i))
                && !found.contains(&name)
            {
                found.push(name);
            }
        }
    }
    let order: HashMap<&str, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(k, t)| (t.name.as_str(), k))
        .collect();
    found.sort_by_key(|n| order.get(n.as_str()).copied());
    found
}

#[cfg(test)]
mod grad_tests;
#[cfg(test)]
mod tests;
