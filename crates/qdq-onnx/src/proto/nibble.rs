//! 4-bit integers (INT4, UINT4; opset 21) as ONNX stores them: two values per byte,
//! the first in the low nibble, an odd count padded with a zero high nibble. The same
//! packing holds for `raw_data` and for `int32_data` (one packed byte per int32).

use super::elem;

/// Bytes holding `n` 4-bit values: `ceil(n / 2)`.
pub fn packed_len(n: usize) -> usize {
    n.div_ceil(2)
}

/// Whether `code` is one of the 4-bit integer types.
pub fn is_4bit(code: i32) -> bool {
    matches!(code, elem::INT4 | elem::UINT4)
}

/// Packs 4-bit values (already in range: `[-8, 7]` signed, `[0, 15]` unsigned; only
/// the low 4 bits of each are kept), low nibble first.
pub fn pack(values: &[i64]) -> Vec<u8> {
    values
        .chunks(2)
        .map(|p| {
            let lo = (p[0] & 0xF) as u8;
            let hi = p.get(1).map_or(0, |&v| (v & 0xF) as u8);
            lo | (hi << 4)
        })
        .collect()
}

/// The first `n` values of `bytes` (low nibble first), sign-extended when `signed`.
/// The caller checks `bytes.len() == packed_len(n)`; missing bytes read as fewer values.
pub fn unpack(bytes: &[u8], n: usize, signed: bool) -> Vec<i64> {
    let nibble = |b: u8| {
        let v = i64::from(b & 0xF);
        if signed && v >= 8 { v - 16 } else { v }
    };
    bytes
        .iter()
        .flat_map(|&b| [nibble(b), nibble(b >> 4)])
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_round_trip_with_the_edges_and_an_odd_count() {
        let v: Vec<i64> = vec![-8, 7, 0, -1, 1, -7, 3];
        let packed = pack(&v);
        // ONNX's own packing (onnx.helper.make_tensor(INT4, [-8, 7, ...]) gives 0x78
        // first): low nibble first, the odd one out padded with 0.
        assert_eq!(packed, vec![0x78, 0xF0, 0x91, 0x03]);
        assert_eq!(packed.len(), packed_len(v.len()));
        assert_eq!(unpack(&packed, v.len(), true), v);
        // Every 4-bit value round-trips, signed and unsigned.
        let all: Vec<i64> = (-8..8).collect();
        assert_eq!(unpack(&pack(&all), all.len(), true), all);
        let all: Vec<i64> = (0..16).collect();
        assert_eq!(unpack(&pack(&all), all.len(), false), all);
    }

    #[test]
    fn unsigned_reads_the_same_bytes_without_sign() {
        assert_eq!(unpack(&[0x78, 0x0F], 3, false), vec![8, 7, 15]);
        assert_eq!(unpack(&[0x78, 0x0F], 3, true), vec![-8, 7, -1]);
        assert_eq!(packed_len(0), 0);
        assert_eq!(packed_len(1), 1);
        assert!(is_4bit(elem::INT4) && is_4bit(elem::UINT4) && !is_4bit(elem::INT8));
    }
}
