//! Folders of PNG/JPEG images: decoded, resized (shorter side), center-cropped, as CHW
//! float in [0, 1], then normalised per channel. A folder of class folders
//! (`root/cat/1.jpg`, ImageNet style) also gives labels: the sorted class-folder index.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::{DataError, Dataset};

/// How images become model input.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageOptions {
    /// Channels the model takes: 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// Resize so the shorter side is this many pixels (default: the crop size).
    pub resize: Option<u32>,
    /// Center crop to `[height, width]`: the model input's spatial size.
    pub crop: [u32; 2],
    /// Per-channel mean, subtracted after scaling to [0, 1] (one value or one per channel).
    pub mean: Vec<f32>,
    /// Per-channel std, divided by last.
    pub std: Vec<f32>,
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
/// An unreadable folder, an image that does not decode (named), no images at all.
pub fn load(dir: &Path, o: &ImageOptions) -> Result<Dataset, DataError> {
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
        return Err(DataError::Format {
            path: dir.display().to_string(),
            why: "no .png/.jpg/.jpeg images (directly or in class folders)".into(),
        });
    }
    let [h, w] = o.crop;
    let mut data = Vec::with_capacity(files.len() * o.channels * (h * w) as usize);
    for (f, _) in &files {
        data.extend(decode(f, o)?);
    }
    let labels: Option<Vec<i64>> = files.iter().map(|(_, l)| *l).collect();
    Ok(Dataset {
        item_shape: vec![o.channels, h as usize, w as usize],
        data,
        labels,
    })
}

/// One image as CHW floats.
fn decode(path: &Path, o: &ImageOptions) -> Result<Vec<f32>, DataError> {
    let img = image::open(path).map_err(|e| DataError::Format {
        path: path.display().to_string(),
        why: format!("cannot decode image: {e}"),
    })?;
    let [h, w] = o.crop;
    let short = o.resize.unwrap_or(h.max(w));
    let (iw, ih) = (img.width().max(1), img.height().max(1));
    let scale = short as f32 / iw.min(ih) as f32;
    let (rw, rh) = (
        ((iw as f32 * scale).round() as u32).max(w),
        ((ih as f32 * scale).round() as u32).max(h),
    );
    let img =
        img.resize_exact(rw, rh, FilterType::Triangle)
            .crop_imm((rw - w) / 2, (rh - h) / 2, w, h);
    let pixels: Vec<Vec<f32>> = if o.channels == 1 {
        vec![
            img.to_luma8()
                .pixels()
                .map(|p| p.0[0] as f32 / 255.0)
                .collect(),
        ]
    } else {
        let rgb = img.to_rgb8();
        (0..3)
            .map(|c| rgb.pixels().map(|p| p.0[c] as f32 / 255.0).collect())
            .collect()
    };
    let pick =
        |v: &[f32], c: usize, default: f32| v.get(c).or(v.first()).copied().unwrap_or(default);
    Ok(pixels
        .into_iter()
        .enumerate()
        .flat_map(|(c, plane)| {
            let (m, s) = (pick(&o.mean, c, 0.0), pick(&o.std, c, 1.0));
            plane.into_iter().map(move |v| (v - m) / s)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            channels: 3,
            resize: None,
            crop: [4, 4],
            mean: vec![0.5],
            std: vec![0.5],
        };
        let d = load(&dir, &o).unwrap();
        assert_eq!(d.item_shape, [3, 4, 4]);
        assert_eq!(d.labels, Some(vec![0, 1]));
        // Red plane of the first image: (1 - 0.5) / 0.5 = 1; green 127/255.
        assert_eq!(d.items(0, 1)[0], 1.0);
        assert_eq!(d.items(0, 1)[16], (127.0 / 255.0 - 0.5) / 0.5);
        assert_eq!(d.items(1, 1)[0], -1.0);
        std::fs::write(dir.join("b_dog").join("2.png"), b"not a png").unwrap();
        let err = load(&dir, &o).unwrap_err().to_string();
        assert!(
            err.contains("2.png") && err.contains("cannot decode"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
