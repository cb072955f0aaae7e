//! `.npz` files (NumPy's `np.savez` and `np.savez_compressed`): a zip archive of `.npy`
//! arrays, stored or deflated, each named by its key (`x.npy` holds key `x`).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use zip::CompressionMethod;
use zip::read::ZipFile;

use super::DataError;
use super::array::{Body, FileArray, read_labels};
use super::npy;

/// An `.npz` archive, open to read its arrays one at a time.
pub struct Npz {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
    /// `(key, member index)`, in archive order.
    members: Vec<(String, usize)>,
}

impl std::fmt::Debug for Npz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Npz")
            .field("path", &self.path)
            .field("keys", &self.keys())
            .finish()
    }
}

impl Npz {
    /// Opens `path` and lists its arrays; reads no array.
    ///
    /// # Errors
    /// Unreadable file or not a zip archive; each names the file.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let name = path.display().to_string();
        let format = |why: String| DataError::Format {
            path: name.clone(),
            why,
        };
        let file = File::open(path).map_err(|source| DataError::Io {
            path: name.clone(),
            source,
        })?;
        let mut zip = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| format(format!("not an .npz file (zip archive): {e}")))?;
        let mut members = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            let member = zip
                .by_index_raw(i)
                .map_err(|e| format(format!("archive member {i}: {e}")))?;
            if member.is_dir() {
                continue;
            }
            let name = member.name();
            let key = name.strip_suffix(".npy").unwrap_or(name).to_string();
            members.push((key, i));
        }
        Ok(Self {
            path: path.to_path_buf(),
            zip,
            members,
        })
    }

    /// The keys, in archive order.
    pub fn keys(&self) -> Vec<&str> {
        self.members.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// How errors about array `key` name it: the file and the key.
    pub(crate) fn culprit(&self, key: &str) -> String {
        format!("{}: array `{key}`", self.path.display())
    }

    /// Array `key`'s header and elements: a stored member is read in place (its
    /// checksum verified once, streaming), a deflated one is decompressed once into an
    /// anonymous temporary file.
    ///
    /// # Errors
    /// No such key, a member that is not `.npy`, damaged or shorter or longer than its
    /// header announces.
    pub(crate) fn array(&mut self, key: &str) -> Result<(npy::Header, FileArray), DataError> {
        let culprit = self.culprit(key);
        let format = |why: String| DataError::Format {
            path: culprit.clone(),
            why,
        };
        let path = self.path.clone();
        let (mut m, header) = self.member(key)?;
        let bytes = header.body_bytes().map_err(format)?;
        if m.compression() != CompressionMethod::Stored {
            let array = FileArray::new(Body::Stream(Box::new(m)), bytes, header.dtype, &culprit)?;
            return Ok((header, array));
        }
        let offset = m.data_start() + header.len as u64;
        let have = m.size().saturating_sub(header.len as u64);
        if have < bytes {
            return Err(format(format!(
                "truncated .npy data: shape {:?} needs {bytes} bytes, the member has {have}",
                header.shape
            )));
        }
        std::io::copy(&mut m, &mut std::io::sink()).map_err(|e| format(e.to_string()))?;
        let file = File::open(&path).map_err(|source| DataError::Io {
            path: culprit.clone(),
            source,
        })?;
        let body = Body::File { file, offset };
        let array = FileArray::new(body, bytes, header.dtype, &culprit)?;
        Ok((header, array))
    }

    /// Array `key`'s header (its element type and shape), read without its data.
    ///
    /// # Errors
    /// No such key, a member that is not `.npy`.
    pub(crate) fn header(&mut self, key: &str) -> Result<npy::Header, DataError> {
        Ok(self.member(key)?.1)
    }

    /// Array `key` as `count` class labels, streaming.
    ///
    /// # Errors
    /// As [`Npz::array`], a count other than `count`, and labels that are not class
    /// indices ([`DataError::Label`]).
    pub(crate) fn labels(&mut self, key: &str, count: usize) -> Result<Vec<i64>, DataError> {
        let culprit = self.culprit(key);
        let format = |why: String| DataError::Format {
            path: culprit.clone(),
            why,
        };
        let (m, header) = self.member(key)?;
        let n = header.count().map_err(format)?;
        if n != count {
            return Err(format(format!("{n} labels for {count} items")));
        }
        read_labels(Body::Stream(Box::new(m)), header.dtype, n, &culprit).map_err(|e| match e {
            // Read errors of a member are the archive's (a bad checksum), not the OS's.
            DataError::Io { source, .. } => format(source.to_string()),
            e => e,
        })
    }

    /// Array `key`'s member, positioned after its `.npy` header, and the header.
    fn member(&mut self, key: &str) -> Result<(ZipFile<'_>, npy::Header), DataError> {
        let culprit = self.culprit(key);
        let format = |why: String| DataError::Format { path: culprit, why };
        let i = self.index(key)?;
        let mut m = match self.zip.by_index(i) {
            Ok(m) => m,
            Err(e) => return Err(format(e.to_string())),
        };
        match npy::Header::read(&mut m) {
            Ok(header) => Ok((m, header)),
            Err(why) => Err(format(why)),
        }
    }

    fn index(&self, key: &str) -> Result<usize, DataError> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, i)| *i)
            .ok_or_else(|| DataError::Format {
                path: self.path.display().to_string(),
                why: format!("no array `{key}`"),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::CompressionMethod::{Deflated, Stored};
    use zip::write::{FileOptions, ZipWriter};

    use super::*;
    use crate::Dataset;
    use crate::npy::Npy;

    /// An `.npz` of `arrays` (key, array, compression). NumPy-written files are read by
    /// the CLI's tests (`np.savez`, `np.savez_compressed`).
    fn npz(arrays: &[(&str, &Npy, zip::CompressionMethod)]) -> Vec<u8> {
        let members: Vec<(String, Vec<u8>, _)> = arrays
            .iter()
            .map(|(key, a, method)| (format!("{key}.npy"), a.to_bytes(), *method))
            .collect();
        zip_of(&members)
    }

    fn zip_of(members: &[(String, Vec<u8>, zip::CompressionMethod)]) -> Vec<u8> {
        let mut w = ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes, method) in members {
            let o = FileOptions::default().compression_method(*method);
            w.start_file(name, o).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn picks_the_input_or_the_only_data_array_and_labels() {
        let dir = std::env::temp_dir().join(format!("qdq-npz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let x = Npy {
            shape: vec![3, 2],
            data: vec![0.5, -1.0, 2.0, 3.0, 4.0, 5.5],
        };
        let y = Npy {
            shape: vec![3],
            data: vec![2.0, 0.0, 1.0],
        };
        let file = |name: &str, arrays: &[(&str, &Npy, zip::CompressionMethod)]| {
            let p = dir.join(name);
            std::fs::write(&p, npz(arrays)).unwrap();
            p
        };
        let expected = |d: Dataset| {
            assert_eq!(d.item_shape(), [2]);
            assert_eq!(d.held_values(), 0);
            assert_eq!(d.read(0, 3).unwrap(), x.data);
            assert_eq!(d.labels(), Some(&[2, 0, 1][..]));
        };
        // Deflated; the only array besides `y`.
        let p = file("a.npz", &[("x", &x, Deflated), ("y", &y, Deflated)]);
        assert_eq!(Npz::open(&p).unwrap().keys(), ["x", "y"]);
        expected(Dataset::load(&p, None).unwrap());
        // Stored; named like the model input, among others.
        let p = file(
            "b.npz",
            &[
                ("input", &x, Stored),
                ("other", &y, Stored),
                ("labels", &y, Stored),
            ],
        );
        expected(Dataset::load_npz(&p, Some("input"), None).unwrap());
        let err = Dataset::load_npz(&p, Some("images"), None).unwrap_err();
        assert!(matches!(err, crate::DataError::Format { .. }));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: holds arrays [\"input\", \"other\", \"labels\"]; expected `images` (the \
                 model input) or exactly one array besides `labels`/`y`",
                p.display()
            )
        );
        // Labels that do not match the items; a member that is not .npy, or damaged (its
        // checksum fails); not a zip.
        let error = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.join(name), bytes).unwrap();
            let err = Dataset::load(&dir.join(name), None).unwrap_err();
            err.to_string()
                .strip_prefix(&format!("{}: ", dir.join(name).display()))
                .unwrap()
                .to_string()
        };
        let short = Npy {
            shape: vec![2],
            data: vec![0.0, 1.0],
        };
        let labels = npz(&[("x", &x, Stored), ("labels", &short, Stored)]);
        assert_eq!(
            error("c.npz", &labels),
            "array `labels`: 2 labels for 3 items"
        );
        let junk = zip_of(&[("x.npy".into(), b"junk".to_vec(), Deflated)]);
        assert_eq!(
            error("d.npz", &junk),
            "array `x`: not a .npy file (bad magic)"
        );
        let mut bad = npz(&[("x", &x, Stored)]);
        let at = bad.windows(6).position(|w| w == b"\x93NUMPY").unwrap();
        bad[at + 130] ^= 1;
        assert_eq!(error("e.npz", &bad), "array `x`: Invalid checksum");
        let err = error("f.npz", &x.to_bytes());
        assert!(err.starts_with("not an .npz file (zip archive)"), "{err}");
        // A deflated member longer or shorter than its .npy header; labels of 2^31.
        let mut long = x.to_bytes();
        long.extend(1f32.to_le_bytes());
        let long = zip_of(&[("x.npy".into(), long, Deflated)]);
        assert_eq!(
            error("g.npz", &long),
            "array `x`: the stream is longer than its header announces (24 bytes of data); \
             refusing it"
        );
        let short = x.to_bytes();
        let short = zip_of(&[("x.npy".into(), short[..short.len() - 1].to_vec(), Deflated)]);
        assert_eq!(
            error("h.npz", &short),
            "array `x`: truncated stream: its header announces 24 bytes of data, the stream \
             holds 23"
        );
        let big = Npy {
            shape: vec![3],
            data: vec![0.0, 2147483648.0, 1.0],
        };
        let bytes = npz(&[("x", &x, Deflated), ("y", &big, Deflated)]);
        assert_eq!(
            error("i.npz", &bytes),
            "array `y`: label 1 is 2147483648; labels must be class indices, whole numbers in \
             0..=2147483647"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
