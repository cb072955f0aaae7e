//! Data that the CLI refuses with a clear error, not a panic: labels that are not class
//! indices of the model, resizes beyond the limit.

mod common;
use common::{qdq, s, scratch};

use std::path::{Path, PathBuf};

use qdq_data::idx::Idx;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

/// `qdq eval MODEL MODEL --data CALIB --labels LABELS EXTRA`: exit code 1, stderr.
fn eval_fails(data: &Path, labels: Option<&Path>, extra: &[&str]) -> String {
    let model = data_dir().join("model.onnx");
    let mut args = vec!["eval", s(&model), s(&model), "--data", s(data)];
    if let Some(l) = labels {
        args.extend(["--labels", s(l)]);
    }
    args.extend(extra);
    let out = qdq(&args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn labels_must_be_class_indices_of_the_model() {
    let dir = scratch("labels");
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    // One label per calibration image; item 3 names class 10 of a 10-class model.
    let mut labels = Idx {
        dims: vec![256],
        data: vec![1; 256],
    };
    labels.data[3] = 10;
    let y = dir.join("y-idx1-ubyte");
    std::fs::write(&y, labels.to_bytes()).unwrap();
    let err = eval_fails(&calib, Some(&y), &[]);
    assert!(
        err.contains(
            "--labels: label 10 (item 3) is outside the model's 10 classes (output `output` \
             scores classes 0..=9)"
        ),
        "{err}"
    );
    // 2^31 and -1 do not fit a class index: refused as read, naming the file and index.
    for (value, index) in [(1i64 << 31, 5), (-1, 0)] {
        let mut v = vec![0i64; 256];
        v[index] = value;
        let body: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (256,), }";
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend((header.len() as u16).to_le_bytes());
        npy.extend(header.as_bytes());
        npy.extend(body);
        let y = dir.join("y.npy");
        std::fs::write(&y, npy).unwrap();
        let err = eval_fails(&calib, Some(&y), &[]);
        assert!(
            err.contains(&format!(
                "{}: label {index} is {value}; labels must be class indices, whole numbers in \
                 0..=2147483647",
                y.display()
            )),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resize_beyond_the_limit_is_refused() {
    let dir = scratch("resize");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    image::GrayImage::new(28, 28)
        .save(images.join("a.png"))
        .unwrap();
    let err = eval_fails(&images, None, &["--resize", "60000x60000"]);
    assert!(
        err.contains(
            "the resize (--resize) is 60000x60000 (height x width); the limit is 16384 pixels \
             a side and 67108864 (2^26) pixels"
        ),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
