//! IDX files (MNIST's format): a big-endian header of element type and dimensions,
//! then the raw elements. Gzipped files are read transparently.

use std::io::Read;
use std::path::Path;

use super::DataError;
use super::array::Body;

/// An IDX array of unsigned bytes (images or labels).
#[derive(Clone, Debug, PartialEq)]
pub struct Idx {
    /// Dimensions, e.g. `[10000, 28, 28]` or `[10000]`.
    pub dims: Vec<usize>,
    /// Row-major values.
    pub data: Vec<u8>,
}

/// Reads an IDX header from the start of `r` (uncompressed), leaving `r` at the first
/// element: the dimensions.
///
/// # Errors
/// Bad magic, an element type other than unsigned byte, a truncated header, or
/// dimensions whose element count overflows.
pub fn read_header(r: &mut dyn Read) -> Result<Vec<usize>, String> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|_| "not an IDX file (bad magic number)")?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err("not an IDX file (bad magic number)".into());
    }
    if magic[2] != 0x08 {
        return Err(format!(
            "IDX element type 0x{:02x}; only unsigned bytes (0x08) are supported",
            magic[2]
        ));
    }
    let mut dims = vec![0u8; 4 * usize::from(magic[3])];
    r.read_exact(&mut dims)
        .map_err(|_| "truncated IDX header")?;
    let dims: Vec<usize> = dims
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    super::npy::checked_count(&dims)?;
    Ok(dims)
}

/// Opens `path` (gzipped or not): its dimensions, and its elements (in the file, which
/// holds them all, or as the decompressing stream).
///
/// # Errors
/// Unreadable file, a bad header, or an uncompressed file shorter than the header
/// announces; each names the file.
pub(crate) fn open(path: &Path) -> Result<(Vec<usize>, Body<'static>), DataError> {
    let name = path.display().to_string();
    let io = |source| DataError::Io {
        path: name.clone(),
        source,
    };
    let format = |why: String| DataError::Format {
        path: name.clone(),
        why,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut magic = [0u8; 2];
    let got = file.read(&mut magic).map_err(io)?;
    if got == 2 && magic == [0x1f, 0x8b] {
        use std::io::Seek;
        file.rewind().map_err(io)?;
        let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
        let dims = read_header(&mut gz).map_err(|why| format(gzip_why(why)))?;
        return Ok((dims, Body::Stream(Box::new(gz))));
    }
    let mut rest = std::io::Read::chain(&magic[..got], &mut file);
    let dims = read_header(&mut rest).map_err(format)?;
    let offset = 4 + 4 * dims.len() as u64;
    let n = super::npy::checked_count(&dims).map_err(format)? as u64;
    let have = size.saturating_sub(offset);
    if have < n {
        return Err(format(format!(
            "truncated IDX data: header says {n} values, file has {have}"
        )));
    }
    Ok((dims, Body::File { file, offset }))
}

/// A header error read through gzip: a damaged stream says so.
fn gzip_why(why: String) -> String {
    if why.starts_with("not an IDX") {
        format!("{why} (or a damaged gzip stream)")
    } else {
        why
    }
}

impl Idx {
    /// Reads `path` (optionally `.gz`) whole.
    ///
    /// # Errors
    /// Unreadable file, bad magic, an element type other than unsigned byte, fewer
    /// bytes than the header announces, or a gzip stream longer than that; each names
    /// the file.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        super::parse_file(path, Self::parse)
    }

    /// Parses IDX bytes, gzipped or not.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let gz = bytes.starts_with(&[0x1f, 0x8b]);
        let mut r: Box<dyn Read + '_> = if gz {
            Box::new(flate2::read::GzDecoder::new(bytes))
        } else {
            Box::new(bytes)
        };
        let dims = read_header(&mut r).map_err(|why| if gz { gzip_why(why) } else { why })?;
        let n = super::npy::checked_count(&dims)?;
        let mut data = Vec::new();
        // Grows with what the stream really holds, not with what the header claims.
        let got = r
            .by_ref()
            .take(n as u64)
            .read_to_end(&mut data)
            .map_err(|e| format!("bad gzip stream: {e}"))?;
        if got < n {
            return Err(format!(
                "truncated IDX data: header says {n} values, file has {got}"
            ));
        }
        if gz
            && r.read(&mut [0u8])
                .map_err(|e| format!("bad gzip stream: {e}"))?
                > 0
        {
            return Err(format!(
                "the gzip stream is longer than its IDX header announces ({n} values); \
                 refusing it"
            ));
        }
        Ok(Self { dims, data })
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
