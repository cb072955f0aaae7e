//! erf and the exact GELU on f32 values, in a form the compiler vectorizes (run by
//! [`super::host_unary`]).
//!
//! burn's CPU backend calls libm's scalar `erff` element by element; on the PP-OCRv6
//! detector (13 GELUs written as Div, Erf, Add, Mul, Mul on its largest maps) that was a
//! tenth of calibration time. [`erf`] is a rational function of `x²` that the compiler
//! turns into SIMD code: at most 4.0e-7 from the true erf over all of f32 (checked
//! against libm's double-precision `erf` in the tests below), a few units in the last
//! place, well inside what ONNX's node tests and ONNX Runtime's own approximation allow.

/// Numerator of `erf(x) / x` as a polynomial in `x²`, lowest power first (a least
/// squares fit of the relative error on [0, 4], rounded to f32; the first is erf'(0)).
const P: [f32; 7] = [
    std::f32::consts::FRAC_2_SQRT_PI,
    0.154_196_84,
    0.048_648_05,
    0.002_343_156_6,
    0.000_257_087_06,
    -3.640_074_3e-6,
    -6.675_648_5e-8,
];

/// Denominator, the same way (`Q(0) = 1`; positive on [0, 16], so no pole).
const Q: [f32; 7] = [
    1.0,
    0.469_986_77,
    0.099_775_3,
    0.012_146_302_5,
    0.000_858_942_05,
    2.637_326_2e-5,
    -1.044_584_2e-6,
];

/// The fit's interval; from here on erf(x) rounds to ±1 in f32 (1 - erf(3.9) =
/// 3.5e-8, under half the spacing of f32 below 1).
const SATURATES: f32 = 3.9;

/// The fit's own end (the polynomials are evaluated up to it, not past).
const FIT_END: f32 = 4.0;

/// erf(x) in f32: odd, ±1 beyond ±4, NaN for NaN, `-0.0` for `-0.0`.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let c = x.clamp(-FIT_END, FIT_END);
    let u = c * c;
    let mut p = P[6];
    let mut q = Q[6];
    for k in (0..6).rev() {
        p = p * u + P[k];
        q = q * u + Q[k];
    }
    let y = (c * p / q).clamp(-1.0, 1.0);
    // A select, so the loop stays vectorized; NaN compares false and passes through.
    if x.abs() >= SATURATES {
        1.0f32.copysign(x)
    } else {
        y
    }
}

/// ONNX `Gelu` without approximation: `0.5 · x · (1 + erf(x / √2))`.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 97th f32 of [-6, 6] (about 11 million values) and the edges, against the
    /// double-precision erf.
    #[test]
    fn erf_is_within_four_tenths_of_a_millionth_everywhere() {
        let (lo, hi) = ((-6.0f32).to_bits(), 6.0f32.to_bits());
        let positives = (0..hi).step_by(97).map(f32::from_bits);
        let negatives = (1u32 << 31..lo).step_by(97).map(f32::from_bits);
        let mut worst = (0.0f64, 0.0f32);
        for x in positives.chain(negatives) {
            let e = (f64::from(erf(x)) - libm::erf(f64::from(x))).abs();
            if e > worst.0 {
                worst = (e, x);
            }
        }
        assert!(worst.0 <= 4.0e-7, "error {} at {}", worst.0, worst.1);
        // Odd, saturating, and exact where the value is a number f32 holds.
        for x in [0.1f32, 0.5, 1.0, 2.0, 3.9] {
            assert_eq!(erf(-x), -erf(x));
        }
        assert_eq!(erf(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(erf(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(erf(4.5), 1.0);
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
        assert!(erf(f32::NAN).is_nan());
        // Tiny values: erf(x) ~ 2x/sqrt(pi), relative error as for any other value.
        let x = 1e-30f32;
        let want = 2.0 / std::f64::consts::PI.sqrt() * 1e-30;
        assert!((f64::from(erf(x)) / want - 1.0).abs() < 1e-6);
    }

    #[test]
    fn gelu_is_half_x_times_one_plus_erf() {
        for x in [-3.0f32, -1.0, -0.25, 0.0, 0.5, 2.0, 7.0] {
            let want = 0.5 * f64::from(x) * (1.0 + libm::erf(f64::from(x) / 2f64.sqrt()));
            assert!((f64::from(gelu(x)) - want).abs() < 1e-6, "{x}");
        }
        assert_eq!(gelu(10.0), 10.0);
        assert_eq!(gelu(-10.0), -0.0);
    }
}
