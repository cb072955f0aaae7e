//! [`ModelData`]: data for every input of a model, from the sources users have
//! (ModelOpt's one `.npz` with an array per input, a folder of `.npz` items, one file
//! or folder per input, a literal value), read a batch at a time
//! ([`ModelData::batches`]) in each input's own type, items batched by equal shape.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::array::FileArray;
use super::dataset::{Dataset, LABEL_KEYS};
use super::dtype::Dtype;
use super::images::{self, ImageOptions, Resize};
use super::input::{ElemType, Input};
use super::npz::Npz;
use super::npz_items::{FloatPrep, ItemFolder, is_item_folder};
use super::values::{HostTensor, Values};
use super::{DataError, MAX_ITEM_VALUES, Preprocess, npy};

/// How one float input's data is prepared (the CLI's `--scale`, `--mean`, `--std`,
/// `--resize`, `--crop`); integer and bool inputs take none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputPrep {
    /// Multiplier applied first (default 1/255 for IDX and images, 1 for arrays).
    pub scale: Option<f32>,
    /// Subtracted next: one value, or one per channel.
    pub mean: Vec<f32>,
    /// Divided by last: one value, or one per channel.
    pub std: Vec<f32>,
    /// Image folders: the resize before the crop.
    pub resize: Option<Resize>,
    /// Image folders: the center crop, `[height, width]`.
    pub crop: Option<[u32; 2]>,
}

/// Where a model's data comes from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sources {
    /// One source for the inputs not named in `named`: an `.npz` with an array per
    /// input, a folder of `.npz` items, or, for a single input, any data file or an
    /// image folder.
    pub whole: Option<PathBuf>,
    /// `(input, source)`: a data file or folder for that input alone, or a number (a
    /// literal, the same value for every element of every item).
    pub named: Vec<(String, String)>,
    /// Labels (IDX or `.npy`), one per item.
    pub labels: Option<PathBuf>,
}

/// Where one input's values come from.
#[derive(Debug)]
enum Feed {
    /// Items along the first axis of an array, or the images of a folder.
    Stacked(Dataset),
    /// One value: for each item (an input with a batch axis) or for each batch.
    Constant { values: Values, shape: Vec<usize> },
    /// The input's array in each file of a folder of items.
    Items(Arc<ItemFolder>, FloatPrep),
}

/// Data for every runtime input of a model: each input's values, item by item, read
/// when a batch reaches them.
#[derive(Debug)]
pub struct ModelData {
    inputs: Vec<Input>,
    feeds: Vec<Feed>,
    pub(crate) len: usize,
    labels: Option<Vec<i64>>,
    /// Items grouped by shape (a folder of items), or a shard's items
    /// ([`ModelData::shard`]); `None`: one group, `0..len`.
    pub(crate) groups: Option<Vec<Vec<usize>>>,
    /// Some inputs take each item whole (no batch axis; [`unbatch_whole_items`]): one
    /// item a run.
    whole_items: bool,
}

/// `name (type [shape])` of each input, for error messages.
fn list(inputs: &[&Input]) -> String {
    let v: Vec<String> = inputs
        .iter()
        .map(|i| format!("`{}` {}", i.name, i.describe()))
        .collect();
    v.join(", ")
}

impl ModelData {
    /// Where `items` come from, for an error about a batch of them: their files when
    /// each item has its own (a folder of `.npz` items or of images), else their
    /// numbers in each source file; at most a few named.
    pub fn describe_items(&self, items: &[usize]) -> String {
        const SHOWN: usize = 4;
        let more = match items.len() {
            n if n > SHOWN => format!(" and {} more", n - SHOWN),
            _ => String::new(),
        };
        let shown = &items[..items.len().min(SHOWN)];
        let files = |file: &dyn Fn(usize) -> Option<String>| -> Option<String> {
            let names: Option<Vec<String>> = shown.iter().map(|&i| file(i)).collect();
            names.map(|n| format!("{}{more}", n.join(", ")))
        };
        for feed in &self.feeds {
            let named = match feed {
                Feed::Items(folder, _) => {
                    files(&|i| folder.file(i).map(|p| p.display().to_string()))
                }
                Feed::Stacked(d) => files(&|i| d.item_file(i).map(|p| p.display().to_string())),
                Feed::Constant { .. } => None,
            };
            if let Some(named) = named {
                return named;
            }
        }
        let numbers: Vec<String> = shown.iter().map(usize::to_string).collect();
        let sources: Vec<&str> = self
            .feeds
            .iter()
            .filter_map(|f| match f {
                Feed::Stacked(d) => Some(d.source_name()).filter(|n| !n.is_empty()),
                _ => None,
            })
            .collect();
        let of = match sources.is_empty() {
            true => String::new(),
            false => format!(" of {}", sources.join(", ")),
        };
        let noun = if items.len() == 1 { "item" } else { "items" };
        format!("{noun} {}{more}{of}", numbers.join(", "))
    }

    /// Opens the data `sources` give for `inputs`, each float input prepared as `prep`
    /// says; reads headers and checks shapes, types and counts, holds no item data.
    ///
    /// # Errors
    /// A source naming no input, an input given twice or given no data (each listing
    /// the inputs and what was given), an array that feeds no input, items that do not
    /// fit their input (both shapes), different item counts across inputs, a literal
    /// the input's type cannot hold, and the errors of reading each source.
    pub fn load(
        mut inputs: Vec<Input>,
        sources: &Sources,
        prep: &dyn Fn(&Input) -> InputPrep,
    ) -> Result<Self, DataError> {
        let whole_items = match sources.whole.as_deref() {
            Some(path) if path.is_dir() && is_item_folder(path) => {
                unbatch_whole_items(path, &mut inputs, &sources.named)?
            }
            _ => false,
        };
        let all: Vec<&Input> = inputs.iter().collect();
        let mut feeds: Vec<Option<Feed>> = inputs.iter().map(|_| None).collect();
        for (name, source) in &sources.named {
            let Some(k) = inputs.iter().position(|i| i.name == *name) else {
                return Err(DataError::Inputs(format!(
                    "{name}={source}: the model has no input `{name}`; its inputs are {}",
                    list(&all)
                )));
            };
            if feeds[k].is_some() {
                return Err(DataError::Inputs(format!(
                    "input `{name}` is given twice ({name}={source} and before)"
                )));
            }
            feeds[k] = Some(named(&inputs[k], source, &prep(&inputs[k]))?);
        }
        let open: Vec<usize> = (0..inputs.len()).filter(|k| feeds[*k].is_none()).collect();
        let mut labels = None;
        match &sources.whole {
            None if !open.is_empty() => {
                let missing: Vec<&Input> = open.iter().map(|k| &inputs[*k]).collect();
                return Err(DataError::Inputs(format!(
                    "no data for input(s) {}; give a file for each (NAME=FILE) or one .npz \
                     with an array per input",
                    list(&missing)
                )));
            }
            None => {}
            Some(path) => {
                let which: Vec<&Input> = open.iter().map(|k| &inputs[*k]).collect();
                let got = whole(path, &which, &all, &prep)?;
                labels = got.1;
                for (k, f) in open.iter().zip(got.0) {
                    feeds[*k] = Some(f);
                }
            }
        }
        let feeds: Vec<Feed> = feeds.into_iter().flatten().collect();
        if feeds.len() != inputs.len() {
            return Err(DataError::Inputs(format!(
                "the data feeds {} of the model's {} inputs ({})",
                feeds.len(),
                inputs.len(),
                list(&all)
            )));
        }
        // Every input with items must have as many as the others.
        let counts: Vec<(usize, String)> = inputs
            .iter()
            .zip(&feeds)
            .filter_map(|(i, f)| match f {
                Feed::Stacked(d) => Some((
                    d.len(),
                    format!("`{}` {} ({})", i.name, d.len(), d.source_name()),
                )),
                Feed::Items(folder, _) => {
                    Some((folder.len(), format!("`{}` {}", i.name, folder.len())))
                }
                Feed::Constant { .. } => None,
            })
            .collect();
        if counts.iter().any(|c| c.0 != counts[0].0) {
            let v: Vec<&str> = counts.iter().map(|c| c.1.as_str()).collect();
            return Err(DataError::Inputs(format!(
                "the inputs' data hold different item counts: {}",
                v.join(", ")
            )));
        }
        let len = counts.first().map_or(1, |c| c.0);
        let folder = feeds.iter().find_map(|f| match f {
            Feed::Items(folder, _) => Some(folder.clone()),
            _ => None,
        });
        labels = labels
            .or_else(|| {
                folder
                    .as_ref()
                    .and_then(|f| f.labels().map(<[i64]>::to_vec))
            })
            .or_else(|| {
                feeds.iter().find_map(|f| match f {
                    Feed::Stacked(d) => d.labels().map(<[i64]>::to_vec),
                    _ => None,
                })
            });
        if let Some(path) = &sources.labels {
            labels = Some(Dataset::read_labels(path, len)?);
        }
        Ok(Self {
            inputs,
            feeds,
            len,
            labels,
            groups: folder.map(|f| f.groups()),
            whole_items,
        })
    }

    /// The items of `data` for the single input `input` (e.g. data made in memory).
    ///
    /// # Errors
    /// Items that do not fit the input.
    pub fn from_dataset(input: Input, data: Dataset) -> Result<Self, DataError> {
        input.check(data.source_name(), data.item_shape())?;
        Ok(Self {
            len: data.len(),
            labels: data.labels().map(<[i64]>::to_vec),
            inputs: vec![input],
            feeds: vec![Feed::Stacked(data)],
            groups: None,
            whole_items: false,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Class labels, one per item, when the data came with them.
    pub fn labels(&self) -> Option<&[i64]> {
        self.labels.as_deref()
    }

    /// The inputs fed.
    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }

    /// The data as one [`Dataset`], when it feeds a single float input from one array
    /// or image folder (what fine-tuning trains on).
    pub fn single(&self) -> Option<&Dataset> {
        match (&self.inputs[..], &self.feeds[..]) {
            ([i], [Feed::Stacked(d)]) if i.elem == ElemType::Float => Some(d),
            _ => None,
        }
    }

    /// Batches of `batch` items (the model's own batch where it fixes one, the tail of
    /// each shape group dropped then), items of equal shape together, in order.
    ///
    /// # Errors
    /// Inputs that fix different batch sizes.
    pub fn batches(&self, batch: usize) -> Result<Batches<'_>, DataError> {
        let fixed = self.fixed_batch()?;
        Ok(Batches {
            data: self,
            size: match (fixed, self.whole_items) {
                (_, true) => 1,
                (Some(f), false) => f.max(1),
                (None, false) => batch.max(1),
            },
            fixed: fixed.is_some(),
            group: 0,
            at: 0,
        })
    }

    /// The batch size the model's inputs fix, if any.
    ///
    /// # Errors
    /// Inputs that fix different batch sizes.
    pub(crate) fn fixed_batch(&self) -> Result<Option<usize>, DataError> {
        let fixed: Vec<(usize, &str)> = self
            .inputs
            .iter()
            .filter_map(|i| Some((i.fixed_batch()?, i.name.as_str())))
            .collect();
        if let Some((b, name)) = fixed.iter().find(|f| f.0 != fixed[0].0) {
            return Err(DataError::Inputs(format!(
                "inputs `{}` and `{name}` fix different batch sizes ({} and {b})",
                fixed[0].1, fixed[0].0
            )));
        }
        Ok(fixed.first().map(|f| f.0))
    }

    /// The items of group `g` (`None` past the last).
    pub(crate) fn group(&self, g: usize) -> Option<GroupItems<'_>> {
        match &self.groups {
            Some(groups) => groups.get(g).map(|v| GroupItems::List(v)),
            None => (g == 0).then_some(GroupItems::Range(self.len)),
        }
    }

    /// The batch of items `items` (each in range, all of one shape): one tensor per
    /// input, in the inputs' order.
    ///
    /// # Errors
    /// Read errors, values an input's type cannot hold.
    pub fn read(&self, items: &[usize]) -> Result<Vec<(String, HostTensor)>, DataError> {
        let n = items.len();
        self.inputs
            .iter()
            .zip(&self.feeds)
            .map(|(input, feed)| {
                let (values, item_shape) = match feed {
                    Feed::Stacked(d) => (d.read_as(items, input)?, d.item_shape().to_vec()),
                    Feed::Constant { values, shape } if input.batch_axis.is_some() => {
                        let values = match values.len().checked_mul(n) {
                            Some(t) if t <= MAX_ITEM_VALUES => values.repeat(n),
                            _ => {
                                return Err(DataError::Inputs(format!(
                                    "input `{}`: {n} items of {} values are too many for one \
                                     batch",
                                    input.name,
                                    values.len()
                                )));
                            }
                        };
                        (values, shape.clone())
                    }
                    Feed::Constant { values, shape } => (values.clone(), shape.clone()),
                    Feed::Items(folder, prep) if input.batch_axis.is_none() => {
                        // One value a batch: every item's must be the first's.
                        let mut values = None;
                        for &i in items {
                            let v = folder.read(i, input, prep)?;
                            match &values {
                                None => values = Some((i, v)),
                                Some((first, f)) if *f != v => {
                                    return Err(DataError::Inputs(format!(
                                        "input `{}` has no batch axis, so a batch takes one \
                                         value; items {first} and {i} of the folder differ",
                                        input.name
                                    )));
                                }
                                Some(_) => {}
                            }
                        }
                        let shape = values
                            .as_ref()
                            .map_or(&[][..], |(i, _)| folder.shape(*i, &input.name))
                            .to_vec();
                        let values = values.map_or(Values::with_capacity(input.elem, 0), |v| v.1);
                        (values, shape)
                    }
                    Feed::Items(folder, prep) => {
                        let mut values = Values::with_capacity(input.elem, 0);
                        for &i in items {
                            values.append(folder.read(i, input, prep)?).map_err(|why| {
                                DataError::Inputs(format!("input `{}`: {why}", input.name))
                            })?;
                        }
                        let shape = items
                            .first()
                            .map_or(&[][..], |&i| folder.shape(i, &input.name));
                        (values, shape.to_vec())
                    }
                };
                let shape = input.batch_shape(n, &item_shape);
                let values = match input.batch_axis {
                    Some(a) => {
                        let mut item = shape.clone();
                        item.remove(a);
                        values.stack(n, &item, a)
                    }
                    None => values,
                };
                Ok((input.name.clone(), HostTensor { shape, values }))
            })
            .collect()
    }
}

/// One shape group's items.
pub(crate) enum GroupItems<'a> {
    /// `0..n`.
    Range(usize),
    /// These.
    List(&'a [usize]),
}

impl GroupItems<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Range(n) => *n,
            Self::List(v) => v.len(),
        }
    }

    pub(crate) fn take(&self, from: usize, n: usize) -> Vec<usize> {
        match self {
            Self::Range(_) => (from..from + n).collect(),
            Self::List(v) => v[from..from + n].to_vec(),
        }
    }
}

/// The items of one batch, and its tensors.
pub type Batch = (Vec<usize>, Vec<(String, HostTensor)>);

/// [`ModelData::batches`]: each batch read when it is reached; memory is one batch.
pub struct Batches<'a> {
    data: &'a ModelData,
    size: usize,
    /// The model fixes the batch size: a short batch is dropped.
    fixed: bool,
    group: usize,
    at: usize,
}

impl Batches<'_> {
    /// How many batches are left.
    pub fn total(&self) -> usize {
        (self.group..)
            .map_while(|g| self.data.group(g))
            .enumerate()
            .map(|(k, g)| {
                let left = match k {
                    0 => g.len().saturating_sub(self.at),
                    _ => g.len(),
                };
                match self.fixed {
                    true => left / self.size,
                    false => left.div_ceil(self.size),
                }
            })
            .sum()
    }

    /// Makes the next batches `size` items (at least 1), where the batch size is free:
    /// not fixed by the model and not one whole item a run. Returns whether it was.
    pub fn resize(&mut self, size: usize) -> bool {
        let free = !self.fixed && !self.data.whole_items;
        if free {
            self.size = size.max(1);
        }
        free
    }

    /// Items per batch.
    pub fn size(&self) -> usize {
        self.size
    }
}

impl Iterator for Batches<'_> {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let g = self.data.group(self.group)?;
            let n = self.size.min(g.len().saturating_sub(self.at));
            if n == 0 || (self.fixed && n < self.size) {
                self.group += 1;
                self.at = 0;
                continue;
            }
            let items = g.take(self.at, n);
            self.at += n;
            return Some(self.data.read(&items).map(|t| (items, t)));
        }
    }
}

/// A number given for `input` as its data: every element of every item (the input's
/// item dimensions must be fixed), or its one value where it has no batch axis.
fn literal(input: &Input, text: &str, value: f64) -> Result<Feed, DataError> {
    let culprit = format!("{}={text}", input.name);
    let shape = input
        .item_dims()
        .and_then(|d| d.into_iter().collect::<Option<Vec<usize>>>())
        .ok_or_else(|| DataError::Format {
            path: culprit.clone(),
            why: format!(
                "a number fills a fixed shape; input `{}` is {}: give a file",
                input.name,
                input.describe()
            ),
        })?;
    let n = npy::checked_count(&shape)
        .ok()
        .filter(|n| *n <= MAX_ITEM_VALUES)
        .ok_or_else(|| DataError::Format {
            path: culprit.clone(),
            why: format!("items of shape {shape:?} are too large"),
        })?;
    let mut values = Values::with_capacity(input.elem, 1);
    values
        .push(Dtype::F64, &value.to_le_bytes(), input.elem)
        .map_err(|r| DataError::Value {
            path: culprit,
            input: input.name.clone(),
            item: 0,
            position: 0,
            value: r.value,
            why: r.why,
        })?;
    Ok(Feed::Constant {
        values: values.repeat(n),
        shape,
    })
}

/// `input`'s data from `source` alone: a number, or a file or folder.
fn named(input: &Input, source: &str, prep: &InputPrep) -> Result<Feed, DataError> {
    let path = Path::new(source);
    if !path.exists()
        && let Ok(v) = source.trim().parse::<f64>()
    {
        return literal(input, source, v);
    }
    if input.batch_axis.is_none() {
        return once(input, path, Some(&input.name));
    }
    stacked(input, path, Some(&input.name), prep).map(Feed::Stacked)
}

/// The value of an input without a batch axis, read whole from `path` (`.npy`, or
/// `.npz`: the array `key`, else its only one); its shape must be the input's.
fn once(input: &Input, path: &Path, key: Option<&str>) -> Result<Feed, DataError> {
    let name = path.display().to_string();
    let (header, array, culprit) = if path.extension().is_some_and(|e| e == "npz") {
        let mut npz = Npz::open(path)?;
        let keys: Vec<String> = npz.keys().iter().map(|k| k.to_string()).collect();
        let key = match key.filter(|k| keys.iter().any(|x| x == k)) {
            Some(k) => k.to_string(),
            None if keys.len() == 1 => keys[0].clone(),
            None => {
                return Err(DataError::Format {
                    path: name,
                    why: format!(
                        "holds arrays {keys:?}; expected `{}` or one array",
                        input.name
                    ),
                });
            }
        };
        let (h, a) = npz.array(&key)?;
        (h, a, npz.culprit(&key))
    } else {
        let (h, body) = npy::open(path)?;
        let bytes = h.body_bytes().map_err(|why| DataError::Format {
            path: name.clone(),
            why,
        })?;
        let a = FileArray::new(body, bytes, h.dtype, &name)?;
        (h, a, name)
    };
    input.check(&culprit, &header.shape)?;
    let n = header
        .count()
        .ok()
        .filter(|n| *n <= MAX_ITEM_VALUES)
        .ok_or_else(|| DataError::Format {
            path: culprit.clone(),
            why: format!("shape {:?} is too large", header.shape),
        })?;
    let bytes = array.read_bytes(0, n, &culprit)?;
    let mut values = Values::with_capacity(input.elem, n);
    values
        .push(header.dtype, &bytes, input.elem)
        .map_err(|r| DataError::Value {
            path: culprit,
            input: input.name.clone(),
            item: 0,
            position: r.position,
            value: r.value,
            why: r.why,
        })?;
    let shape = input.batch_shape(1, &header.shape);
    Ok(Feed::Constant { values, shape })
}

/// Items for `input` alone from `path`: a folder of images (fitted to the input,
/// see [`ImageOptions::for_input`]), `.npz` (the array `key`, else its only one
/// besides labels), `.npy` or IDX; then scale, mean and std, and the check that the
/// items fit.
fn stacked(
    input: &Input,
    path: &Path,
    key: Option<&str>,
    prep: &InputPrep,
) -> Result<Dataset, DataError> {
    let source = path.display().to_string();
    let format = |why: String| DataError::Format {
        path: source.clone(),
        why,
    };
    let d = if path.is_dir() {
        // What the folder holds first: an empty one is not an image layout problem.
        let files = images::list(path)?;
        if input.elem != ElemType::Float {
            return Err(format(format!(
                "images feed float inputs; input `{}` is {}",
                input.name,
                input.describe()
            )));
        }
        let o = ImageOptions {
            resize: prep.resize,
            scale: prep.scale.unwrap_or(1.0 / 255.0),
            mean: prep.mean.clone(),
            std: prep.std.clone(),
            ..ImageOptions::for_input(input, path, prep.crop)?
        };
        images::load_listed(path, files, &o)?
    } else {
        if prep.resize.is_some() || prep.crop.is_some() {
            return Err(format(
                "--resize and --crop apply to folders of images, not to files".into(),
            ));
        }
        let scale = prep.scale.map(|scale| Preprocess {
            scale,
            ..Preprocess::default()
        });
        let mut d = if path.extension().is_some_and(|e| e == "npz") {
            Dataset::load_npz(path, key, scale)?
        } else {
            Dataset::load(path, scale)?
        };
        d.normalize(&prep.mean, &prep.std).map_err(format)?;
        d
    };
    input.check(d.source_name(), d.item_shape())?;
    Ok(d)
}

/// The inputs a folder of `.npz` items feeds whole: those (not fed by a `NAME=`
/// source in `named`) whose arrays are the input's whole value in every item
/// ([`Input::fits_whole`]) and do not fit as an item of a batch in some item lose their
/// batch axis, so each item is fed as it is, one a run (graph networks: `[num_nodes,
/// 85]`, `[2, num_edges]`, a different size per graph). Reads every item's headers.
///
/// Returns whether any input lost its batch axis.
///
/// # Errors
/// The folder or an item cannot be read.
fn unbatch_whole_items(
    dir: &Path,
    inputs: &mut [Input],
    named: &[(String, String)],
) -> Result<bool, DataError> {
    let files = crate::npz_items::item_files(dir)?;
    let mut open: Vec<usize> = (0..inputs.len())
        .filter(|&k| {
            inputs[k].batch_axis.is_some() && !named.iter().any(|(n, _)| *n == inputs[k].name)
        })
        .collect();
    // (whole in every item so far, not an item of a batch in some item)
    let mut seen = vec![(true, false); inputs.len()];
    for f in &files {
        if open.is_empty() {
            break;
        }
        let mut npz = Npz::open(f)?;
        let held: Vec<String> = npz.keys().iter().map(|k| k.to_string()).collect();
        for &k in &open {
            let input = &inputs[k];
            if !held.contains(&input.name) {
                seen[k].0 = false;
                continue;
            }
            let shape = npz.header(&input.name)?.shape;
            let as_item = crate::npz_items::item_shape(input, shape.clone());
            seen[k].0 &= input.fits_whole(&shape);
            seen[k].1 |= !input.fits(&as_item);
        }
        open.retain(|&k| seen[k].0);
    }
    let mut any = false;
    for k in open {
        if seen[k].1 {
            inputs[k].batch_axis = None;
            any = true;
        }
    }
    Ok(any)
}

/// The feeds of `inputs` (those no `NAME=` source took; `all` are the model's) from
/// one source, and labels.
#[allow(clippy::type_complexity)]
fn whole(
    path: &Path,
    inputs: &[&Input],
    all: &[&Input],
    prep: &dyn Fn(&Input) -> InputPrep,
) -> Result<(Vec<Feed>, Option<Vec<i64>>), DataError> {
    let name = path.display().to_string();
    if inputs.is_empty() {
        return Err(DataError::Inputs(format!(
            "{name}: every input already has its data (NAME=...); this source feeds none"
        )));
    }
    if path.is_dir() && is_item_folder(path) {
        let folder = Arc::new(ItemFolder::open(path, inputs)?);
        let feeds = inputs
            .iter()
            .map(|i| {
                let p = prep(i);
                let pre = Preprocess {
                    scale: p.scale.unwrap_or(1.0),
                    ..Preprocess::default()
                };
                if p.resize.is_some() || p.crop.is_some() {
                    return Err(DataError::Format {
                        path: name.clone(),
                        why: "--resize and --crop apply to folders of images, not to .npz items"
                            .into(),
                    });
                }
                Ok(Feed::Items(
                    folder.clone(),
                    FloatPrep {
                        pre,
                        mean: p.mean,
                        std: p.std,
                    },
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((feeds, None));
    }
    let is_npz = path.extension().is_some_and(|e| e == "npz");
    if let [input] = inputs {
        // One input: any source, as before multi-input data (an .npz's only array, or
        // the one named like the input).
        let feed = match input.batch_axis {
            None => once(input, path, Some(&input.name))?,
            Some(_) => Feed::Stacked(stacked(input, path, Some(&input.name), &prep(input))?),
        };
        return Ok((vec![feed], None));
    }
    if !is_npz {
        // A folder neither of items nor of images (an empty one) is said to be so.
        if path.is_dir() {
            images::list(path)?;
        }
        return Err(DataError::Inputs(format!(
            "{name} holds data for one input; the model's inputs {} need data: give an .npz \
             with one array per input, a folder of .npz items, or NAME=FILE for each",
            list(inputs)
        )));
    }
    let mut npz = Npz::open(path)?;
    let keys: Vec<String> = npz.keys().iter().map(|k| k.to_string()).collect();
    // An array for an input that a NAME= source feeds is passed over (overridden).
    let wanted: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
    if let Some(extra) = keys
        .iter()
        .find(|k| !wanted.contains(&k.as_str()) && !LABEL_KEYS.contains(&k.as_str()))
    {
        return Err(DataError::Inputs(format!(
            "{name}: array `{extra}` feeds no input (the file holds {keys:?}; expected one \
             array per input: {})",
            list(inputs)
        )));
    }
    let missing: Vec<&Input> = inputs
        .iter()
        .copied()
        .filter(|i| !keys.contains(&i.name))
        .collect();
    if !missing.is_empty() {
        return Err(DataError::Inputs(format!(
            "{name}: no array for input(s) {} (the file holds {keys:?})",
            list(&missing)
        )));
    }
    let label_key = LABEL_KEYS.into_iter().find(|k| keys.iter().any(|x| x == k));
    let mut feeds = Vec::with_capacity(inputs.len());
    let mut len = None;
    for input in inputs {
        let feed = match input.batch_axis {
            None => once(input, path, Some(&input.name))?,
            Some(_) => {
                let p = prep(input);
                let pre = p.scale.map(|scale| Preprocess {
                    scale,
                    ..Preprocess::default()
                });
                let mut d = Dataset::npz_array(&mut npz, &input.name, pre, None)?;
                d.normalize(&p.mean, &p.std)
                    .map_err(|why| DataError::Format {
                        path: d.source_name().to_string(),
                        why,
                    })?;
                input.check(d.source_name(), d.item_shape())?;
                len = Some(d.len());
                Feed::Stacked(d)
            }
        };
        feeds.push(feed);
    }
    let labels = match (label_key, len) {
        (Some(k), Some(n)) => Some(npz.labels(k, n)?),
        _ => None,
    };
    Ok((feeds, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder that holds no item is said to, before anything about image layouts;
    /// images feed a channels-last input as `[height, width, channels]` items.
    #[test]
    fn an_empty_folder_or_one_of_other_files_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let nhwc = || Input::new("input_3", vec![None, Some(48), Some(48), Some(3)]);
        let two = || vec![nhwc(), Input::new("z", vec![None, Some(2)])];
        let load = |inputs: Vec<Input>| {
            let sources = Sources {
                whole: Some(dir.path().to_path_buf()),
                ..Sources::default()
            };
            ModelData::load(inputs, &sources, &|_| InputPrep::default())
                .unwrap_err()
                .to_string()
        };
        let empty = format!(
            "{}: the folder is empty: give a folder of images, or of .npz files (one item \
             each, an array per input)",
            dir.path().display()
        );
        assert_eq!(load(vec![nhwc()]), empty);
        assert_eq!(load(two()), empty);
        std::fs::write(dir.path().join("README.txt"), "items").unwrap();
        let err = load(vec![nhwc()]);
        assert!(err.contains(": no .png/.jpg/.jpeg images here"), "{err}");
        image::RgbImage::from_pixel(48, 48, image::Rgb([255, 51, 0]))
            .save(dir.path().join("a.png"))
            .unwrap();
        let sources = Sources {
            whole: Some(dir.path().to_path_buf()),
            ..Sources::default()
        };
        let data = ModelData::load(vec![nhwc()], &sources, &|_| InputPrep::default()).unwrap();
        let (_, t) = data.batches(1).unwrap().next().unwrap().unwrap();
        assert_eq!(t[0].1.shape, [1, 48, 48, 3]);
        let Values::F32(v) = &t[0].1.values else {
            panic!("float values")
        };
        let rgb = [255.0, 51.0, 0.0].map(|b: f32| b * (1.0 / 255.0));
        assert_eq!(v[..6], [rgb, rgb].concat());
    }

    /// A free batch size changes between batches; `total` counts the batches left.
    #[test]
    fn batches_resize_and_count_what_is_left() {
        let d = Dataset::from_values(
            vec![10, 2],
            (0..20).map(|v| v as f32).collect(),
            Preprocess::default(),
        )
        .unwrap();
        let data = ModelData::from_dataset(Input::new("x", vec![None, Some(2)]), d).unwrap();
        let mut b = data.batches(4).unwrap();
        assert_eq!(b.total(), 3);
        assert!(b.resize(1));
        assert_eq!(b.total(), 10);
        assert_eq!(b.next().unwrap().unwrap().0, [0]);
        assert!(b.resize(3));
        assert_eq!(b.total(), 3);
        let seen: Vec<Vec<usize>> = b.map(|b| b.unwrap().0).collect();
        assert_eq!(seen, [vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]]);
    }

    #[test]
    fn a_fixed_batch_is_exact_and_literals_fill_each_item() {
        let d = Dataset::from_values(
            vec![10, 2],
            (0..20).map(|v| v as f32).collect(),
            Preprocess::default(),
        )
        .unwrap();
        let fixed = Input::new("x", vec![Some(4), Some(2)]);
        let data = ModelData::from_dataset(fixed, d).unwrap();
        // Items of an array are named by number (a few, then how many more).
        assert_eq!(data.describe_items(&[3]), "item 3");
        assert_eq!(
            data.describe_items(&[0, 1, 2, 3, 4, 5]),
            "items 0, 1, 2, 3 and 2 more"
        );
        let mut b = data.batches(3).unwrap();
        assert_eq!((b.size(), b.total()), (4, 2));
        // The model fixes the size: it stays.
        assert!(!b.resize(1));
        let seen: Vec<Vec<usize>> = b.map(|b| b.unwrap().0).collect();
        assert_eq!(
            seen,
            [vec![0, 1, 2, 3], vec![4, 5, 6, 7]],
            "the tail of 2 is dropped"
        );
        // A literal for an int input of item shape [3]: each item, in the input's type.
        let ids = Input {
            elem: ElemType::I64,
            ..Input::new("ids", vec![None, Some(3)])
        };
        let sources = Sources {
            named: vec![("ids".into(), "7".into())],
            ..Sources::default()
        };
        let data = ModelData::load(vec![ids.clone()], &sources, &|_| InputPrep::default()).unwrap();
        let (items, t) = data.batches(2).unwrap().next().unwrap().unwrap();
        assert_eq!(items, [0]);
        assert_eq!(
            t[0].1,
            HostTensor {
                shape: vec![1, 3],
                values: Values::I64(vec![7; 3])
            }
        );
        let open = Input::new("x", vec![None, None]);
        let err = ModelData::load(
            vec![open],
            &Sources {
                named: vec![("x".into(), "1".into())],
                ..Sources::default()
            },
            &|_| InputPrep::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "x=1: a number fills a fixed shape; input `x` is [batch, ?]: give a file"
        );
    }
}
