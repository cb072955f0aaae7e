//! `.npy` arrays (NumPy's format): a magic string, a header dict with `descr`,
//! `fortran_order` and `shape`, then the raw elements. float32, float64 and uint8
//! little-endian C-order arrays are read, as float32.

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

impl Npy {
    /// Reads `path`.
    ///
    /// # Errors
    /// Unreadable file, not `.npy`, Fortran order, or an unsupported dtype; each names
    /// the file.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes).map_err(|why| DataError::Format {
            path: path.display().to_string(),
            why,
        })
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
        let n: usize = shape.iter().product();
        let body = &bytes[start + len..];
        let (width, convert): (usize, fn(&[u8]) -> f32) = match descr {
            "<f4" => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            "<f8" => (8, |b| {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }),
            "|u1" => (1, |b| b[0] as f32),
            other => {
                return Err(format!(
                    "dtype `{other}` is not supported; use float32 (<f4), float64 or uint8"
                ));
            }
        };
        if body.len() < n * width {
            return Err(format!(
                "truncated .npy data: shape {shape:?} needs {} bytes, file has {}",
                n * width,
                body.len()
            ));
        }
        let data = body[..n * width].chunks_exact(width).map(convert).collect();
        Ok(Self { shape, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
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

    #[test]
    fn reads_float32_float64_and_bytes() {
        let f: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = Npy::parse(&npy("<f4", "(2,)", &f)).unwrap();
        assert_eq!((a.shape, a.data), (vec![2], vec![1.5, -2.0]));
        let d: Vec<u8> = [0.25f64; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = Npy::parse(&npy("<f8", "(2, 2)", &d)).unwrap();
        assert_eq!((b.shape, b.data), (vec![2, 2], vec![0.25; 4]));
        let c = Npy::parse(&npy("|u1", "(3,)", &[0, 128, 255])).unwrap();
        assert_eq!(c.data, [0.0, 128.0, 255.0]);
        let err = Npy::parse(&npy("<i4", "(1,)", &[0; 4])).unwrap_err();
        assert!(err.contains("<i4"), "{err}");
        let err = Npy::parse(&npy("<f4", "(3,)", &f)).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }
}
