//! The same quantization expressed as a chain of burn tensor operations.
//!
//! This path keeps tensors on their device and inside the autodiff graph; it is used
//! when a gradient is needed (QAT) and is tested bit for bit against the fused
//! kernels of [`super::kernel`].

use burn::prelude::*;

use super::format::{AMAX_EPS, IntRange};

/// `fake_tensor_quant` as burn ops: `clamp(round(x * s_r)) / s_o`, where
/// `s = max_bound / amax`, `s_r = 0` and `s_o = 1` where `amax <= 2^-24`.
/// No gradient flows through it (see [`ste`]); `amax` must broadcast to `x`.
pub fn fake_quant_chain<const D: usize>(
    x: Tensor<D>,
    amax: Tensor<D>,
    range: IntRange,
) -> Tensor<D> {
    let (q, scale_out) = quant_chain(x, amax, range);
    q.div(scale_out)
}

/// `tensor_quant` as burn ops: the integer codes (as floats, broadcast to `x`'s
/// shape) and the returned scale (amax's shape, 1 where `amax <= 2^-24`).
pub fn quant_chain<const D: usize>(
    x: Tensor<D>,
    amax: Tensor<D>,
    range: IntRange,
) -> (Tensor<D>, Tensor<D>) {
    let shape = x.shape();
    let tiny = amax.clone().lower_equal_elem(AMAX_EPS);
    let scale = amax.full_like(range.max_bound()).div(amax);
    let scale_round = scale.clone().mask_fill(tiny.clone(), 0.0);
    let scale_out = scale.mask_fill(tiny, 1.0);
    let q = x
        .mul(scale_round.expand(shape.clone()))
        .round()
        .clamp(range.min_bound(), range.max_bound());
    (q, scale_out.expand(shape))
}

/// Straight-through estimator: returns `forward` (bit for bit) in the forward pass
/// while the gradient w.r.t. `x` is `grad_out` where `|x| <= bound` (inclusive) and
/// 0 elsewhere. No gradient reaches `bound` or `forward`.
///
/// The mask is explicit rather than clamp's own gradient, whose boundary behaviour
/// differs between frameworks.
pub fn ste<const D: usize>(x: Tensor<D>, bound: Tensor<D>, forward: Tensor<D>) -> Tensor<D> {
    let shape = x.shape();
    let outside = x
        .clone()
        .detach()
        .abs()
        .lower_equal(bound.detach().expand(shape))
        .bool_not();
    let passed = x.mask_fill(outside, 0.0);
    // `forward - (p.detach() - p)`: the bracket is +0.0 for finite p, so the value
    // (and the sign of a -0.0) is untouched, and d/dp = +1.
    forward.detach().sub(passed.clone().detach().sub(passed))
}
