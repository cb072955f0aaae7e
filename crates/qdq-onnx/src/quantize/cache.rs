//! Calibration caches: tensor name → amax (and the method that gave it), saved as JSON
//! so a model can be re-exported without re-running the data, and TensorRT's
//! calibration-table text format read in.

use std::collections::BTreeMap;
use std::path::Path;

use qdq::tensor_quant::NumBits;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One tensor's calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Amax: one value per tensor, or one per channel for weights.
    pub amax: Vec<f32>,
    /// How it was found (`max`, `entropy`, `percentile=99.99`, `tensorrt`, ...).
    pub method: String,
}

/// Amaxes by tensor name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CalibrationCache {
    /// Entries by tensor name, sorted.
    pub entries: BTreeMap<String, Entry>,
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

impl CalibrationCache {
    /// Writes the cache as pretty JSON, atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json =
            serde_json::to_string_pretty(self).map_err(|e| io(path, std::io::Error::other(e)))?;
        qdq::io::write_atomic(path, json.as_bytes()).map_err(|e| io(path, e))
    }

    /// Reads a cache written by [`CalibrationCache::save`], or a TensorRT calibration
    /// table (recognised by its `TRT-` header line).
    ///
    /// # Errors
    /// Unreadable file, malformed JSON or table (the line is named), a negative or
    /// non-finite amax.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        let bad = |why: String| Error::Graph(format!("{}: {why}", path.display()));
        let cache = if text.starts_with("TRT-") {
            Self::from_tensorrt_table(&text).map_err(bad)?
        } else {
            serde_json::from_str(&text)
                .map_err(|e| bad(format!("not a qdq calibration cache ({e})")))?
        };
        for (name, e) in &cache.entries {
            if let Some(a) = e.amax.iter().find(|a| !(a.is_finite() && **a >= 0.0)) {
                return Err(bad(format!(
                    "tensor `{name}` has amax {a}; amax must be finite and >= 0"
                )));
            }
        }
        Ok(cache)
    }

    /// Parses TensorRT's calibration table: a `TRT-<version>-<Calibrator>` header, then
    /// `tensor: <hex>` lines where hex is the float32 bit pattern of the INT8 scale;
    /// amax = scale × 127.
    pub fn from_tensorrt_table(text: &str) -> std::result::Result<Self, String> {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let calibrator = header.rsplit('-').next().unwrap_or("tensorrt").to_string();
        let mut entries = BTreeMap::new();
        for (i, line) in lines.enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (name, hex) = line.rsplit_once(':').ok_or_else(|| {
                format!("line {}: expected `tensor: hexscale`, got `{line}`", i + 2)
            })?;
            let bits = u32::from_str_radix(hex.trim(), 16)
                .map_err(|e| format!("line {}: scale `{}` is not hex ({e})", i + 2, hex.trim()))?;
            let scale = f32::from_bits(bits);
            entries.insert(
                name.trim().to_string(),
                Entry {
                    // TensorRT's tables are INT8 scales: amax = scale * 127.
                    amax: vec![scale * NumBits::Int(8).max_bound(false)],
                    method: format!("tensorrt:{calibrator}"),
                },
            );
        }
        Ok(Self { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensorrt_table_scales_become_amax() {
        // 0x3c010204 is the float32 0.0078736 (about 1/127): amax ~ 1.
        let t = "TRT-8601-EntropyCalibration2\ninput: 3c010204\nconv1_out: 3d000000\n";
        let c = CalibrationCache::from_tensorrt_table(t).unwrap();
        assert_eq!(
            c.entries["input"].amax,
            [f32::from_bits(0x3c010204) * 127.0]
        );
        assert_eq!(c.entries["conv1_out"].amax, [0.03125 * 127.0]);
        assert_eq!(c.entries["input"].method, "tensorrt:EntropyCalibration2");
        let err = CalibrationCache::from_tensorrt_table("TRT-1-X\nbroken line\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn json_round_trip() {
        let dir = std::env::temp_dir().join(format!("qdq-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.json");
        let mut c = CalibrationCache::default();
        c.entries.insert(
            "x".into(),
            Entry {
                amax: vec![2.5],
                method: "entropy".into(),
            },
        );
        c.save(&path).unwrap();
        assert_eq!(CalibrationCache::load(&path).unwrap(), c);
        std::fs::write(&path, r#"{"entries":{"x":{"amax":[-1.0],"method":"max"}}}"#).unwrap();
        let err = CalibrationCache::load(&path).unwrap_err().to_string();
        assert!(err.contains("tensor `x` has amax -1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
