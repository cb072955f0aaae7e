//! A folder of `.npz` files, one item each (sorted by file name): each holds one array
//! per model input it feeds, named like the input, without the batch axis (an axis of
//! 1 where the batch axis goes is accepted too), and optionally `labels` (or `y`), one
//! class index. Items may differ in shape along the inputs' dynamic dimensions; every
//! file's headers are read when the folder is opened (its shapes group items into
//! batches), its data when its item is reached.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::dataset::{Dataset, LABEL_KEYS};
use super::input::Input;
use super::npz::Npz;
use super::values::Values;
use super::{DataError, Preprocess};

/// How one float input's values are preprocessed: `pre`, then `(x - mean[c]) / std[c]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FloatPrep {
    pub pre: Preprocess,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// The `.npz` items of a folder, with each item's shapes.
#[derive(Debug)]
pub(crate) struct ItemFolder {
    files: Vec<PathBuf>,
    /// The inputs' names (the arrays read), in the order of `shapes`' rows.
    keys: Vec<String>,
    /// `shapes[item][k]`: item `item`'s shape for input `keys[k]` (batch axis removed).
    shapes: Vec<Vec<Vec<usize>>>,
    labels: Option<Vec<i64>>,
}

/// Whether `dir` is a folder of `.npz` files.
pub(crate) fn is_item_folder(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "npz"))
    })
}

impl ItemFolder {
    /// Item `i`'s file.
    pub(crate) fn file(&self, i: usize) -> Option<&Path> {
        self.files.get(i).map(PathBuf::as_path)
    }

    /// Lists `dir`'s `.npz` files and reads each one's array headers for `inputs`.
    ///
    /// # Errors
    /// An unreadable folder or file; a file that lacks an input's array or holds an
    /// array that is no input's (both listing what it holds); an array that does not
    /// fit its input (both shapes); labels in some files and not others.
    pub fn open(dir: &Path, inputs: &[&Input]) -> Result<Self, DataError> {
        let files = item_files(dir)?;
        let keys: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
        let mut shapes = Vec::with_capacity(files.len());
        let mut labels: Vec<Option<i64>> = Vec::with_capacity(files.len());
        for f in &files {
            let mut npz = Npz::open(f)?;
            let held: Vec<String> = npz.keys().iter().map(|k| k.to_string()).collect();
            let format = |why: String| DataError::Format {
                path: f.display().to_string(),
                why,
            };
            let expected = || format!("one array per input: {}", keys.join(", "));
            if let Some(extra) = held
                .iter()
                .find(|k| !keys.contains(k) && !LABEL_KEYS.contains(&k.as_str()))
            {
                return Err(format(format!(
                    "array `{extra}` feeds no model input (the file holds {held:?}; items \
                     hold {})",
                    expected()
                )));
            }
            let mut row = Vec::with_capacity(inputs.len());
            for input in inputs {
                if !held.contains(&input.name) {
                    return Err(format(format!(
                        "no array `{}` for model input `{}` (the file holds {held:?}; items \
                         hold {})",
                        input.name,
                        input.name,
                        expected()
                    )));
                }
                let shape = npz.header(&input.name)?.shape;
                let item = item_shape(input, shape);
                input.check(&npz.culprit(&input.name), &item)?;
                row.push(item);
            }
            shapes.push(row);
            labels.push(
                match LABEL_KEYS.iter().find(|k| held.iter().any(|h| h == *k)) {
                    Some(k) => Some(npz.labels(k, 1)?[0]),
                    None => None,
                },
            );
        }
        if files.is_empty() {
            return Err(DataError::Format {
                path: dir.display().to_string(),
                why: "no .npz files".into(),
            });
        }
        let labels = match labels.iter().position(Option::is_none) {
            None => Some(labels.into_iter().flatten().collect()),
            Some(_) if labels.iter().all(Option::is_none) => None,
            Some(i) => {
                return Err(DataError::Format {
                    path: files[i].display().to_string(),
                    why: "no `labels` array, which other items of the folder hold".into(),
                });
            }
        };
        Ok(Self {
            files,
            keys,
            shapes,
            labels,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// The labels, when every item holds one.
    pub fn labels(&self) -> Option<&[i64]> {
        self.labels.as_deref()
    }

    /// Item `item`'s shape for `input` (one of the folder's inputs).
    pub fn shape(&self, item: usize, input: &str) -> &[usize] {
        let k = self.keys.iter().position(|k| k == input).unwrap_or(0);
        &self.shapes[item][k]
    }

    /// Items grouped by their shapes across all inputs, each group in file order,
    /// groups in the order of their first item.
    pub fn groups(&self) -> Vec<Vec<usize>> {
        // Indexed by shape: linear in the items, however many shapes there are.
        let mut index: HashMap<&[Vec<usize>], usize> = HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, s) in self.shapes.iter().enumerate() {
            let g = *index.entry(s.as_slice()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        groups
    }

    /// Item `item`'s array for `input`, converted to its type (floats preprocessed
    /// by `prep`).
    ///
    /// # Errors
    /// The file changed since it was opened, a value the input's type cannot hold, and
    /// read errors; each names the file.
    pub fn read(&self, item: usize, input: &Input, prep: &FloatPrep) -> Result<Values, DataError> {
        let path = &self.files[item];
        let mut npz = Npz::open(path)?;
        let shape = self.shape(item, &input.name).to_vec();
        let now = item_shape(input, npz.header(&input.name)?.shape);
        if now != shape {
            return Err(DataError::Format {
                path: npz.culprit(&input.name),
                why: format!("shape {now:?}; it was {shape:?} when the folder was opened"),
            });
        }
        let mut d = Dataset::npz_array(&mut npz, &input.name, Some(prep.pre), Some(&shape))?;
        d.normalize(&prep.mean, &prep.std)
            .map_err(|why| DataError::Format {
                path: npz.culprit(&input.name),
                why,
            })?;
        d.read_as(&[0], input).map_err(|e| match e {
            DataError::Value {
                path,
                input,
                position,
                value,
                why,
                ..
            } => DataError::Value {
                path,
                input,
                item,
                position,
                value,
                why,
            },
            e => e,
        })
    }
}

/// The `.npz` files of `dir`, sorted by name: the folder's items, in order.
///
/// # Errors
/// The folder cannot be read.
pub(crate) fn item_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| DataError::Io {
            path: dir.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npz"))
        .collect();
    files.sort();
    Ok(files)
}

/// An item's shape from its array's: a leading axis of 1 where the input's batch axis
/// is (the array has the input's rank) is dropped.
pub(crate) fn item_shape(input: &Input, mut shape: Vec<usize>) -> Vec<usize> {
    if let Some(a) = input.batch_axis
        && shape.len() == input.dims.len()
        && shape.get(a) == Some(&1)
    {
        shape.remove(a);
    }
    shape
}
