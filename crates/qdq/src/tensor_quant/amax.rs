//! [`Amax`]: a small host-side tensor of absolute ranges, as calibrators return them
//! and descriptors carry them.

use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Absolute max range(s): one value per tensor (shape `[]`) or per channel in a
/// keepdims shape such as `[C, 1, 1, 1]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AmaxRepr", into = "AmaxRepr")]
pub struct Amax {
    values: Vec<f32>,
    shape: Vec<usize>,
}

impl Amax {
    /// One amax for the whole tensor.
    pub fn scalar(value: f32) -> Self {
        Self {
            values: vec![value],
            shape: vec![],
        }
    }

    /// Values in row-major order with their shape.
    ///
    /// # Errors
    /// [`Error::Data`] when the shape's element count differs from `values.len()`.
    pub fn new(values: Vec<f32>, shape: Vec<usize>) -> Result<Self> {
        if shape.iter().product::<usize>() != values.len() {
            return Err(Error::Data(format!(
                "amax shape {shape:?} does not hold {} values",
                values.len()
            )));
        }
        Ok(Self { values, shape })
    }

    /// Reads a tensor's values.
    pub fn from_tensor<const D: usize>(t: &Tensor<D>) -> Result<Self> {
        Self::new(super::host_values(t)?, t.dims().to_vec())
    }

    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The shape (`[]` per tensor).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of values.
    pub fn numel(&self) -> usize {
        self.values.len()
    }

    /// Smallest and largest value.
    pub fn min_max(&self) -> (f32, f32) {
        self.values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// Multiplies every value by `factor` in float32 (`scale_amax`).
    pub fn scaled(&self, factor: f32) -> Self {
        Self {
            values: self.values.iter().map(|v| v * factor).collect(),
            shape: self.shape.clone(),
        }
    }

    /// The amax as a rank-`D` tensor: per-tensor values become `[1; D]`, others keep
    /// their shape (left-padded with ones up to rank `D`).
    ///
    /// # Errors
    /// [`Error::Data`] when the amax has more dims than `D`.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Result<Tensor<D>> {
        if self.shape.len() > D {
            return Err(Error::Data(format!(
                "amax of shape {:?} cannot be used with a rank-{D} tensor",
                self.shape
            )));
        }
        let mut shape = vec![1usize; D - self.shape.len()];
        shape.extend_from_slice(&self.shape);
        Ok(Tensor::from_data(
            TensorData::new(self.values.clone(), shape),
            device,
        ))
    }
}

/// Serialized form: a number per tensor, a list for 1-D, shape + values otherwise.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum AmaxRepr {
    Scalar(f32),
    List(Vec<f32>),
    Shaped { shape: Vec<usize>, values: Vec<f32> },
}

impl TryFrom<AmaxRepr> for Amax {
    type Error = Error;
    fn try_from(r: AmaxRepr) -> Result<Self> {
        match r {
            AmaxRepr::Scalar(v) => Ok(Amax::scalar(v)),
            AmaxRepr::List(v) => {
                let n = v.len();
                Amax::new(v, vec![n])
            }
            AmaxRepr::Shaped { shape, values } => Amax::new(values, shape),
        }
    }
}

impl From<Amax> for AmaxRepr {
    fn from(a: Amax) -> Self {
        match a.shape.len() {
            0 => AmaxRepr::Scalar(a.values[0]),
            1 => AmaxRepr::List(a.values),
            _ => AmaxRepr::Shaped {
                shape: a.shape,
                values: a.values,
            },
        }
    }
}

/// Whether `_amax` values hold a real amax: not empty (an unsized per-channel amax)
/// and no NaN (the "not set" marker).
pub(crate) fn amax_is_set(values: &[f32]) -> bool {
    !values.is_empty() && !values.iter().any(|x| x.is_nan())
}
