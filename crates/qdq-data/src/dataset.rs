//! [`Dataset`]: items of one shape, read from their source a batch at a time, with
//! their labels.

use std::path::Path;
use std::sync::Arc;

use super::array::{FileArray, MAX_LABEL, read_labels};
use super::dtype::Dtype;
use super::images::Folder;
use super::input::{ElemType, Input};
use super::npy::checked_count;
use super::values::Values;
use super::{DataError, Preprocess, idx, npy, npz};

/// Names of the label array in an `.npz` file, in order of preference.
pub(crate) const LABEL_KEYS: [&str; 2] = ["labels", "y"];

/// The most values (2^28, 1 GiB of f32) one item may hold: a batch is items times this.
pub const MAX_ITEM_VALUES: usize = 1 << 28;

/// Where the items are.
#[derive(Clone, Debug)]
enum Source {
    /// Raw values in memory (small data made by the program, e.g. the bundled demo).
    Memory(Arc<[f32]>),
    /// Elements in a file, one item after another.
    File(FileArray),
    /// Image files, one per item.
    Images(Arc<Folder>),
}

/// Items of equal shape, read as float32 when asked for, with optional labels.
///
/// The dataset holds no item data (except one made from values in memory): items are
/// read from their source by [`Dataset::read`] and [`Dataset::gather`], preprocessed as
/// they are read. Cloning shares the source.
#[derive(Clone, Debug)]
pub struct Dataset {
    item_shape: Vec<usize>,
    /// Values per item: the product of `item_shape`, at most [`MAX_ITEM_VALUES`].
    item: usize,
    len: usize,
    labels: Option<Vec<i64>>,
    source: Source,
    /// The file (and array) that errors name.
    name: String,
    pre: Preprocess,
    /// The axis of an item that holds its channels (0: CHW; 2: an HWC image).
    channel_axis: usize,
    /// Per-channel `(mean, std)` normalisations, applied after `pre`, in order.
    norms: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Dataset {
    /// A dataset of `shape` (first dimension = items) read from `source`.
    fn new(name: String, shape: &[usize], source: Source, pre: Preprocess) -> Result<Self, String> {
        let Some((&len, item_shape)) = shape.split_first().filter(|(n, _)| **n > 0) else {
            return Err("no items (the first dimension is empty)".into());
        };
        let item = checked_count(item_shape)?;
        if item == 0 {
            return Err(format!("items of shape {item_shape:?} hold no values"));
        }
        if item > MAX_ITEM_VALUES {
            return Err(format!(
                "items of shape {item_shape:?} hold {item} values each; the limit is \
                 {MAX_ITEM_VALUES} (2^28)"
            ));
        }
        Ok(Self {
            item_shape: item_shape.to_vec(),
            item,
            len,
            labels: None,
            source,
            name,
            pre,
            channel_axis: 0,
            norms: Vec::new(),
        })
    }

    /// Images of a folder, `item_shape` each (see [`crate::images::load`]).
    pub(crate) fn from_folder(
        name: String,
        (item_shape, channel_axis): (Vec<usize>, usize),
        folder: Folder,
        labels: Option<Vec<i64>>,
    ) -> Self {
        let item = item_shape.iter().product();
        Self {
            channel_axis,
            len: folder.len(),
            item_shape,
            item,
            labels,
            source: Source::Images(Arc::new(folder)),
            name,
            pre: Preprocess::default(),
            norms: Vec::new(),
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shape of one item, e.g. `[1, 28, 28]`.
    pub fn item_shape(&self) -> &[usize] {
        &self.item_shape
    }

    /// Values per item (the product of [`Dataset::item_shape`]).
    pub fn item_len(&self) -> usize {
        self.item
    }

    /// Class labels, one per item, when the data came with them: each in
    /// `0..=MAX_LABEL`.
    pub fn labels(&self) -> Option<&[i64]> {
        self.labels.as_deref()
    }

    /// Item values this dataset holds in memory: 0 unless it was made from values
    /// ([`Dataset::from_values`]); items from files are read when asked for.
    pub fn held_values(&self) -> usize {
        match &self.source {
            Source::Memory(v) => v.len(),
            Source::File(_) | Source::Images(_) => 0,
        }
    }

    /// The first `n` items (all if fewer), with their labels; shares the source.
    pub fn first(&self, n: usize) -> Self {
        let mut d = self.clone();
        d.len = n.min(self.len);
        if let Some(l) = &mut d.labels {
            l.truncate(d.len);
        }
        d
    }

    /// Items `from..from + n` (clamped to the items there are), preprocessed, row-major:
    /// `item_len()` values an item.
    ///
    /// # Errors
    /// A read error, or a NaN or Inf value (named by the file, the item's index and the
    /// position in it).
    pub fn read(&self, from: usize, n: usize) -> Result<Vec<f32>, DataError> {
        let from = from.min(self.len);
        let n = n.min(self.len - from);
        let mut out = Vec::with_capacity(self.values(n)?);
        self.read_raw(from, n, &mut out)?;
        self.prepare(&mut out, |k| from + k)?;
        Ok(out)
    }

    /// Items `indices`, in that order, preprocessed, row-major (for shuffled batches).
    ///
    /// # Errors
    /// An index out of range, and as [`Dataset::read`].
    pub fn gather(&self, indices: &[usize]) -> Result<Vec<f32>, DataError> {
        let mut out = Vec::with_capacity(self.values(indices.len())?);
        for &i in indices {
            if i >= self.len {
                return Err(self.format(format!("item {i} asked for; there are {}", self.len)));
            }
            self.read_raw(i, 1, &mut out)?;
        }
        self.prepare(&mut out, |k| indices[k])?;
        Ok(out)
    }

    /// Items `indices` (each in range) converted to `input`'s type: float32 inputs as
    /// [`Dataset::gather`] reads them (preprocessed), integer and bool inputs exactly
    /// as stored ([`Values::push`]).
    ///
    /// # Errors
    /// As [`Dataset::gather`]; a value the input's type cannot hold
    /// ([`DataError::Value`], naming the input, the item and the value); images for an
    /// integer or bool input.
    pub fn read_as(&self, indices: &[usize], input: &Input) -> Result<Values, DataError> {
        if input.elem == ElemType::Float {
            let contiguous = indices.windows(2).all(|w| w[1] == w[0] + 1);
            return Ok(Values::F32(match (contiguous, indices.first()) {
                (true, Some(&from)) if from + indices.len() <= self.len => {
                    self.read(from, indices.len())?
                }
                _ => self.gather(indices)?,
            }));
        }
        let mut out = Values::with_capacity(input.elem, self.values(indices.len())?);
        for &i in indices {
            if i >= self.len {
                return Err(self.format(format!("item {i} asked for; there are {}", self.len)));
            }
            let (dtype, bytes) = match &self.source {
                Source::File(a) => (
                    a.dtype(),
                    a.read_bytes(i * self.item, self.item, &self.name)?,
                ),
                Source::Memory(v) => {
                    let item = &v[i * self.item..(i + 1) * self.item];
                    (
                        Dtype::F32,
                        item.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    )
                }
                Source::Images(_) => {
                    return Err(self.format(format!(
                        "images feed float inputs; input `{}` is {}",
                        input.name,
                        input.describe()
                    )));
                }
            };
            out.push(dtype, &bytes, input.elem)
                .map_err(|r| DataError::Value {
                    path: self.name.clone(),
                    input: input.name.clone(),
                    item: i,
                    position: r.position,
                    value: r.value,
                    why: r.why,
                })?;
        }
        Ok(out)
    }

    /// Values of `n` items, or an error when that overflows.
    fn values(&self, n: usize) -> Result<usize, DataError> {
        n.checked_mul(self.item).ok_or_else(|| {
            self.format(format!("{n} items of {} values overflow memory", self.item))
        })
    }

    fn format(&self, why: String) -> DataError {
        DataError::Format {
            path: self.name.clone(),
            why,
        }
    }

    /// Raw values of items `from..from + n` (in range), appended to `out`.
    fn read_raw(&self, from: usize, n: usize, out: &mut Vec<f32>) -> Result<(), DataError> {
        match &self.source {
            Source::Memory(v) => {
                out.extend_from_slice(&v[from * self.item..(from + n) * self.item]);
                Ok(())
            }
            Source::File(a) => a.read(from * self.item, n * self.item, out, &self.name),
            Source::Images(folder) => (from..from + n).try_for_each(|i| folder.read(i, out)),
        }
    }

    /// Checks each item of `values` for NaN and Inf (item `k` is item `index(k)` of the
    /// dataset), then applies the preprocessing and normalisations.
    fn prepare(&self, values: &mut [f32], index: impl Fn(usize) -> usize) -> Result<(), DataError> {
        let Preprocess { scale, mean, std } = self.pre;
        let channels = self.channels();
        // Values between one channel's value and the next's (a plane for CHW, 1 for HWC).
        let plane = self
            .item_shape
            .iter()
            .skip(self.channel_axis + 1)
            .product::<usize>()
            .max(1);
        let pick =
            |v: &[f32], c: usize, default: f32| v.get(c).or(v.first()).copied().unwrap_or(default);
        for (k, item) in values.chunks_exact_mut(self.item).enumerate() {
            if let Some(p) = item.iter().position(|v| !v.is_finite()) {
                return Err(self.format(format!(
                    "value {} in item {} at position {p}; data must be finite",
                    item[p],
                    index(k)
                )));
            }
            for v in item.iter_mut() {
                *v = (*v * scale - mean) / std;
            }
            for (m, s) in &self.norms {
                for (p, v) in item.iter_mut().enumerate() {
                    let c = (p / plane) % channels;
                    *v = (*v - pick(m, c, 0.0)) / pick(s, c, 1.0);
                }
            }
        }
        Ok(())
    }

    /// Opens `.npy` or `.npz` (first dimension = items) or an IDX file (`.gz` or not;
    /// bytes are scaled by 1/255 unless `pre.scale` says otherwise), with `pre` to apply
    /// as items are read. From `.npz`, the only array not named `labels` or `y` (see
    /// [`Dataset::load_npz`]). A gzip IDX file is decompressed once, into an anonymous
    /// temporary file.
    ///
    /// # Errors
    /// Unreadable or malformed files, sizes that overflow, a file or stream shorter (or a
    /// stream longer) than its header announces, items of more than
    /// [`MAX_ITEM_VALUES`] values; each names the file.
    pub fn load(path: &Path, pre: Option<Preprocess>) -> Result<Self, DataError> {
        let name = path.display().to_string();
        let format = |why: String| DataError::Format {
            path: name.clone(),
            why,
        };
        let (shape, array, default_scale) = match path.extension().and_then(|e| e.to_str()) {
            Some("npz") => return Self::load_npz(path, None, pre),
            Some("npy") => {
                let (h, body) = npy::open(path)?;
                let bytes = h.body_bytes().map_err(format)?;
                (h.shape, FileArray::new(body, bytes, h.dtype, &name)?, 1.0)
            }
            _ => {
                let (dims, body) = idx::open(path)?;
                let bytes = checked_count(&dims).map_err(format)? as u64;
                let array = FileArray::new(body, bytes, Dtype::U8, &name)?;
                (dims, array, 1.0 / 255.0)
            }
        };
        let pre = pre.unwrap_or(Preprocess {
            scale: default_scale,
            ..Preprocess::default()
        });
        Self::new(name.clone(), &shape, Source::File(array), pre).map_err(format)
    }

    /// Opens an `.npz` file: the array named `input` (the model input's name) if there
    /// is one, else the only array not named `labels` or `y`; an array named `labels` (or
    /// `y`) gives the labels. `pre` as for `.npy`. A deflated array is decompressed
    /// once, into an anonymous temporary file; a stored one is read in place.
    ///
    /// # Errors
    /// Unreadable or malformed files, no array or several that could be the data (the
    /// keys found are listed), labels that do not match the items, and as
    /// [`Dataset::load`].
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
        let mut npz = npz::Npz::open(path)?;
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
        let mut d = Self::npz_array(&mut npz, &data_key, pre, None)?;
        if let Some(k) = label_key {
            d.labels = Some(npz.labels(k, d.len)?);
        }
        Ok(d)
    }

    /// Array `key` of `npz`, first dimension = items, or, with `item_shape` (the
    /// array's shape), the array as one item.
    pub(crate) fn npz_array(
        npz: &mut npz::Npz,
        key: &str,
        pre: Option<Preprocess>,
        one_item: Option<&[usize]>,
    ) -> Result<Self, DataError> {
        let (header, array) = npz.array(key)?;
        let culprit = npz.culprit(key);
        let shape = match one_item {
            Some(item) => [&[1], item].concat(),
            None => header.shape,
        };
        Self::new(
            culprit.clone(),
            &shape,
            Source::File(array),
            pre.unwrap_or_default(),
        )
        .map_err(|why| DataError::Format { path: culprit, why })
    }

    /// The file (and array) errors name.
    pub fn source_name(&self) -> &str {
        &self.name
    }

    /// The file item `i` comes from when it has one of its own (an image of a folder).
    pub(crate) fn item_file(&self, i: usize) -> Option<&std::path::Path> {
        match &self.source {
            Source::Images(folder) => folder.file(i),
            _ => None,
        }
    }

    /// Items from an IDX array of bytes, scaled by 1/255, held in memory.
    pub fn from_idx(idx: &idx::Idx) -> Result<Self, String> {
        let pre = Preprocess {
            scale: 1.0 / 255.0,
            ..Preprocess::default()
        };
        Self::from_values(
            idx.dims.clone(),
            idx.data.iter().map(|&b| f32::from(b)).collect(),
            pre,
        )
    }

    /// Items from `shape` (first dimension = items) and their values, held in memory;
    /// `pre` is applied as they are read.
    ///
    /// # Errors
    /// No items, a value count other than the shape's, or items beyond the limit.
    pub fn from_values(shape: Vec<usize>, data: Vec<f32>, pre: Preprocess) -> Result<Self, String> {
        let n = checked_count(&shape)?;
        if data.len() != n {
            return Err(format!(
                "{} values for shape {shape:?} ({n} values)",
                data.len()
            ));
        }
        Self::new(String::new(), &shape, Source::Memory(data.into()), pre)
    }

    /// Attaches `labels`, one per item.
    ///
    /// # Errors
    /// A count other than the item count, or a label outside `0..=MAX_LABEL`
    /// ([`DataError::Label`]).
    pub fn with_label_values(mut self, labels: Vec<i64>) -> Result<Self, DataError> {
        if labels.len() != self.len {
            return Err(self.format(format!("{} labels for {} items", labels.len(), self.len)));
        }
        if let Some(index) = labels.iter().position(|l| !(0..=MAX_LABEL).contains(l)) {
            return Err(DataError::Label {
                path: self.name.clone(),
                index,
                value: labels[index].to_string(),
            });
        }
        self.labels = Some(labels);
        Ok(self)
    }

    /// Attaches labels read from an IDX (`.gz` or not) or `.npy` file with one label per
    /// item, streaming.
    ///
    /// # Errors
    /// Unreadable file, a label count that differs from the item count, or a label that
    /// is not a whole number in `0..=MAX_LABEL` ([`DataError::Label`], naming the file
    /// and the index).
    pub fn with_labels(mut self, path: &Path) -> Result<Self, DataError> {
        self.labels = Some(Self::read_labels(path, self.len)?);
        Ok(self)
    }

    /// The `count` class labels of an IDX (`.gz` or not) or `.npy` file, streaming.
    ///
    /// # Errors
    /// As [`Dataset::with_labels`].
    pub fn read_labels(path: &Path, count: usize) -> Result<Vec<i64>, DataError> {
        let name = path.display().to_string();
        let format = |why: String| DataError::Format {
            path: name.clone(),
            why,
        };
        let (shape, dtype, body) = if path.extension().is_some_and(|e| e == "npy") {
            let (h, body) = npy::open(path)?;
            (h.shape, h.dtype, body)
        } else {
            let (dims, body) = idx::open(path)?;
            (dims, Dtype::U8, body)
        };
        let n = checked_count(&shape).map_err(format)?;
        if n != count {
            return Err(format(format!("{n} labels for {count} items")));
        }
        read_labels(body, dtype, n, &name)
    }

    /// The channel count of an item: its size on the channel axis (the C of CHW or HWC).
    fn channels(&self) -> usize {
        self.item_shape
            .get(self.channel_axis)
            .copied()
            .unwrap_or(1)
            .max(1)
    }

    /// Normalises per channel (the C of a CHW item, or of an HWC image) as items are read:
    /// `(x - mean[c]) / std[c]`. One value applies to every channel.
    ///
    /// # Errors
    /// A count that is neither 1 nor the channel count, or a std that is 0 or not finite.
    pub fn normalize(&mut self, mean: &[f32], std: &[f32]) -> Result<(), String> {
        let channels = self.channels();
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
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(format!("mean {m}: must be finite"));
        }
        if mean.iter().all(|m| *m == 0.0) && std.iter().all(|s| *s == 1.0) {
            return Ok(()); // the identity
        }
        self.norms.push((mean.to_vec(), std.to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
