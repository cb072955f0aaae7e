//! `.npy` arrays (NumPy's format): a magic string, a header dict with `descr`,
//! `fortran_order` and `shape`, then the raw elements. Little-endian C-order arrays of
//! float32, float64 and the integer and bool types are read, as float32.

use std::io::Read;
use std::path::Path;

use super::DataError;
use super::array::Body;
use super::dtype::Dtype;

/// A float array read from `.npy`.
#[derive(Clone, Debug, PartialEq)]
pub struct Npy {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Header text longer than this is refused (NumPy writes a few hundred bytes).
const MAX_HEADER: usize = 1 << 16;

/// What a `.npy` header says: the element type and the shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Element type.
    pub dtype: Dtype,
    /// Shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Bytes before the first element.
    pub len: usize,
}

impl Header {
    /// Reads the header from the start of `r`, leaving `r` at the first element.
    ///
    /// # Errors
    /// Not `.npy`, a truncated or oversized header, Fortran order, an unsupported dtype,
    /// or a shape whose element count or byte size overflows.
    pub fn read(r: &mut dyn Read) -> Result<Self, String> {
        let mut fixed = [0u8; 10];
        r.read_exact(&mut fixed)
            .map_err(|_| "not a .npy file (bad magic)")?;
        if !fixed.starts_with(b"\x93NUMPY") {
            return Err("not a .npy file (bad magic)".into());
        }
        let (text_len, start) = if fixed[6] == 1 {
            (usize::from(u16::from_le_bytes([fixed[8], fixed[9]])), 10)
        } else {
            let mut more = [0u8; 2];
            r.read_exact(&mut more)
                .map_err(|_| "truncated .npy header")?;
            let len = u32::from_le_bytes([fixed[8], fixed[9], more[0], more[1]]);
            (usize::try_from(len).unwrap_or(usize::MAX), 12)
        };
        if text_len > MAX_HEADER {
            return Err(format!(
                ".npy header of {text_len} bytes; the limit is {MAX_HEADER}"
            ));
        }
        let mut text = vec![0u8; text_len];
        r.read_exact(&mut text)
            .map_err(|_| "truncated .npy header")?;
        let header = std::str::from_utf8(&text).map_err(|_| "truncated .npy header")?;
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
        let dtype = Dtype::from_npy(descr).ok_or_else(|| {
            format!(
                "dtype `{descr}` is not supported; use little-endian float32 (<f4), float64, \
                 an integer type or bool"
            )
        })?;
        let h = Self {
            dtype,
            shape,
            len: start + text_len,
        };
        h.body_bytes()?;
        Ok(h)
    }

    /// Elements the shape holds.
    ///
    /// # Errors
    /// The product overflows.
    pub fn count(&self) -> Result<usize, String> {
        checked_count(&self.shape)
    }

    /// Bytes of the elements.
    ///
    /// # Errors
    /// The size overflows.
    pub fn body_bytes(&self) -> Result<u64, String> {
        self.count()?
            .checked_mul(self.dtype.width())
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| format!("shape {:?} is too large", self.shape))
    }
}

/// The element count of `shape`, or an error naming it when the product overflows.
pub(crate) fn checked_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} is too large (its size overflows)"))
}

/// Opens `path`: its header, and its elements in the file, which holds them all.
///
/// # Errors
/// Unreadable file, a bad header, or a file shorter than the header announces; each
/// names the file.
pub(crate) fn open(path: &Path) -> Result<(Header, Body<'static>), DataError> {
    let name = path.display().to_string();
    let io = |source| DataError::Io {
        path: name.clone(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let header = Header::read(&mut file).map_err(|why| DataError::Format {
        path: name.clone(),
        why,
    })?;
    let need = header.body_bytes().unwrap_or(u64::MAX);
    let have = size.saturating_sub(header.len as u64);
    if have < need {
        return Err(DataError::Format {
            path: name,
            why: format!(
                "truncated .npy data: shape {:?} needs {need} bytes, file has {have}",
                header.shape
            ),
        });
    }
    let offset = header.len as u64;
    Ok((header, Body::File { file, offset }))
}

impl Npy {
    /// Reads `path` whole, as f32.
    ///
    /// # Errors
    /// Unreadable file, not `.npy`, Fortran order, or an unsupported dtype; each names
    /// the file.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        super::parse_file(path, Self::parse)
    }

    /// Parses `.npy` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let mut r = bytes;
        let header = Header::read(&mut r)?;
        let need = header.body_bytes()?;
        if (r.len() as u64) < need {
            return Err(format!(
                "truncated .npy data: shape {:?} needs {need} bytes, file has {}",
                header.shape,
                r.len()
            ));
        }
        let mut data = Vec::new();
        header.dtype.extend_f32(&r[..need as usize], &mut data);
        Ok(Self {
            shape: header.shape,
            data,
        })
    }

    /// The `.npy` bytes of this array (float32, format version 1.0, as `np.save` writes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let body: Vec<u8> = self.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        encode("<f4", &self.shape, &body)
    }
}

/// A `.npy` file (version 1.0) of `body`, raw elements of type `descr` in C order.
pub(crate) fn encode(descr: &str, shape: &[usize], body: &[u8]) -> Vec<u8> {
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
        assert_eq!(
            err,
            "truncated .npy data: shape [3] needs 12 bytes, file has 8"
        );
        // A shape whose size overflows is refused before anything is allocated.
        let huge = encode("<f4", &[1 << 40, 1 << 40], &[]);
        assert_eq!(
            Npy::parse(&huge).unwrap_err(),
            "shape [1099511627776, 1099511627776] is too large (its size overflows)"
        );
        let wide = encode("<f8", &[usize::MAX / 4], &[]);
        assert!(Npy::parse(&wide).unwrap_err().contains("is too large"));
        // A scalar has shape () and one element.
        let s = Npy {
            shape: vec![],
            data: vec![7.0],
        };
        assert_eq!(Npy::parse(&s.to_bytes()).unwrap(), s);
    }
}
