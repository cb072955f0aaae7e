//! The learnable-range clip (`nn/functional.py::ClipFunction` of the reference).

use burn::prelude::*;

use crate::error::{Error, Result};

/// `max(min(x, clip_value_max), clip_value_min)` with scalar, learnable bounds.
///
/// Gradients (PACT style, as the reference): `x` gets `g` where `lo < x < hi`
/// (strict), `clip_value_min` gets `sum(g where x <= lo)`, `clip_value_max` gets
/// `sum(g where x >= hi)`. Spec example: `x = [-2,-1,-.5,0,.5,1,2]`, `lo = -1`,
/// `hi = 1`, `g = [1..7]` gives `grad_x = [0,0,3,4,5,0,0]`, `grad_lo = 3`, `grad_hi = 13`.
///
/// # Errors
/// [`Error::Unsupported`] when a bound has more than one element ("Learnable min/max
/// can only be scalar").
pub fn clip<const D: usize>(
    x: Tensor<D>,
    clip_value_min: Tensor<1>,
    clip_value_max: Tensor<1>,
) -> Result<Tensor<D>> {
    for bound in [&clip_value_min, &clip_value_max] {
        if bound.dims()[0] != 1 {
            return Err(Error::Unsupported {
                what: "learnable clip bounds with more than one element",
                format: format!(
                    "shape {:?} (learnable min/max can only be scalar)",
                    bound.dims()
                ),
            });
        }
    }
    let shape = x.shape();
    let lo = clip_value_min.reshape([1; D]).expand(shape.clone());
    let hi = clip_value_max.reshape([1; D]).expand(shape);
    let plain = x.clone().detach();
    let above = plain.clone().greater_equal(hi.clone().detach());
    let below = plain.lower_equal(lo.clone().detach());
    // `lo` is applied last so that it wins when the bounds cross, as max(min(x,hi),lo).
    Ok(x.mask_where(above, hi).mask_where(below, lo))
}
