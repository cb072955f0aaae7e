//! `.npz` files (NumPy's `np.savez` and `np.savez_compressed`): a zip archive of `.npy`
//! arrays, stored or deflated, each named by its key (`x.npy` holds key `x`).

use std::io::Read;
use std::path::Path;

use super::DataError;
use super::npy::Npy;

/// The arrays of an `.npz` file, in archive order.
#[derive(Clone, Debug, PartialEq)]
pub struct Npz {
    /// `(key, array)` pairs.
    pub arrays: Vec<(String, Npy)>,
}

impl Npz {
    /// Reads `path`.
    ///
    /// # Errors
    /// Unreadable file, not a zip archive, or a member that is not a readable `.npy`
    /// (named by its key); each names the file.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        super::parse_file(path, Self::parse)
    }

    /// Parses `.npz` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| format!("not an .npz file (zip archive): {e}"))?;
        let mut arrays = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            let mut member = zip
                .by_index(i)
                .map_err(|e| format!("archive member {i}: {e}"))?;
            if member.is_dir() {
                continue;
            }
            let name = member.name().to_string();
            let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
            let mut raw = Vec::with_capacity(member.size().min(1 << 30) as usize);
            member
                .read_to_end(&mut raw)
                .map_err(|e| format!("array `{key}`: {e}"))?;
            let array = Npy::parse(&raw).map_err(|e| format!("array `{key}`: {e}"))?;
            arrays.push((key, array));
        }
        Ok(Self { arrays })
    }

    /// The keys, in archive order.
    pub fn keys(&self) -> Vec<&str> {
        self.arrays.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// Removes and returns the array named `key`.
    pub fn take(&mut self, key: &str) -> Option<Npy> {
        let i = self.arrays.iter().position(|(k, _)| k == key)?;
        Some(self.arrays.remove(i).1)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::CompressionMethod::{Deflated, Stored};
    use zip::write::{FileOptions, ZipWriter};

    use super::*;
    use crate::Dataset;

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
        let expected = Dataset {
            item_shape: vec![2],
            data: x.data.clone(),
            labels: Some(vec![2, 0, 1]),
        };
        // Deflated; the only array besides `y`.
        let p = file("a.npz", &[("x", &x, Deflated), ("y", &y, Deflated)]);
        assert_eq!(Npz::read(&p).unwrap().keys(), ["x", "y"]);
        assert_eq!(Dataset::load(&p, None).unwrap(), expected);
        // Stored; named like the model input, among others.
        let p = file(
            "b.npz",
            &[
                ("input", &x, Stored),
                ("other", &y, Stored),
                ("labels", &y, Stored),
            ],
        );
        assert_eq!(
            Dataset::load_npz(&p, Some("input"), None).unwrap(),
            expected
        );
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
