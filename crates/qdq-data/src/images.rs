//! Folders of PNG/JPEG images: decoded, resized (shorter side, or to an exact size),
//! center-cropped, as CHW floats (bytes times `scale`, 1/255 by default), then
//! normalised per channel. A folder of class folders (`root/cat/1.jpg`, ImageNet style)
//! also gives labels: the sorted class-folder index.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::{DataError, Dataset, Input};

/// How an image is resized before the center crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// The shorter side to this many pixels, keeping the aspect ratio.
    Shorter(u32),
    /// Exactly `[height, width]`.
    Exact([u32; 2]),
}

/// How images become model input.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageOptions {
    /// Channels the model takes: 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// Resize first (default: the shorter side to the crop's larger side).
    pub resize: Option<Resize>,
    /// Center crop to `[height, width]`: the model input's spatial size.
    pub crop: [u32; 2],
    /// Multiplier of the pixel bytes (default 1/255: values in [0, 1]).
    pub scale: f32,
    /// Per-channel mean, subtracted after scaling (one value or one per channel).
    pub mean: Vec<f32>,
    /// Per-channel std, divided by last.
    pub std: Vec<f32>,
}

impl ImageOptions {
    /// Options that fit images to `input`, `[batch, channels, height, width]`: its
    /// channel count (1 or 3; 3 where it is dynamic) and its height and width, which
    /// `crop` (`[height, width]`) must equal where they are fixed and give where they are
    /// not. No resize, scale 1/255, no normalisation.
    ///
    /// # Errors
    /// An input that is not 4-D, a channel count other than 1 or 3, a `crop` that
    /// differs from the input's fixed size ([`DataError::Shape`]), or a dynamic size and
    /// no `crop`; each names `dir` and the input's shape.
    pub fn for_input(input: &Input, dir: &Path, crop: Option<[u32; 2]>) -> Result<Self, DataError> {
        let path = dir.display().to_string();
        let format = |why: String| DataError::Format {
            path: path.clone(),
            why,
        };
        let [_, c, h, w] = input.dims[..] else {
            return Err(format(format!(
                "a folder of images feeds a [batch, channels, height, width] input; model \
                 input `{}` is {}",
                input.name,
                input.describe()
            )));
        };
        let channels = c.unwrap_or(3);
        if channels != 1 && channels != 3 {
            return Err(format(format!(
                "model input `{}` of shape {} takes {channels} channels; images give 1 \
                 (grayscale) or 3 (RGB)",
                input.name,
                input.describe()
            )));
        }
        let size = match (crop, h.zip(w)) {
            (Some(crop), Some(hw)) if [crop[0] as usize, crop[1] as usize] != [hw.0, hw.1] => {
                return Err(DataError::Shape {
                    path: format!("{path} (cropped to {}x{})", crop[0], crop[1]),
                    item: vec![channels, crop[0] as usize, crop[1] as usize],
                    input: input.name.clone(),
                    expected: input.describe(),
                });
            }
            (Some(crop), _) => crop,
            (None, Some((h, w))) => [h as u32, w as u32],
            (None, None) => {
                return Err(format(format!(
                    "model input `{}` of shape {} leaves the image size open; give the crop \
                     size (HxW)",
                    input.name,
                    input.describe()
                )));
            }
        };
        Ok(Self {
            channels,
            resize: None,
            crop: size,
            scale: 1.0 / 255.0,
            mean: Vec::new(),
            std: Vec::new(),
        })
    }
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |source| DataError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Loads every image under `dir` (and, when `dir` holds only folders, under each class
/// folder, with labels).
///
/// # Errors
/// An unreadable folder, an image that does not decode (named), no images at all, a
/// crop or resize of size 0 or a resize smaller than the crop, mean/std counts that do
/// not match the channels.
pub fn load(dir: &Path, o: &ImageOptions) -> Result<Dataset, DataError> {
    let format = |why: String| DataError::Format {
        path: dir.display().to_string(),
        why,
    };
    let [h, w] = o.crop;
    let resize_small = match o.resize {
        Some(Resize::Exact([rh, rw])) => rh < h || rw < w,
        Some(Resize::Shorter(n)) => n == 0,
        None => false,
    };
    if h == 0 || w == 0 || resize_small {
        return Err(format(format!(
            "cannot crop {h}x{w} (height x width) after resizing to {:?}",
            o.resize
        )));
    }
    let entries = sorted(dir)?;
    let classes: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    let mut files: Vec<(PathBuf, Option<i64>)> = Vec::new();
    if !classes.is_empty() && entries.iter().all(|p| p.is_dir()) {
        for (label, class) in classes.iter().enumerate() {
            for f in sorted(class)?.into_iter().filter(|p| is_image(p)) {
                files.push((f, Some(label as i64)));
            }
        }
    } else {
        files = entries
            .into_iter()
            .filter(|p| is_image(p))
            .map(|p| (p, None))
            .collect();
    }
    if files.is_empty() {
        return Err(format(
            "no .png/.jpg/.jpeg images (directly or in class folders)".into(),
        ));
    }
    let mut data = Vec::with_capacity(files.len() * o.channels * (h * w) as usize);
    for (f, _) in &files {
        decode(f, o, &mut data)?;
    }
    let labels: Option<Vec<i64>> = files.iter().map(|(_, l)| *l).collect();
    let mut d = Dataset {
        item_shape: vec![o.channels, h as usize, w as usize],
        data,
        labels,
    };
    d.normalize(&o.mean, &o.std).map_err(format)?;
    Ok(d)
}

/// One image as CHW floats (bytes times `o.scale`), appended to `out`.
fn decode(path: &Path, o: &ImageOptions, out: &mut Vec<f32>) -> Result<(), DataError> {
    let img = image::open(path).map_err(|e| DataError::Format {
        path: path.display().to_string(),
        why: format!("cannot decode image: {e}"),
    })?;
    let [h, w] = o.crop;
    let (iw, ih) = (img.width().max(1), img.height().max(1));
    let (rw, rh) = match o.resize {
        Some(Resize::Exact([rh, rw])) => (rw, rh),
        shorter => {
            let short = match shorter {
                Some(Resize::Shorter(n)) => n,
                _ => h.max(w),
            };
            let scale = short as f32 / iw.min(ih) as f32;
            (
                ((iw as f32 * scale).round() as u32).max(w),
                ((ih as f32 * scale).round() as u32).max(h),
            )
        }
    };
    let img = if (rw, rh) == (iw, ih) {
        img
    } else {
        img.resize_exact(rw, rh, FilterType::Triangle)
    };
    let img = img.crop_imm((rw - w) / 2, (rh - h) / 2, w, h);
    if o.channels == 1 {
        out.extend(img.to_luma8().pixels().map(|p| p.0[0] as f32 * o.scale));
    } else {
        let rgb = img.to_rgb8();
        for c in 0..3 {
            out.extend(rgb.pixels().map(|p| p.0[c] as f32 * o.scale));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(dims: &[Option<usize>]) -> Input {
        Input {
            name: "x".into(),
            dims: dims.to_vec(),
        }
    }

    #[test]
    fn class_folders_give_labels_and_chw_values() {
        let dir = std::env::temp_dir().join(format!("qdq-images-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (class, value) in [("a_cat", 255u8), ("b_dog", 0u8)] {
            std::fs::create_dir_all(dir.join(class)).unwrap();
            let img = image::RgbImage::from_pixel(8, 6, image::Rgb([value, value / 2, 0]));
            img.save(dir.join(class).join("1.png")).unwrap();
        }
        let o = ImageOptions {
            mean: vec![0.5],
            std: vec![0.5],
            ..ImageOptions::for_input(&input(&[None, Some(3), None, None]), &dir, Some([4, 4]))
                .unwrap()
        };
        let d = load(&dir, &o).unwrap();
        assert_eq!(d.item_shape, [3, 4, 4]);
        assert_eq!(d.labels, Some(vec![0, 1]));
        // Bytes times 1/255, as IDX bytes are. Red plane of the first image:
        // (255/255 - 0.5) / 0.5; green (127/255 - 0.5) / 0.5.
        let px = |b: f32| b * (1.0 / 255.0);
        assert_eq!(d.items(0, 1)[0], (px(255.0) - 0.5) / 0.5);
        assert_eq!(d.items(0, 1)[16], (px(127.0) - 0.5) / 0.5);
        assert_eq!(d.items(1, 1)[0], -1.0);
        // Per-channel mean and std; an exact resize to 4x6, then the crop.
        let o = ImageOptions {
            resize: Some(Resize::Exact([4, 6])),
            mean: vec![0.0, 0.5, 1.0],
            std: vec![1.0, 2.0, 4.0],
            ..o
        };
        let d = load(&dir, &o).unwrap();
        assert_eq!(d.items(0, 1)[0], px(255.0));
        assert_eq!(d.items(0, 1)[16], (px(127.0) - 0.5) / 2.0);
        assert_eq!(d.items(0, 1)[32], (0.0 - 1.0) / 4.0);
        let o = ImageOptions {
            resize: Some(Resize::Exact([3, 6])),
            ..o
        };
        let err = load(&dir, &o).unwrap_err().to_string();
        assert!(err.contains("cannot crop 4x4"), "{err}");
        std::fs::write(dir.join("b_dog").join("2.png"), b"not a png").unwrap();
        let o = ImageOptions { resize: None, ..o };
        let err = load(&dir, &o).unwrap_err().to_string();
        assert!(
            err.contains("2.png") && err.contains("cannot decode"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn options_follow_the_model_input() {
        let dir = Path::new("imgs");
        let o = ImageOptions::for_input(&input(&[None, Some(1), Some(28), Some(28)]), dir, None)
            .unwrap();
        assert_eq!((o.channels, o.crop), (1, [28, 28]));
        let err = ImageOptions::for_input(
            &input(&[None, Some(1), Some(28), Some(28)]),
            dir,
            Some([20, 28]),
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Shape { .. }));
        assert_eq!(
            err.to_string(),
            "imgs (cropped to 20x28): data items of shape [1, 20, 28] (560 values) do not fit \
             model input `x` of shape [batch, 1, 28, 28]"
        );
        let err = ImageOptions::for_input(&input(&[None, Some(3), None, None]), dir, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[batch, 3, ?, ?] leaves the image size open"),
            "{err}"
        );
        let err = ImageOptions::for_input(&input(&[None, Some(4), Some(2), Some(2)]), dir, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes 4 channels"), "{err}");
        let err = ImageOptions::for_input(&input(&[None, Some(784)]), dir, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("imgs: a folder of images") && err.contains("[batch, 784]"),
            "{err}"
        );
    }
}
