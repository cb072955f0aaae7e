//! The fused single-pass kernels over host `f32` slices.
//!
//! These are *the* definition of qdq's quantization arithmetic: one pass, parallel,
//! bit-exact with the reference's CPU path. The burn op chain in [`super::ops`]
//! computes the same values and is tested against these bit for bit.

use super::format::{AMAX_EPS, E4M3_MAX, IntRange};
use super::layout::{AmaxLayout, par_map, par_map_inplace};
use crate::error::{Error, Result};

/// `1.5 * 2^23`: adding and subtracting it rounds half to even for |v| < 2^22,
/// without needing SSE4.1's `roundps` (unavailable in baseline x86-64 builds).
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Round half to even for values already clamped to |v| <= 2^16, keeping the
/// sign of zero (`-0.3 -> -0.0`) and NaN, like `torch.round`.
#[inline(always)]
pub(crate) fn round_half_even_small(v: f32) -> f32 {
    ((v + ROUND_MAGIC) - ROUND_MAGIC).copysign(v)
}

/// NaN-preserving clamp (NaN compares false both ways and passes through).
#[inline(always)]
fn clamp_keep_nan(v: f32, lo: f32, hi: f32) -> f32 {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// Per-amax-entry constants of the integer kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IntParams {
    /// Scale used for rounding: `max_bound/amax`, or 0 when `amax <= 2^-24`.
    pub(crate) scale_round: f32,
    /// Scale divided out: `max_bound/amax`, or 1 when `amax <= 2^-24`.
    pub(crate) scale_out: f32,
    lo: f32,
    hi: f32,
}

impl IntParams {
    pub(crate) fn new(amax: f32, range: IntRange) -> Self {
        let max_bound = range.max_bound();
        let scale = max_bound / amax;
        let tiny = amax <= AMAX_EPS;
        Self {
            scale_round: if tiny { 0.0 } else { scale },
            scale_out: if tiny { 1.0 } else { scale },
            lo: range.min_bound(),
            hi: max_bound,
        }
    }

    /// The integer code of `x`: `clamp(round_half_even(x * scale), lo, hi)`.
    #[inline(always)]
    pub(crate) fn quantize(&self, x: f32) -> f32 {
        round_half_even_small(clamp_keep_nan(x * self.scale_round, self.lo, self.hi))
    }

    /// `quantize(x) / scale`.
    #[inline(always)]
    pub(crate) fn fake(&self, x: f32) -> f32 {
        self.quantize(x) / self.scale_out
    }

    /// The scale the reference returns from `tensor_quant` for this entry.
    pub(crate) fn returned_scale(&self) -> f32 {
        self.scale_out
    }
}

/// The scale `tensor_quant` returns for one amax entry.
pub(crate) fn int_scale(amax: f32, range: IntRange) -> f32 {
    IntParams::new(amax, range).returned_scale()
}

/// Rejects negative or NaN amax entries (reference: `ValueError("Negative values in amax")`;
/// NaN is ours, see [`Error::NanAmax`]).
pub(crate) fn check_amax(amax: &[f32]) -> Result<()> {
    if amax.iter().any(|a| a.is_nan()) {
        return Err(Error::NanAmax);
    }
    let min = amax.iter().copied().fold(f32::INFINITY, f32::min);
    if min < 0.0 {
        return Err(Error::NegativeAmax { min });
    }
    Ok(())
}

/// Rejects negative inputs for unsigned formats. One extra read pass, done only for
/// unsigned quantization.
pub(crate) fn check_unsigned(data: &[f32]) -> Result<()> {
    use rayon::prelude::*;
    let min = data
        .par_iter()
        .copied()
        .reduce(|| f32::INFINITY, |a, b| if b < a { b } else { a });
    if min < 0.0 {
        return Err(Error::NegativeInputUnsigned { min });
    }
    Ok(())
}

/// The validation every integer kernel does before touching data (amax, and the
/// input's sign for unsigned grids), then the per-entry constants.
fn int_params(input: &[f32], amax: &[f32], range: IntRange) -> Result<Vec<IntParams>> {
    check_amax(amax)?;
    if range.unsigned() {
        check_unsigned(input)?;
    }
    Ok(amax.iter().map(|&a| IntParams::new(a, range)).collect())
}

/// Fake-quantizes `data` in place (`fake_tensor_quant`'s arithmetic), `amax` broadcast
/// by `layout`.
pub fn fake_quant_inplace(
    data: &mut [f32],
    amax: &[f32],
    layout: &AmaxLayout,
    range: IntRange,
) -> Result<()> {
    let params = int_params(data, amax, range)?;
    par_map_inplace(data, layout, &params, IntParams::fake);
    Ok(())
}

/// Fake-quantizes `src` into `dst` (same arithmetic as [`fake_quant_inplace`]).
pub fn fake_quant_into(
    src: &[f32],
    dst: &mut [f32],
    amax: &[f32],
    layout: &AmaxLayout,
    range: IntRange,
) -> Result<()> {
    let params = int_params(src, amax, range)?;
    par_map(src, dst, layout, &params, IntParams::fake);
    Ok(())
}

/// Quantizes `data` in place to integer codes (as floats) and returns the scale of
/// every amax entry (`tensor_quant`'s arithmetic: 1 where `amax <= 2^-24`).
pub fn quant_inplace(
    data: &mut [f32],
    amax: &[f32],
    layout: &AmaxLayout,
    range: IntRange,
) -> Result<Vec<f32>> {
    let params = int_params(data, amax, range)?;
    par_map_inplace(data, layout, &params, IntParams::quantize);
    Ok(params.iter().map(IntParams::returned_scale).collect())
}

/// Rounds a float32 to the nearest FP8 E4M3FN value (half to even), saturating to
/// ±448 (±inf too), NaN staying NaN, the sign of zero kept. The result is returned
/// as the exact float32 of that E4M3 value.
#[inline(always)]
pub fn e4m3_round(v: f32) -> f32 {
    let a = v.abs();
    // Quantum of the E4M3 binade holding `a`: 2^(e-3) for normals (e >= -6),
    // 2^-9 for subnormals. Built from the exponent bits, so the scaling is exact.
    let exp = ((a.to_bits() >> 23) as i32) - 127;
    let quantum_exp = exp.max(-6) - 3;
    let quantum = f32::from_bits(((quantum_exp + 127) as u32) << 23);
    let inv_quantum = f32::from_bits(((127 - quantum_exp) as u32) << 23);
    let r = ((a * inv_quantum + ROUND_MAGIC) - ROUND_MAGIC) * quantum;
    let r = if a >= E4M3_MAX { E4M3_MAX } else { r };
    // NaN: `a >= 448` is false and the arithmetic above keeps NaN.
    r.copysign(v)
}

/// Per-amax-entry constants of the E4M3 kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct E4M3Params {
    scale: f32,
}

impl E4M3Params {
    pub(crate) fn new(amax: f32) -> Self {
        Self {
            scale: E4M3_MAX / amax,
        }
    }

    /// `e4m3(x * scale) / scale`, and `+0.0` for `|x| < 2^-24` (the reference's
    /// tiny-input rule, applied on the input).
    #[inline(always)]
    pub(crate) fn fake(&self, x: f32) -> f32 {
        let out = e4m3_round(x * self.scale) / self.scale;
        if x.abs() < AMAX_EPS { 0.0 } else { out }
    }
}

/// `scaled_e4m3` in place: FP8 E4M3 fake quantization with `amax` broadcast by `layout`.
pub fn scaled_e4m3_inplace(data: &mut [f32], amax: &[f32], layout: &AmaxLayout) -> Result<()> {
    check_amax(amax)?;
    let params: Vec<E4M3Params> = amax.iter().map(|&a| E4M3Params::new(a)).collect();
    par_map_inplace(data, layout, &params, E4M3Params::fake);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range8() -> IntRange {
        IntRange::new(8, false, true).unwrap()
    }

    #[test]
    fn magic_round_is_half_to_even_and_keeps_sign() {
        let cases = [
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (-2.5, -2.0),
            (-0.5, -0.0),
            (3.5, 4.0),
            (126.5, 126.0),
            (127.5, 128.0),
            (-0.3, -0.0),
            (65534.5, 65534.0),
            (1.4999999, 1.0),
        ];
        for (v, want) in cases {
            let got = round_half_even_small(v);
            assert_eq!(got.to_bits(), f32::to_bits(want), "round({v})");
            assert_eq!(
                got.to_bits(),
                v.round_ties_even().to_bits(),
                "std round({v})"
            );
        }
        assert!(round_half_even_small(f32::NAN).is_nan());
    }

    #[test]
    fn magic_round_matches_std_on_a_sweep() {
        let mut v = -70000.0f32;
        while v < 70000.0 {
            assert_eq!(
                round_half_even_small(v).to_bits(),
                v.round_ties_even().to_bits(),
                "{v}"
            );
            v += 0.123_456_7;
        }
        for k in -300..300 {
            let v = k as f32 * 0.25;
            assert_eq!(
                round_half_even_small(v).to_bits(),
                v.round_ties_even().to_bits(),
                "{v}"
            );
        }
    }

    #[test]
    fn int_params_tiny_amax_rule() {
        let p = IntParams::new(AMAX_EPS, range8());
        assert_eq!(p.fake(3.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(p.fake(-3.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(p.returned_scale(), 1.0);
        assert!(p.fake(f32::INFINITY).is_nan());
        // just above eps is a normal (huge) scale
        let above = f32::from_bits(AMAX_EPS.to_bits() + 1);
        assert_eq!(
            IntParams::new(above, range8()).returned_scale(),
            127.0 / above
        );
    }

    #[test]
    fn fake_of_amax_is_not_amax() {
        // Spec 1.2: fake(0.99214345) with amax = itself is 0.99214351.
        let amax = 0.992_143_45f32;
        let out = IntParams::new(amax, range8()).fake(amax);
        assert_eq!(out, 127.0 / (127.0 / amax));
        assert_ne!(out, amax);
    }

    #[test]
    fn e4m3_table_values_midpoints_and_saturation() {
        // Every finite non-negative E4M3 value maps to itself.
        let mut values = Vec::new();
        for k in 0..8 {
            values.push(k as f32 / 512.0); // subnormals k*2^-9
        }
        for e in -6..=8 {
            for m in 0..8 {
                let v = (1.0 + m as f32 / 8.0) * 2f32.powi(e);
                if v <= 448.0 {
                    values.push(v);
                }
            }
        }
        assert_eq!(values.len(), 127);
        for &v in &values {
            assert_eq!(e4m3_round(v), v, "{v} is representable");
            assert_eq!(e4m3_round(-v), -v);
        }
        // Midpoints go to the even mantissa.
        assert_eq!(e4m3_round(1.0625), 1.0); // between 1 and 1.125 -> 1 (even)
        assert_eq!(e4m3_round(1.1875), 1.25); // between 1.125 and 1.25 -> 1.25 (even)
        assert_eq!(e4m3_round(1.0 / 1024.0), 0.0); // half of the smallest subnormal -> 0
        assert_eq!(e4m3_round(3.0 / 1024.0), 2.0 / 512.0); // 1.5 quanta -> 2
        assert_eq!(e4m3_round(17.0), 16.0); // 16 + half-step(1) -> 16 (even)
        assert_eq!(e4m3_round(19.0), 20.0);
        assert_eq!(e4m3_round(432.0), 448.0); // midpoint of 416 and 448 -> 448 (even mantissa 6)
        assert_eq!(e4m3_round(420.0), 416.0);
        // Saturation.
        for v in [449.0, 464.0, 480.0, 1000.0, f32::MAX, f32::INFINITY] {
            assert_eq!(e4m3_round(v), 448.0);
            assert_eq!(e4m3_round(-v), -448.0);
        }
        assert!(e4m3_round(f32::NAN).is_nan());
        assert_eq!(e4m3_round(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(e4m3_round(1e-30), 0.0);
    }

    #[test]
    fn unsigned_rejects_negative_and_accepts_negative_zero() {
        let r = IntRange::new(8, true, false).unwrap();
        let layout = AmaxLayout::new(&[3], &[1]).unwrap();
        let mut d = vec![0.5, -0.1, 1.0];
        assert!(matches!(
            fake_quant_inplace(&mut d, &[1.0], &layout, r),
            Err(Error::NegativeInputUnsigned { min }) if min == -0.1
        ));
        let mut d = vec![0.5, -0.0, 1.0];
        fake_quant_inplace(&mut d, &[1.0], &layout, r).unwrap();
        assert_eq!(d[1].to_bits(), (-0.0f32).to_bits());
    }
}
