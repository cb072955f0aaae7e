//! A model's data as its graph takes it: the graph's inputs as data feeds them
//! ([`model_inputs`]), and batches of runtime values ([`batches`]).

use std::collections::HashMap;

use burn::tensor::Device;
use qdq_data::{DataError, ElemType, Input, ModelData, Values};
use qdq_onnx::runtime::{Dim, OnnxGraph, Value, dt, dtype_name, is_float};

/// The graph's runtime inputs as data feeds them: each one's element type, dimensions
/// and batch axis. The batch axis is where the batch dimension's name (the first
/// symbolic dimension 0 among the inputs, e.g. `batch`) appears in the input (silero's
/// state `[2, batch, 128]`: 1); in a model whose dimensions are unnamed and whose first
/// input's dimension 0 is unknown, the first unknown dimension of each input (silero
/// 6's `[2, ?, 128]`: 1); else dimension 0. A scalar input has none, and takes one
/// value for every batch.
///
/// # Errors
/// An input of a type data cannot be (string, 8-bit floats, 4-bit types).
pub fn model_inputs(graph: &OnnxGraph) -> Result<Vec<Input>, String> {
    let specs = graph.inputs();
    let batch_name = specs.iter().find_map(|s| match s.dims.first() {
        Some(Dim::Named(n)) => Some(n.clone()),
        _ => None,
    });
    let unnamed = batch_name.is_none()
        && specs
            .first()
            .is_some_and(|s| matches!(s.dims.first(), Some(Dim::Unknown)));
    specs
        .iter()
        .map(|s| {
            let elem = match s.elem_type {
                dt::BOOL => ElemType::Bool,
                dt::UINT8
                | dt::UINT16
                | dt::UINT32
                | dt::UINT64
                | dt::INT8
                | dt::INT16
                | dt::INT32
                | dt::INT64 => {
                    let bits = match s.elem_type {
                        dt::UINT8 | dt::INT8 => 8,
                        dt::UINT16 | dt::INT16 => 16,
                        dt::UINT32 | dt::INT32 => 32,
                        _ => 64,
                    };
                    let signed =
                        matches!(s.elem_type, dt::INT8 | dt::INT16 | dt::INT32 | dt::INT64);
                    ElemType::Int { signed, bits }
                }
                e if e == 0
                    || (is_float(e)
                        && [dt::FLOAT, dt::FLOAT16, dt::DOUBLE, dt::BFLOAT16].contains(&e)) =>
                {
                    ElemType::Float
                }
                e => {
                    return Err(format!(
                        "model input `{}` is {}; qdq feeds float, integer and bool inputs",
                        s.name,
                        dtype_name(e)
                    ));
                }
            };
            let batch_axis = match (&batch_name, s.dims.len(), s.rank_known) {
                (_, 0, true) => None,
                (Some(b), _, _) => Some(
                    s.dims
                        .iter()
                        .position(|d| matches!(d, Dim::Named(n) if n == b))
                        .unwrap_or(0),
                ),
                (None, _, _) if unnamed => Some(
                    s.dims
                        .iter()
                        .position(|d| matches!(d, Dim::Unknown))
                        .unwrap_or(0),
                ),
                (None, _, _) => Some(0),
            };
            Ok(Input {
                name: s.name.clone(),
                dims: s
                    .dims
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => Some(*n),
                        _ => None,
                    })
                    .collect(),
                elem,
                batch_axis,
            })
        })
        .collect()
}

/// Batches of a model's data as the graph takes them, each read when it is reached:
/// memory is one batch. Each comes with its items' numbers (for
/// [`ModelData::describe_items`]).
pub struct Batches<'a> {
    inner: qdq_data::Batches<'a>,
    /// The graph's device, where each batch is put.
    device: Device,
    /// The element type code of each input, by name.
    types: HashMap<String, i32>,
}

impl Batches<'_> {
    /// How many batches are left.
    pub fn total(&self) -> usize {
        self.inner.total()
    }

    /// [`qdq_data::Batches::resize`].
    pub fn resize(&mut self, size: usize) -> bool {
        self.inner.resize(size)
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<(Vec<usize>, Vec<(String, Value)>), Box<dyn std::error::Error>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (items, tensors) = match self.inner.next()? {
            Ok(b) => b,
            Err(e) => return Some(Err(e.into())),
        };
        let values = tensors
            .into_iter()
            .map(|(name, t)| {
                let v = match t.values {
                    Values::F32(v) => Value::try_from_f32(v, &t.shape, &self.device),
                    Values::I64(v) => {
                        let e = self.types.get(&name).copied().unwrap_or(dt::INT64);
                        Value::try_from_i64(v, &t.shape, &self.device, e)
                    }
                    Values::Bool(v) => Value::try_from_bool(v, &t.shape, &self.device),
                };
                Ok((name, v?))
            })
            .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>();
        Some(values.map(|v| (items, v)))
    }
}

/// [`Batches`] of `data` for `graph`, `batch` items each (the model's own batch size
/// where it fixes one).
///
/// # Errors
/// Inputs that fix different batch sizes.
pub fn batches<'a>(
    graph: &OnnxGraph,
    data: &'a ModelData,
    batch: usize,
) -> Result<Batches<'a>, DataError> {
    Ok(Batches {
        inner: data.batches(batch)?,
        device: graph.device().clone(),
        types: graph
            .inputs()
            .iter()
            .map(|s| (s.name.clone(), s.elem_type))
            .collect(),
    })
}
