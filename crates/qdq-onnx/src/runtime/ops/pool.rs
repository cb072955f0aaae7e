//! Pooling: MaxPool/AveragePool (1-D and 2-D on burn's kernels, with ceil_mode,
//! dilations, asymmetric pads, count_include_pad), global pools, and LRN (AlexNet-era
//! models of the zoo still use it).

use burn::tensor::module::{avg_pool1d, avg_pool2d, max_pool1d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

use super::super::error::{RunResult, op_err};
use super::super::value::{DynTensor, Value, arr, dyn_map};
use super::Ctx;
use super::conv::{check_window_sizes, effective, geometry, pad_axis, window_out};
use super::elementwise::{Bin, binary};
use super::shape::{narrow, permute};
use burn::tensor::Float;
use rayon::prelude::*;

/// 1-D or 2-D pooling (max on the host where it can, else on burn's kernels).
#[derive(Clone, Copy)]
struct Pool {
    is_max: bool,
    cip: bool,
    ceil: bool,
}

impl Pool {
    fn run(
        &self,
        x: DynTensor<Float>,
        kernel: &[usize],
        strides: &[usize],
        pp: &[(usize, usize)],
        dil: &[usize],
    ) -> RunResult<DynTensor<Float>> {
        if self.is_max
            && let Some(y) = max_pool_host(&x, kernel, strides, pp, dil, self.ceil)?
        {
            return Ok(y);
        }
        self.run_burn(x, kernel, strides, pp, dil)
    }

    /// [`Pool::run`] on burn's kernels.
    fn run_burn(
        &self,
        x: DynTensor<Float>,
        kernel: &[usize],
        strides: &[usize],
        pp: &[(usize, usize)],
        dil: &[usize],
    ) -> RunResult<DynTensor<Float>> {
        let ceil = self.ceil;
        Ok(match (self.is_max, kernel.len()) {
            (true, 1) => {
                let o = MaxPoolOptions::new([kernel[0]])
                    .with_stride([strides[0]])
                    .with_padding_pairs([pp[0]])
                    .with_dilation([dil[0]])
                    .with_ceil_mode(ceil);
                DynTensor::from_tensor(max_pool1d(x.to_rank::<3>()?, o))
            }
            (true, _) => {
                let o = MaxPoolOptions::new(arr::<2>(kernel))
                    .with_stride(arr::<2>(strides))
                    .with_padding_pairs([pp[0], pp[1]])
                    .with_dilation(arr::<2>(dil))
                    .with_ceil_mode(ceil);
                DynTensor::from_tensor(max_pool2d(x.to_rank::<4>()?, o))
            }
            (false, 1) => {
                let o = AvgPoolOptions::new([kernel[0]])
                    .with_stride([strides[0]])
                    .with_padding_pairs([pp[0]])
                    .with_count_include_pad(self.cip)
                    .with_ceil_mode(ceil);
                DynTensor::from_tensor(avg_pool1d(x.to_rank::<3>()?, o))
            }
            (false, _) => {
                let o = AvgPoolOptions::new(arr::<2>(kernel))
                    .with_stride(arr::<2>(strides))
                    .with_padding_pairs([pp[0], pp[1]])
                    .with_count_include_pad(self.cip)
                    .with_ceil_mode(ceil);
                DynTensor::from_tensor(avg_pool2d(x.to_rank::<4>()?, o))
            }
        })
    }
}

/// Max pooling of a float tensor read in place ([`DynTensor::shared_host`]), 1-D or 2-D,
/// or `None` (another backend, an empty tensor): the same values as burn's kernel, which
/// also writes an i64 index per output and, for asymmetric pads, first copies the input
/// padded with -inf (a YOLO's SPP pools and a detector's stem were 5-8 % of
/// calibration). A window is the max of its rows' maxima (rows first, then columns:
/// max is exact and NaN wins in any order), so a 13x13 window costs 26 reads an output,
/// not 169. Taps in the padding are left out; a window with none inside is -inf, as
/// burn's -inf padding gives.
fn max_pool_host(
    x: &DynTensor<Float>,
    kernel: &[usize],
    strides: &[usize],
    pp: &[(usize, usize)],
    dil: &[usize],
    ceil: bool,
) -> RunResult<Option<DynTensor<Float>>> {
    if x.shape.contains(&0) || !(1..=2).contains(&kernel.len()) || x.rank() != kernel.len() + 2 {
        return Ok(None);
    }
    let Some(host) = x.shared_host() else {
        return Ok(None);
    };
    // 1-D as 2-D with one row.
    let lift = |v: &[usize], one: usize| -> Vec<usize> {
        match v.len() {
            1 => vec![one, v[0]],
            _ => v.to_vec(),
        }
    };
    let (kernel, strides, dil) = (lift(kernel, 1), lift(strides, 1), lift(dil, 1));
    let pads: Vec<(i64, i64)> = match pp.len() {
        1 => vec![(0, 0), (pp[0].0 as i64, pp[0].1 as i64)],
        _ => pp.iter().map(|&(a, b)| (a as i64, b as i64)).collect(),
    };
    let planes = x.shape[0] * x.shape[1];
    let spatial = lift(&x.shape[2..], 1);
    let (in_h, in_w) = (spatial[0], spatial[1]);
    let mut out = window_out(&spatial, &kernel, &strides, &dil, &pads, ceil)?;
    // With ceil_mode a last window starting in the end padding is dropped (PyTorch's
    // and ONNX Runtime's rule, and burn's).
    for (i, o) in out.iter_mut().enumerate() {
        if ceil && *o > 1 && (*o - 1) * strides[i] >= spatial[i] + pads[i].0 as usize {
            *o -= 1;
        }
    }
    let (out_h, out_w) = (out[0], out[1]);
    // An output's taps along one axis: input positions `start + k·dil` for k in lo..hi,
    // those inside the input (three numbers an output, whatever the kernel's size: the
    // size check bounds the work, not a list of every tap).
    let taps = |o: usize, axis: usize, len: usize| -> Taps {
        let start = (o * strides[axis]) as i64 - pads[axis].0;
        let d = dil[axis] as i64;
        let lo = if start >= 0 { 0 } else { (-start + d - 1) / d };
        let hi = match len as i64 - 1 - start {
            last if last < 0 => 0,
            last => last / d + 1,
        };
        Taps {
            start,
            dil: d,
            ks: lo as usize..(hi as usize).min(kernel[axis]),
        }
    };
    let cols: Vec<Taps> = (0..out_w).map(|o| taps(o, 1, in_w)).collect();
    let rows: Vec<Taps> = (0..out_h).map(|o| taps(o, 0, in_h)).collect();
    let max = |m: f32, v: f32| if v > m || v.is_nan() { v } else { m };
    let mut y = vec![0f32; planes * out_h * out_w];
    let src: &[f32] = &host;
    y.par_chunks_mut(out_h * out_w)
        .zip(src.par_chunks(in_h * in_w))
        .for_each_init(
            || vec![0f32; in_h * out_w],
            |across, (dst, plane)| {
                // Each input row's maxima over every output column's taps.
                for (row, acc) in plane.chunks(in_w).zip(across.chunks_mut(out_w)) {
                    for (a, c) in acc.iter_mut().zip(&cols) {
                        *a = c.positions().fold(f32::NEG_INFINITY, |m, i| max(m, row[i]));
                    }
                }
                for (line, r) in dst.chunks_mut(out_w).zip(&rows) {
                    line.fill(f32::NEG_INFINITY);
                    for i in r.positions() {
                        let acc = &across[i * out_w..(i + 1) * out_w];
                        line.iter_mut().zip(acc).for_each(|(d, &v)| *d = max(*d, v));
                    }
                }
            },
        );
    let mut shape = x.shape[..2].to_vec();
    if x.rank() == 4 {
        shape.push(out_h);
    }
    shape.push(out_w);
    match Value::try_from_f32(y, &shape, &x.device())? {
        Value::Float(t) => Ok(Some(t)),
        _ => Ok(None),
    }
}

/// The taps of one pooling window along one axis inside the input ([`max_pool_host`]).
struct Taps {
    start: i64,
    dil: i64,
    ks: std::ops::Range<usize>,
}

impl Taps {
    fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.ks
            .clone()
            .map(|k| (self.start + k as i64 * self.dil) as usize)
    }
}

pub(crate) fn pool(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let input = ctx.input(0)?;
    let int_type = match &input {
        Value::Int(_, e) => Some(*e),
        _ => None,
    };
    let x = super::as_float(input)?;
    let r = x.rank();
    if !(3..=5).contains(&r) {
        return Err(op_err(format!(
            "{op} on {}-D spatial input {:?} is not supported (1-D to 3-D only)",
            r.saturating_sub(2),
            x.shape
        )));
    }
    if op == "MaxPool" && ctx.wants_output(1) {
        return Err(op_err("MaxPool's Indices output is not supported"));
    }
    let n = r - 2;
    let kernel: Vec<usize> = ctx
        .ints_attr("kernel_shape")
        .filter(|k| k.len() == n && k.iter().all(|&v| v > 0))
        .ok_or_else(|| op_err("kernel_shape is required (one positive entry per spatial dim)"))?
        .into_iter()
        .map(|v| v as usize)
        .collect();
    let spatial = x.shape[2..].to_vec();
    let ceil = ctx.int_attr("ceil_mode", 0) != 0;
    let (strides, dil, pads) = geometry(ctx, &spatial, kernel.clone(), ceil)?;
    check_window_sizes(&x.shape, x.shape[1], &kernel, &strides, &dil, &pads, ceil)?;
    for i in 0..n {
        let eff = effective(kernel[i], dil[i])?;
        if pads[i].0 as usize >= eff || pads[i].1 as usize >= eff {
            return Err(op_err(format!(
                "pads {pads:?} must be smaller than the kernel"
            )));
        }
    }
    let pp: Vec<(usize, usize)> = pads
        .iter()
        .map(|&(a, b)| (a as usize, b as usize))
        .collect();
    let is_max = op == "MaxPool";
    if !is_max && dil.iter().any(|&d| d != 1) {
        return Err(op_err("AveragePool with dilations is not supported"));
    }
    let p = Pool {
        is_max,
        cip: ctx.int_attr("count_include_pad", 0) != 0,
        ceil,
    };
    let out = if n <= 2 {
        p.run(x, &kernel, &strides, &pp, &dil)?
    } else {
        // 3-D pooling is separable: pool (H, W) as 2-D, then D as 1-D
        let s = x.shape.clone();
        let (nb, c, d) = (s[0], s[1], s[2]);
        let y = x.reshape(&[nb, c * d, s[3], s[4]])?;
        let y = p.run(y, &kernel[1..], &strides[1..], &pp[1..], &dil[1..])?;
        let (h2, w2) = (y.shape[2], y.shape[3]);
        let y = permute(y.reshape(&[nb * c, d, h2 * w2])?, &[0, 2, 1])?;
        let y = p.run(y, &kernel[..1], &strides[..1], &pp[..1], &dil[..1])?;
        let d2 = y.shape[2];
        permute(y, &[0, 2, 1])?.reshape(&[nb, c, d2, h2, w2])?
    };
    Ok(vec![match int_type {
        Some(e) => super::float_to_int(out, e),
        None => Value::Float(out),
    }])
}

pub(crate) fn global_pool(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let x = ctx.float(0)?;
    if x.rank() < 3 {
        return Err(op_err(format!(
            "{op} needs N x C x spatial input, got {:?}",
            x.shape
        )));
    }
    if op == "GlobalMaxPool" && x.shape[2..].contains(&0) {
        // The max of no values is undefined (burn's kernel panics on it).
        return Err(op_err(format!(
            "{op} of an input with an empty spatial dimension: {:?}",
            x.shape
        )));
    }
    let mut shape = x.shape.clone();
    let mut t = x.t;
    for (d, dim) in shape.iter_mut().enumerate().skip(2) {
        t = if op == "GlobalAveragePool" {
            dyn_map!(t, |v, R| v.mean_dim(d))
        } else {
            dyn_map!(t, |v, R| v.max_dim(d))
        };
        *dim = 1;
    }
    Ok(vec![Value::Float(DynTensor::with(t, shape))])
}

pub(crate) fn lrn(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = ctx.float(0)?;
    if x.rank() < 2 {
        return Err(op_err("LRN needs a channel axis"));
    }
    let size = ctx.int_attr("size", 0);
    if size < 1 {
        return Err(op_err("LRN size must be positive"));
    }
    let (alpha, beta, bias) = (
        ctx.float_attr("alpha", 1e-4),
        ctx.float_attr("beta", 0.75),
        ctx.float_attr("bias", 1.0),
    );
    let c = x.shape[1];
    let sq = DynTensor::with(
        dyn_map!(x.t.clone(), |v, R| v.powi_scalar(2)),
        x.shape.clone(),
    );
    let lo = (size - 1) / 2;
    let hi = size - 1 - lo;
    // Taps past the last channel on either side only add zeros: a window wider than
    // the channels is summed over c - 1 each way (alpha still divides by `size`).
    let reach = c.saturating_sub(1) as i64;
    let (lo, hi) = (lo.min(reach), hi.min(reach));
    let padded = pad_axis(sq, 1, lo, hi)?;
    let mut acc: Option<Value> = None;
    for k in 0..=(lo + hi) as usize {
        let part = Value::Float(narrow(padded.clone(), 1, k, c)?);
        acc = Some(match acc {
            None => part,
            Some(a) => binary(a, part, Bin::Add)?,
        });
    }
    let Some(Value::Float(s)) = acc else {
        return Err(op_err("internal"));
    };
    let a = alpha / size as f32;
    // A tensor exponent, not powf_scalar: burn turns an integral scalar exponent into
    // an i64 and unwraps, a panic for a beta past i64's range (found by the
    // `runtime_graph` fuzz target).
    let den = dyn_map!(s.t, |v, R| {
        let base = v.mul_scalar(a).add_scalar(bias);
        let exponent = base.zeros_like().add_scalar(beta);
        base.powf(exponent)
    });
    let y = binary(
        Value::Float(x),
        Value::Float(DynTensor::with(den, s.shape)),
        Bin::Div,
    )?;
    Ok(vec![y])
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;

    #[test]
    fn host_max_pool_equals_burns_on_every_geometry() {
        let device = Device::flex();
        let p = Pool {
            is_max: true,
            cip: false,
            ceil: false,
        };
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as u32
        };
        let mut cases = 0;
        for rank in [3usize, 4] {
            for _ in 0..150 {
                let n = rank - 2;
                let k: Vec<usize> = (0..n).map(|_| 1 + next() as usize % 5).collect();
                let s: Vec<usize> = (0..n).map(|_| 1 + next() as usize % 3).collect();
                let d: Vec<usize> = (0..n).map(|_| 1 + next() as usize % 2).collect();
                let pp: Vec<(usize, usize)> = (0..n)
                    .map(|i| {
                        let eff = (k[i] - 1) * d[i] + 1;
                        (next() as usize % eff, next() as usize % eff)
                    })
                    .collect();
                let mut shape = vec![2, 3];
                shape.extend((0..n).map(|i| (k[i] - 1) * d[i] + 1 + next() as usize % 9));
                let len: usize = shape.iter().product();
                let mut data: Vec<f32> = (0..len)
                    .map(|_| (next() % 2001) as f32 / 100.0 - 10.0)
                    .collect();
                // Non-finite values: NaN must win its windows, -inf must not.
                if next() % 3 == 0 {
                    let at = next() as usize % len;
                    data[at] = f32::NAN;
                }
                let at = next() as usize % len;
                data[at] = f32::NEG_INFINITY;
                for ceil in [false, true] {
                    let p = Pool { ceil, ..p };
                    let x = match Value::from_f32(data.clone(), &shape, &device) {
                        Value::Float(t) => t,
                        _ => unreachable!(),
                    };
                    let got = max_pool_host(&x, &k, &s, &pp, &d, ceil).unwrap().unwrap();
                    let want = p.run_burn(x, &k, &s, &pp, &d).unwrap();
                    assert_eq!(
                        got.shape, want.shape,
                        "{shape:?} k {k:?} s {s:?} d {d:?} pads {pp:?} ceil {ceil}"
                    );
                    let (g, w) = (got.to_vec().unwrap(), want.to_vec().unwrap());
                    let bits = |v: &[f32]| -> Vec<u32> {
                        v.iter()
                            .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
                            .collect()
                    };
                    assert_eq!(
                        bits(&g),
                        bits(&w),
                        "{shape:?} k {k:?} s {s:?} d {d:?} pads {pp:?} ceil {ceil}"
                    );
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 600);
    }
}
