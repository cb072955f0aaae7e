//! RoiAlign (opset 16): average or max of bilinear samples over each region of
//! interest of X `[N, C, H, W]`, as ONNX's reference (and onnxruntime) computes it.

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::Ctx;
use super::host::{Host, ints_of};

/// Most bilinear samples one RoiAlign node may take (2^32): the sampling grid grows
/// with the region size read from `rois`, so a huge region gets an error, not a hang.
const MAX_SAMPLES: u64 = 1 << 32;

/// The four taps and weights of a bilinear sample at `(y, x)` (all zero outside the
/// `[-1, H] x [-1, W]` margin).
fn taps(h: usize, w: usize, y: f64, x: f64) -> [(usize, f64); 4] {
    if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 {
        return [(0, 0.0); 4];
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let (mut yl, mut xl) = (y as usize, x as usize);
    let yh = if yl >= h - 1 {
        yl = h - 1;
        y = yl as f64;
        yl
    } else {
        yl + 1
    };
    let xh = if xl >= w - 1 {
        xl = w - 1;
        x = xl as f64;
        xl
    } else {
        xl + 1
    };
    let (ly, lx) = (y - yl as f64, x - xl as f64);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    [
        (yl * w + xl, hy * hx),
        (yl * w + xh, hy * lx),
        (yh * w + xl, ly * hx),
        (yh * w + xh, ly * lx),
    ]
}

/// RoiAlign(X, rois `[R, 4]` (x1, y1, x2, y2), batch_indices `[R]`;
/// coordinate_transformation_mode = half_pixel, mode = avg, output_height = 1,
/// output_width = 1, sampling_ratio = 0, spatial_scale = 1) → `[R, C, oh, ow]`.
pub(crate) fn roi_align(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    let rois = Host::read(&Value::Float(ctx.float(1)?))?;
    let batch = ints_of(&ctx.input(2)?, "batch_indices")?;
    let &[n, c, h, w] = x.shape.as_slice() else {
        return Err(op_err(format!("X must be [N, C, H, W], got {:?}", x.shape)));
    };
    let r = batch.len();
    if rois.shape != [r, 4] || h == 0 || w == 0 {
        return Err(op_err(format!(
            "rois must be [{r}, 4] for {r} batch indices (and X non-empty), got {:?}",
            rois.shape
        )));
    }
    let dim = |name: &str| {
        usize::try_from(ctx.int_attr(name, 1))
            .ok()
            .filter(|&v| v >= 1)
            .ok_or_else(|| op_err(format!("{name} must be at least 1")))
    };
    let (oh, ow) = (dim("output_height")?, dim("output_width")?);
    let shape = vec![r, c, oh, ow];
    checked_numel("", "", &shape)?;
    let ratio = ctx.int_attr("sampling_ratio", 0);
    let scale = ctx.float_attr("spatial_scale", 1.0) as f64;
    let half = ctx.string_attr("coordinate_transformation_mode", "half_pixel") == "half_pixel";
    let avg = match ctx.string_attr("mode", "avg").as_str() {
        "avg" => true,
        "max" => false,
        m => return Err(op_err(format!("unknown mode `{m}`"))),
    };
    let xv = x.to_f64();
    let rv = rois.to_f64();
    let mut out = Vec::with_capacity(shape.iter().product());
    let mut samples: u64 = 0;
    for (k, &b) in batch.iter().enumerate() {
        let b = usize::try_from(b)
            .ok()
            .filter(|&b| b < n)
            .ok_or_else(|| op_err(format!("batch index {b} is out of range [0, {n})")))?;
        let off = if half { 0.5 } else { 0.0 };
        let q = &rv[k * 4..k * 4 + 4];
        let (sw, sh) = (q[0] * scale - off, q[1] * scale - off);
        let (mut rw, mut rh) = (q[2] * scale - off - sw, q[3] * scale - off - sh);
        if !half {
            rw = rw.max(1.0);
            rh = rh.max(1.0);
        }
        let (bh, bw) = (rh / oh as f64, rw / ow as f64);
        let grid = |size: f64| -> RunResult<usize> {
            let g = if ratio > 0 { ratio as f64 } else { size.ceil() };
            if !g.is_finite() || g > MAX_SAMPLES as f64 {
                return Err(op_err(format!("region {q:?} is too large to sample")));
            }
            Ok(g.max(0.0) as usize)
        };
        let (gh, gw) = (grid(bh)?, grid(bw)?);
        let per_roi = (gh as u64)
            .saturating_mul(gw as u64)
            .saturating_mul((c * oh * ow) as u64);
        samples = samples.saturating_add(per_roi);
        if samples > MAX_SAMPLES {
            return Err(op_err(format!(
                "the regions need more than {MAX_SAMPLES} samples"
            )));
        }
        let count = (gh as f64 * gw as f64).max(1.0);
        for ch in 0..c {
            let plane = &xv[(b * c + ch) * h * w..][..h * w];
            for ph in 0..oh {
                for pw in 0..ow {
                    let mut acc: Option<f64> = None;
                    for iy in 0..gh {
                        let y = sh + ph as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
                        for ix in 0..gw {
                            let x = sw + pw as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
                            let t = taps(h, w, y, x);
                            let v = if avg {
                                t.iter().map(|&(p, wt)| wt * plane[p]).sum()
                            } else {
                                t.iter()
                                    .map(|&(p, wt)| wt * plane[p])
                                    .fold(f64::NEG_INFINITY, f64::max)
                            };
                            acc = Some(match acc {
                                None => v,
                                Some(a) if avg => a + v,
                                Some(a) => a.max(v),
                            });
                        }
                    }
                    let v = acc.unwrap_or(0.0);
                    out.push((if avg { v / count } else { v }) as f32);
                }
            }
        }
    }
    Ok(vec![Host::f32(out, shape).into_value(ctx.device)?])
}
