//! # qdq-data
//!
//! Calibration and evaluation data: `.npy` and `.npz` arrays, IDX (MNIST-style) files,
//! folders of images and folders of `.npz` items, with the preprocessing that turns
//! them into a model's float inputs, the exact conversion to its integer and bool
//! inputs, and the check that they fit ([`Input`]). [`ModelData`] feeds every input of
//! a model, in batches of items of equal shape.
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
mod input;
mod model_data;
pub mod npy;
pub mod npz;
mod npz_items;
mod shard;
mod values;

use std::path::Path;

pub use array::MAX_LABEL;
pub use dataset::{Dataset, MAX_ITEM_VALUES};
pub use input::{ElemType, Input};
pub use model_data::{Batch, Batches, InputPrep, ModelData, Sources};
pub use values::{HostTensor, Values};

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
         shape {expected}{hint}",
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
        /// What to do instead, when that is clear (empty otherwise).
        hint: String,
    },
    /// A data value the model input's type cannot hold exactly.
    #[error("{path}: input `{input}` item {item}, position {position}: value {value} {why}")]
    Value {
        /// The file (and array) it came from.
        path: String,
        /// The model input.
        input: String,
        /// The item's index.
        item: usize,
        /// The value's position in the item (row-major).
        position: usize,
        /// The value as read.
        value: String,
        /// Why it is refused, naming the input's type.
        why: String,
    },
    /// The sources given do not match the model's inputs.
    #[error("{0}")]
    Inputs(String),
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
