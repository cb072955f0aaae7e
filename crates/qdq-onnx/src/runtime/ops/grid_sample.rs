//! GridSample (opset 16, 2-D): samples X `[N, C, H, W]` at the normalized points of grid
//! `[N, H_out, W_out, 2]` (`(x, y)` in `[-1, 1]`), modes bilinear / nearest / bicubic
//! (and opset 20's names linear / cubic), padding zeros / border / reflection, following
//! ONNX's reference implementation.

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::Ctx;
use super::host::Host;

#[derive(Clone, Copy, PartialEq)]
enum Pad {
    Zeros,
    Border,
    Reflection,
}

/// Reflects `x` into `[lo, hi]` by folding at the nearest border repeatedly.
fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let rng = hi - lo;
    if rng <= 0.0 {
        return lo;
    }
    let fold = |d: f64, near: f64, far: f64, sign: f64| {
        let n = (d / rng).floor();
        let r = d - n * rng;
        if n % 2.0 == 0.0 {
            near + sign * r
        } else {
            far - sign * r
        }
    };
    if x < lo {
        fold(lo - x, lo, hi, 1.0)
    } else if x > hi {
        fold(x - hi, hi, lo, -1.0)
    } else {
        x
    }
}

/// Keys cubic convolution weights (alpha = -0.75) of the 4 taps around fraction `t`.
fn cubic(t: f64) -> [f64; 4] {
    let a = -0.75;
    let f1 = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    let f0 = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    [f1(t + 1.0), f0(t), f0(1.0 - t), f1(2.0 - t)]
}

/// One sampling axis of length `len`: its reflection borders and the padding rule.
struct Axis {
    len: usize,
    lo: f64,
    hi: f64,
    pad: Pad,
}

impl Axis {
    /// The input index tap `i` reads, or `None` for a zero.
    fn tap(&self, i: i64) -> Option<usize> {
        let d = self.len as i64;
        let j = match self.pad {
            Pad::Zeros => i,
            Pad::Border => i.clamp(0, d - 1),
            Pad::Reflection => reflect(i as f64, self.lo, self.hi) as i64,
        };
        (0..d).contains(&j).then_some(j as usize)
    }

    /// Source coordinate of normalized `g`, adjusted for border/reflection padding.
    fn coord(&self, g: f64, align: bool, nearest: bool) -> f64 {
        let n = self.len as f64;
        let mut x = if align {
            (g + 1.0) / 2.0 * (n - 1.0)
        } else {
            ((g + 1.0) * n - 1.0) / 2.0
        };
        if nearest {
            x = x.round_ties_even();
        }
        if x < self.lo || x > self.hi {
            x = match self.pad {
                Pad::Border => x.clamp(0.0, n - 1.0),
                Pad::Reflection => reflect(x, self.lo, self.hi),
                // every tap (up to 2 away) of a point 4 past the edge reads a zero, so
                // clamping there keeps the result and the tap arithmetic in range
                Pad::Zeros => x.clamp(-4.0 - n, n + 4.0),
            };
        }
        x
    }
}

/// GridSample(X, grid; mode = bilinear, padding_mode = zeros, align_corners = 0).
pub(crate) fn grid_sample(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    let g = Host::read(&Value::Float(ctx.float(1)?))?;
    let (&[n, c, h, w], &[gn, ho, wo, 2]) = (x.shape.as_slice(), g.shape.as_slice()) else {
        return Err(op_err(format!(
            "X must be [N, C, H, W] and grid [N, H_out, W_out, 2], got {:?} and {:?}",
            x.shape, g.shape
        )));
    };
    if gn != n || h == 0 || w == 0 {
        return Err(op_err(format!(
            "grid batch {gn} must match X {:?} (with non-empty H and W)",
            x.shape
        )));
    }
    let mode = ctx.string_attr("mode", "bilinear");
    let pad = match ctx.string_attr("padding_mode", "zeros").as_str() {
        "zeros" => Pad::Zeros,
        "border" => Pad::Border,
        "reflection" => Pad::Reflection,
        p => return Err(op_err(format!("unknown padding_mode `{p}`"))),
    };
    let align = ctx.int_attr("align_corners", 0) != 0;
    let axis = |len: usize| {
        let (lo, hi) = if align {
            (0.0, len as f64 - 1.0)
        } else {
            (-0.5, len as f64 - 0.5)
        };
        Axis { len, lo, hi, pad }
    };
    let (ay, ax) = (axis(h), axis(w));
    let shape = vec![n, c, ho, wo];
    checked_numel("", "", &shape)?;
    let (xv, gv) = (x.to_f64(), g.to_f64());
    let nearest = mode == "nearest";
    let mut out = Vec::with_capacity(shape.iter().product());
    for b in 0..n {
        for ch in 0..c {
            let plane = &xv[(b * c + ch) * h * w..][..h * w];
            let px = |yi: Option<usize>, xi: Option<usize>| match (yi, xi) {
                (Some(yi), Some(xi)) => plane[yi * w + xi],
                _ => 0.0,
            };
            for p in 0..ho * wo {
                let gp = (b * ho * wo + p) * 2;
                let sx = ax.coord(gv[gp], align, nearest);
                let sy = ay.coord(gv[gp + 1], align, nearest);
                if !sx.is_finite() || !sy.is_finite() {
                    return Err(op_err("grid holds a non-finite coordinate"));
                }
                let v = match mode.as_str() {
                    "nearest" => px(ay.tap(sy as i64), ax.tap(sx as i64)),
                    "bilinear" | "linear" => {
                        let (x0, y0) = (sx.floor(), sy.floor());
                        let (tx, ty) = (sx - x0, sy - y0);
                        let (x0, y0) = (x0 as i64, y0 as i64);
                        let row = |yi: i64| {
                            let r = ay.tap(yi);
                            (1.0 - tx) * px(r, ax.tap(x0)) + tx * px(r, ax.tap(x0 + 1))
                        };
                        (1.0 - ty) * row(y0) + ty * row(y0 + 1)
                    }
                    "bicubic" | "cubic" => {
                        let (x0, y0) = (sx.floor(), sy.floor());
                        let (wx, wy) = (cubic(sx - x0), cubic(sy - y0));
                        let (x0, y0) = (x0 as i64, y0 as i64);
                        let row = |yi: i64| {
                            let r = ay.tap(yi);
                            (0..4)
                                .map(|k| wx[k] * px(r, ax.tap(x0 - 1 + k as i64)))
                                .sum::<f64>()
                        };
                        (0..4).map(|k| wy[k] * row(y0 - 1 + k as i64)).sum()
                    }
                    m => return Err(op_err(format!("unknown mode `{m}`"))),
                };
                out.push(v as f32);
            }
        }
    }
    Ok(vec![Host::f32(out, shape).into_value(ctx.device)?])
}
