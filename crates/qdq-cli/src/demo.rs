//! The bundled example: a small Fashion-MNIST CNN (FP32 ONNX, trained and exported by
//! `examples/train_fashion_mnist.rs`), 256 training images to calibrate with and 500
//! test images with labels. Embedded in the binary, so `qdq demo` runs anywhere.

use crate::data::Dataset;
use crate::data::idx::Idx;

/// The FP32 model (input `input` [batch, 1, 28, 28], output `output` [batch, 10]).
pub const MODEL: &[u8] = include_bytes!("../data/fashion-mnist/model.onnx");
const CALIB: &[u8] = include_bytes!("../data/fashion-mnist/calib-images-idx3-ubyte.gz");
const TEST: &[u8] = include_bytes!("../data/fashion-mnist/test-images-idx3-ubyte.gz");
const LABELS: &[u8] = include_bytes!("../data/fashion-mnist/test-labels-idx1-ubyte.gz");

fn idx(gz: &[u8]) -> Result<Idx, String> {
    Idx::parse(gz)
}

/// The 256 calibration images, scaled to [0, 1].
pub fn calibration_images() -> Result<Dataset, String> {
    Dataset::from_idx(&idx(CALIB)?)
}

/// The 500 test images with their labels.
pub fn test_images() -> Result<Dataset, String> {
    let labels = idx(LABELS)?.data.iter().map(|&b| i64::from(b)).collect();
    Dataset::from_idx(&idx(TEST)?)?
        .with_label_values(labels)
        .map_err(|e| e.to_string())
}
