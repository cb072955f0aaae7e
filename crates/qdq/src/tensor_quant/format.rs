//! Quantization formats: the integer grid (bits, sign, range) and FP8 E4M3.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::{Error, Result};

/// The smallest amax treated as non-zero: the reference masks `amax <= 2^-24`.
pub const AMAX_EPS: f32 = 5.960_464_5e-8; // 2^-24

/// Largest finite FP8 E4M3FN magnitude.
pub const E4M3_MAX: f32 = 448.0;

/// Bit width of a quantizer: an integer grid of 1 to 16 bits, or FP8 E4M3 (the
/// reference's `num_bits=(4, 3)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumBits {
    /// Integer quantization with this many bits.
    Int(u32),
    /// FP8 with 4 exponent and 3 mantissa bits, written `[4, 3]` in JSON/YAML.
    E4M3(E4M3Tag),
}

/// Serialized marker for E4M3: the tuple `(4, 3)` of the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "(u32, u32)", into = "(u32, u32)")]
pub struct E4M3Tag;

impl TryFrom<(u32, u32)> for E4M3Tag {
    type Error = String;
    fn try_from(v: (u32, u32)) -> std::result::Result<Self, String> {
        if v == (4, 3) {
            Ok(E4M3Tag)
        } else {
            Err(format!(
                "num_bits must be a positive integer or (4, 3), not {v:?}"
            ))
        }
    }
}

impl From<E4M3Tag> for (u32, u32) {
    fn from(_: E4M3Tag) -> Self {
        (4, 3)
    }
}

impl NumBits {
    /// FP8 E4M3.
    pub const FP8_E4M3: NumBits = NumBits::E4M3(E4M3Tag);

    /// True for the FP8 format.
    pub fn is_e4m3(self) -> bool {
        matches!(self, NumBits::E4M3(_))
    }

    /// The largest representable magnitude of the grid (`maxbound` of the reference):
    /// `2^(b-1+u) - 1` for integers, 448 for E4M3.
    pub fn max_bound(self, unsigned: bool) -> f32 {
        match self {
            NumBits::Int(b) => IntRange::max_bound_of(b, unsigned),
            NumBits::E4M3(_) => E4M3_MAX,
        }
    }

    /// The scale of a `QuantizeLinear → DequantizeLinear` pair for `amax`, as
    /// pytorch-quantization exports it (spec §6): `amax / max_bound` in float32, and
    /// 1 where amax is 0, so that an uncalibrated channel never gets a zero scale.
    /// The one definition every exporter uses.
    pub fn qdq_scale(self, unsigned: bool, amax: f32) -> f32 {
        if amax == 0.0 {
            1.0
        } else {
            amax / self.max_bound(unsigned)
        }
    }
}

impl From<u32> for NumBits {
    fn from(b: u32) -> Self {
        NumBits::Int(b)
    }
}

impl fmt::Display for NumBits {
    /// `8` or `(4, 3)`, as the reference prints `num_bits`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumBits::Int(b) => write!(f, "{b}"),
            NumBits::E4M3(_) => f.write_str("(4, 3)"),
        }
    }
}

/// An integer quantization grid: `[min_bound, max_bound]` with unit steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntRange {
    num_bits: u32,
    unsigned: bool,
    narrow_range: bool,
}

impl IntRange {
    /// Validates and builds a grid. 1 to 16 bits; signed needs at least 2 bits (the
    /// reference accepts signed 1-bit but its only positive level is 0, so every
    /// output is NaN: we reject it instead).
    pub fn new(num_bits: u32, unsigned: bool, narrow_range: bool) -> Result<Self> {
        let min_bits = if unsigned { 1 } else { 2 };
        if !(min_bits..=16).contains(&num_bits) {
            return Err(Error::InvalidNumBits { num_bits, unsigned });
        }
        Ok(Self {
            num_bits,
            unsigned,
            narrow_range,
        })
    }

    fn max_bound_of(num_bits: u32, unsigned: bool) -> f32 {
        ((1u64 << (num_bits - 1 + u32::from(unsigned))) - 1) as f32
    }

    /// Number of bits.
    pub fn num_bits(self) -> u32 {
        self.num_bits
    }

    /// Whether the grid is unsigned.
    pub fn unsigned(self) -> bool {
        self.unsigned
    }

    /// Whether the signed grid is symmetric (`[-max, max]`).
    pub fn narrow_range(self) -> bool {
        self.narrow_range
    }

    /// `2^(b-1+u) - 1`: 127 for signed 8-bit, 255 for unsigned 8-bit.
    pub fn max_bound(self) -> f32 {
        Self::max_bound_of(self.num_bits, self.unsigned)
    }

    /// 0 if unsigned, `-max_bound` if narrow, else `-max_bound - 1` (unsigned wins).
    pub fn min_bound(self) -> f32 {
        if self.unsigned {
            0.0
        } else if self.narrow_range {
            -self.max_bound()
        } else {
            -self.max_bound() - 1.0
        }
    }
}
