//! Unary float ops computed on the host in one vectorized pass: `Erf`, `Gelu` (exact),
//! `Exp` and `Sigmoid`. burn's CPU backend calls scalar libm functions element by
//! element for these; qdq's own approximations ([`super::erf`], [`super::exp`], within a
//! few units in the last place) compile to SIMD code, AVX2 where the CPU has it.
//! Values a gradient flows through keep burn's ops.

use burn::tensor::Float;
use qdq::tensor_quant::layout::par_map_each;
use qdq::tensor_quant::with_host_mut;

use super::super::error::{RunResult, op_err};
use super::super::value::{DynTensor, dyn_apply, dyn_map};
use super::Ctx;

/// Whether [`run`] computes `op` of `x`: one of this module's ops, and no gradient flows
/// through `x`.
pub(crate) fn handles(x: &DynTensor<Float>, op: &str, ctx: &Ctx) -> bool {
    let ours = match op {
        "Erf" | "Exp" | "Sigmoid" => true,
        "Gelu" => ctx.string_attr("approximate", "none") == "none",
        _ => false,
    };
    ours && !dyn_apply!(&x.t, |t, R| t.is_tracked())
}

/// `op` of `x` on the host (an op [`handles`] accepts).
pub(crate) fn run(x: DynTensor<Float>, op: &str) -> RunResult<DynTensor<Float>> {
    match op {
        "Erf" => map(x, super::erf::erf),
        "Gelu" => map(x, super::erf::gelu),
        "Exp" => map(x, super::exp::exp),
        "Sigmoid" => map(x, super::exp::sigmoid),
        _ => Err(op_err(format!("{op} is not computed on the host"))),
    }
}

/// `f` of every value of `x`, in place when the runtime handed over its last reference.
fn map(x: DynTensor<Float>, f: impl Fn(f32) -> f32 + Sync) -> RunResult<DynTensor<Float>> {
    let shape = x.shape;
    let t = dyn_map!(x.t, |t, R| with_host_mut(t, |v| par_map_each(v, &f))
        .map_err(|e| op_err(e.to_string()))?
        .0);
    Ok(DynTensor { t, shape })
}
