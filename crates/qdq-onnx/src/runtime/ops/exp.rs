//! e^x and the logistic function on f32 values, in a form the compiler vectorizes (run
//! by [`super::host_unary`]).
//!
//! burn's CPU backend calls the C library's scalar `expf` per element; on the YOLO-style
//! detectors of the corpus (SiLU, `x · sigmoid(x)`, after every convolution) that was
//! a sixth of calibration time. [`exp`] reduces `x = n·ln 2 + r` with `|r| <= ln 2 / 2`
//! (Cody and Waite's two-part ln 2, so `n·ln 2` is exact), sums the Taylor series of
//! `e^r` to `r⁷` (truncation under 6e-9 relative) and scales by `2^n` built from its
//! bits: within 3 units in the last place of the true value (tests below).

/// `1.5 · 2^23`: adding and subtracting it rounds to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// ln 2 in two parts; the first has 9 significant bits, so `n · LN2_HI` is exact for
/// every `|n| <= 2^15`.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// Largest x whose e^x is finite in f32 (e^88.72 = 3.4e38).
const OVERFLOW: f32 = 88.722_83;

/// Below this e^x is under the smallest normal f32; flushed to zero (the true value is
/// under 1.2e-38 there).
const UNDERFLOW: f32 = -87.336_54;

/// `2^n` for `-126 <= n <= 127`, from its exponent bits.
#[inline(always)]
fn pow2(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// e^x in f32: `inf` above [`OVERFLOW`], 0 below [`UNDERFLOW`], NaN for NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let c = x.clamp(UNDERFLOW, OVERFLOW);
    let n = (c * std::f32::consts::LOG2_E + ROUND_MAGIC) - ROUND_MAGIC;
    let r = (c - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for k in [720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = p * r + 1.0 / k;
    }
    // n is in [-126, 128]: two halves keep each power of two a normal number.
    let n = n as i32;
    let half = n >> 1;
    let y = p * pow2(half) * pow2(n - half);
    // Selects, so the loop stays vectorized; NaN compares false and passes through.
    if x > OVERFLOW {
        f32::INFINITY
    } else if x < UNDERFLOW {
        0.0
    } else {
        y
    }
}

/// The logistic function `1 / (1 + e^-x)`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units in the last place between `got` and the true `want`.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let spacing = f64::from(f32::from_bits(w.to_bits() + 1) - w);
        (f64::from(got) - want).abs() / spacing
    }

    /// Every 61st f32 of the range where e^x is a normal number, against f64.
    #[test]
    fn exp_is_within_three_units_in_the_last_place() {
        let mut worst = (0.0f64, 0.0f32);
        let xs = (0..OVERFLOW.to_bits())
            .step_by(61)
            .chain((1u32 << 31..UNDERFLOW.to_bits()).step_by(61))
            .map(f32::from_bits);
        for x in xs {
            let u = ulps(exp(x), f64::from(x).exp());
            if u > worst.0 {
                worst = (u, x);
            }
        }
        assert!(worst.0 <= 3.0, "{} ulps at {}", worst.0, worst.1);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(-88.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(OVERFLOW).is_finite());
    }

    #[test]
    fn sigmoid_is_the_logistic_function() {
        for x in [-80.0f32, -20.0, -3.0, -0.5, 0.0, 0.25, 4.0, 30.0] {
            let want = 1.0 / (1.0 + (-f64::from(x)).exp());
            let got = f64::from(sigmoid(x));
            assert!((got - want).abs() <= 4e-7 * want, "{x}: {got} vs {want}");
        }
        assert_eq!(sigmoid(100.0), 1.0);
        assert_eq!(sigmoid(-100.0), 0.0);
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(f32::NAN).is_nan());
    }
}
