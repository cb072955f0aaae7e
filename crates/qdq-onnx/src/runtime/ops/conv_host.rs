//! The general 2-D convolution on the host: burn's CPU backend's tiled im2col + GEMM,
//! the same GEMM calls on the same numbers (so every output is bit for bit burn's),
//! without what made it slow on large maps.
//!
//! burn-flex copies the whole input to NHWC on one thread, pads an asymmetric input
//! into a second copy, allocates each tile's im2col buffer and GEMM result afresh and
//! scatters the result into the output one element at a time. On a 640x640 text
//! detector its stem convolutions (3 -> 24 and 24 -> 12 channels at 320x320) ran at
//! 2-3 GMAC/s, a third of the model's convolution time. Here each tile's im2col is
//! built as burn builds it (a row per output position, its taps by kernel position,
//! then channel) from an NHWC copy made in parallel, padding is written as zeros where
//! it falls (no padded copy), the buffer is one per thread, and the GEMM writes into
//! the output.
//!
//! Only the shapes burn sends to that path come here (see [`conv2d_host`]): its 1x1,
//! depthwise, few-channel and 1-D direct paths stay burn's.

use burn::tensor::Float;
use rayon::prelude::*;

use super::super::error::RunResult;
use super::super::value::{DynTensor, Value};

/// Output positions per GEMM: burn-flex's `TILE_SIZE`. The GEMM's sizes must be
/// burn's for its blocking, and so its sums, to be the same.
const TILE: usize = 512;

/// The widest input (channels) and output of burn's few-channel direct path, which
/// it takes for a `group` 1 convolution within both.
const FEW_IN: usize = 4;
const FEW_OUT: usize = 16;

/// A 2-D convolution's geometry: strides, dilations, (begin, end) pads per axis, and
/// the number of groups.
pub(crate) struct Geometry2d {
    pub strides: [usize; 2],
    pub dil: [usize; 2],
    pub pads: [(usize, usize); 2],
    pub group: usize,
}

/// `x` [N, C, H, W] convolved with `w` [M, C/group, KH, KW] (plus `bias` [M]) into
/// [N, M, OH, OW], or `None` when burn runs it (another path of its, values not on
/// the host, an empty axis). Shapes, groups and sizes are checked by the caller.
pub(crate) fn conv2d_host(
    x: &DynTensor<Float>,
    w: &DynTensor<Float>,
    bias: Option<&DynTensor<Float>>,
    geo: &Geometry2d,
    out_hw: [usize; 2],
) -> RunResult<Option<DynTensor<Float>>> {
    if x.rank() != 4 || w.rank() != 4 || x.shape.contains(&0) || w.shape.contains(&0) {
        return Ok(None);
    }
    let [n, c, h, wd] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let [m, cpg, kh, kw] = [w.shape[0], w.shape[1], w.shape[2], w.shape[3]];
    let g = geo.group;
    let depthwise = cpg == 1 && g == c && m == c;
    // burn moves asymmetric pads into the input first, leaving none: a 1x1 stride-1
    // convolution with no pads or asymmetric ones takes its 1x1 path.
    let asymmetric = geo.pads.iter().any(|(b, e)| b != e);
    let pointwise =
        kh == 1 && kw == 1 && geo.strides == [1, 1] && (asymmetric || geo.pads == [(0, 0); 2]);
    let few = g == 1 && c <= FEW_IN && m <= FEW_OUT;
    // burn's direct path takes some convolutions of one row (as 1-D).
    let one_row = kh == 1 && h == 1;
    if depthwise || pointwise || few || one_row || out_hw.contains(&0) {
        return Ok(None);
    }
    let (Some(xs), Some(ws)) = (x.shared_host(), w.shared_host()) else {
        return Ok(None);
    };
    let bs = match bias {
        Some(b) => match b.shared_host() {
            Some(v) => Some(v),
            None => return Ok(None),
        },
        None => None,
    };
    let (xs, ws): (&[f32], &[f32]) = (&xs, &ws);
    let [oh, ow] = out_hw;
    let spatial = oh * ow;
    let mg = m / g;
    let k_spatial = kh * kw;
    let col_len = cpg * k_spatial;
    // burn's weight order: per output channel, kernel position outer, channel inner.
    let mut w_flat = vec![0f32; m * col_len];
    for (co, dst) in w_flat.chunks_mut(col_len).enumerate() {
        let src = &ws[co * col_len..(co + 1) * col_len];
        for ci in 0..cpg {
            for k in 0..k_spatial {
                dst[k * cpg + ci] = src[ci * k_spatial + k];
            }
        }
    }
    // The input with channels last, made in parallel, a row at a time: each output
    // position's taps are then runs of `cpg` neighbouring values.
    let mut nhwc = vec![0f32; n * h * wd * c];
    nhwc.par_chunks_mut(wd * c)
        .enumerate()
        .for_each(|(row, dst)| {
            let (b, y) = (row / h, row % h);
            for ci in 0..c {
                let src = &xs[((b * c + ci) * h + y) * wd..((b * c + ci) * h + y + 1) * wd];
                for (x, &v) in src.iter().enumerate() {
                    dst[x * c + ci] = v;
                }
            }
        });
    let mut out = vec![0f32; n * m * spatial];
    let dst = SharedOut(out.as_mut_ptr());
    let tiles = spatial.div_ceil(TILE);
    // Every (item, tile) runs on its own; each group's GEMM writes rows of its output
    // channels within the tile's columns.
    (0..n * tiles).into_par_iter().for_each_init(
        || vec![0f32; col_len * TILE],
        |col, job| {
            let (b, t) = (job / tiles, job % tiles);
            let start = t * TILE;
            let len = TILE.min(spatial - start);
            let col = &mut col[..col_len * len];
            let item = &nhwc[b * h * wd * c..(b + 1) * h * wd * c];
            for gi in 0..g {
                fill_tile(
                    col,
                    item,
                    (h, wd, c),
                    (kh, kw),
                    geo,
                    (start, len, ow),
                    (gi * cpg, cpg),
                );
                let w_group = &w_flat[gi * mg * col_len..(gi + 1) * mg * col_len];
                let offset = (b * m + gi * mg) * spatial + start;
                // SAFETY: `offset` and the rows below it (stride `spatial`, `mg` rows,
                // `len` columns) lie inside `out` (b < n, group rows < m, start + len
                // <= spatial), and no other job writes them: jobs differ in item or
                // tile, groups in rows. The operands are slices of the sizes gemm reads.
                unsafe {
                    gemm::gemm(
                        mg,
                        len,
                        col_len,
                        dst.at(offset),
                        1,
                        spatial as isize,
                        false,
                        w_group.as_ptr(),
                        1,
                        col_len as isize,
                        col.as_ptr(),
                        col_len as isize,
                        1,
                        0f32,
                        1f32,
                        false,
                        false,
                        false,
                        parallelism(mg, len, col_len),
                    );
                }
            }
        },
    );
    if let Some(bias) = bs {
        // (The slice once: each deref of host values checks the layout.)
        let bias: &[f32] = &bias;
        // burn adds the bias after the convolution, one add per output.
        out.par_chunks_mut(spatial)
            .enumerate()
            .for_each(|(i, row)| row.iter_mut().for_each(|v| *v += bias[i % m]));
    }
    match Value::try_from_f32(out, &[n, m, oh, ow], &x.device())? {
        Value::Float(t) => Ok(Some(t)),
        _ => Ok(None),
    }
}

/// burn-flex's choice of threads inside one GEMM (from 192³ multiply-adds). The
/// threads split rows and columns, never a sum.
fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    match m * n * k >= 192 * 192 * 192 {
        true => gemm::Parallelism::Rayon(0),
        false => gemm::Parallelism::None,
    }
}

/// Fills `col` [len, col_len] with the tile's im2col as burn builds it: for each of
/// the `len` output positions from `start` (`ow` per output row), the taps of the
/// group's `cpg` channels from `first` of `item` [H, W, C], kernel position outer,
/// channel inner; zero where a tap falls in the padding.
fn fill_tile(
    col: &mut [f32],
    item: &[f32],
    (h, w, c): (usize, usize, usize),
    (kh, kw): (usize, usize),
    geo: &Geometry2d,
    (start, len, ow): (usize, usize, usize),
    (first, cpg): (usize, usize),
) {
    let [sh, sw] = geo.strides;
    let [dh, dw] = geo.dil;
    let (pt, pl) = (geo.pads[0].0 as isize, geo.pads[1].0 as isize);
    let col_len = kh * kw * cpg;
    for (j, row) in col.chunks_mut(col_len).take(len).enumerate() {
        let p = start + j;
        let (oy, ox) = (p / ow, p % ow);
        for ky in 0..kh {
            let iy = (oy * sh + ky * dh) as isize - pt;
            let taps = &mut row[ky * kw * cpg..(ky + 1) * kw * cpg];
            if iy < 0 || iy >= h as isize {
                taps.fill(0.0);
                continue;
            }
            let line = &item[iy as usize * w * c..(iy as usize + 1) * w * c];
            for (kx, tap) in taps.chunks_mut(cpg).enumerate() {
                let ix = (ox * sw + kx * dw) as isize - pl;
                match ix >= 0 && ix < w as isize {
                    true => {
                        let at = ix as usize * c + first;
                        tap.copy_from_slice(&line[at..at + cpg]);
                    }
                    false => tap.fill(0.0),
                }
            }
        }
    }
}

/// The output buffer, written by several jobs at disjoint places.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

// SAFETY: jobs write disjoint elements (see the call in `conv2d_host`), and the buffer
// outlives them (the parallel loop returns before it is read or moved).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;

    use super::*;
    use crate::runtime::ops::conv::window_out;

    fn float(data: Vec<f32>, shape: &[usize], device: &Device) -> DynTensor<Float> {
        match Value::from_f32(data, shape, device) {
            Value::Float(t) => t,
            _ => unreachable!(),
        }
    }

    /// Bit for bit burn's conv2d, on geometries that take every path of the tile
    /// loop (strides, dilations, asymmetric pads past the kernel's reach, groups,
    /// several tiles, a GEMM large enough to run on several threads), and `None`
    /// where burn takes another path.
    #[test]
    fn host_conv_equals_burns_on_every_geometry() {
        let device = Device::flex();
        let mut seed = 11u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let (mut hosted, mut declined) = (0, 0);
        for case in 0..240 {
            let k = [1 + next() % 4, 1 + next() % 4];
            let s = [1 + next() % 3, 1 + next() % 3];
            let d = [1 + next() % 2, 1 + next() % 2];
            let eff = [(k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1];
            let pads = [
                (next() % (eff[0] + 1), next() % (eff[0] + 1)),
                (next() % (eff[1] + 1), next() % (eff[1] + 1)),
            ];
            let group = [1, 1, 2, 3][next() % 4];
            let (cpg, mg) = (1 + next() % 6, 1 + next() % 8);
            // The last cases: large maps (several tiles) and a GEMM past 192³.
            let (hw, cpg, mg) = match case {
                0..=219 => ([1 + next() % 12, 1 + next() % 40], cpg, mg),
                220..=229 => ([20 + next() % 20, 30 + next() % 20], cpg, mg),
                _ => ([24 + next() % 8, 24 + next() % 8], 40 + next() % 30, 64),
            };
            let x_shape = [1 + next() % 2, cpg * group, hw[0], hw[1]];
            let w_shape = [mg * group, cpg, k[0], k[1]];
            let Ok(out) = window_out(
                &hw,
                &k,
                &s,
                &d,
                &[
                    (pads[0].0 as i64, pads[0].1 as i64),
                    (pads[1].0 as i64, pads[1].1 as i64),
                ],
                false,
            ) else {
                continue;
            };
            let random = |n: usize, next: &mut dyn FnMut() -> usize| -> Vec<f32> {
                (0..n)
                    .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect()
            };
            let xd = random(x_shape.iter().product(), &mut next);
            let wd = random(w_shape.iter().product(), &mut next);
            let bd = random(w_shape[0], &mut next);
            let x = float(xd, &x_shape, &device);
            let w = float(wd, &w_shape, &device);
            let with_bias = next() % 2 == 0;
            let b = float(bd, &[w_shape[0]], &device);
            let geo = Geometry2d {
                strides: s,
                dil: d,
                pads,
                group,
            };
            let bias = with_bias.then_some(&b);
            let Some(got) = conv2d_host(&x, &w, bias, &geo, [out[0], out[1]]).unwrap() else {
                declined += 1;
                continue;
            };
            let o = ConvOptions::new_with_padding(s, pads, d, group);
            let want = conv2d(
                x.clone().to_rank::<4>().unwrap(),
                w.clone().to_rank::<4>().unwrap(),
                bias.map(|b| b.clone().to_rank::<1>().unwrap()),
                o,
            );
            let want = DynTensor::from_tensor(want);
            let what =
                format!("x {x_shape:?} w {w_shape:?} s {s:?} d {d:?} pads {pads:?} group {group}");
            assert_eq!(got.shape, want.shape, "{what}");
            let bits = |t: &DynTensor<Float>| -> Vec<u32> {
                t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect()
            };
            assert_eq!(bits(&got), bits(&want), "{what}");
            hosted += 1;
        }
        // A 1x1 stride-1 convolution with asymmetric pads is burn's 1x1 path (on its
        // padded input): declined, as without pads; with symmetric pads it is ours.
        let one = |pads| {
            let x = float(vec![0.5; 2 * 8 * 5 * 5], &[2, 8, 5, 5], &device);
            let w = float(vec![0.25; 8 * 8], &[8, 8, 1, 1], &device);
            let geo = Geometry2d {
                strides: [1, 1],
                dil: [1, 1],
                pads,
                group: 1,
            };
            let (h, w_) = (5 + pads[0].0 + pads[0].1, 5 + pads[1].0 + pads[1].1);
            conv2d_host(&x, &w, None, &geo, [h, w_]).unwrap().is_some()
        };
        assert!(!one([(0, 0), (0, 0)]));
        assert!(!one([(0, 1), (0, 0)]));
        assert!(one([(1, 1), (1, 1)]));
        // burn keeps its other paths' geometries (1x1, few channels); the seed fixes
        // how many (and 6 geometries whose kernel passes the padded input).
        assert_eq!((hosted, declined), (152, 82));
    }
}
