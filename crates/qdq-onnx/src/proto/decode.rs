//! Reading the values of constant tensors (initializers and `Constant` nodes): the
//! crate's one TensorProto decoder. [`decode`] is the strict reader the runtime loads
//! weights with; `floats` the lenient one the linter and the tools read scales with.

use std::collections::HashMap;

use burn::tensor::{bf16, f16};
use onnx_ir::{GraphProto, TensorProto};

use super::elem;

/// Every constant of a graph by name: initializers and `Constant` node outputs.
pub(crate) fn constants(graph: &GraphProto) -> HashMap<&str, &TensorProto> {
    let mut map: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    for node in graph.node.iter().filter(|n| n.op_type == "Constant") {
        let value = node.attribute.iter().find(|a| a.name == "value");
        if let (Some(out), Some(t)) = (node.output.first(), value.and_then(|a| a.t.as_ref())) {
            map.insert(out.as_str(), t);
        }
    }
    map
}

/// Number of elements (1 for a scalar), saturating at `usize::MAX` for dims whose
/// product overflows (a hostile file; found by the `onnx_model` fuzz target after
/// 5.3 million runs).
pub(crate) fn numel(t: &TensorProto) -> usize {
    t.dims
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(0))
        .fold(1usize, usize::saturating_mul)
}

/// Float values of a FLOAT, FLOAT16, BFLOAT16 or DOUBLE tensor (typed or raw
/// little-endian storage), widened or rounded to f32.
pub(crate) fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    let raw = &t.raw_data;
    Some(match t.data_type {
        elem::FLOAT if !t.float_data.is_empty() => t.float_data.clone(),
        elem::FLOAT => le_values(raw),
        elem::DOUBLE if !t.double_data.is_empty() => {
            t.double_data.iter().map(|&v| v as f32).collect()
        }
        elem::DOUBLE => le_values::<f64>(raw)
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        e @ (elem::FLOAT16 | elem::BFLOAT16) => {
            let bits: Vec<u16> = if raw.is_empty() {
                t.int32_data.iter().map(|&v| v as u16).collect()
            } else {
                le_values(raw)
            };
            half_to_f32(e, &bits)
        }
        _ => return None,
    })
}

/// Each value rounded to float16 or bfloat16 (`code`; nearest, ties to even) and
/// widened back: what a cast to that type and back to float32 gives.
pub(crate) fn round_to_half(code: i32, values: Vec<f32>) -> Vec<f32> {
    if code == elem::BFLOAT16 {
        values
            .into_iter()
            .map(|v| bf16::from_f32(v).to_f32())
            .collect()
    } else {
        values
            .into_iter()
            .map(|v| f16::from_f32(v).to_f32())
            .collect()
    }
}

/// The float16 or bfloat16 (`code`) bit patterns of `values`, each rounded to nearest,
/// ties to even.
pub(crate) fn f32_to_half(code: i32, values: &[f32]) -> Vec<u16> {
    if code == elem::BFLOAT16 {
        values
            .iter()
            .map(|&v| bf16::from_f32(v).to_bits())
            .collect()
    } else {
        values.iter().map(|&v| f16::from_f32(v).to_bits()).collect()
    }
}

/// f32 values of float16 or bfloat16 (`code`) bit patterns.
fn half_to_f32(code: i32, bits: &[u16]) -> Vec<f32> {
    if code == elem::BFLOAT16 {
        bits.iter().map(|&b| bf16::from_bits(b).to_f32()).collect()
    } else {
        bits.iter().map(|&b| f16::from_bits(b).to_f32()).collect()
    }
}

/// Values of an INT64 tensor (typed or raw storage), lenient like [`floats`].
pub(crate) fn int64s(t: &TensorProto) -> Option<Vec<i64>> {
    if t.data_type != elem::INT64 {
        return None;
    }
    if !t.int64_data.is_empty() {
        return Some(t.int64_data.clone());
    }
    Some(le_values(&t.raw_data))
}

/// A number stored little-endian in `raw_data`.
pub(crate) trait LeBytes: Sized {
    /// Bytes per value.
    const WIDTH: usize;
    /// The value of exactly `WIDTH` bytes.
    fn from_le(b: &[u8]) -> Self;
}

macro_rules! le_bytes {
    ($($ty:ty),*) => {$(
        impl LeBytes for $ty {
            const WIDTH: usize = std::mem::size_of::<$ty>();
            fn from_le(b: &[u8]) -> Self {
                <$ty>::from_le_bytes(b.try_into().unwrap_or([0; std::mem::size_of::<$ty>()]))
            }
        }
    )*};
}
le_bytes!(f32, f64, i64, i32, i16, u16, i8, u8, u32, u64);

/// The little-endian values in `raw` (a trailing partial value is ignored).
pub(crate) fn le_values<T: LeBytes>(raw: &[u8]) -> Vec<T> {
    raw.chunks_exact(T::WIDTH).map(T::from_le).collect()
}

/// The values of a decoded tensor, widened to the three host types the runtime holds.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// float32 values (also float16, bfloat16 and double, converted to f32).
    F32(Vec<f32>),
    /// Integer values (and FP8 bit patterns), widened to int64.
    I64(Vec<i64>),
    /// bool values.
    Bool(Vec<bool>),
}

/// A tensor decoded by [`decode`]: its shape (`[]` for a scalar), element type and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// Logical shape.
    pub shape: Vec<usize>,
    /// ONNX element type code of the stored tensor.
    pub elem_type: i32,
    /// The values, `shape`'s element count of them.
    pub data: HostData,
}

/// Why [`decode`] refused a tensor.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The values live in an external file not read in (a model built in memory;
    /// [`super::read_model`] reads external data).
    #[error(
        "tensor `{name}` keeps its values in the external file `{location}`, which was not read in; load the model from its file (qdq_onnx::read_model reads external data next to it)"
    )]
    External {
        /// The tensor.
        name: String,
        /// The external file named by the tensor (`?` when absent).
        location: String,
    },
    /// A dimension is negative.
    #[error("tensor `{name}` has a negative dim")]
    NegativeDim {
        /// The tensor.
        name: String,
    },
    /// The element count overflows or is over the caller's limit.
    #[error("tensor `{name}` of shape {dims:?} would hold more than {limit} elements")]
    TooLarge {
        /// The tensor.
        name: String,
        /// Its dims (saturated to `u64::MAX` where negative).
        dims: Vec<u64>,
        /// The limit asked for.
        limit: u64,
    },
    /// The storage holds a different number of values than the shape says.
    #[error("tensor `{name}` of shape {shape:?}: {field} holds the wrong number of values")]
    Length {
        /// The tensor.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The storage field at fault (`raw_data`, `float_data`, `typed data`).
        field: &'static str,
    },
    /// An element type the decoder does not read (strings, FP4, complex...).
    #[error(
        "tensor `{name}` has element type {} ({code}); the runtime handles float32, float16, bfloat16, double, integer (int4 to int64), bool and float8e4m3fn tensors",
        elem::dtype_name(*code)
    )]
    Dtype {
        /// The tensor.
        name: String,
        /// Its element type code.
        code: i32,
    },
}

/// Reads a serialized tensor (raw little-endian or typed storage) into host values,
/// checking shape against storage and refusing more than `max_elements` values before
/// allocating.
///
/// # Errors
/// [`DecodeError`]: external data, a negative dim, too many elements, storage of the
/// wrong length, or an element type other than the floats (float32, float16, bfloat16
/// and double, all read as f32), the integers, bool and float8e4m3fn (kept as its bit
/// pattern).
pub fn decode(t: &TensorProto, max_elements: usize) -> Result<Decoded, DecodeError> {
    let name = || t.name.clone();
    if !t.external_data.is_empty() {
        let location = t
            .external_data
            .iter()
            .find(|e| e.key == "location")
            .map_or("?", |e| e.value.as_str());
        return Err(DecodeError::External {
            name: name(),
            location: location.to_string(),
        });
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| DecodeError::NegativeDim { name: name() })?;
    let limit = max_elements as u64;
    let n = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| n <= limit)
        .ok_or_else(|| DecodeError::TooLarge {
            name: name(),
            dims: shape.iter().map(|&d| d as u64).collect(),
            limit,
        })? as usize;
    let bad = |field| DecodeError::Length {
        name: name(),
        shape: shape.clone(),
        field,
    };
    let raw = &t.raw_data;
    // Raw storage is checked by length before anything is allocated.
    let raw_vals = |width: usize| {
        if raw.len() == n.saturating_mul(width) {
            Ok(())
        } else {
            Err(bad("raw_data"))
        }
    };
    let ints = |v: Vec<i64>| {
        if v.len() == n {
            Ok(v)
        } else {
            Err(bad("typed data"))
        }
    };
    fn widen<T: LeBytes + Into<i64>>(raw: &[u8]) -> Vec<i64> {
        le_values::<T>(raw).into_iter().map(Into::into).collect()
    }
    let code = t.data_type;
    let data = match code {
        elem::FLOAT => {
            let v = if !raw.is_empty() {
                raw_vals(4)?;
                le_values(raw)
            } else {
                t.float_data.clone()
            };
            if v.len() != n {
                return Err(bad("float_data"));
            }
            HostData::F32(v)
        }
        // The runtime computes in f32: wider and narrower floats decode to it (float16
        // and bfloat16 exactly; double rounded to nearest).
        elem::FLOAT16 | elem::BFLOAT16 | elem::DOUBLE => {
            let (width, typed) = match code {
                elem::DOUBLE => (8, t.double_data.len()),
                _ => (2, t.int32_data.len()),
            };
            if raw.is_empty() && typed != n {
                return Err(bad("typed data"));
            }
            if !raw.is_empty() {
                raw_vals(width)?;
            }
            HostData::F32(floats(t).unwrap_or_default())
        }
        elem::INT64 => HostData::I64(if !raw.is_empty() {
            raw_vals(8)?;
            le_values(raw)
        } else {
            ints(t.int64_data.clone())?
        }),
        elem::INT32
        | elem::INT16
        | elem::UINT16
        | elem::INT8
        | elem::UINT8
        | elem::FLOAT8E4M3FN => HostData::I64(if !raw.is_empty() {
            match code {
                elem::INT32 => raw_vals(4).map(|_| widen::<i32>(raw))?,
                elem::INT16 => raw_vals(2).map(|_| widen::<i16>(raw))?,
                elem::UINT16 => raw_vals(2).map(|_| widen::<u16>(raw))?,
                elem::INT8 => raw_vals(1).map(|_| widen::<i8>(raw))?,
                _ => raw_vals(1).map(|_| widen::<u8>(raw))?,
            }
        } else {
            ints(t.int32_data.iter().map(|&x| i64::from(x)).collect())?
        }),
        // Two values per byte (`nibble`): raw bytes, or one packed byte per int32.
        elem::INT4 | elem::UINT4 => {
            let packed: Vec<u8> = if !raw.is_empty() {
                raw.to_vec()
            } else {
                t.int32_data.iter().map(|&b| b as u8).collect()
            };
            if packed.len() != super::nibble::packed_len(n) {
                return Err(bad(if raw.is_empty() {
                    "typed data"
                } else {
                    "raw_data"
                }));
            }
            HostData::I64(super::nibble::unpack(&packed, n, code == elem::INT4))
        }
        elem::UINT32 | elem::UINT64 => HostData::I64(if !raw.is_empty() {
            if code == elem::UINT32 {
                raw_vals(4).map(|_| widen::<u32>(raw))?
            } else {
                raw_vals(8)?;
                le_values::<u64>(raw)
                    .into_iter()
                    .map(|x| x as i64)
                    .collect()
            }
        } else {
            ints(t.uint64_data.iter().map(|&x| x as i64).collect())?
        }),
        elem::BOOL => HostData::Bool(if !raw.is_empty() {
            raw_vals(1)?;
            raw.iter().map(|&b| b != 0).collect()
        } else {
            ints(t.int32_data.iter().map(|&x| i64::from(x)).collect())?
                .into_iter()
                .map(|b| b != 0)
                .collect()
        }),
        other => {
            return Err(DecodeError::Dtype {
                name: name(),
                code: other,
            });
        }
    };
    Ok(Decoded {
        shape,
        elem_type: code,
        data,
    })
}

/// Whether every element of an integer or FP8 tensor is zero (typed or raw storage).
pub(crate) fn all_zero(t: &TensorProto) -> bool {
    t.int32_data.iter().all(|&v| v == 0)
        && t.int64_data.iter().all(|&v| v == 0)
        && t.float_data.iter().all(|&v| v == 0.0)
        && t.raw_data.iter().all(|&b| b == 0)
}

/// Total element count of a graph's weights (what `qdq inspect` reports): its
/// initializers and the tensors of its `Constant` nodes (`value`, `value_floats`,
/// `value_ints`; PyTorch's and Paddle's exporters write many weights that way), in
/// subgraphs too (silero-vad keeps its weights in `If` branches; the nesting is bounded
/// by the protobuf parser's recursion limit). Summed without overflow: dims from a
/// hostile file saturate at `u64::MAX`, negative dims count as 0.
pub fn weight_elements(graph: &GraphProto) -> u64 {
    let dims_product = |t: &TensorProto| {
        t.dims
            .iter()
            .try_fold(1u64, |acc, &d| {
                acc.checked_mul(u64::try_from(d).unwrap_or(0))
            })
            .unwrap_or(u64::MAX)
    };
    let is_constant = |n: &onnx_ir::NodeProto| {
        n.op_type == "Constant" && (n.domain.is_empty() || n.domain == "ai.onnx")
    };
    let in_nodes = graph.node.iter().flat_map(|n| {
        n.attribute.iter().map(move |a| {
            let own = match a.name.as_str() {
                _ if !is_constant(n) => 0,
                "value" => a.t.as_ref().map_or(0, dims_product),
                "value_floats" => a.floats.len() as u64,
                "value_ints" => a.ints.len() as u64,
                _ => 0,
            };
            a.g.iter()
                .chain(&a.graphs)
                .map(weight_elements)
                .fold(own, u64::saturating_add)
        })
    });
    graph
        .initializer
        .iter()
        .map(dims_product)
        .chain(in_nodes)
        .fold(0u64, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numel_saturates_instead_of_overflowing() {
        let mut t = TensorProto::new();
        t.dims = vec![1 << 32, 1 << 32, 3];
        assert_eq!(numel(&t), usize::MAX);
        t.dims = vec![2, -1, 3];
        assert_eq!(numel(&t), 0);
    }

    #[test]
    fn weight_elements_saturates_instead_of_overflowing() {
        let mut g = GraphProto::new();
        for dims in [vec![2, 3], vec![], vec![-4, 5]] {
            let mut t = TensorProto::new();
            t.dims = dims;
            g.initializer.push(t);
        }
        assert_eq!(weight_elements(&g), 6 + 1);
        let mut huge = TensorProto::new();
        huge.dims = vec![1 << 32, 1 << 32];
        g.initializer.push(huge.clone());
        g.initializer.push(huge);
        assert_eq!(weight_elements(&g), u64::MAX);
    }

    #[test]
    fn weight_elements_count_constant_nodes() {
        use onnx_ir::{AttributeProto, NodeProto};
        let mut g = GraphProto::new();
        let mut init = TensorProto::new();
        init.dims = vec![4, 2];
        g.initializer.push(init);
        let constant = |attr: AttributeProto, domain: &str| {
            let mut n = NodeProto::new();
            n.op_type = "Constant".into();
            n.domain = domain.into();
            n.attribute.push(attr);
            n
        };
        let mut value = AttributeProto::new();
        value.name = "value".into();
        let mut t = TensorProto::new();
        t.dims = vec![3, 5];
        value.t = Some(t).into();
        let mut floats = AttributeProto::new();
        floats.name = "value_floats".into();
        floats.floats = vec![1.0; 6];
        let mut ints = AttributeProto::new();
        ints.name = "value_ints".into();
        ints.ints = vec![1; 2];
        g.node.push(constant(value.clone(), ""));
        g.node.push(constant(floats, "ai.onnx"));
        g.node.push(constant(ints, ""));
        // another domain's `Constant` is not ONNX's
        g.node.push(constant(value, "com.example"));
        assert_eq!(weight_elements(&g), 8 + 15 + 6 + 2);
        // a branch's weights count too
        let mut branch = AttributeProto::new();
        branch.name = "then_branch".into();
        branch.g = Some(g.clone()).into();
        let mut if_node = NodeProto::new();
        if_node.op_type = "If".into();
        if_node.attribute.push(branch);
        g.node.push(if_node);
        assert_eq!(weight_elements(&g), 2 * (8 + 15 + 6 + 2));
    }

    #[test]
    fn int4_decodes_from_packed_raw_and_typed_storage_and_checks_the_length() {
        let mut t = TensorProto::new();
        t.name = "w".into();
        t.dims = vec![3];
        t.data_type = elem::INT4;
        // onnx.helper.make_tensor("w", INT4, [3], [-8, 7, 1]): int32_data [120, 1].
        t.int32_data = vec![120, 1];
        let want = HostData::I64(vec![-8, 7, 1]);
        assert_eq!(decode(&t, 10).unwrap().data, want);
        t.int32_data.clear();
        t.raw_data = vec![0x78, 0x01].into();
        assert_eq!(decode(&t, 10).unwrap().data, want);
        t.data_type = elem::UINT4;
        assert_eq!(decode(&t, 10).unwrap().data, HostData::I64(vec![8, 7, 1]));
        // 3 values need 2 bytes: 1 or 3 is refused by name, before anything is built.
        for bytes in [vec![0x78], vec![0x78, 1, 0]] {
            t.raw_data = bytes.into();
            assert!(matches!(
                decode(&t, 10),
                Err(DecodeError::Length {
                    field: "raw_data",
                    ..
                })
            ));
        }
    }

    #[test]
    fn float16_bfloat16_and_double_decode_to_f32_from_raw_and_typed_storage() {
        let tensor = |code: i32| {
            let mut t = TensorProto::new();
            t.name = "w".into();
            t.data_type = code;
            t.dims = vec![3];
            t
        };
        // float16 1.5, -2, 65504 (max) and bfloat16 1.5, -2, 3.3895314e38 (max)
        let cases = [
            (
                elem::FLOAT16,
                [0x3e00u16, 0xc000, 0x7bff],
                [1.5, -2.0, 65504.0],
            ),
            (
                elem::BFLOAT16,
                [0x3fc0, 0xc000, 0x7f7f],
                [1.5, -2.0, 3.389_531_4e38],
            ),
        ];
        for (code, bits, want) in cases {
            let mut raw = tensor(code);
            raw.raw_data = bits
                .iter()
                .flat_map(|b| b.to_le_bytes())
                .collect::<Vec<u8>>()
                .into();
            let mut typed = tensor(code);
            typed.int32_data = bits.iter().map(|&b| i32::from(b)).collect();
            for t in [raw, typed] {
                let d = decode(&t, 100).unwrap();
                assert_eq!((d.elem_type, d.data), (code, HostData::F32(want.to_vec())));
                assert_eq!(floats(&t).unwrap(), want.to_vec());
            }
        }
        let mut raw = tensor(elem::DOUBLE);
        let doubles = [0.1f64, -1e300, 2.5];
        raw.raw_data = doubles
            .iter()
            .flat_map(|b| b.to_le_bytes())
            .collect::<Vec<u8>>()
            .into();
        let mut typed = tensor(elem::DOUBLE);
        typed.double_data = doubles.to_vec();
        for t in [raw, typed] {
            let d = decode(&t, 100).unwrap();
            assert_eq!(d.data, HostData::F32(vec![0.1f32, f32::NEG_INFINITY, 2.5]));
        }
        // Storage of the wrong length is refused by name, raw and typed.
        let mut short = tensor(elem::FLOAT16);
        short.raw_data = vec![0; 5].into();
        assert!(matches!(
            decode(&short, 100),
            Err(DecodeError::Length {
                field: "raw_data",
                ..
            })
        ));
        let mut short = tensor(elem::DOUBLE);
        short.double_data = vec![1.0];
        assert!(matches!(
            decode(&short, 100),
            Err(DecodeError::Length {
                field: "typed data",
                ..
            })
        ));
    }
}
