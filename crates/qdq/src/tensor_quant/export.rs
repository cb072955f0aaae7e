//! The parameters of a `QuantizeLinear → DequantizeLinear` pair for one quantized
//! tensor (what the reference's `_onnx_int8_helper` computes): amax, axis, grid and
//! the scales `amax / bound`. Exporters read them; they compute none themselves.

use super::format::NumBits;

/// What one quantizer does to one tensor, in the terms of a Q/DQ pair.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantLowering {
    /// Amax per entry: one value per tensor, or one per channel along `axis`.
    pub amax: Vec<f32>,
    /// Channel axis (non-negative) of a per-channel amax.
    pub axis: Option<usize>,
    /// Integer bits or E4M3.
    pub num_bits: NumBits,
    /// Unsigned grid.
    pub unsigned: bool,
    /// Narrow signed range (`[-127, 127]` for 8 bits). The pair's scale is the same
    /// (`amax / 127`); `QuantizeLinear` saturates at -128 where the fake quant clamps
    /// at -127, which only inputs below `-amax · 127.5 / 127` reach (never a
    /// max-calibrated weight). The reference's export refuses such quantizers; qdq
    /// exports them (README, "Differences from pytorch-quantization"). Unsigned grids
    /// ignore it (unsigned wins).
    pub narrow_range: bool,
}

impl QuantLowering {
    /// The largest grid value amax maps to (`maxbound`): `2^(b-1+u) - 1` for
    /// integers (127 for signed 8-bit, 255 unsigned), 448 for E4M3.
    pub fn bound(&self) -> f32 {
        self.num_bits.max_bound(self.unsigned)
    }

    /// The pair's scales, one per amax entry: `amax / bound` in float32, 1 where
    /// amax is 0 ([`NumBits::qdq_scale`]).
    pub fn scales(&self) -> Vec<f32> {
        self.amax
            .iter()
            .map(|&a| self.num_bits.qdq_scale(self.unsigned, a))
            .collect()
    }
}
