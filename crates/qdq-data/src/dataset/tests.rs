use std::io::Write;

use super::*;
use crate::npy::encode;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_header(dims: &[u32]) -> Vec<u8> {
    let mut h = vec![0, 0, 8, dims.len() as u8];
    h.extend(dims.iter().flat_map(|d| d.to_be_bytes()));
    h
}

#[test]
fn normalize_per_channel_or_all() {
    let mut d =
        Dataset::from_values(vec![1, 2, 2], vec![1., 2., 3., 5.], Preprocess::default()).unwrap();
    d.normalize(&[1.0, 3.0], &[2.0]).unwrap();
    assert_eq!(d.read(0, 1).unwrap(), [0.0, 0.5, 0.0, 1.0]);
    d.normalize(&[1.0], &[]).unwrap();
    assert_eq!(d.read(0, 1).unwrap(), [-1.0, -0.5, -1.0, 0.0]);
    let err = d.normalize(&[0.0; 3], &[1.0]).unwrap_err();
    assert!(
        err.contains("3 mean values for items of shape [2, 2] (2 channels)"),
        "{err}"
    );
    let err = d.normalize(&[], &[0.0]).unwrap_err();
    assert!(err.contains("std 0"), "{err}");
    let err = d.normalize(&[f32::NAN], &[]).unwrap_err();
    assert_eq!(err, "mean NaN: must be finite");
}

#[test]
fn label_values_are_one_class_index_per_item() {
    let d = || Dataset::from_values(vec![2, 1], vec![0.0, 1.0], Preprocess::default());
    let l = d().unwrap().with_label_values(vec![3, 0]).unwrap();
    assert_eq!(l.labels(), Some(&[3, 0][..]));
    assert_eq!(l.first(1).labels(), Some(&[3][..]));
    let err = d().unwrap().with_label_values(vec![1]).unwrap_err();
    assert!(err.to_string().contains("1 labels for 2 items"), "{err}");
    for (bad, index) in [(vec![0, -1], 1), (vec![1 << 31, 0], 0)] {
        let err = d().unwrap().with_label_values(bad).unwrap_err();
        assert!(
            matches!(err, DataError::Label { index: i, .. } if i == index),
            "{err}"
        );
    }
    assert_eq!(
        Dataset::from_values(vec![2, 2], vec![0.0; 3], Preprocess::default()).unwrap_err(),
        "3 values for shape [2, 2] (4 values)"
    );
}

/// A gzip IDX file announcing 5000 items of 100x100 bytes, 50 MB of zeros in a
/// stream of ~50 kB: opening it decompresses it to a temporary file, not to memory;
/// items are read from there a batch at a time.
#[test]
fn a_gzip_bomb_streams_to_a_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb-idx3-ubyte.gz");
    let mut body = idx_header(&[5000, 100, 100]);
    body.resize(body.len() + 5000 * 100 * 100 - 1, 0);
    body.push(255); // the last pixel of the last item
    let bytes = gz(&body);
    assert!(
        bytes.len() * 500 < body.len(),
        "{} bytes of gzip",
        bytes.len()
    );
    drop(body);
    std::fs::write(&path, &bytes).unwrap();
    let d = Dataset::load(&path, None).unwrap();
    assert_eq!(
        (d.len(), d.item_shape(), d.item_len()),
        (5000, &[100, 100][..], 10000)
    );
    assert_eq!(d.held_values(), 0, "no item data in memory");
    let batch = d.read(4998, 32).unwrap();
    assert_eq!(batch.len(), 2 * 10000, "clamped to the last two items");
    assert_eq!(batch[..19999], [0.0; 19999]);
    assert_eq!(batch[19999], 1.0, "255 times the default 1/255");
    let shuffled = d.gather(&[4999, 0]).unwrap();
    assert_eq!(
        (shuffled[9999], shuffled[10000..].iter().sum::<f32>()),
        (1.0, 0.0)
    );
    let err = d.gather(&[5000]).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("item 5000 asked for; there are 5000"),
        "{err}"
    );
    // The first items only, sharing the file.
    assert_eq!(d.first(3).read(0, 10).unwrap().len(), 30000);
}

#[test]
fn gzip_streams_must_match_their_header() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut four = idx_header(&[2, 2]);
    four.extend([1, 2, 3, 4]);
    let p = write("ok.gz", &gz(&four));
    assert_eq!(
        Dataset::load(&p, None).unwrap().read(1, 1).unwrap(),
        [3.0 * (1.0 / 255.0), 4.0 * (1.0 / 255.0)]
    );
    let p = write("long.gz", &gz(&[&four[..], &[5]].concat()));
    assert_eq!(
        Dataset::load(&p, None).unwrap_err().to_string(),
        format!(
            "{}: the stream is longer than its header announces (4 bytes of data); \
             refusing it",
            p.display()
        )
    );
    let p = write("short.gz", &gz(&four[..four.len() - 1]));
    assert_eq!(
        Dataset::load(&p, None).unwrap_err().to_string(),
        format!(
            "{}: truncated stream: its header announces 4 bytes of data, the stream \
             holds 3",
            p.display()
        )
    );
    // Dimensions whose product overflows: refused before anything is read.
    let huge = idx_header(&[u32::MAX, u32::MAX, u32::MAX]);
    for (name, bytes) in [("huge", huge.clone()), ("huge.gz", gz(&huge))] {
        let p = write(name, &bytes);
        let err = Dataset::load(&p, None).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: shape [4294967295, 4294967295, 4294967295] is too large (its size \
                 overflows)",
                p.display()
            )
        );
    }
    // An uncompressed file shorter than its header.
    let p = write("short", &four[..four.len() - 1]);
    let err = Dataset::load(&p, None).unwrap_err().to_string();
    assert!(
        err.ends_with("truncated IDX data: header says 4 values, file has 3"),
        "{err}"
    );
}

#[test]
fn npy_items_are_read_by_seeking_with_nan_named_by_item() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.npy");
    let v: Vec<f64> = vec![0.5, 1.0, 2.0, f64::NAN, 4.0, 5.0];
    let body: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&p, encode("<f8", &[3, 2], &body)).unwrap();
    let pre = Preprocess {
        scale: 2.0,
        mean: 1.0,
        std: 0.5,
    };
    let d = Dataset::load(&p, Some(pre)).unwrap();
    assert_eq!((d.len(), d.item_shape(), d.held_values()), (3, &[2][..], 0));
    assert_eq!(d.read(0, 1).unwrap(), [0.0, 2.0]);
    assert_eq!(d.gather(&[2, 0]).unwrap(), [14.0, 18.0, 0.0, 2.0]);
    let err = d.read(0, 3).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: value NaN in item 1 at position 1; data must be finite",
            p.display()
        )
    );
    // A shape whose size overflows, an item beyond the limit, a short file.
    // `body` bytes of zeros after the header, as a sparse file.
    let write = |shape: &[usize], body: u64| {
        let header = encode("<f4", shape, &[]);
        std::fs::write(&p, &header).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(header.len() as u64 + body).unwrap();
        Dataset::load(&p, None).unwrap_err().to_string()
    };
    let err = write(&[1 << 62, 4], 0);
    assert!(
        err.ends_with("shape [4611686018427387904, 4] is too large (its size overflows)"),
        "{err}"
    );
    let err = write(&[1, 1 << 29], 7);
    assert!(
        err.ends_with("shape [1, 536870912] needs 2147483648 bytes, file has 7"),
        "{err}"
    );
    let err = write(&[0, 1 << 29], 0);
    assert!(
        err.ends_with("no items (the first dimension is empty)"),
        "{err}"
    );
    let err = write(&[1, 1 << 28, 2], 1 << 31);
    assert!(
        err.ends_with(
            "items of shape [268435456, 2] hold 536870912 values each; the limit is \
             268435456 (2^28)"
        ),
        "{err}"
    );
}

#[test]
fn labels_from_files_are_checked_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = Dataset::from_values(vec![2, 1], vec![0.0, 1.0], Preprocess::default()).unwrap();
    let labels = |name: &str, bytes: Vec<u8>| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        (d.clone().with_labels(&p), p)
    };
    let le = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (ok, _) = labels("y.npy", encode("<i8", &[2], &le(&[1, 9])));
    assert_eq!(ok.unwrap().labels(), Some(&[1, 9][..]));
    let (big, p) = labels("big.npy", encode("<i8", &[2], &le(&[0, 1 << 31])));
    let err = big.unwrap_err();
    assert!(matches!(err, DataError::Label { index: 1, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: label 1 is 2147483648; labels must be class indices, whole numbers in \
             0..=2147483647",
            p.display()
        )
    );
    let (neg, _) = labels("neg.npy", encode("<i8", &[2], &le(&[-1, 0])));
    assert!(matches!(
        neg.unwrap_err(),
        DataError::Label { index: 0, .. }
    ));
    let half: Vec<u8> = [1.0f32, 0.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    let (half, _) = labels("half.npy", encode("<f4", &[2], &half));
    assert!(half.unwrap_err().to_string().contains("label 1 is 0.5;"));
    let (count, _) = labels("three.npy", encode("<i8", &[3], &le(&[0, 1, 2])));
    assert!(
        count
            .unwrap_err()
            .to_string()
            .ends_with("3 labels for 2 items")
    );
    let mut idx = idx_header(&[2]);
    idx.extend([7, 3]);
    let (ok, _) = labels("y-idx1-ubyte.gz", gz(&idx));
    assert_eq!(ok.unwrap().labels(), Some(&[7, 3][..]));
    idx.push(1);
    let (long, _) = labels("long-idx1-ubyte.gz", gz(&idx));
    let err = long.unwrap_err().to_string();
    assert!(err.contains("longer than its header"), "{err}");
}
