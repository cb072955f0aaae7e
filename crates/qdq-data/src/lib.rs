//! # qdq-data
//!
//! Calibration and evaluation data: `.npy` arrays, IDX (MNIST-style) files and folders
//! of images, with the preprocessing that turns them into the model's float input.

pub mod idx;
pub mod images;
pub mod npy;

use std::path::Path;

/// How raw values become model input: `(x * scale - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preprocess {
    /// Multiplier applied first (IDX bytes: 1/255 by default).
    pub scale: f32,
    /// Subtracted after scaling.
    pub mean: f32,
    /// Divisor last.
    pub std: f32,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self {
            scale: 1.0,
            mean: 0.0,
            std: 1.0,
        }
    }
}

/// Items of equal size, as float32, with optional labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Shape of one item.
    pub item_shape: Vec<usize>,
    /// All items, row-major.
    pub data: Vec<f32>,
    /// Class labels, when the data came with them.
    pub labels: Option<Vec<i64>>,
}

impl Dataset {
    /// Number of items.
    pub fn len(&self) -> usize {
        let item: usize = self.item_shape.iter().product();
        self.data.len().checked_div(item).unwrap_or(0)
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items `from..from + n` (clamped), row-major.
    pub fn items(&self, from: usize, n: usize) -> &[f32] {
        let item: usize = self.item_shape.iter().product();
        let end = (from + n).min(self.len());
        &self.data[from.min(end) * item..end * item]
    }

    /// Loads `.npy` (first dimension = items) or an IDX file (`.gz` or not; bytes are
    /// scaled by 1/255 unless `pre.scale` says otherwise), then applies `pre`.
    ///
    /// # Errors
    /// Unreadable or malformed files, and NaN or Inf values (the first one is named by
    /// its item and position).
    pub fn load(path: &Path, pre: Option<Preprocess>) -> Result<Self, DataError> {
        let name = path.display().to_string();
        let (shape, data, default_scale) = if path.extension().is_some_and(|e| e == "npy") {
            let a = npy::Npy::read(path)?;
            (a.shape, a.data, 1.0)
        } else {
            let a = idx::Idx::read(path)?;
            (
                a.dims,
                a.data.iter().map(|&b| b as f32).collect(),
                1.0 / 255.0,
            )
        };
        let pre = pre.unwrap_or(Preprocess {
            scale: default_scale,
            ..Preprocess::default()
        });
        Self::from_values(shape, data, pre).map_err(|why| DataError::Format { path: name, why })
    }

    /// Items from an IDX array of bytes, scaled by 1/255.
    pub fn from_idx(idx: &idx::Idx) -> Result<Self, String> {
        let pre = Preprocess {
            scale: 1.0 / 255.0,
            ..Preprocess::default()
        };
        Self::from_values(
            idx.dims.clone(),
            idx.data.iter().map(|&b| b as f32).collect(),
            pre,
        )
    }

    /// Items from `shape` (first dimension = items) and values, preprocessed.
    pub fn from_values(
        shape: Vec<usize>,
        mut data: Vec<f32>,
        pre: Preprocess,
    ) -> Result<Self, String> {
        if shape.is_empty() || shape[0] == 0 {
            return Err("no items (the first dimension is empty)".into());
        }
        let item: usize = shape[1..].iter().product();
        for (i, v) in data.iter_mut().enumerate() {
            if !v.is_finite() {
                return Err(format!(
                    "value {v} in item {} at position {}; data must be finite",
                    i / item.max(1),
                    i % item.max(1)
                ));
            }
            *v = (*v * pre.scale - pre.mean) / pre.std;
        }
        Ok(Self {
            item_shape: shape[1..].to_vec(),
            data,
            labels: None,
        })
    }

    /// Attaches labels read from an IDX or `.npy` file with one label per item.
    ///
    /// # Errors
    /// Unreadable file, or a label count that differs from the item count.
    pub fn with_labels(mut self, path: &Path) -> Result<Self, DataError> {
        let labels: Vec<i64> = if path.extension().is_some_and(|e| e == "npy") {
            npy::Npy::read(path)?
                .data
                .iter()
                .map(|&v| v as i64)
                .collect()
        } else {
            idx::Idx::read(path)?
                .data
                .iter()
                .map(|&b| b as i64)
                .collect()
        };
        if labels.len() != self.len() {
            return Err(DataError::Format {
                path: path.display().to_string(),
                why: format!("{} labels for {} items", labels.len(), self.len()),
            });
        }
        self.labels = Some(labels);
        Ok(self)
    }
}

/// Errors reading data; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not in the expected format.
    #[error("{path}: {why}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// The file's bytes, gunzipped when they start with the gzip magic number.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.display().to_string(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        idx::read_all(flate2::read::GzDecoder::new(&bytes[..])).map_err(io)
    } else {
        Ok(bytes)
    }
}
