//! Arrays read from files item by item: the elements of an array start at an offset of
//! a file that can seek (an `.npy` or IDX file, a stored `.npz` member) or of an
//! anonymous temporary file that a compressed stream was decompressed into, once.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use super::DataError;
use super::dtype::Dtype;

/// The elements of an array in a file: `dtype` values from byte `offset` on.
#[derive(Clone, Debug)]
pub(crate) struct FileArray {
    /// Shared by clones of a dataset; the lock keeps a seek and its read together.
    file: Arc<Mutex<File>>,
    offset: u64,
    dtype: Dtype,
}

/// A stream's bytes, as they arrive: a file that seeks, or a reader to decompress.
pub(crate) enum Body<'a> {
    /// Elements from `offset` of `file`, which holds at least the announced bytes.
    File { file: File, offset: u64 },
    /// Elements as `reader` gives them.
    Stream(Box<dyn Read + 'a>),
}

impl FileArray {
    /// The array of `bytes` bytes of `dtype` that `body` holds; a stream is decompressed
    /// into an anonymous temporary file, and must hold exactly `bytes` bytes.
    ///
    /// # Errors
    /// A stream shorter or longer than `bytes`, or an I/O error; each names `path`.
    pub fn new(body: Body<'_>, bytes: u64, dtype: Dtype, path: &str) -> Result<Self, DataError> {
        let (file, offset) = match body {
            Body::File { file, offset } => (file, offset),
            Body::Stream(mut r) => (spill(&mut r, bytes, path)?, 0),
        };
        Ok(Self {
            file: Arc::new(Mutex::new(file)),
            offset,
            dtype,
        })
    }

    /// Elements `first..first + count` as f32, appended to `out`.
    pub fn read(
        &self,
        first: usize,
        count: usize,
        out: &mut Vec<f32>,
        path: &str,
    ) -> Result<(), DataError> {
        let bytes = self.read_bytes(first, count, path)?;
        out.reserve(count);
        self.dtype.extend_f32(&bytes, out);
        Ok(())
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The raw bytes of elements `first..first + count`.
    pub fn read_bytes(&self, first: usize, count: usize, path: &str) -> Result<Vec<u8>, DataError> {
        let width = self.dtype.width();
        let too_large = || DataError::Format {
            path: path.to_string(),
            why: format!("elements {first}..+{count} lie beyond any file"),
        };
        let start = (first as u64)
            .checked_mul(width as u64)
            .and_then(|b| b.checked_add(self.offset))
            .ok_or_else(too_large)?;
        let len = count.checked_mul(width).ok_or_else(too_large)?;
        let mut bytes = vec![0u8; len];
        // A poisoned lock only means another reader panicked; the file is intact.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|source| DataError::Io {
                path: path.to_string(),
                source,
            })?;
        Ok(bytes)
    }
}

/// Copies exactly `bytes` bytes of `r` into an anonymous temporary file (removed by the
/// system when closed); `r` must end there.
fn spill(r: &mut dyn Read, bytes: u64, path: &str) -> Result<File, DataError> {
    let io = |source| DataError::Io {
        path: path.to_string(),
        source,
    };
    let file = tempfile::tempfile().map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let copied = std::io::copy(&mut (&mut *r).take(bytes), &mut w).map_err(io)?;
    if copied < bytes {
        return Err(DataError::Format {
            path: path.to_string(),
            why: format!(
                "truncated stream: its header announces {bytes} bytes of data, the stream \
                 holds {copied}"
            ),
        });
    }
    ensure_ended(r, bytes, path)?;
    w.into_inner().map_err(|e| io(e.into_error()))
}

/// Checks that `r` has nothing after the `bytes` bytes its header announced.
pub(crate) fn ensure_ended(r: &mut dyn Read, bytes: u64, path: &str) -> Result<(), DataError> {
    let mut one = [0u8; 1];
    let more = loop {
        match r.read(&mut one) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DataError::Io {
                    path: path.to_string(),
                    source,
                });
            }
        }
    };
    if more > 0 {
        return Err(DataError::Format {
            path: path.to_string(),
            why: format!(
                "the stream is longer than its header announces ({bytes} bytes of data); \
                 refusing it"
            ),
        });
    }
    Ok(())
}

/// Class labels may be at most this: burn's integer tensors on the CPU are 32-bit.
pub const MAX_LABEL: i64 = i32::MAX as i64;

/// `count` elements of `dtype` read from `body` as class labels: whole numbers in
/// `0..=MAX_LABEL`. A stream must end after them.
///
/// # Errors
/// A label that is not a whole number or out of range ([`DataError::Label`], naming
/// `path` and the index), a short file or stream, a longer stream.
pub(crate) fn read_labels(
    body: Body<'_>,
    dtype: Dtype,
    count: usize,
    path: &str,
) -> Result<Vec<i64>, DataError> {
    let width = dtype.width();
    let io = |source| DataError::Io {
        path: path.to_string(),
        source,
    };
    let (mut r, stream): (Box<dyn Read + '_>, bool) = match body {
        Body::File { mut file, offset } => {
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            (Box::new(std::io::BufReader::new(file)), false)
        }
        Body::Stream(r) => (r, true),
    };
    let mut labels = Vec::with_capacity(count);
    let mut chunk = vec![0u8; width * 4096];
    let mut left = count;
    while left > 0 {
        let n = left.min(4096);
        r.read_exact(&mut chunk[..n * width]).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                DataError::Format {
                    path: path.to_string(),
                    why: format!("truncated: the header announces {count} labels"),
                }
            } else {
                io(e)
            }
        })?;
        for b in chunk[..n * width].chunks_exact(width) {
            let index = labels.len();
            let label = dtype
                .to_whole(b)
                .map_err(|value| DataError::Label {
                    path: path.to_string(),
                    index,
                    value,
                })
                .and_then(|v| {
                    i64::try_from(v)
                        .ok()
                        .filter(|v| (0..=MAX_LABEL).contains(v))
                        .ok_or_else(|| DataError::Label {
                            path: path.to_string(),
                            index,
                            value: v.to_string(),
                        })
                })?;
            labels.push(label);
        }
        left -= n;
    }
    if stream {
        let bytes = (count as u64).saturating_mul(width as u64);
        ensure_ended(&mut r, bytes, path)?;
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(bytes: &[u8]) -> Body<'_> {
        Body::Stream(Box::new(bytes))
    }

    #[test]
    fn streams_spill_exactly_and_read_back_by_element() {
        let a = FileArray::new(stream(&[1, 2, 3, 4]), 4, Dtype::U8, "a").unwrap();
        let mut v = Vec::new();
        a.read(1, 2, &mut v, "a").unwrap();
        assert_eq!(v, [2.0, 3.0]);
        let err = a.read(3, 2, &mut v, "a").unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err}");
        let err = FileArray::new(stream(&[1, 2, 3]), 4, Dtype::U8, "a.gz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.gz: truncated stream: its header announces 4 bytes of data, the stream holds 3"
        );
        let err = FileArray::new(stream(&[1, 2, 3, 4, 5]), 4, Dtype::U8, "a.gz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.gz: the stream is longer than its header announces (4 bytes of data); refusing it"
        );
    }

    #[test]
    fn labels_are_class_indices_that_fit_32_bits() {
        let le = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let ok = le(&[0, 7, MAX_LABEL]);
        assert_eq!(
            read_labels(stream(&ok), Dtype::I64, 3, "y").unwrap(),
            [0, 7, MAX_LABEL]
        );
        let big = le(&[3, 1 << 31]);
        let err = read_labels(stream(&big), Dtype::I64, 2, "y.npy").unwrap_err();
        assert!(matches!(err, DataError::Label { index: 1, .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "y.npy: label 1 is 2147483648; labels must be class indices, whole numbers in \
             0..=2147483647"
        );
        let err = read_labels(stream(&le(&[-1])), Dtype::I64, 1, "y.npy").unwrap_err();
        assert!(err.to_string().contains("label 0 is -1;"), "{err}");
        let half = 0.5f32.to_le_bytes();
        let err = read_labels(stream(&half), Dtype::F32, 1, "y.npy").unwrap_err();
        assert!(err.to_string().contains("label 0 is 0.5;"), "{err}");
        let err = read_labels(stream(&ok), Dtype::I64, 2, "y.gz").unwrap_err();
        assert!(err.to_string().contains("longer than its header"), "{err}");
        let err = read_labels(stream(&ok), Dtype::I64, 4, "y.gz").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
