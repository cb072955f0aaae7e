//! Synthetic inputs for a graph from its declared inputs, for runs with no data at hand
//! (the written-model check, the fuzz targets): one shape and fill rule, two policies.

use burn::tensor::Device;

use super::{Dim, RunError, RunResult, Value, ValueSpec};
use crate::proto::elem::{self as dt, is_float};

/// How [`probe_values`] fills inputs.
#[derive(Clone, Copy, Debug)]
pub struct ProbeFill {
    /// Fixed dimensions above this become 1, as do symbolic and unknown ones.
    pub max_dim: usize,
    /// Most elements one input may have ([`RunError::Input`] beyond).
    pub max_elements: usize,
    /// The value of float element `i`.
    pub float: fn(usize) -> f32,
    /// The value of every bool element (integers are 0).
    pub bool_value: bool,
}

/// One value per spec in `inputs`, filled as `fill` says. An element type of 0
/// (undeclared) is read as float32.
///
/// # Errors
/// [`RunError::Input`] for an input over `fill.max_elements` (or whose size
/// overflows), and the runtime's error for a type or rank it cannot hold.
pub fn probe_values(
    inputs: &[ValueSpec],
    fill: &ProbeFill,
    device: &Device,
) -> RunResult<Vec<(String, Value)>> {
    inputs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) if *n <= fill.max_dim => *n,
                    _ => 1,
                })
                .collect();
            let n = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .filter(|&n| n <= fill.max_elements)
                .ok_or_else(|| RunError::Input {
                    name: spec.name.clone(),
                    message: format!("shape {shape:?} is too large for a probe input"),
                })?;
            let value = match spec.elem_type {
                dt::BOOL => Value::try_from_bool(vec![fill.bool_value; n], &shape, device)?,
                e if is_float(e) || e == 0 => {
                    Value::try_from_f32((0..n).map(fill.float).collect(), &shape, device)?
                }
                e => Value::try_from_i64(vec![0; n], &shape, device, e)?,
            };
            Ok((spec.name.clone(), value))
        })
        .collect()
}
