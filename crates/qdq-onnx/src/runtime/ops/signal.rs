//! Signal ops (opset 17): HannWindow, HammingWindow, BlackmanWindow, DFT, STFT and
//! MelWeightMatrix. Complex values are ONNX's `[..., 2]` (real, imaginary) layout; the
//! DFT is the direct O(n²) sum in f64, refused above [`MAX_DFT_WORK`] multiply-adds.

use std::f64::consts::PI;

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::host::{Host, ints_of};
use super::{Ctx, norm_axis};

/// Most complex multiply-adds one DFT or STFT node may do (2^32): a model asking for
/// more (a huge `dft_length`) gets an error rather than an hours-long loop.
pub(crate) const MAX_DFT_WORK: u64 = 1 << 32;

/// One scalar integer input (window size, dft_length, frame_step...).
fn scalar_int(ctx: &Ctx, i: usize, what: &str) -> RunResult<Option<i64>> {
    match ctx.opt(i) {
        None => Ok(None),
        Some(v) => match ints_of(&v, what)?.as_slice() {
            [n] => Ok(Some(*n)),
            other => Err(op_err(format!("{what} must be one value, got {other:?}"))),
        },
    }
}

/// A size read from a tensor, which must be positive and fit the runtime's limit.
fn size(n: i64, what: &str) -> RunResult<usize> {
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| op_err(format!("{what} must be at least 1, got {n}")))?;
    checked_numel("", what, &[n])?;
    Ok(n)
}

/// HannWindow / HammingWindow / BlackmanWindow(size; periodic = 1): the cosine-sum
/// window of `size` points, periodic (denominator `size`) or symmetric (`size - 1`).
pub(crate) fn window(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let n = size(
        scalar_int(ctx, 0, "size")?.ok_or_else(|| op_err("missing size"))?,
        "size",
    )?;
    if ctx.int_attr("output_datatype", 1) != 1 {
        return Err(op_err("only float32 output_datatype is supported"));
    }
    let periodic = ctx.int_attr("periodic", 1) != 0;
    let denom = if periodic { n } else { n - 1 }.max(1) as f64;
    let coef: &[f64] = match op {
        "HannWindow" => &[0.5, 0.5],
        "HammingWindow" => &[25.0 / 46.0, 21.0 / 46.0],
        _ => &[0.42, 0.5, 0.08],
    };
    let w = (0..n)
        .map(|k| {
            let t = 2.0 * PI * k as f64 / denom;
            let mut s = coef[0] - coef[1] * t.cos();
            if let Some(c2) = coef.get(2) {
                s += c2 * (2.0 * t).cos();
            }
            s as f32
        })
        .collect();
    Ok(vec![Host::f32(w, vec![n]).into_value(ctx.device)?])
}

/// The DFT of `len` points (`re`, `im`, zero-padded or truncated to `n`), keeping the
/// first `bins` outputs; the inverse is scaled by `1/n`.
fn dft(re: &[f64], im: &[f64], n: usize, bins: usize, inverse: bool) -> Vec<(f64, f64)> {
    let sign = if inverse { 1.0 } else { -1.0 };
    let m = re.len().min(n);
    (0..bins)
        .map(|k| {
            let (mut a, mut b) = (0.0, 0.0);
            for t in 0..m {
                let ang = sign * 2.0 * PI * ((k * t) % n) as f64 / n as f64;
                let (s, c) = ang.sin_cos();
                a += re[t] * c - im[t] * s;
                b += re[t] * s + im[t] * c;
            }
            if inverse {
                (a / n as f64, b / n as f64)
            } else {
                (a, b)
            }
        })
        .collect()
}

fn check_work(signals: usize, n: usize, bins: usize) -> RunResult<()> {
    let work = (signals as u64)
        .checked_mul(n as u64)
        .and_then(|w| w.checked_mul(bins as u64));
    match work {
        Some(w) if w <= MAX_DFT_WORK => Ok(()),
        _ => Err(op_err(format!(
            "a DFT of {signals} signal(s) of length {n} is too much work (limit {MAX_DFT_WORK} multiply-adds)"
        ))),
    }
}

/// DFT(input `[.., L, .., 1|2]`, dft_length?; axis = 1, inverse = 0, onesided = 0) →
/// `[.., n or n/2+1, .., 2]`.
pub(crate) fn dft_op(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    let r = x.shape.len();
    let c = x.shape.last().copied().unwrap_or(0);
    if r < 2 || !(c == 1 || c == 2) {
        return Err(op_err(format!(
            "input must be [.., signal, .., 1 or 2], got {:?}",
            x.shape
        )));
    }
    let a = norm_axis(ctx.int_attr("axis", 1), r)?;
    if a == r - 1 {
        return Err(op_err("axis cannot be the last (complex) dim"));
    }
    let len = x.shape[a];
    let n = match scalar_int(ctx, 1, "dft_length")? {
        Some(n) => size(n, "dft_length")?,
        None => len.max(1),
    };
    let inverse = ctx.int_attr("inverse", 0) != 0;
    let onesided = ctx.int_attr("onesided", 0) != 0;
    if inverse && onesided {
        return Err(op_err("inverse one-sided DFT is not supported"));
    }
    let bins = if onesided { n / 2 + 1 } else { n };
    let outer: usize = x.shape[..a].iter().product();
    let inner: usize = x.shape[a + 1..r - 1].iter().product();
    let mut shape = x.shape.clone();
    shape[a] = bins;
    shape[r - 1] = 2;
    checked_numel("", "", &shape)?;
    check_work(outer * inner, n, bins)?;
    let v = x.to_f64();
    let mut out = vec![0f32; shape.iter().product()];
    for o in 0..outer {
        for j in 0..inner {
            let at = |t: usize, p: usize| ((o * len + t) * inner + j) * c + p;
            let re: Vec<f64> = (0..len).map(|t| v[at(t, 0)]).collect();
            let im: Vec<f64> = (0..len)
                .map(|t| if c == 2 { v[at(t, 1)] } else { 0.0 })
                .collect();
            for (k, (p, q)) in dft(&re, &im, n, bins, inverse).into_iter().enumerate() {
                let b = ((o * bins + k) * inner + j) * 2;
                out[b] = p as f32;
                out[b + 1] = q as f32;
            }
        }
    }
    Ok(vec![Host::f32(out, shape).into_value(ctx.device)?])
}

/// STFT(signal `[B, L, 1|2]`, frame_step, window? `[W]`, frame_length?; onesided = 1)
/// → `[B, frames, bins, 2]` with `frames = 1 + (L - W) / frame_step`.
pub(crate) fn stft(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    let [b, len, c] = match x.shape.as_slice() {
        &[b, l, c] if c == 1 || c == 2 => [b, l, c],
        _ => {
            return Err(op_err(format!(
                "signal must be [batch, length, 1 or 2], got {:?}",
                x.shape
            )));
        }
    };
    let step = size(
        scalar_int(ctx, 1, "frame_step")?.ok_or_else(|| op_err("missing frame_step"))?,
        "frame_step",
    )?;
    let window = match ctx.opt(2) {
        Some(w) => Some(Host::read(&w)?.to_f64()),
        None => None,
    };
    let flen = match (scalar_int(ctx, 3, "frame_length")?, &window) {
        (Some(n), _) => size(n, "frame_length")?,
        (None, Some(w)) => w.len(),
        (None, None) => len,
    };
    if window.as_ref().is_some_and(|w| w.len() != flen) || flen == 0 || flen > len {
        return Err(op_err(format!(
            "frame_length {flen} must match the window and fit the signal length {len}"
        )));
    }
    let onesided = ctx.int_attr("onesided", 1) != 0 && c == 1;
    let bins = if onesided { flen / 2 + 1 } else { flen };
    let frames = 1 + (len - flen) / step;
    let shape = vec![b, frames, bins, 2];
    checked_numel("", "", &shape)?;
    check_work(b * frames, flen, bins)?;
    let v = x.to_f64();
    let mut out = Vec::with_capacity(shape.iter().product());
    for bi in 0..b {
        for f in 0..frames {
            let at = |t: usize, p: usize| (bi * len + f * step + t) * c + p;
            let w = |t: usize| window.as_ref().map_or(1.0, |w| w[t]);
            let re: Vec<f64> = (0..flen).map(|t| v[at(t, 0)] * w(t)).collect();
            let im: Vec<f64> = (0..flen)
                .map(|t| if c == 2 { v[at(t, 1)] * w(t) } else { 0.0 })
                .collect();
            for (p, q) in dft(&re, &im, flen, bins, false) {
                out.extend([p as f32, q as f32]);
            }
        }
    }
    Ok(vec![Host::f32(out, shape).into_value(ctx.device)?])
}

/// MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz,
/// upper_edge_hertz) → `[dft_length/2 + 1, num_mel_bins]` triangular filters, as ONNX's
/// reference computes them (bin edges floored to DFT bins).
pub(crate) fn mel_weight_matrix(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let int = |i, w| scalar_int(ctx, i, w)?.ok_or_else(|| op_err(format!("missing {w}")));
    let mels = size(int(0, "num_mel_bins")?, "num_mel_bins")?;
    let dft_len = size(int(1, "dft_length")?, "dft_length")?;
    let rate = size(int(2, "sample_rate")?, "sample_rate")? as f64;
    let hz = |i: usize| -> RunResult<f64> {
        Host::read(&ctx.input(i)?)?
            .to_f64()
            .first()
            .copied()
            .ok_or_else(|| op_err("empty edge frequency"))
    };
    let (lo, hi) = (hz(3)?, hz(4)?);
    let spec = dft_len / 2 + 1;
    checked_numel("", "", &[spec, mels])?;
    let to_mel = |f: f64| 2595.0 * (f / 700.0).ln_1p() / 10f64.ln();
    let (lm, hm) = (to_mel(lo), to_mel(hi));
    let step = (hm - lm) / (mels + 2) as f64;
    let edges: Vec<i64> = (0..mels + 2)
        .map(|i| {
            let f = 700.0 * ((i as f64 * step + lm) / 2595.0 * 10f64.ln()).exp_m1();
            (((dft_len + 1) as f64 * f) / rate).floor() as i64
        })
        .collect();
    let mut out = vec![0f32; spec * mels];
    let mut set = |j: i64, i: usize, v: f64| -> RunResult<()> {
        let j = usize::try_from(j)
            .ok()
            .filter(|&j| j < spec)
            .ok_or_else(|| op_err(format!("mel bin edge {j} is outside [0, {spec})")))?;
        out[j * mels + i] = v as f32;
        Ok(())
    };
    for i in 0..mels {
        let (l, ce, h) = (edges[i], edges[i + 1], edges[i + 2]);
        if ce == l {
            set(ce, i, 1.0)?;
        } else {
            for j in l..=ce {
                set(j, i, (j as f64 - l as f64) / (ce as f64 - l as f64))?;
            }
        }
        for j in ce..h {
            set(j, i, (h as f64 - j as f64) / (h as f64 - ce as f64))?;
        }
    }
    Ok(vec![
        Host::f32(out, vec![spec, mels]).into_value(ctx.device)?,
    ])
}
