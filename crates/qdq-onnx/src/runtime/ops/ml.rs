//! Operators of the `ai.onnx.ml` domain that put preprocessing in front of a network:
//! scikit-learn pipelines exported by skl2onnx start with a `Scaler` (a StandardScaler)
//! before the layers qdq quantizes.

use super::super::error::{RunResult, op_err};
use super::super::value::Value;
use super::Ctx;
use super::host::{Data, Host};

/// The domain.
pub const DOMAIN: &str = "ai.onnx.ml";

/// Ops of [`DOMAIN`] the runtime executes.
pub const OPS: &[&str] = &["Scaler"];

/// Scaler(x; offset, scale) = `(x - offset) * scale` per feature (the last axis; one
/// value applies to every feature), in float32 whatever the input's type, as ONNX
/// Runtime computes it.
pub(crate) fn scaler(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&ctx.input(0)?)?;
    let values: Vec<f32> = match x.data {
        Data::F32(v) => v,
        Data::I64(v, _) => v.iter().map(|&p| p as f32).collect(),
        Data::Bool(_) => return Err(op_err("Scaler of bool")),
    };
    let features = x.shape.last().copied().unwrap_or(1).max(1);
    let per_feature = |what: &str, default: f32| -> RunResult<Vec<f32>> {
        let given = ctx.floats_attr(what).unwrap_or_default();
        match given.len() {
            0 => Ok(vec![default; features]),
            1 => Ok(vec![given[0]; features]),
            n if n == features => Ok(given),
            n => Err(op_err(format!(
                "Scaler: `{what}` has {n} values for {features} features (the last axis of {:?}); give one or one per feature",
                x.shape
            ))),
        }
    };
    let (offset, scale) = (per_feature("offset", 0.0)?, per_feature("scale", 1.0)?);
    let data = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (v - offset[i % features]) * scale[i % features])
        .collect();
    Ok(vec![
        Host {
            data: Data::F32(data),
            shape: x.shape,
        }
        .into_value(ctx.device)?,
    ])
}
