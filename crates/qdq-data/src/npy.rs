//! `.npy` arrays (NumPy's format): a magic string, a header dict with `descr`,
//! `fortran_order` and `shape`, then the raw elements. Little-endian C-order arrays of
//! float32, float64 and the integer and bool types are read, as float32.

use std::path::Path;

use super::DataError;

/// A float array read from `.npy`.
#[derive(Clone, Debug, PartialEq)]
pub struct Npy {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Element types read, by `descr`: width in bytes and conversion to f32.
type Convert = fn(&[u8]) -> f32;

fn dtype(descr: &str) -> Option<(usize, Convert)> {
    Some(match descr {
        "<f4" => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        "<f8" => (8, |b| {
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        }),
        "|u1" | "|b1" => (1, |b| b[0] as f32),
        "|i1" => (1, |b| b[0] as i8 as f32),
        "<u2" => (2, |b| u16::from_le_bytes([b[0], b[1]]) as f32),
        "<i2" => (2, |b| i16::from_le_bytes([b[0], b[1]]) as f32),
        "<u4" => (4, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32),
        "<i4" => (4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32),
        "<u8" => (8, |b| {
            u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        }),
        "<i8" => (8, |b| {
            i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        }),
        _ => return None,
    })
}

impl Npy {
    /// Reads `path`.
    ///
    /// # Errors
    /// Unreadable file, not `.npy`, Fortran order, or an unsupported dtype; each names
    /// the file.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        super::parse_file(path, Self::parse)
    }

    /// Parses `.npy` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
            return Err("not a .npy file (bad magic)".into());
        }
        let (len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            _ if bytes.len() >= 12 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            _ => return Err("truncated .npy header".into()),
        };
        let header = bytes
            .get(start..start + len)
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or("truncated .npy header")?;
        let field = |key: &str| -> Option<&str> {
            let i = header.find(&format!("'{key}'"))? + key.len() + 2;
            Some(header[i..].trim_start_matches([':', ' ']))
        };
        let descr = field("descr")
            .and_then(|s| s.strip_prefix('\''))
            .and_then(|s| s.split('\'').next())
            .ok_or("no descr in .npy header")?;
        if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
            return Err(
                "Fortran-order arrays are not supported; save with np.ascontiguousarray".into(),
            );
        }
        let shape_text = field("shape")
            .and_then(|s| s.strip_prefix('('))
            .and_then(|s| s.split(')').next())
            .ok_or("no shape in .npy header")?;
        let shape = shape_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<usize>()
                    .map_err(|e| format!("bad shape `{shape_text}`: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| format!("shape {shape:?} is too large"))?;
        let body = &bytes[start + len..];
        let (width, convert) = dtype(descr).ok_or_else(|| {
            format!(
                "dtype `{descr}` is not supported; use little-endian float32 (<f4), float64, \
                 an integer type or bool"
            )
        })?;
        if body.len() < n.saturating_mul(width) {
            return Err(format!(
                "truncated .npy data: shape {shape:?} needs {} bytes, file has {}",
                n.saturating_mul(width),
                body.len()
            ));
        }
        let data = body[..n * width].chunks_exact(width).map(convert).collect();
        Ok(Self { shape, data })
    }

    /// The `.npy` bytes of this array (float32, format version 1.0, as `np.save` writes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let body: Vec<u8> = self.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        encode("<f4", &self.shape, &body)
    }
}

/// A `.npy` file (version 1.0) of `body`, raw elements of type `descr` in C order.
fn encode(descr: &str, shape: &[usize], body: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // NumPy pads the header with spaces so that the data starts 64-byte aligned.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_floats_integers_and_bytes() {
        let a = Npy {
            shape: vec![2],
            data: vec![1.5, -2.0],
        };
        let bytes = a.to_bytes();
        assert_eq!(bytes.len() % 64, 8, "64-byte aligned data");
        assert!(
            std::str::from_utf8(&bytes[10..64])
                .unwrap()
                .contains("'shape': (2,)")
        );
        assert_eq!(Npy::parse(&bytes).unwrap(), a);
        let d: Vec<u8> = [0.25f64; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = Npy::parse(&encode("<f8", &[2, 2], &d)).unwrap();
        assert_eq!((b.shape, b.data), (vec![2, 2], vec![0.25; 4]));
        let c = Npy::parse(&encode("|u1", &[3], &[0, 128, 255])).unwrap();
        assert_eq!(c.data, [0.0, 128.0, 255.0]);
        // int64, NumPy's default integer (labels), and int8.
        let l: Vec<u8> = [3i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            Npy::parse(&encode("<i8", &[2], &l)).unwrap().data,
            [3.0, -1.0]
        );
        assert_eq!(
            Npy::parse(&encode("|i1", &[1], &[0xff])).unwrap().data,
            [-1.0]
        );
        let err = Npy::parse(&encode(">f4", &[1], &[0; 4])).unwrap_err();
        assert!(err.contains(">f4"), "{err}");
        let err = Npy::parse(&encode("<f4", &[3], &bytes[bytes.len() - 8..])).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        // A scalar has shape () and one element.
        let s = Npy {
            shape: vec![],
            data: vec![7.0],
        };
        assert_eq!(Npy::parse(&s.to_bytes()).unwrap(), s);
    }
}
