//! Folders of PNG/JPEG images: decoded, resized (shorter side, or to an exact size),
//! center-cropped, as CHW floats (bytes times `scale`, 1/255 by default), then
//! normalised per channel. A folder of class folders (`root/cat/1.jpg`, ImageNet style)
//! also gives labels: the sorted class-folder index.
//!
//! Images are decoded one at a time, when their item is read. Sizes are bounded: an
//! image wider or taller than [`MAX_SIDE`] or of more than [`MAX_PIXELS`] pixels is
//! refused before it is decoded, and so is a resize or crop beyond those limits.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::{DataError, Dataset, Input};

/// The largest image side, in pixels, that is decoded, resized to or cropped to.
pub const MAX_SIDE: u32 = 16384;
/// The most pixels (2^26) an image may have when decoded, resized or cropped.
pub const MAX_PIXELS: u64 = 1 << 26;

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
    /// Items as `[height, width, channels]` (a TensorFlow/Keras NHWC input) instead of
    /// `[channels, height, width]`.
    pub channels_last: bool,
}

impl ImageOptions {
    /// Options that fit images to `input`, `[batch, channels, height, width]` or, when
    /// its second dimension is not 1 or 3 and its last is, channels-last `[batch,
    /// height, width, channels]`: its channel count (1 or 3; 3 where it is dynamic) and
    /// its height and width, which `crop` (`[height, width]`) must equal where they are
    /// fixed and give where they are not. No resize, scale 1/255, no normalisation.
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
        let [_, d1, d2, d3] = input.dims[..] else {
            return Err(format(format!(
                "a folder of images feeds a [batch, channels, height, width] input; model \
                 input `{}` is {}",
                input.name,
                input.describe()
            )));
        };
        // A TensorFlow/Keras export, `[batch, height, width, channels]`.
        let channels_last = !matches!(d1, None | Some(1 | 3)) && matches!(d3, Some(1 | 3));
        let (c, h, w) = match channels_last {
            true => (d3, d1, d2),
            false => (d1, d2, d3),
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
                let (ch, cw) = (crop[0] as usize, crop[1] as usize);
                return Err(DataError::Shape {
                    path: format!("{path} (cropped to {}x{})", crop[0], crop[1]),
                    item: match channels_last {
                        true => vec![ch, cw, channels],
                        false => vec![channels, ch, cw],
                    },
                    input: input.name.clone(),
                    expected: input.describe(),
                    hint: String::new(),
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
            channels_last,
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

/// Refuses `[height, width]` when it exceeds [`MAX_SIDE`] or [`MAX_PIXELS`]; `what`
/// says which size it is (the file, or the option and its flag).
fn check_size(what: &str, [h, w]: [u32; 2]) -> Result<(), String> {
    if h > MAX_SIDE || w > MAX_SIDE || u64::from(h) * u64::from(w) > MAX_PIXELS {
        return Err(format!(
            "{what} is {h}x{w} (height x width); the limit is {MAX_SIDE} pixels a side and \
             {MAX_PIXELS} (2^26) pixels"
        ));
    }
    Ok(())
}

impl ImageOptions {
    /// Checks the channels (1 or 3), the crop and resize: not empty, a resize not smaller than the crop, both
    /// within [`MAX_SIDE`] and [`MAX_PIXELS`].
    ///
    /// # Errors
    /// The first size at fault, named with its option and flag.
    pub fn check(&self) -> Result<(), String> {
        if self.channels != 1 && self.channels != 3 {
            return Err(format!(
                "{} channels; images give 1 (grayscale) or 3 (RGB)",
                self.channels
            ));
        }
        let [h, w] = self.crop;
        check_size("the crop (--crop)", self.crop)?;
        match self.resize {
            Some(Resize::Exact(size)) => check_size("the resize (--resize)", size)?,
            Some(Resize::Shorter(n)) => check_size("the resize (--resize)", [n, n])?,
            None => {}
        }
        let resize_small = match self.resize {
            Some(Resize::Exact([rh, rw])) => rh < h || rw < w,
            Some(Resize::Shorter(n)) => n == 0,
            None => false,
        };
        if h == 0 || w == 0 || resize_small {
            return Err(format!(
                "cannot crop {h}x{w} (height x width) after resizing to {:?}",
                self.resize
            ));
        }
        Ok(())
    }

    /// The `[width, height]` an image of `[width, height]` `size` is resized to.
    fn resized(&self, (iw, ih): (u32, u32)) -> (u32, u32) {
        let [h, w] = self.crop;
        let (iw, ih) = (iw.max(1), ih.max(1));
        match self.resize {
            Some(Resize::Exact([rh, rw])) => (rw, rh),
            shorter => {
                let short = match shorter {
                    Some(Resize::Shorter(n)) => n,
                    _ => h.max(w),
                };
                let scale = short as f32 / iw.min(ih) as f32;
                // `as` saturates: a huge result fails the size check, it does not wrap.
                (
                    ((iw as f32 * scale).round() as u32).max(w),
                    ((ih as f32 * scale).round() as u32).max(h),
                )
            }
        }
    }

    /// The decoding limits: [`MAX_SIDE`] a side, and memory for [`MAX_PIXELS`] pixels of
    /// 16-bit RGBA.
    fn limits() -> image::Limits {
        let mut l = image::Limits::default();
        l.max_image_width = Some(MAX_SIDE);
        l.max_image_height = Some(MAX_SIDE);
        l.max_alloc = Some(MAX_PIXELS * 8);
        l
    }
}

/// The image files of a folder and how they become items.
#[derive(Clone, Debug)]
pub(crate) struct Folder {
    files: Vec<PathBuf>,
    options: ImageOptions,
}

impl Folder {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Image `i`'s file.
    pub fn file(&self, i: usize) -> Option<&Path> {
        self.files.get(i).map(PathBuf::as_path)
    }

    /// Image `i` as CHW floats (bytes times `o.scale`), appended to `out`.
    pub fn read(&self, i: usize, out: &mut Vec<f32>) -> Result<(), DataError> {
        let path = self.files.get(i).ok_or_else(|| DataError::Format {
            path: format!("image {i}"),
            why: format!("out of range: the folder has {} images", self.files.len()),
        })?;
        decode(path, &self.options, out)
    }
}

/// The images directly in `dir`, or, when it holds only folders, in each class folder
/// with its label (class folders in name order), in name order.
///
/// # Errors
/// An unreadable folder; no image at all (saying when the folder is empty).
pub(crate) fn list(dir: &Path) -> Result<Vec<(PathBuf, Option<i64>)>, DataError> {
    let entries = sorted(dir)?;
    let classes: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    let mut files: Vec<(PathBuf, Option<i64>)> = Vec::new();
    if !classes.is_empty() && entries.iter().all(|p| p.is_dir()) {
        for (label, class) in classes.iter().enumerate() {
            let label = i64::try_from(label).unwrap_or(i64::MAX);
            for f in sorted(class)?.into_iter().filter(|p| is_image(p)) {
                files.push((f, Some(label)));
            }
        }
    } else {
        files = entries
            .iter()
            .filter(|p| is_image(p))
            .map(|p| (p.clone(), None))
            .collect();
    }
    if files.is_empty() {
        let what = match entries.is_empty() {
            true => "the folder is empty",
            false => "no .png/.jpg/.jpeg images here (directly or in class folders)",
        };
        return Err(DataError::Format {
            path: dir.display().to_string(),
            why: format!(
                "{what}: give a folder of images, or of .npz files (one item each, an array \
                 per input)"
            ),
        });
    }
    Ok(files)
}

/// Lists every image under `dir` ([`list`]), and checks each one's size from its
/// header; decodes none.
///
/// # Errors
/// An unreadable folder, a file that is not a PNG or JPEG image (named), an image or
/// its resized size beyond the limits (named), no images at all, a crop or resize of
/// size 0, a resize smaller than the crop or beyond the limits, mean/std counts that do
/// not match the channels.
pub fn load(dir: &Path, o: &ImageOptions) -> Result<Dataset, DataError> {
    load_listed(dir, list(dir)?, o)
}

/// [`load`] of the `files` [`list`] gave for `dir` (a caller that listed the folder
/// first, to report an empty one before anything else, does not list it again).
///
/// # Errors
/// As [`load`].
pub(crate) fn load_listed(
    dir: &Path,
    files: Vec<(PathBuf, Option<i64>)>,
    o: &ImageOptions,
) -> Result<Dataset, DataError> {
    let format = |why: String| DataError::Format {
        path: dir.display().to_string(),
        why,
    };
    o.check().map_err(format)?;
    let [h, w] = o.crop;
    for (f, _) in &files {
        let size = dimensions(f)?;
        let (rw, rh) = o.resized(size);
        check_size(
            &format!("resized, the image ({}x{})", size.1, size.0),
            [rh, rw],
        )
        .map_err(|why| DataError::Format {
            path: f.display().to_string(),
            why,
        })?;
    }
    let labels: Option<Vec<i64>> = files.iter().map(|(_, l)| *l).collect();
    let folder = Folder {
        files: files.into_iter().map(|(f, _)| f).collect(),
        options: o.clone(),
    };
    let (h, w) = (h as usize, w as usize);
    let (item, channel_axis) = match o.channels_last {
        true => (vec![h, w, o.channels], 2),
        false => (vec![o.channels, h, w], 0),
    };
    let mut d = Dataset::from_folder(
        dir.display().to_string(),
        (item, channel_axis),
        folder,
        labels,
    );
    d.normalize(&o.mean, &o.std).map_err(format)?;
    Ok(d)
}

/// Opens `path` as an image (its format guessed from its content).
fn reader(path: &Path) -> Result<image::ImageReader<std::io::BufReader<std::fs::File>>, DataError> {
    let bad = |e: &dyn std::fmt::Display| DataError::Format {
        path: path.display().to_string(),
        why: format!("cannot decode image: {e}"),
    };
    let r = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| bad(&e))?;
    Ok(r)
}

/// The `(width, height)` in `path`'s header, within the limits (reading a header
/// allocates little; the sizes are checked here to say which limit).
fn dimensions(path: &Path) -> Result<(u32, u32), DataError> {
    let (w, h) = reader(path)?
        .into_dimensions()
        .map_err(|e| DataError::Format {
            path: path.display().to_string(),
            why: format!("cannot decode image: {e}"),
        })?;
    check_size("the image", [h, w]).map_err(|why| DataError::Format {
        path: path.display().to_string(),
        why,
    })?;
    Ok((w, h))
}

/// One image as CHW floats (bytes times `o.scale`), appended to `out`.
fn decode(path: &Path, o: &ImageOptions, out: &mut Vec<f32>) -> Result<(), DataError> {
    let bad = |e: &dyn std::fmt::Display| DataError::Format {
        path: path.display().to_string(),
        why: format!("cannot decode image: {e}"),
    };
    let mut r = reader(path)?;
    r.limits(ImageOptions::limits());
    let img = r.decode().map_err(|e| bad(&e))?;
    let [h, w] = o.crop;
    let (iw, ih) = (img.width(), img.height());
    let (rw, rh) = o.resized((iw, ih));
    // The header was checked when the folder was listed; the file may have changed.
    check_size("resized, the image", [rh, rw]).map_err(|e| bad(&e))?;
    let img = if (rw, rh) == (iw, ih) {
        img
    } else {
        img.resize_exact(rw, rh, FilterType::Triangle)
    };
    let img = img.crop_imm((rw - w) / 2, (rh - h) / 2, w, h);
    if o.channels == 1 {
        out.extend(img.to_luma8().pixels().map(|p| p.0[0] as f32 * o.scale));
    } else if o.channels_last {
        let rgb = img.to_rgb8();
        out.extend(rgb.pixels().flat_map(|p| p.0).map(|b| b as f32 * o.scale));
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
        Input::new("x", dims.to_vec())
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
        assert_eq!(d.item_shape(), [3, 4, 4]);
        assert_eq!(d.labels(), Some(&[0, 1][..]));
        assert_eq!(d.held_values(), 0, "decoded when read");
        // Bytes times 1/255, as IDX bytes are. Red plane of the first image:
        // (255/255 - 0.5) / 0.5; green (127/255 - 0.5) / 0.5.
        let px = |b: f32| b * (1.0 / 255.0);
        let both = d.read(0, 2).unwrap();
        assert_eq!(both[0], (px(255.0) - 0.5) / 0.5);
        assert_eq!(both[16], (px(127.0) - 0.5) / 0.5);
        assert_eq!(both[48], -1.0);
        assert_eq!(d.gather(&[1, 0]).unwrap()[48..], both[..48]);
        // Per-channel mean and std; an exact resize to 4x6, then the crop.
        let o = ImageOptions {
            resize: Some(Resize::Exact([4, 6])),
            mean: vec![0.0, 0.5, 1.0],
            std: vec![1.0, 2.0, 4.0],
            ..o
        };
        let d = load(&dir, &o).unwrap();
        let first = d.read(0, 1).unwrap();
        assert_eq!(first[0], px(255.0));
        assert_eq!(first[16], (px(127.0) - 0.5) / 2.0);
        assert_eq!(first[32], (0.0 - 1.0) / 4.0);
        let o = ImageOptions {
            resize: Some(Resize::Exact([3, 6])),
            ..o
        };
        let err = load(&dir, &o).unwrap_err().to_string();
        assert!(err.contains("cannot crop 4x4"), "{err}");
        // Over the limits: the resize, the crop, a resized image, an image itself.
        let over = |resize, crop| {
            let o = ImageOptions {
                resize,
                crop,
                ..o.clone()
            };
            load(&dir, &o).unwrap_err().to_string()
        };
        let limit = "the limit is 16384 pixels a side and 67108864 (2^26) pixels";
        let err = over(Some(Resize::Exact([60000, 60000])), [4, 4]);
        assert_eq!(
            err,
            format!(
                "{}: the resize (--resize) is 60000x60000 (height x width); {limit}",
                dir.display()
            )
        );
        let err = over(Some(Resize::Exact([8193, 8192])), [4, 4]);
        assert!(
            err.contains("(--resize) is 8193x8192 (height x width); the limit"),
            "{err}"
        );
        let err = over(None, [16385, 4]);
        assert!(err.contains("the crop (--crop) is 16385x4"), "{err}");
        let err = over(Some(Resize::Shorter(8193)), [4, 4]);
        assert!(err.contains("(--resize) is 8193x8193"), "{err}");
        // A 1x10 image with its shorter side to 2000 is 20000 wide.
        let tall = dir.join("a_cat").join("tall.png");
        image::GrayImage::new(10, 1).save(&tall).unwrap();
        let err = over(Some(Resize::Shorter(2000)), [4, 4]);
        assert!(
            err.contains(
                "a_cat/tall.png: resized, the image (1x10) is 2000x20000 (height x width)"
            ),
            "{err}"
        );
        std::fs::remove_file(&tall).unwrap();
        let o = ImageOptions { resize: None, ..o };
        let wide = dir.join("a_cat").join("3.png");
        image::GrayImage::new(16385, 1).save(&wide).unwrap();
        let err = load(&dir, &o).unwrap_err().to_string();
        assert!(
            err.contains("3.png: the image is 1x16385 (height x width); the limit"),
            "{err}"
        );
        std::fs::remove_file(&wide).unwrap();
        std::fs::write(dir.join("b_dog").join("2.png"), b"not a png").unwrap();
        let err = load(&dir, &o).unwrap_err().to_string();
        assert!(
            err.contains("2.png") && err.contains("cannot decode"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A channels-last input (`[batch, 48, 48, 3]`, a Keras export) takes each image as
    /// `[height, width, channels]`: the channels-first values transposed, with the
    /// per-channel mean and std on the right channel.
    #[test]
    fn channels_last_items_are_the_transposed_image() {
        let dir = tempfile::tempdir().unwrap();
        // 5x5, so fitting it to 4x5 is a crop alone (no resampling).
        let mut img = image::RgbImage::new(5, 5);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(10 * x + y) as u8, (50 + 3 * x) as u8, (200 - 7 * y) as u8]);
        }
        img.save(dir.path().join("a.png")).unwrap();
        let norm = |o: ImageOptions| ImageOptions {
            mean: vec![0.1, 0.2, 0.3],
            std: vec![0.5, 1.0, 2.0],
            ..o
        };
        let nhwc = input(&[None, Some(4), Some(5), Some(3)]);
        let nchw = input(&[None, Some(3), Some(4), Some(5)]);
        let last = norm(ImageOptions::for_input(&nhwc, dir.path(), None).unwrap());
        let first = norm(ImageOptions::for_input(&nchw, dir.path(), None).unwrap());
        assert!(last.channels_last && !first.channels_last);
        let (dl, df) = (
            load(dir.path(), &last).unwrap(),
            load(dir.path(), &first).unwrap(),
        );
        assert_eq!(
            (dl.item_shape(), df.item_shape()),
            (&[4, 5, 3][..], &[3, 4, 5][..])
        );
        let (l, f) = (dl.read(0, 1).unwrap(), df.read(0, 1).unwrap());
        for c in 0..3 {
            for p in 0..20 {
                assert_eq!(l[p * 3 + c], f[c * 20 + p], "channel {c}, pixel {p}");
            }
        }
        // Pixel (x 1, y 0): green byte 53, (53/255 - 0.2) / 1.
        assert_eq!(l[3 + 1], 53.0 * (1.0 / 255.0) - 0.2);
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
