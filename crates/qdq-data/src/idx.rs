//! IDX files (MNIST's format): a big-endian header of element type and dimensions,
//! then the raw elements. Gzipped files are read transparently.

use std::io::Read;
use std::path::Path;

use super::DataError;

/// An IDX array of unsigned bytes (images or labels).
#[derive(Clone, Debug, PartialEq)]
pub struct Idx {
    /// Dimensions, e.g. `[10000, 28, 28]` or `[10000]`.
    pub dims: Vec<usize>,
    /// Row-major values.
    pub data: Vec<u8>,
}

impl Idx {
    /// Reads `path` (optionally `.gz`).
    ///
    /// # Errors
    /// Unreadable file, bad magic, an element type other than unsigned byte, or fewer
    /// bytes than the header announces; each names the file.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        super::parse_file(path, Self::parse)
    }

    /// Parses IDX bytes, gzipped or not.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let raw = read_all(flate2::read::GzDecoder::new(bytes))
                .map_err(|e| format!("bad gzip stream: {e}"))?;
            return Self::parse(&raw);
        }
        if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
            return Err("not an IDX file (bad magic number)".into());
        }
        if bytes[2] != 0x08 {
            return Err(format!(
                "IDX element type 0x{:02x}; only unsigned bytes (0x08) are supported",
                bytes[2]
            ));
        }
        let rank = bytes[3] as usize;
        let header = 4 + 4 * rank;
        if bytes.len() < header {
            return Err("truncated IDX header".into());
        }
        let dims: Vec<usize> = (0..rank)
            .map(|i| {
                let b = &bytes[4 + 4 * i..8 + 4 * i];
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
            })
            .collect();
        let n: usize = dims.iter().product();
        let data = bytes.get(header..header + n).ok_or_else(|| {
            format!(
                "truncated IDX data: header says {n} values, file has {}",
                bytes.len() - header
            )
        })?;
        Ok(Self {
            dims,
            data: data.to_vec(),
        })
    }

    /// IDX bytes of this array (uncompressed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0, 0, 0x08, self.dims.len() as u8];
        for &d in &self.dims {
            out.extend((d as u32).to_be_bytes());
        }
        out.extend(&self.data);
        out
    }

    /// The first `n` items (along dimension 0).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.dims.first().copied().unwrap_or(0));
        let item: usize = self.dims.iter().skip(1).product();
        let mut dims = self.dims.clone();
        if let Some(d) = dims.first_mut() {
            *d = n;
        }
        Self {
            dims,
            data: self.data[..n * item].to_vec(),
        }
    }
}

/// Writes `idx` gzipped to `path` atomically.
pub fn write_gz(idx: &Idx, path: &Path) -> Result<(), DataError> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let io = |source| DataError::Io {
        path: path.display().to_string(),
        source,
    };
    enc.write_all(&idx.to_bytes()).map_err(io)?;
    let bytes = enc.finish().map_err(io)?;
    qdq::io::write_atomic(path, &bytes).map_err(io)
}

/// Reads all of `r` (helper for gz streams).
pub(crate) fn read_all(mut r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let idx = Idx {
            dims: vec![2, 2, 3],
            data: (0..12).collect(),
        };
        let bytes = idx.to_bytes();
        assert_eq!(&bytes[..8], &[0, 0, 8, 3, 0, 0, 0, 2]);
        assert_eq!(Idx::parse(&bytes).unwrap(), idx);
        assert_eq!(idx.take(1).data, (0..6).collect::<Vec<u8>>());
        let err = Idx::parse(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.contains("header says 12 values, file has 11"), "{err}");
        assert!(Idx::parse(b"PK\x03\x04").unwrap_err().contains("magic"));
    }
}
