//! # qdq-data
//!
//! Calibration and evaluation data: `.npy` and `.npz` arrays, IDX (MNIST-style) files
//! and folders of images, with the preprocessing that turns them into the model's float
//! input, and the check that they fit it ([`Input`]).
//!
//! A [`Dataset`] holds no item data: items are read from their file when asked for
//! ([`Dataset::read`], [`Dataset::gather`]), a batch at a time, so memory is one batch
//! whatever the file's size. Compressed data (gzip IDX, deflated `.npz` members) is
//! decompressed once into an anonymous temporary file. Every size read from a file goes
//! through checked arithmetic before anything is allocated.

#![deny(missing_docs)]

mod array;
mod dataset;
pub mod dtype;
pub mod idx;
pub mod images;
pub mod npy;
pub mod npz;

use std::path::Path;

pub use array::MAX_LABEL;
pub use dataset::{Dataset, MAX_ITEM_VALUES};

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

/// The model input that data is fed to: its name and dimensions, `None` where dynamic
/// (the first dimension is the batch).
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// The input's name.
    pub name: String,
    /// Its dimensions (empty when the model declares no shape).
    pub dims: Vec<Option<usize>>,
}

impl Input {
    /// The shape as text: `[batch, 1, 28, 28]`, `?` for a dynamic dimension after the
    /// first.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self
            .dims
            .iter()
            .enumerate()
            .map(|(i, d)| match (i, d) {
                (_, Some(n)) => n.to_string(),
                (0, None) => "batch".into(),
                (_, None) => "?".into(),
            })
            .collect();
        format!("[{}]", dims.join(", "))
    }

    /// Whether items of `item_shape` fit: as many values as the input's fixed per-item
    /// dimensions hold (a flat item fills a `[C, H, W]` input), or, where some are
    /// dynamic, the same rank with the fixed ones equal.
    pub fn fits(&self, item_shape: &[usize]) -> bool {
        let Some(per_item) = self.dims.get(1..) else {
            return false;
        };
        match per_item.iter().copied().collect::<Option<Vec<usize>>>() {
            Some(fixed) => {
                let (a, b) = (npy::checked_count(&fixed), npy::checked_count(item_shape));
                a.is_ok() && a == b
            }
            None => {
                per_item.len() == item_shape.len()
                    && per_item
                        .iter()
                        .zip(item_shape)
                        .all(|(d, n)| d.is_none_or(|d| d == *n))
            }
        }
    }

    /// [`Input::fits`] as a result naming `source` (a file, a folder) and both shapes.
    ///
    /// # Errors
    /// [`DataError::Shape`] when the items do not fit.
    pub fn check(&self, source: &str, item_shape: &[usize]) -> Result<(), DataError> {
        if self.fits(item_shape) {
            return Ok(());
        }
        Err(DataError::Shape {
            path: source.to_string(),
            item: item_shape.to_vec(),
            input: self.name.clone(),
            expected: self.describe(),
        })
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
    /// A class label that is not a whole number in `0..=MAX_LABEL`.
    #[error(
        "{path}: label {index} is {value}; labels must be class indices, whole numbers in \
         0..={max}",
        max = MAX_LABEL
    )]
    Label {
        /// The file.
        path: String,
        /// The label's index (its item).
        index: usize,
        /// The value found.
        value: String,
    },
    /// The items do not fit the model input.
    #[error(
        "{path}: data items of shape {item:?} ({} values) do not fit model input `{input}` of \
         shape {expected}",
        count_text(item)
    )]
    Shape {
        /// The file or folder (and how its items were made, for images).
        path: String,
        /// Shape of one item.
        item: Vec<usize>,
        /// The model input's name.
        input: String,
        /// The model input's shape ([`Input::describe`]).
        expected: String,
    },
}

/// The element count of `shape` as text ("too many" where it overflows).
fn count_text(shape: &[usize]) -> String {
    npy::checked_count(shape).map_or_else(|_| "too many".into(), |n| n.to_string())
}

/// Reads `path` and parses its bytes with `parse`; errors name the file.
pub(crate) fn parse_file<T>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<T, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&bytes).map_err(|why| DataError::Format {
        path: path.display().to_string(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_fit_by_count_or_by_rank() {
        let input = |dims: &[Option<usize>]| Input {
            name: "x".into(),
            dims: dims.to_vec(),
        };
        let fixed = input(&[None, Some(1), Some(28), Some(28)]);
        assert_eq!(fixed.describe(), "[batch, 1, 28, 28]");
        assert!(fixed.fits(&[1, 28, 28]) && fixed.fits(&[784]) && !fixed.fits(&[3, 28, 28]));
        let open = input(&[Some(4), Some(3), None, None]);
        assert_eq!(open.describe(), "[4, 3, ?, ?]");
        assert!(open.fits(&[3, 5, 7]) && !open.fits(&[1, 5, 7]) && !open.fits(&[105]));
        assert!(!input(&[]).fits(&[1]));
        let err = fixed.check("a.npy", &[3, 10]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.npy: data items of shape [3, 10] (30 values) do not fit model input `x` of \
             shape [batch, 1, 28, 28]"
        );
    }
}
