//! Saving and loading calibrated models as safetensors with pytorch-quantization's
//! names and shapes (`conv1.weight`, `conv1._weight_quantizer._amax` of shape
//! `[C, 1, 1, 1]`, a per-tensor `_amax` as a 0-d tensor).
//!
//! burn's own records (`Module::save_file` / `load_file`) work as well; this format is
//! for exchange with PyTorch.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::walk::{ModulePath, PathMapper, PathVisitor, map_paths, named_quantizers, visit_paths};
use crate::error::{Error, Result};
use crate::tensor_quant::{amax_is_set, host_values};

/// Writes every float parameter of `model` to a safetensors file, named by its path.
/// Quantizer amaxes take the keepdims shape they were calibrated or used with
/// (flat `[C]` when never used); unset amaxes are left out, as the reference keeps no
/// `_amax` buffer before calibration. The file is written to a temporary name and
/// renamed, so a failure leaves no partial file.
///
/// # Errors
/// [`Error::Io`] naming the file when it cannot be written.
pub fn save_safetensors<M: Module>(model: &M, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let shapes: HashMap<String, Vec<usize>> = named_quantizers(model)
        .into_iter()
        .filter_map(|q| Some((format!("{}._amax", q.name), q.handle.amax_shape()?)))
        .collect();
    let mut collector = Collector::default();
    visit_paths(model, &mut collector);
    let mut entries = Vec::new();
    for (name, values, mut shape) in collector.tensors {
        if name.ends_with("._amax") {
            if !amax_is_set(&values) {
                continue;
            }
            shape = match shapes.get(&name) {
                Some(s) if s.iter().product::<usize>() == values.len() => s.clone(),
                _ if values.len() == 1 => vec![],
                _ => shape,
            };
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        entries.push((name, shape, bytes));
    }
    let views = entries
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| io_error(path, e))?;
    let bytes = safetensors::serialize(views, None).map_err(|e| io_error(path, e))?;
    crate::io::write_atomic(path, &bytes).map_err(|e| io_error(path, e))
}

/// Loads parameters saved by [`save_safetensors`] (or by PyTorch with
/// pytorch-quantization, where names match) into `model`, by path. Amaxes of any
/// keepdims shape load flat. Parameters missing from the file keep their values.
///
/// # Errors
/// An unreadable or malformed file, a non-f32 tensor, or a tensor whose element
/// count differs from the model's, each naming the file and tensor.
pub fn load_safetensors<M: Module>(model: M, path: impl AsRef<Path>) -> Result<M> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| io_error(path, e))?;
    let mut tensors = HashMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(Error::Io {
                path: path.display().to_string(),
                message: format!(
                    "tensor `{name}` is {:?}; qdq reads float32 tensors",
                    view.dtype()
                ),
            });
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(name, (values, view.shape().to_vec()));
    }
    let mut loader = Loader {
        tensors,
        error: None,
        file: path.display().to_string(),
    };
    let model = map_paths(model, &mut loader);
    match loader.error {
        Some(e) => Err(e),
        None => Ok(model),
    }
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Every float parameter: (dotted path, values, shape).
#[derive(Default)]
struct Collector {
    tensors: Vec<(String, Vec<f32>, Vec<usize>)>,
}

impl PathVisitor for Collector {
    fn visit_float<const D: usize>(&mut self, path: &ModulePath, param: &Param<Tensor<D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        if let Ok(values) = host_values(&t) {
            self.tensors.push((path.dotted(), values, shape));
        }
    }
}

/// Replaces each float parameter by the file's tensor of the same path.
struct Loader {
    tensors: HashMap<String, (Vec<f32>, Vec<usize>)>,
    error: Option<Error>,
    file: String,
}

impl PathMapper for Loader {
    fn map_float<const D: usize>(
        &mut self,
        path: &ModulePath,
        param: Param<Tensor<D>>,
    ) -> Param<Tensor<D>> {
        let name = path.dotted();
        let Some((values, shape)) = self.tensors.remove(&name) else {
            return param;
        };
        let target = param.lazy_shape().dims::<D>();
        let is_amax = name.ends_with("._amax");
        // An amax is stored flat here and keepdims in PyTorch: only its count must match,
        // except that an unsized per-channel amax takes the file's.
        let new_shape: Vec<usize> = if is_amax && D == 1 {
            vec![values.len()]
        } else {
            shape.clone()
        };
        if new_shape != target.to_vec() && !(is_amax && D == 1) {
            if self.error.is_none() {
                self.error = Some(Error::Io {
                    path: self.file.clone(),
                    message: format!(
                        "tensor `{name}` has shape {shape:?}, the model expects {target:?}"
                    ),
                });
            }
            return param;
        }
        let device = param.lazy_device();
        let tensor = Tensor::from_data(TensorData::new(values, new_shape), &device);
        let tensor = if param.val().is_require_grad() {
            tensor.require_grad()
        } else {
            tensor
        };
        Param::initialized(param.id, tensor)
    }
}
