//! # qdq-data
//!
//! Calibration and evaluation data: `.npy` and `.npz` arrays, IDX (MNIST-style) files
//! and folders of images, with the preprocessing that turns them into the model's float
//! input, and the check that they fit it ([`Input`]).

pub mod idx;
pub mod images;
pub mod npy;
pub mod npz;

use std::path::Path;

/// Names of the label array in an `.npz` file, in order of preference.
const LABEL_KEYS: [&str; 2] = ["labels", "y"];

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

    /// Loads `.npy` or `.npz` (first dimension = items) or an IDX file (`.gz` or not;
    /// bytes are scaled by 1/255 unless `pre.scale` says otherwise), then applies `pre`.
    /// From `.npz`, the only array not named `labels` or `y` (see [`Dataset::load_npz`]).
    ///
    /// # Errors
    /// Unreadable or malformed files, and NaN or Inf values (the first one is named by
    /// its item and position).
    pub fn load(path: &Path, pre: Option<Preprocess>) -> Result<Self, DataError> {
        let name = path.display().to_string();
        let (shape, data, default_scale) = match path.extension().and_then(|e| e.to_str()) {
            Some("npz") => return Self::load_npz(path, None, pre),
            Some("npy") => {
                let a = npy::Npy::read(path)?;
                (a.shape, a.data, 1.0)
            }
            _ => {
                let a = idx::Idx::read(path)?;
                (
                    a.dims,
                    a.data.iter().map(|&b| b as f32).collect(),
                    1.0 / 255.0,
                )
            }
        };
        let pre = pre.unwrap_or(Preprocess {
            scale: default_scale,
            ..Preprocess::default()
        });
        Self::from_values(shape, data, pre).map_err(|why| DataError::Format { path: name, why })
    }

    /// Loads an `.npz` file: the array named `input` (the model input's name) if there is
    /// one, else the only array not named `labels` or `y`; an array named `labels` (or
    /// `y`) gives the labels. `pre` as for `.npy`.
    ///
    /// # Errors
    /// Unreadable or malformed files, no array or several that could be the data (the
    /// keys found are listed), labels that do not match the items, NaN or Inf.
    pub fn load_npz(
        path: &Path,
        input: Option<&str>,
        pre: Option<Preprocess>,
    ) -> Result<Self, DataError> {
        let name = path.display().to_string();
        let format = |why: String| DataError::Format {
            path: name.clone(),
            why,
        };
        let mut npz = npz::Npz::read(path)?;
        let keys: Vec<String> = npz.keys().iter().map(|k| k.to_string()).collect();
        let label_key = LABEL_KEYS.into_iter().find(|k| keys.iter().any(|x| x == k));
        let data_key = match input.filter(|i| keys.iter().any(|k| k == i)) {
            Some(i) => i.to_string(),
            None => {
                let candidates: Vec<&String> = keys
                    .iter()
                    .filter(|k| !LABEL_KEYS.contains(&k.as_str()))
                    .collect();
                let wanted =
                    input.map_or(String::new(), |i| format!("`{i}` (the model input) or "));
                match candidates.as_slice() {
                    [one] => one.to_string(),
                    _ => {
                        return Err(format(format!(
                            "holds arrays {keys:?}; expected {wanted}exactly one array besides \
                             `labels`/`y`"
                        )));
                    }
                }
            }
        };
        let data = npz
            .take(&data_key)
            .ok_or_else(|| format(format!("no array `{data_key}`")))?;
        let mut d = Self::from_values(data.shape, data.data, pre.unwrap_or_default())
            .map_err(|why| format(format!("array `{data_key}`: {why}")))?;
        if let Some(k) = label_key {
            let labels = npz.take(k).map(|a| a.data).unwrap_or_default();
            d.labels = Some(
                d.labels_from(&labels)
                    .map_err(|why| format(format!("array `{k}`: {why}")))?,
            );
        }
        Ok(d)
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
    /// Unreadable file, a label count that differs from the item count, or a label that
    /// is not a whole number.
    pub fn with_labels(mut self, path: &Path) -> Result<Self, DataError> {
        let values: Vec<f32> = if path.extension().is_some_and(|e| e == "npy") {
            npy::Npy::read(path)?.data
        } else {
            idx::Idx::read(path)?
                .data
                .iter()
                .map(|&b| b as f32)
                .collect()
        };
        let labels = self.labels_from(&values).map_err(|why| DataError::Format {
            path: path.display().to_string(),
            why,
        })?;
        self.labels = Some(labels);
        Ok(self)
    }

    /// `values` as class labels, one per item.
    fn labels_from(&self, values: &[f32]) -> Result<Vec<i64>, String> {
        if values.len() != self.len() {
            return Err(format!("{} labels for {} items", values.len(), self.len()));
        }
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v.is_finite() && v.fract() == 0.0 {
                    Ok(v as i64)
                } else {
                    Err(format!("label {i} is {v}; labels must be whole numbers"))
                }
            })
            .collect()
    }

    /// Normalises per channel (dimension 0 of an item, the C of CHW): `(x - mean[c]) /
    /// std[c]`. One value applies to every channel.
    ///
    /// # Errors
    /// A count that is neither 1 nor the channel count, or a std that is 0 or not finite.
    pub fn normalize(&mut self, mean: &[f32], std: &[f32]) -> Result<(), String> {
        let channels = self.item_shape.first().copied().unwrap_or(1).max(1);
        for (what, v) in [("mean", mean), ("std", std)] {
            if v.len() > 1 && v.len() != channels {
                return Err(format!(
                    "{} {what} values for items of shape {:?} ({channels} channels); give one \
                     value or one per channel",
                    v.len(),
                    self.item_shape
                ));
            }
        }
        if let Some(s) = std.iter().find(|s| **s == 0.0 || !s.is_finite()) {
            return Err(format!("std {s}: must be finite and not 0"));
        }
        if mean.iter().all(|m| *m == 0.0) && std.iter().all(|s| *s == 1.0) {
            return Ok(()); // the identity
        }
        let pick =
            |v: &[f32], c: usize, default: f32| v.get(c).or(v.first()).copied().unwrap_or(default);
        let plane = self.item_shape.iter().skip(1).product::<usize>().max(1);
        for (i, x) in self.data.iter_mut().enumerate() {
            let c = (i / plane) % channels;
            *x = (*x - pick(mean, c, 0.0)) / pick(std, c, 1.0);
        }
        Ok(())
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
            Some(fixed) => fixed.iter().product::<usize>() == item_shape.iter().product::<usize>(),
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
    /// The items do not fit the model input.
    #[error(
        "{path}: data items of shape {item:?} ({} values) do not fit model input `{input}` of \
         shape {expected}",
        item.iter().product::<usize>()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_per_channel_or_all() {
        let mut d =
            Dataset::from_values(vec![1, 2, 2], vec![1., 2., 3., 5.], Preprocess::default())
                .unwrap();
        d.normalize(&[1.0, 3.0], &[2.0]).unwrap();
        assert_eq!(d.data, [0.0, 0.5, 0.0, 1.0]);
        d.normalize(&[1.0], &[]).unwrap();
        assert_eq!(d.data, [-1.0, -0.5, -1.0, 0.0]);
        let err = d.normalize(&[0.0; 3], &[1.0]).unwrap_err();
        assert!(
            err.contains("3 mean values for items of shape [2, 2] (2 channels)"),
            "{err}"
        );
        let err = d.normalize(&[], &[0.0]).unwrap_err();
        assert!(err.contains("std 0"), "{err}");
    }

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

    #[test]
    fn labels_are_whole_numbers_one_per_item() {
        let d = Dataset::from_values(vec![2, 1], vec![0.0, 1.0], Preprocess::default()).unwrap();
        assert_eq!(d.labels_from(&[3.0, 0.0]).unwrap(), [3, 0]);
        assert!(
            d.labels_from(&[1.0])
                .unwrap_err()
                .contains("1 labels for 2 items")
        );
        assert!(
            d.labels_from(&[1.0, 0.5])
                .unwrap_err()
                .contains("label 1 is 0.5")
        );
    }
}
