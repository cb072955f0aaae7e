//! [`Input`]: the model input that data feeds, with its element type ([`ElemType`])
//! and the axis its items are stacked along.

use super::DataError;
use super::npy::checked_count;

/// The element type a model input takes; data is converted to it exactly
/// ([`crate::Values`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    /// float32 (a float16, bfloat16 or float64 input is fed float32 too).
    Float,
    /// An integer of `bits` bits (8, 16, 32 or 64), signed or not.
    Int {
        /// Whether negative values are allowed.
        signed: bool,
        /// Width: 8, 16, 32 or 64.
        bits: u8,
    },
    /// bool.
    Bool,
}

impl ElemType {
    /// int64, token ids' usual type.
    pub const I64: Self = Self::Int {
        signed: true,
        bits: 64,
    };

    /// The type's name as ONNX and NumPy write it: `float32`, `int64`, `uint8`, `bool`.
    pub fn name(self) -> String {
        match self {
            Self::Float => "float32".into(),
            Self::Bool => "bool".into(),
            Self::Int { signed, bits } => format!("{}int{bits}", if signed { "" } else { "u" }),
        }
    }

    /// The values an integer type holds: `(min, max)`. Integers travel as int64, so
    /// uint64 stops at `i64::MAX`.
    pub fn range(self) -> Option<(i128, i128)> {
        let Self::Int { signed, bits } = self else {
            return None;
        };
        let bits = u32::from(bits.clamp(8, 64));
        Some(match signed {
            true => (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1),
            false => (0, ((1i128 << bits) - 1).min(i64::MAX.into())),
        })
    }
}

/// The model input that data is fed to: its name, element type and dimensions (`None`
/// where dynamic), and the axis items are stacked along to make a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// The input's name.
    pub name: String,
    /// Its dimensions (empty for a scalar, or when the model declares no shape).
    pub dims: Vec<Option<usize>>,
    /// What its data is converted to.
    pub elem: ElemType,
    /// The batch axis, where items are stacked: 0 for most inputs, 1 for an RNN state
    /// `[layers, batch, hidden]`; `None` for an input without one (a scalar such as a
    /// sample rate), which takes one value for every batch.
    pub batch_axis: Option<usize>,
}

impl Input {
    /// A float32 input whose first dimension is the batch.
    pub fn new(name: &str, dims: Vec<Option<usize>>) -> Self {
        Self {
            name: name.into(),
            dims,
            elem: ElemType::Float,
            batch_axis: Some(0),
        }
    }

    /// The dimensions of one item: [`Input::dims`] without the batch axis (all of them
    /// for an input without one). `None` when the batch axis is past the dimensions
    /// (a model that declares no shape).
    pub fn item_dims(&self) -> Option<Vec<Option<usize>>> {
        let mut dims = self.dims.clone();
        match self.batch_axis {
            Some(a) if a < dims.len() => {
                dims.remove(a);
                Some(dims)
            }
            Some(_) => None,
            None => Some(dims),
        }
    }

    /// The batch size the model fixes for this input, if it does.
    pub fn fixed_batch(&self) -> Option<usize> {
        self.batch_axis
            .and_then(|a| self.dims.get(a).copied().flatten())
    }

    /// The type and shape as text: `int64 [batch, ?]`; the batch axis is `batch`, another
    /// dynamic dimension `?`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self
            .dims
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Some(n) => n.to_string(),
                None if Some(i) == self.batch_axis => "batch".into(),
                None => "?".into(),
            })
            .collect();
        let shape = format!("[{}]", dims.join(", "));
        match self.elem {
            ElemType::Float => shape,
            e => format!("{} {shape}", e.name()),
        }
    }

    /// Whether items of `item_shape` fit: where the input's item dimensions are all
    /// fixed, as many values in the same shape but for axes of 1 (`[28, 28]` fills
    /// `[1, 28, 28]`), or flat (`[784]` fills it row by row); where some are dynamic,
    /// the same rank with the fixed ones equal. The same count in another shape
    /// (`[96, 25]` for `[25, 96]`, CHW images for an HWC input) is a layout mistake and
    /// does not fit: read in order, its values would land in the wrong places.
    pub fn fits(&self, item_shape: &[usize]) -> bool {
        let Some(per_item) = self.item_dims() else {
            return false;
        };
        let squeezed = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
        match per_item.iter().copied().collect::<Option<Vec<usize>>>() {
            Some(fixed) => {
                let (a, b) = (checked_count(&fixed), checked_count(item_shape));
                let laid_out = item_shape.len() <= 1 || squeezed(item_shape) == squeezed(&fixed);
                a.is_ok() && a == b && laid_out
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

    /// Whether an array of `shape` is this input's whole value, batch axis included:
    /// the input's rank, with its fixed dimensions equal. Graph networks take a whole
    /// graph per run (`[num_nodes, 85]`, `[2, num_edges]`): their first dimension is
    /// no batch.
    pub fn fits_whole(&self, shape: &[usize]) -> bool {
        !self.dims.is_empty()
            && self.dims.len() == shape.len()
            && self
                .dims
                .iter()
                .zip(shape)
                .all(|(d, n)| d.is_none_or(|d| d == *n))
    }

    /// [`Input::fits`] as a result naming `source` (a file, a folder) and both shapes.
    ///
    /// # Errors
    /// [`DataError::Shape`] when the items do not fit.
    pub fn check(&self, source: &str, item_shape: &[usize]) -> Result<(), DataError> {
        if self.fits(item_shape) {
            return Ok(());
        }
        // Items that are the whole input (no batch axis): say how to give them.
        let hint = match self.batch_axis.is_some() && self.fits_whole(item_shape) {
            true => "; each item has the input's whole shape, as an input without a batch axis \
                     takes it (a graph network's nodes or edges): give a folder of .npz files, \
                     one item each, and qdq runs them one at a time"
                .to_string(),
            false => String::new(),
        };
        Err(DataError::Shape {
            path: source.to_string(),
            item: item_shape.to_vec(),
            input: self.name.clone(),
            expected: self.describe(),
            hint,
        })
    }

    /// The shape a batch of `n` items of `item_shape` (which fits) takes: the input's
    /// item dimensions where they are all fixed, else `item_shape`, with `n` at the
    /// batch axis; the input's own shape when it has no batch axis.
    pub fn batch_shape(&self, n: usize, item_shape: &[usize]) -> Vec<usize> {
        let mut shape = match self
            .item_dims()
            .and_then(|d| d.into_iter().collect::<Option<Vec<usize>>>())
        {
            Some(fixed) => fixed,
            None => item_shape.to_vec(),
        };
        if let Some(a) = self.batch_axis {
            shape.insert(a.min(shape.len()), n);
        }
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items fit a fixed input in its own shape, with axes of 1 added or dropped, or
    /// flat; the same values in another shape do not.
    #[test]
    fn items_fit_in_the_input_s_layout_or_flat() {
        let x = Input::new("x", vec![None, Some(25), Some(96)]);
        assert!(x.fits(&[25, 96]) && x.fits(&[1, 25, 96]) && x.fits(&[2400]));
        assert!(!x.fits(&[96, 25]) && !x.fits(&[50, 48]) && !x.fits(&[25, 95]));
        let img = Input::new("img", vec![None, Some(1), Some(28), Some(28)]);
        assert!(img.fits(&[28, 28]) && img.fits(&[784]) && img.fits(&[1, 28, 28]));
        let e = x.check("t/005.npz", &[96, 25]).unwrap_err().to_string();
        assert_eq!(
            e,
            "t/005.npz: data items of shape [96, 25] (2400 values) do not fit model input `x` of shape [batch, 25, 96]"
        );
    }

    /// A whole-graph item (`[13, 85]` for `[num_nodes, 85]`, read as a batch axis) is
    /// the input's whole value: refused as an item, with what to do instead.
    #[test]
    fn a_whole_input_item_is_refused_with_a_hint() {
        let feat = Input::new("feat", vec![None, Some(85)]);
        assert!(!feat.fits(&[13, 85]) && feat.fits_whole(&[13, 85]));
        assert!(!feat.fits_whole(&[13, 84]) && !feat.fits_whole(&[85]));
        let e = feat.check("g.npz", &[13, 85]).unwrap_err().to_string();
        assert!(
            e.starts_with("g.npz: data items of shape [13, 85] (1105 values) do not fit model input `feat` of shape [batch, 85]; each item has the input's whole shape"),
            "{e}"
        );
        // An ordinary mismatch gets no hint.
        let e = feat.check("x.npy", &[84]).unwrap_err().to_string();
        assert!(e.ends_with("of shape [batch, 85]"), "{e}");
    }

    #[test]
    fn inputs_fit_by_count_or_by_rank() {
        let input = |dims: &[Option<usize>]| Input::new("x", dims.to_vec());
        let fixed = input(&[None, Some(1), Some(28), Some(28)]);
        assert_eq!(fixed.describe(), "[batch, 1, 28, 28]");
        assert!(fixed.fits(&[1, 28, 28]) && fixed.fits(&[784]) && !fixed.fits(&[3, 28, 28]));
        assert_eq!(fixed.batch_shape(5, &[784]), [5, 1, 28, 28]);
        let open = input(&[Some(4), Some(3), None, None]);
        assert_eq!(open.describe(), "[4, 3, ?, ?]");
        assert_eq!(open.fixed_batch(), Some(4));
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
    fn batch_axes_and_types() {
        // silero-vad's state [2, batch, 128] and sample rate, an int64 scalar.
        let state = Input {
            batch_axis: Some(1),
            ..Input::new("state", vec![Some(2), None, Some(128)])
        };
        assert_eq!(state.item_dims(), Some(vec![Some(2), Some(128)]));
        assert_eq!(state.describe(), "[2, batch, 128]");
        assert_eq!(state.batch_shape(3, &[256]), [2, 3, 128]);
        let sr = Input {
            elem: ElemType::I64,
            batch_axis: None,
            ..Input::new("sr", vec![])
        };
        assert_eq!(sr.describe(), "int64 []");
        assert!(sr.fits(&[]) && !sr.fits(&[2]));
        assert_eq!(sr.batch_shape(3, &[]), Vec::<usize>::new());
        let u8 = ElemType::Int {
            signed: false,
            bits: 8,
        };
        assert_eq!((u8.name(), u8.range()), ("uint8".into(), Some((0, 255))));
        let i32 = ElemType::Int {
            signed: true,
            bits: 32,
        };
        assert_eq!(i32.range(), Some((i32::MIN.into(), i32::MAX.into())));
        let u64 = ElemType::Int {
            signed: false,
            bits: 64,
        };
        assert_eq!(u64.range(), Some((0, i64::MAX.into())));
        assert_eq!(ElemType::Bool.range(), None);
    }
}
