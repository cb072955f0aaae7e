//! A `QuantizeLinear` → `DequantizeLinear` pair with a zero zero point as one parallel
//! pass over host `f32` values: the fast path of the fused `FakeQuantizeLinear` node
//! when nothing trains through it (`auto`'s probes and whole-model runs, the written
//! model's simulation in `verify`).
//!
//! Bit for bit the pair's burn kernels ([`super::quant::quantize`] then
//! [`super::quant::dequantize`]): `q = clamp(round_half_even(x / scale), lo, hi)`
//! truncated to an integer (NaN gives 0), then `q * scale`. Clamping before rounding
//! gives the same code because `lo` and `hi` are integers. `verify` compares this
//! kernel against the pair on every written model, and the tests below on every
//! rounding edge.

use qdq::tensor_quant::layout::{AmaxLayout, par_map_inplace};
use qdq::tensor_quant::with_host_mut;

use super::super::error::{RunResult, op_err};
use super::super::value::{DynTensor, Value, dyn_map};
use burn::tensor::Float;

/// `1.5 * 2^23`: adding and subtracting it rounds half to even for |v| < 2^22.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Largest integer bound the fast path takes (8- and 16-bit codes), so that clamped
/// codes stay inside [`ROUND_MAGIC`]'s exact range.
const MAX_BOUND: f32 = 65_535.0;

/// One scale entry's constants.
#[derive(Clone, Copy)]
struct Pair {
    scale: f32,
    lo: f32,
    hi: f32,
}

impl Pair {
    #[inline(always)]
    fn fake(&self, x: f32) -> f32 {
        let t = x / self.scale;
        // NaN compares false both ways and passes through, as in `f32::clamp`.
        let c = if t < self.lo {
            self.lo
        } else if t > self.hi {
            self.hi
        } else {
            t
        };
        let q = (c + ROUND_MAGIC) - ROUND_MAGIC;
        // The pair stores the code as an integer: NaN becomes 0, -0 becomes +0 (the
        // select and the `+ 0.0` vectorize where an integer round trip would not).
        let q = if q.is_nan() { 0.0 } else { q + 0.0 };
        q * self.scale
    }
}

/// Whether integer range `(lo, hi)` is one the fast path takes.
pub(crate) fn takes(range: (f32, f32)) -> bool {
    range.0 >= -MAX_BOUND && range.1 <= MAX_BOUND
}

/// `DequantizeLinear(QuantizeLinear(x))` with `scale` (shaped to broadcast against `x`:
/// `[]` per tensor or `[1, .., C, .., 1]` per axis) and a zero zero point, codes in
/// `range` (which [`takes`] accepts).
///
/// # Errors
/// A scale whose shape does not broadcast so, or a tensor that cannot be read back.
pub(crate) fn fake_quantize_host(
    x: DynTensor<Float>,
    scale: &DynTensor<Float>,
    range: (f32, f32),
) -> RunResult<Value> {
    let scales = scale.to_vec()?;
    let layout = AmaxLayout::new(&x.shape, &scale.shape)
        .map_err(|e| op_err(format!("y_scale of shape {:?}: {e}", scale.shape)))?;
    let pairs: Vec<Pair> = scales
        .iter()
        .map(|&scale| Pair {
            scale,
            lo: range.0,
            hi: range.1,
        })
        .collect();
    // In place when the runtime handed this node the input's last reference.
    let shape = x.shape;
    let t = dyn_map!(x.t, |t, R| with_host_mut(t, |data| par_map_inplace(
        data,
        &layout,
        &pairs,
        Pair::fake
    ))
    .map_err(|e| op_err(e.to_string()))?
    .0);
    Ok(Value::Float(DynTensor { t, shape }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// Every rounding and saturation edge, against the ONNX definition computed
    /// separately (`f32::round_ties_even`, `f32::clamp`, integer truncation).
    #[test]
    fn fused_pair_equals_the_onnx_definition_bit_for_bit() {
        let scale = 0.5f32;
        let mut xs = vec![
            0.0,
            -0.0,
            0.25,
            -0.25,
            0.75,
            -0.75,
            1.25,
            1.75,
            -1.25,
            63.25,
            63.5,
            63.75,
            64.0,
            -64.25,
            -64.5,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            1e-45,
        ];
        // Dense sweep across the whole code range and beyond.
        xs.extend((-70_000..70_000).map(|i| i as f32 * 0.001_3));
        for (lo, hi) in [(-128.0, 127.0), (0.0, 255.0), (-32_768.0, 32_767.0)] {
            let p = Pair { scale, lo, hi };
            for &x in &xs {
                let r = (x / scale).round_ties_even().clamp(lo, hi);
                let q = if r.is_nan() { 0.0 } else { r as i64 as f32 };
                let want = q * scale;
                assert_eq!(p.fake(x).to_bits(), want.to_bits(), "x = {x}, [{lo}, {hi}]");
            }
        }
    }

    #[test]
    fn per_axis_scales_follow_the_channel() {
        let device = Device::flex();
        let x = Value::from_f32(vec![1.0, 1.0, 1.0, 3.0, 3.0, 3.0], &[2, 3], &device);
        let Value::Float(x) = x else { unreachable!() };
        let s = Value::from_f32(vec![0.5, 1.0, 2.0], &[1, 3], &device);
        let Value::Float(s) = s else { unreachable!() };
        let y = fake_quantize_host(x, &s, (-128.0, 127.0)).unwrap();
        // Codes 1/0.5 = 2, 1/1 = 1, 1/2 = 0.5 -> 0 (to even); 3/0.5 = 6, 3/1 = 3,
        // 3/2 = 1.5 -> 2 (to even); times the channel's scale.
        assert_eq!(y.to_f32().unwrap(), vec![1.0, 1.0, 0.0, 3.0, 3.0, 4.0]);
    }
}
