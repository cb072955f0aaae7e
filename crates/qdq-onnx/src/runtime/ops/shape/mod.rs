//! Shape and data-movement operators (Reshape, Transpose, Concat, Slice, Gather, Pad, ...)
//! and constants. They are generic over the tensor kind, so int shape tensors
//! (Shape → Gather → Concat → Reshape) flow through the same code as activations;
//! shape arguments are read on the host.

use burn::tensor::kind::Basic;
use burn::tensor::{Bool, Device, Float, Int, Tensor};
use rayon::prelude::*;

use super::super::error::{RunResult, checked_numel, op_err, too_large};
use super::super::value::{DynTensor, MAX_RANK, Value, arr, burn_shape, dyn_map};
use super::elementwise::{broadcast_shape, expand_to};
use super::{Ctx, as_bool, as_float, index_tensor, is_int_type, norm_axis, to_i64, with_rank};
use crate::proto::elem::{self as dt, dtype_name};

/// Applies a kind-generic tensor function to a value, keeping its element type.
macro_rules! map_kind {
    ($v:expr, |$t:ident| $body:expr) => {
        match $v {
            Value::Float($t) => Value::Float($body),
            Value::Int($t, e) => Value::Int($body, e),
            Value::Bool($t) => Value::Bool($body),
            v => return Err(v.not_a_tensor()),
        }
    };
}

mod cast;
mod constant;
mod gather;
mod layout;
mod pad;
mod reshape;
mod slice;

pub(crate) use cast::cast;
pub(crate) use layout::{cat, concat_values, narrow, permute, select, select_float};
pub(crate) use pad::{crop, padded_len};
use reshape::reshape_value;

/// An empty tensor (some dim is 0).
pub(crate) fn empty<K: Basic>(shape: Vec<usize>, device: &Device) -> RunResult<DynTensor<K>> {
    // burn computes an empty tensor's strides; checked_numel bounds them.
    checked_numel("", "", &shape)?;
    let b = burn_shape(&shape);
    with_rank!(b.len(), |R| Ok(DynTensor::from_tensor(
        Tensor::<R, K>::empty(arr::<R>(&b), device)
    )))
    .map(|t: DynTensor<K>| DynTensor::with(t.t, shape))
}

fn device_of(v: &Value) -> RunResult<Device> {
    Ok(match v {
        Value::Float(t) => t.device(),
        Value::Int(t, _) => t.device(),
        Value::Bool(t) => t.device(),
        v => return Err(v.not_a_tensor()),
    })
}

fn host_usizes(v: Vec<i64>, what: &str) -> RunResult<Vec<usize>> {
    v.into_iter()
        .map(|d| usize::try_from(d).map_err(|_| op_err(format!("negative {what} {d}"))))
        .collect()
}

/// Runs a shape op.
pub(crate) fn run(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let out = match op {
        "Identity" => ctx.input(0)?,
        "Dropout" => return dropout(ctx),
        "Constant" => constant::constant(ctx)?,
        "ConstantOfShape" => constant::constant_of_shape(ctx)?,
        "Range" => constant::range(ctx)?,
        "Shape" => constant::shape_of(ctx)?,
        "Size" => constant::size(ctx)?,
        "Cast" => cast(ctx.input(0)?, ctx.int_attr("to", 0) as i32)?,
        "CastLike" => cast(ctx.input(0)?, ctx.input(1)?.elem_type())?,
        "Reshape" => reshape::reshape(ctx)?,
        "Flatten" => reshape::flatten(ctx)?,
        "Squeeze" => reshape::squeeze(ctx)?,
        "Unsqueeze" => reshape::unsqueeze(ctx)?,
        "Transpose" => layout::transpose(ctx)?,
        "Concat" => layout::concat(ctx)?,
        "Split" => return slice::split(ctx),
        "Slice" => slice::slice(ctx)?,
        "Gather" => gather::gather(ctx)?,
        "Expand" => layout::expand(ctx)?,
        "Tile" => layout::tile(ctx)?,
        "Pad" => pad::pad(ctx)?,
        other => return Err(op_err(format!("{other} is not a shape op"))),
    };
    Ok(vec![out])
}

/// `Dropout` at inference (or in training mode with ratio 0, where nothing is dropped
/// and the scale `1 / (1 - ratio)` is 1): the input, and an all-true mask when asked for.
fn dropout(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let v = ctx.input(0)?;
    let training = ctx.opset >= 12 && ctx.host_scalar(2)?.unwrap_or(0.0) != 0.0;
    if training && ctx.host_scalar(1)?.unwrap_or(0.5) != 0.0 {
        return Err(op_err(
            "Dropout in training mode with a non-zero ratio (random) is not supported",
        ));
    }
    let mut outs = vec![v.clone()];
    if ctx.wants_output(1) {
        let s = v.shape();
        let n = checked_numel("", "", &s)?;
        outs.push(Value::try_from_bool(vec![true; n], &s, ctx.device)?);
    }
    Ok(outs)
}
