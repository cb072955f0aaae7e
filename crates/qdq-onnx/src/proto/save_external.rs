//! Writing external data: the large initializers of a model move to one data file
//! next to the `.onnx` (onnx's `convert_model_to_external_data` with
//! `all_tensors_to_one_file=True`), which [`super::external`] reads back. The model
//! keeps each tensor's name, type and dims, with `data_location = EXTERNAL` and the
//! keys `location`, `offset`, `length`.

use std::borrow::Cow;
use std::io::{self, Read, Write};

use onnx_ir::{Message, ModelProto, TensorProto};

use super::elem;
use super::external::{byte_width, is_external};

/// Initializers of at least this many bytes move to the data file: onnx's default
/// `size_threshold` (smaller ones cost more in keys than they save).
pub const EXTERNAL_MIN_BYTES: usize = 1024;

/// Tensors of at least this many bytes start at a multiple of [`PAGE`], so that a
/// runtime can memory-map them (ONNX Runtime's `align_threshold`).
const ALIGN_FROM_BYTES: usize = 1 << 20;

/// The alignment of large tensors' offsets: the page size, ONNX Runtime's allocation
/// granularity on Linux.
const PAGE: u64 = 4096;

/// The bytes of a data file: each moved tensor's values at its offset, zeros between.
pub struct ExternalData<'m> {
    chunks: Vec<(u64, Cow<'m, [u8]>)>,
    len: u64,
}

impl ExternalData<'_> {
    /// The data file's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no tensor moved.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Writes the data file, streaming each tensor's bytes (no copy of the whole).
    ///
    /// # Errors
    /// The writer's.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut at = 0u64;
        for (offset, bytes) in &self.chunks {
            // Offsets only grow, by less than a page of padding each.
            io::copy(&mut io::repeat(0).take(offset - at), w)?;
            w.write_all(bytes)?;
            at = offset + bytes.len() as u64;
        }
        Ok(())
    }
}

/// Splits `model` into the model to serialize, whose top-level initializers of at
/// least `min_bytes` bytes refer to the data file `location` (a file name in the
/// model's folder, e.g. `model.onnx.data`), and that file's bytes, which borrow the
/// tensors' values from `model`. Tensors already external, strings and types of no
/// fixed byte width stay as they are; so do initializers of subgraphs and `Constant`
/// nodes (`qdq` reads external data of top-level initializers only).
pub fn split_external<'m>(
    model: &'m ModelProto,
    location: &str,
    min_bytes: usize,
) -> (ModelProto, ExternalData<'m>) {
    let mut out = model.clone();
    let mut data = ExternalData {
        chunks: Vec::new(),
        len: 0,
    };
    let (Some(graph), Some(src)) = (out.graph.as_mut(), model.graph.as_ref()) else {
        return (out, data);
    };
    for (t, s) in graph.initializer.iter_mut().zip(&src.initializer) {
        let Some(bytes) = le_bytes(s).filter(|b| b.len() >= min_bytes.max(1)) else {
            continue;
        };
        let offset = if bytes.len() >= ALIGN_FROM_BYTES {
            data.len.next_multiple_of(PAGE)
        } else {
            data.len
        };
        let length = bytes.len() as u64;
        data.len = offset + length;
        mark_external(t, location, offset, length);
        data.chunks.push((offset, bytes));
    }
    (out, data)
}

/// The tensor's values as little-endian bytes, if it can move: inline, of a fixed
/// byte width, stored as `raw_data` or in the typed field of its own type.
fn le_bytes(t: &TensorProto) -> Option<Cow<'_, [u8]>> {
    if is_external(t) || byte_width(t.data_type).is_none() {
        return None;
    }
    if !t.raw_data.is_empty() {
        return Some(Cow::Borrowed(&t.raw_data[..]));
    }
    let bytes: Vec<u8> = match t.data_type {
        elem::FLOAT => t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        elem::INT64 => t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        elem::DOUBLE => t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        // Narrow types packed into int32_data: rare in initializers; left inline.
        _ => return None,
    };
    (!bytes.is_empty()).then_some(Cow::Owned(bytes))
}

/// Clears the tensor's inline values and points it at `location`.
fn mark_external(t: &mut TensorProto, location: &str, offset: u64, length: u64) {
    t.raw_data = Default::default();
    t.float_data.clear();
    t.int64_data.clear();
    t.double_data.clear();
    t.external_data.clear();
    for (key, value) in [
        ("location", location.to_string()),
        ("offset", offset.to_string()),
        ("length", length.to_string()),
    ] {
        t.external_data.push(Default::default());
        let e = t.external_data.last_mut().expect("just pushed");
        e.key = key.into();
        e.value = value;
    }
    // `TensorProto.DataLocation.EXTERNAL` (1). onnx-ir does not export the enum's
    // type, so the value is decoded from its wire form: field 14, varint 1.
    t.data_location = TensorProto::parse_from_bytes(&[14 << 3, 1])
        .expect("a valid one-field message")
        .data_location;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{model, read_model, read_model_with_data, tensor_f32, tensor_i64};

    fn key<'a>(t: &'a TensorProto, k: &str) -> &'a str {
        let e = t.external_data.iter().find(|e| e.key == k);
        e.map(|e| e.value.as_str()).unwrap_or_default()
    }

    #[test]
    fn large_initializers_move_out_aligned_and_read_back_equal() {
        let big: Vec<f32> = (0..(1 << 18)).map(|i| i as f32 * 0.5).collect(); // 1 MiB
        let mid: Vec<f32> = (0..300).map(|i| -(i as f32)).collect(); // 1200 bytes
        let mut typed = TensorProto::new(); // float_data, not raw: 256 floats
        typed.name = "typed".into();
        typed.data_type = elem::FLOAT;
        typed.dims = vec![256];
        typed.float_data = (0..256).map(|i| i as f32).collect();
        let inits = vec![
            tensor_f32("mid", &[300], &mid),
            tensor_f32("small", &[2], &[1.0, 2.0]),
            tensor_f32("big", &[1 << 18], &big),
            typed,
            tensor_i64("shape", &[3], &[1, 2, 3]),
        ];
        let original = model(vec![], vec![], &[], inits, 13);
        let (out, data) = split_external(&original, "m.onnx.data", EXTERNAL_MIN_BYTES);
        let g = out.graph.as_ref().unwrap();
        // mid at 0 (1200 bytes), big aligned up to 4096, typed right after big.
        let placed: Vec<(&str, &str, &str)> = g
            .initializer
            .iter()
            .filter(|t| is_external(t))
            .map(|t| (t.name.as_str(), key(t, "offset"), key(t, "length")))
            .collect();
        assert_eq!(
            placed,
            [
                ("mid", "0", "1200"),
                ("big", "4096", "1048576"),
                ("typed", "1052672", "1024")
            ]
        );
        assert_eq!(data.len(), 1052672 + 1024);
        assert!(
            g.initializer
                .iter()
                .all(|t| !is_external(t) || (t.raw_data.is_empty() && t.float_data.is_empty()))
        );
        // Written, read back: every tensor's values as before (typed now raw).
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        data.write_to(&mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, data.len());
        std::fs::write(dir.path().join("m.onnx.data"), &bytes).unwrap();
        std::fs::write(dir.path().join("m.onnx"), out.write_to_bytes().unwrap()).unwrap();
        let back = read_model(dir.path().join("m.onnx")).unwrap();
        let floats = |m: &ModelProto, name: &str| {
            let t = m.graph.initializer.iter().find(|t| t.name == name).unwrap();
            crate::proto::decode::floats(t).unwrap()
        };
        for name in ["mid", "small", "big", "typed"] {
            assert_eq!(floats(&back, name), floats(&original, name), "{name}");
        }
        // The data read from another file under the name the model gives it.
        std::fs::rename(dir.path().join("m.onnx.data"), dir.path().join(".tmp-data")).unwrap();
        assert!(read_model(dir.path().join("m.onnx")).is_err());
        let back = read_model_with_data(
            &dir.path().join("m.onnx"),
            Some(("m.onnx.data", &dir.path().join(".tmp-data"))),
        )
        .unwrap();
        assert_eq!(floats(&back, "big"), big);
    }

    #[test]
    fn nothing_moves_below_the_threshold() {
        let original = model(
            vec![],
            vec![],
            &[],
            vec![tensor_f32("w", &[4], &[1.0; 4])],
            13,
        );
        let (out, data) = split_external(&original, "x.data", EXTERNAL_MIN_BYTES);
        assert!(data.is_empty());
        assert_eq!(data.len(), 0u64);
        assert_eq!(out, original);
        let (out, data) = split_external(&original, "x.data", 0);
        assert_eq!(data.len(), 16);
        assert_eq!(key(&out.graph.initializer[0], "location"), "x.data");
    }
}
