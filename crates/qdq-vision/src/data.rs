//! Fashion-MNIST as batches of tensors: normalised images, labels, shuffling and the
//! usual light augmentation (random 2-pixel shifts, horizontal flips).

use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use qdq_data::{DataError, Dataset, Preprocess};

/// Mean of Fashion-MNIST's training pixels (scaled to [0, 1]).
pub const MEAN: f32 = 0.2860;
/// Standard deviation of Fashion-MNIST's training pixels.
pub const STD: f32 = 0.3530;
/// Where Debian's `dataset-fashion-mnist` puts the files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The training and test sets, normalised (`(x / 255 - MEAN) / STD`), items `[28, 28]`.
#[derive(Clone, Debug)]
pub struct FashionMnist {
    /// 60 000 training images with labels.
    pub train: Dataset,
    /// 10 000 test images with labels.
    pub test: Dataset,
}

impl FashionMnist {
    /// Reads the four IDX files (`train-images-idx3-ubyte.gz`, ...) from `dir`.
    ///
    /// # Errors
    /// A missing or malformed file, named (install Debian's `dataset-fashion-mnist`
    /// or point to a folder holding the files).
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let split = |images: &str, labels: &str| -> Result<Dataset, DataError> {
            let pre = Preprocess {
                scale: 1.0 / 255.0,
                mean: MEAN,
                std: STD,
            };
            Dataset::load(&dir.join(images), Some(pre))?.with_labels(&dir.join(labels))
        };
        Ok(Self {
            train: split("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")?,
            test: split("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")?,
        })
    }
}

/// A small deterministic generator (SplitMix64) for shuffling and augmentation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `0..n` in random order (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

/// Items `indices` of `data` as a `[n, C, H, W]` tensor (`[H, W]` items get `C = 1`,
/// `[F]` items `[1, 1, F]`)
/// and their labels. With `augment`, each image is shifted by up to 2 pixels each way
/// (padding with Fashion-MNIST's normalised black) and flipped horizontally half of
/// the time, all channels alike. Only these items are read.
///
/// # Errors
/// Reading the items failed (see [`Dataset::gather`]).
///
/// # Panics
/// Items of more than three dimensions, or `data` without labels.
pub fn batch(
    data: &Dataset,
    indices: &[usize],
    mut augment: Option<&mut Rng>,
    device: &Device,
) -> Result<(Tensor<4>, Tensor<1, Int>), DataError> {
    let [c, h, w] = match data.item_shape()[..] {
        [f] => [1, 1, f],
        [h, w] => [1, h, w],
        [c, h, w] => [c, h, w],
        _ => panic!(
            "expected [F], [H, W] or [C, H, W] items, got {:?}",
            data.item_shape()
        ),
    };
    let labels = data.labels().expect("a labelled dataset");
    let values = data.gather(indices)?;
    let background = -MEAN / STD;
    let y: Vec<i64> = indices.iter().map(|&i| labels[i]).collect();
    if augment.is_none() {
        let n = indices.len();
        return Ok((
            Tensor::from_data(TensorData::new(values, [n, c, h, w]), device),
            Tensor::from_data(TensorData::new(y, [n]), device),
        ));
    }
    let mut x = Vec::with_capacity(values.len());
    for img in values.chunks_exact(c * h * w) {
        match augment.as_deref_mut() {
            None => x.extend_from_slice(img),
            Some(rng) => {
                let (dy, dx) = (rng.below(5) as isize - 2, rng.below(5) as isize - 2);
                let flip = rng.below(2) == 1;
                for plane in img.chunks_exact(h * w) {
                    for r in 0..h as isize {
                        for c in 0..w as isize {
                            let c = if flip { w as isize - 1 - c } else { c };
                            let (sr, sc) = (r + dy, c + dx);
                            let inside =
                                (0..h as isize).contains(&sr) && (0..w as isize).contains(&sc);
                            x.push(if inside {
                                plane[sr as usize * w + sc as usize]
                            } else {
                                background
                            });
                        }
                    }
                }
            }
        }
    }
    let n = indices.len();
    Ok((
        Tensor::from_data(TensorData::new(x, [n, c, h, w]), device),
        Tensor::from_data(TensorData::new(y, [n]), device),
    ))
}

#[cfg(test)]
mod tests {
    use qdq_data::MAX_LABEL;

    use super::*;

    /// The largest label a dataset accepts fits burn's 32-bit integer tensors on the CPU
    /// (2^31 panicked there before labels were checked when read).
    #[test]
    fn batches_read_only_their_items_and_keep_the_largest_label() {
        let d = Dataset::from_values(
            vec![3, 1, 2],
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            Preprocess::default(),
        )
        .unwrap()
        .with_label_values(vec![0, MAX_LABEL, 1])
        .unwrap();
        let device = Device::flex();
        let (x, y) = batch(&d, &[1, 2], None, &device).unwrap();
        assert_eq!(x.dims(), [2, 1, 1, 2]);
        assert_eq!(
            x.into_data().try_to_vec::<f32>().unwrap(),
            [3.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(
            y.into_data().convert::<i64>().try_to_vec::<i64>().unwrap(),
            [MAX_LABEL, 1]
        );
        let err = batch(&d, &[3], None, &device).unwrap_err();
        assert!(
            err.to_string().contains("item 3 asked for; there are 3"),
            "{err}"
        );
    }
}
