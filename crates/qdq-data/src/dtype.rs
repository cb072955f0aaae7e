//! Element types of array files: their width, and their value as an f32 item value or
//! as a class label.

/// An element type: `.npy`'s little-endian types (`descr`), or IDX's unsigned byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// `|b1`.
    Bool,
    /// `|u1`, IDX `0x08`.
    U8,
    /// `|i1`.
    I8,
    /// `<u2`.
    U16,
    /// `<i2`.
    I16,
    /// `<u4`.
    U32,
    /// `<i4`.
    I32,
    /// `<u8`.
    U64,
    /// `<i8`.
    I64,
    /// `<f4`.
    F32,
    /// `<f8`.
    F64,
}

/// A decoded element: integers exactly, floats as f64.
enum Element {
    Int(i128),
    Float(f64),
}

impl Dtype {
    /// The type `.npy`'s `descr` names, if it is read.
    pub fn from_npy(descr: &str) -> Option<Self> {
        Some(match descr {
            "|b1" => Self::Bool,
            "|u1" => Self::U8,
            "|i1" => Self::I8,
            "<u2" => Self::U16,
            "<i2" => Self::I16,
            "<u4" => Self::U32,
            "<i4" => Self::I32,
            "<u8" => Self::U64,
            "<i8" => Self::I64,
            "<f4" => Self::F32,
            "<f8" => Self::F64,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn width(self) -> usize {
        match self {
            Self::Bool | Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    /// The element in `b` (`width()` bytes, little-endian).
    fn element(self, b: &[u8]) -> Element {
        let mut w = [0u8; 8];
        w[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
        let u = u64::from_le_bytes(w);
        match self {
            Self::Bool | Self::U8 | Self::U16 | Self::U32 | Self::U64 => Element::Int(u.into()),
            Self::I8 => Element::Int((u as u8 as i8).into()),
            Self::I16 => Element::Int((u as u16 as i16).into()),
            Self::I32 => Element::Int((u as u32 as i32).into()),
            Self::I64 => Element::Int((u as i64).into()),
            Self::F32 => Element::Float(f32::from_bits(u as u32).into()),
            Self::F64 => Element::Float(f64::from_bits(u)),
        }
    }

    /// The element in `b` as f32 (rounded to nearest, as NumPy's `astype` does).
    pub fn to_f32(self, b: &[u8]) -> f32 {
        match self.element(b) {
            Element::Int(i) => i as f32,
            Element::Float(f) => f as f32,
        }
    }

    /// The element in `b` as a whole number, or the value as text when it is not one.
    pub fn to_whole(self, b: &[u8]) -> Result<i128, String> {
        match self.element(b) {
            Element::Int(i) => Ok(i),
            Element::Float(f) if f.is_finite() && f.fract() == 0.0 => Ok(f as i128),
            Element::Float(f) => Err(f.to_string()),
        }
    }

    /// All elements of `bytes` as f32, appended to `out`.
    pub fn extend_f32(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            // The common cases without the general decoder.
            Self::U8 => out.extend(bytes.iter().map(|&b| f32::from(b))),
            Self::F32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            _ => out.extend(bytes.chunks_exact(self.width()).map(|b| self.to_f32(b))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_as_f32_and_whole_numbers() {
        assert_eq!(Dtype::I8.to_f32(&[0xff]), -1.0);
        assert_eq!(Dtype::I16.to_f32(&(-300i16).to_le_bytes()), -300.0);
        assert_eq!(Dtype::U32.to_f32(&u32::MAX.to_le_bytes()), 4294967296.0);
        assert_eq!(Dtype::F64.to_f32(&0.25f64.to_le_bytes()), 0.25);
        assert_eq!(Dtype::I64.to_whole(&(-1i64).to_le_bytes()), Ok(-1));
        assert_eq!(
            Dtype::U64.to_whole(&u64::MAX.to_le_bytes()),
            Ok(u64::MAX.into())
        );
        assert_eq!(
            Dtype::F32.to_whole(&2147483648f32.to_le_bytes()),
            Ok(1 << 31)
        );
        assert_eq!(
            Dtype::F32.to_whole(&0.5f32.to_le_bytes()),
            Err("0.5".into())
        );
        assert_eq!(
            Dtype::F64.to_whole(&f64::NAN.to_le_bytes()),
            Err("NaN".into())
        );
        let mut v = Vec::new();
        Dtype::U16.extend_f32(&[1, 0, 0, 1], &mut v);
        Dtype::F32.extend_f32(&1.5f32.to_le_bytes(), &mut v);
        assert_eq!(v, [1.0, 256.0, 1.5]);
        assert_eq!(Dtype::from_npy(">f4"), None);
        assert_eq!(Dtype::from_npy("<i2").map(Dtype::width), Some(2));
    }
}
