//! burn's padding configs resolved to `(begin, end)` pairs per spatial dim.
//!
//! burn computes these in `pub(crate)` methods; the same formulas live here so the
//! quantized layers pad exactly as burn's float layers do.

use burn::nn::{PaddingConfig1d, PaddingConfig2d, PaddingConfig3d};

/// `Same` padding for one dim (burn's `calculate_same_padding`): the output has
/// `ceil(size / stride)` positions; any odd total goes to the end.
pub(crate) fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let size_out = size.div_ceil(stride);
    let total = if size_out > 0 {
        ((size_out - 1) * stride + kernel).saturating_sub(size)
    } else {
        0
    };
    (total / 2, total - total / 2)
}

/// The pair for a 1-D config over a length-`size` input.
pub(crate) fn pair_1d(
    padding: &PaddingConfig1d,
    size: usize,
    kernel: usize,
    stride: usize,
) -> (usize, usize) {
    match padding {
        PaddingConfig1d::Valid => (0, 0),
        PaddingConfig1d::Same => same_padding(kernel, stride, size),
        PaddingConfig1d::Explicit(begin, end) => (*begin, *end),
    }
}

/// The pairs for a 2-D config over an `[h, w]` input.
pub(crate) fn pairs_2d(
    padding: &PaddingConfig2d,
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> [(usize, usize); 2] {
    match padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Same => [0, 1].map(|i| same_padding(kernel[i], stride[i], size[i])),
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(*top, *bottom), (*left, *right)],
    }
}

/// The pairs for a 3-D config over a `[d, h, w]` input. `Same` may come out
/// asymmetric (even kernels, or strides that do not divide the size); callers
/// handle that, where burn's `Conv3d` panics.
pub(crate) fn pairs_3d(
    padding: &PaddingConfig3d,
    size: [usize; 3],
    kernel: [usize; 3],
    stride: [usize; 3],
) -> [(usize, usize); 3] {
    match padding {
        PaddingConfig3d::Valid => [(0, 0); 3],
        PaddingConfig3d::Same => [0, 1, 2].map(|i| same_padding(kernel[i], stride[i], size[i])),
        PaddingConfig3d::Explicit(d, h, w) => [(*d, *d), (*h, *h), (*w, *w)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_burn() {
        // burn's own cases (padding.rs tests) and an asymmetric one.
        assert_eq!(pair_1d(&PaddingConfig1d::Same, 10, 3, 1), (1, 1));
        assert_eq!(pair_1d(&PaddingConfig1d::Explicit(1, 2), 10, 3, 1), (1, 2));
        assert_eq!(
            pairs_2d(
                &PaddingConfig2d::Explicit(1, 2, 3, 4),
                [10, 10],
                [3, 3],
                [1, 1]
            ),
            [(1, 3), (2, 4)]
        );
        assert_eq!(same_padding(2, 1, 5), (0, 1));
        assert_eq!(same_padding(3, 2, 10), (0, 1));
        assert_eq!(
            pairs_3d(&PaddingConfig3d::Explicit(1, 2, 3), [9; 3], [3; 3], [1; 3]),
            [(1, 1), (2, 2), (3, 3)]
        );
    }
}
