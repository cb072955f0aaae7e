//! [`Values`]: one batch of one input's data in the model input's element type, read
//! from array elements of any stored type by an exact conversion ([`Values::push`]),
//! and [`HostTensor`], the batch with its shape.

use super::dtype::Dtype;
use super::input::ElemType;

/// Host values of one input: float32, integers (int64, whatever the input's integer
/// type: the runtime holds every integer type as int64), or bool.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// float32.
    F32(Vec<f32>),
    /// Integers, in the input type's range.
    I64(Vec<i64>),
    /// bool.
    Bool(Vec<bool>),
}

/// A value refused by [`Values::push`]: its position among the elements given, the
/// value as text and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    /// Position of the element in the bytes given.
    pub position: usize,
    /// The element's value.
    pub value: String,
    /// Why the input's type cannot hold it.
    pub why: String,
}

impl Values {
    /// No values, of the kind `elem` takes, with room for `n`.
    pub fn with_capacity(elem: ElemType, n: usize) -> Self {
        match elem {
            ElemType::Float => Self::F32(Vec::with_capacity(n)),
            ElemType::Int { .. } => Self::I64(Vec::with_capacity(n)),
            ElemType::Bool => Self::Bool(Vec::with_capacity(n)),
        }
    }

    /// How many values.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::Bool(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the elements of `bytes` (`dtype`, little-endian) converted exactly to
    /// `elem`, the kind these values hold: any number to float32 (rounded to nearest,
    /// as NumPy's `astype`), whole numbers in range to an integer type, 0 and 1 to
    /// bool.
    ///
    /// # Errors
    /// The first element the type cannot hold: a fraction, NaN or infinity for an
    /// integer or bool, a value outside the integer type's range, a number other than
    /// 0 or 1 for bool.
    pub fn push(&mut self, dtype: Dtype, bytes: &[u8], elem: ElemType) -> Result<(), Refused> {
        let whole = |position: usize, b: &[u8]| {
            dtype.to_whole(b).map_err(|value| Refused {
                position,
                value,
                why: format!("is not a whole number, as {} takes", elem.name()),
            })
        };
        let elements = bytes.chunks_exact(dtype.width()).enumerate();
        match (self, elem) {
            (Self::F32(v), _) => dtype.extend_f32(bytes, v),
            (Self::I64(v), _) => {
                let (lo, hi) = elem.range().unwrap_or((i64::MIN.into(), i64::MAX.into()));
                v.reserve(bytes.len() / dtype.width());
                for (position, b) in elements {
                    let x = whole(position, b)?;
                    if !(lo..=hi).contains(&x) {
                        return Err(Refused {
                            position,
                            value: x.to_string(),
                            why: format!("is outside {}'s range {lo}..={hi}", elem.name()),
                        });
                    }
                    v.push(x as i64);
                }
            }
            (Self::Bool(v), _) => {
                v.reserve(bytes.len());
                for (position, b) in elements {
                    match whole(position, b)? {
                        0 => v.push(false),
                        1 => v.push(true),
                        x => {
                            return Err(Refused {
                                position,
                                value: x.to_string(),
                                why: "is not 0 or 1, as bool takes".into(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The values of `n` items of `item_len` values each (item after item), stacked
    /// along `axis` of an item of `item_shape`: the batch `[..item_shape[..axis], n,
    /// ..item_shape[axis..]]`, row-major. Axis 0 leaves them as they are.
    pub fn stack(self, n: usize, item_shape: &[usize], axis: usize) -> Self {
        match self {
            Self::F32(v) => Self::F32(stack(v, n, item_shape, axis)),
            Self::I64(v) => Self::I64(stack(v, n, item_shape, axis)),
            Self::Bool(v) => Self::Bool(stack(v, n, item_shape, axis)),
        }
    }

    /// These values `times` times over (a constant input, one copy an item).
    pub fn repeat(&self, times: usize) -> Self {
        match self {
            Self::F32(v) => Self::F32(v.repeat(times)),
            Self::I64(v) => Self::I64(v.repeat(times)),
            Self::Bool(v) => Self::Bool(v.repeat(times)),
        }
    }

    /// Appends `other`, which must be of the same kind (values read for one input
    /// always are; a mismatch is refused rather than trusted).
    ///
    /// # Errors
    /// `other` holds another kind of value, named in the message.
    pub(crate) fn append(&mut self, other: Self) -> Result<(), String> {
        match (self, other) {
            (Self::F32(a), Self::F32(b)) => a.extend(b),
            (Self::I64(a), Self::I64(b)) => a.extend(b),
            (Self::Bool(a), Self::Bool(b)) => a.extend(b),
            (a, b) => {
                return Err(format!(
                    "internal: {} values appended to {} values",
                    b.kind(),
                    a.kind()
                ));
            }
        }
        Ok(())
    }

    /// The kind of value held, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Self::F32(_) => "float32",
            Self::I64(_) => "integer",
            Self::Bool(_) => "bool",
        }
    }
}

/// `n` items of `item_shape` stacked along `axis` (see [`Values::stack`]).
fn stack<T: Copy>(items: Vec<T>, n: usize, item_shape: &[usize], axis: usize) -> Vec<T> {
    let axis = axis.min(item_shape.len());
    if axis == 0 || n <= 1 {
        return items;
    }
    let inner: usize = item_shape[axis..].iter().product();
    let outer: usize = item_shape[..axis].iter().product();
    let item = inner * outer;
    let mut out = Vec::with_capacity(items.len());
    for o in 0..outer {
        for i in 0..n {
            let at = i * item + o * inner;
            out.extend_from_slice(&items[at..at + inner]);
        }
    }
    out
}

/// One input's batch: its shape and values.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// The batch's shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Values,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<const N: usize, T: Copy>(v: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|x| to(*x)).collect()
    }

    #[test]
    fn conversions_are_exact_or_refused() {
        let i64s = bytes(&[3i64, -1, 1 << 40], i64::to_le_bytes);
        let mut v = Values::with_capacity(ElemType::I64, 3);
        v.push(Dtype::I64, &i64s, ElemType::I64).unwrap();
        assert_eq!(v, Values::I64(vec![3, -1, 1 << 40]));
        // Floats that are whole numbers convert; 1.5 does not.
        let f = bytes(&[2.0f32, 1.5], f32::to_le_bytes);
        let err = v.push(Dtype::F32, &f, ElemType::I64).unwrap_err();
        assert_eq!(
            err,
            Refused {
                position: 1,
                value: "1.5".into(),
                why: "is not a whole number, as int64 takes".into()
            }
        );
        let i32t = ElemType::Int {
            signed: true,
            bits: 32,
        };
        let mut v = Values::with_capacity(i32t, 1);
        let err = v.push(Dtype::I64, &i64s, i32t).unwrap_err();
        assert_eq!(err.position, 2);
        assert_eq!(err.value, "1099511627776");
        assert_eq!(err.why, "is outside int32's range -2147483648..=2147483647");
        let u8t = ElemType::Int {
            signed: false,
            bits: 8,
        };
        let mut v = Values::with_capacity(u8t, 1);
        let err = v.push(Dtype::I8, &[0xff], u8t).unwrap_err();
        assert_eq!(
            (err.value.as_str(), err.why.as_str()),
            ("-1", "is outside uint8's range 0..=255")
        );
        // bool from bool, from 0/1 of any type; 2 is refused.
        let mut b = Values::with_capacity(ElemType::Bool, 4);
        b.push(Dtype::Bool, &[1, 0], ElemType::Bool).unwrap();
        b.push(
            Dtype::F64,
            &bytes(&[1.0f64, 0.0], f64::to_le_bytes),
            ElemType::Bool,
        )
        .unwrap();
        assert_eq!(b, Values::Bool(vec![true, false, true, false]));
        let err = b.push(
            Dtype::I64,
            &bytes(&[2i64], i64::to_le_bytes),
            ElemType::Bool,
        );
        assert_eq!(err.unwrap_err().why, "is not 0 or 1, as bool takes");
        // Any number to float32.
        let mut f = Values::with_capacity(ElemType::Float, 2);
        f.push(Dtype::I64, &i64s[..16], ElemType::Float).unwrap();
        assert_eq!(f, Values::F32(vec![3.0, -1.0]));
    }

    #[test]
    fn items_stack_along_the_batch_axis() {
        // Two items of [2, 3] stacked along axis 1: [2, 2, 3].
        let items: Vec<i64> = (0..12).collect();
        let s = Values::I64(items.clone()).stack(2, &[2, 3], 1);
        assert_eq!(s, Values::I64(vec![0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11]));
        assert_eq!(
            Values::I64(items.clone()).stack(2, &[2, 3], 0),
            Values::I64(items.clone())
        );
        // Along the last axis: [2, 3, 2].
        let s = Values::I64(items).stack(2, &[2, 3], 2);
        assert_eq!(s, Values::I64(vec![0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11]));
        assert_eq!(
            Values::Bool(vec![true]).repeat(3),
            Values::Bool(vec![true; 3])
        );
    }
}
