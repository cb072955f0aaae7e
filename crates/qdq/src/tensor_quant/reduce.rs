//! `reduce_amax`: max of |x| over every dim except the kept axes
//! (`utils/reduce_amax.py` of the reference).

use rayon::prelude::*;

use super::amax::Amax;
use super::layout::AmaxLayout;
use crate::error::{Error, Result};

/// Normalises `axis` (negative entries count from the end) against `rank`.
///
/// # Errors
/// [`Error::AxisOutOfRange`] for an axis outside `[-rank, rank)`.
pub fn normalize_axis(axis: &[isize], rank: usize) -> Result<Vec<usize>> {
    axis.iter()
        .map(|&a| {
            let n = if a < 0 { a + rank as isize } else { a };
            if (0..rank as isize).contains(&n) {
                Ok(n as usize)
            } else {
                Err(Error::AxisOutOfRange { axis: a, rank })
            }
        })
        .collect()
}

/// The keepdims shape of an amax that keeps `axis` of `shape` (others become 1).
pub fn kept_shape(shape: &[usize], axis: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if axis.contains(&d) { n } else { 1 })
        .collect()
}

/// Max of |x| per kept axis (`None`: over everything). The result has the keepdims
/// shape (`[C, 1, 1, 1]` for axis 0 of a 4-D tensor), or shape `[]` when it holds
/// one value, as the reference squeezes it. NaN propagates.
pub fn reduce_amax(data: &[f32], shape: &[usize], axis: Option<&[isize]>) -> Result<Amax> {
    let kept = match axis {
        Some(axis) => kept_shape(shape, &normalize_axis(axis, shape.len())?),
        None => vec![1; shape.len()],
    };
    let layout = AmaxLayout::new(shape, &kept)?;
    let n = layout.amax_len;
    const CHUNK: usize = 1 << 16;
    let merge = |mut a: Vec<f32>, b: Vec<f32>| {
        a.iter_mut().zip(b).for_each(|(x, y)| *x = nan_max(*x, y));
        a
    };
    let amax = data
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(c, chunk)| {
            let mut local = vec![0.0f32; n];
            let start = c * CHUNK;
            let mut pos = 0;
            while pos < chunk.len() {
                let block = (start + pos) / layout.inner;
                let end = ((block + 1) * layout.inner - start).min(chunk.len());
                let entry = layout.pattern[block % layout.pattern.len()];
                local[entry] = nan_max(local[entry], max_abs(&chunk[pos..end]));
                pos = end;
            }
            local
        })
        .reduce(|| vec![0.0f32; n], merge);
    let shape = if n == 1 { vec![] } else { kept };
    Amax::new(amax, shape)
}

/// Max of |x| over `data` (0 when empty), NaN when `data` holds one: a max over
/// magnitude bit patterns, which order like the values for non-negative floats and put
/// NaN above Inf, in independent lanes the compiler vectorises (a fold through
/// [`nan_max`] is one serial chain of compares: a tenth of a `max` calibration's time
/// on a 640x640 detector). Max is exact, so the lanes' order changes nothing.
pub(crate) fn max_abs(data: &[f32]) -> f32 {
    const LANES: usize = 16;
    const MAGNITUDE: u32 = 0x7fff_ffff;
    let (chunks, rest) = data.as_chunks::<LANES>();
    let mut lanes = [0u32; LANES];
    for chunk in chunks {
        for (m, x) in lanes.iter_mut().zip(chunk) {
            *m = (*m).max(x.to_bits() & MAGNITUDE);
        }
    }
    let bits = rest
        .iter()
        .map(|x| x.to_bits() & MAGNITUDE)
        .chain(lanes)
        .max()
        .unwrap_or(0);
    f32::from_bits(bits)
}

/// `max` that propagates NaN (like torch), unlike `f32::max`.
#[inline(always)]
pub(crate) fn nan_max(a: f32, b: f32) -> f32 {
    if a > b || a.is_nan() { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_per_tensor_and_per_axis() {
        // x[i,j,k] = (i*12 + j*4 + k) * sign, shape [2,3,4]
        let data: Vec<f32> = (0..24)
            .map(|v| if v % 2 == 0 { v as f32 } else { -(v as f32) })
            .collect();
        let all = reduce_amax(&data, &[2, 3, 4], None).unwrap();
        assert_eq!((all.values(), all.shape()), (&[23.0f32][..], &[][..]));
        let a0 = reduce_amax(&data, &[2, 3, 4], Some(&[0])).unwrap();
        assert_eq!(
            (a0.values(), a0.shape()),
            (&[11.0f32, 23.0][..], &[2, 1, 1][..])
        );
        let a1 = reduce_amax(&data, &[2, 3, 4], Some(&[1])).unwrap();
        assert_eq!(a1.values(), &[15.0, 19.0, 23.0]);
        let alast = reduce_amax(&data, &[2, 3, 4], Some(&[-1])).unwrap();
        assert_eq!(
            (alast.values(), alast.shape()),
            (&[20.0f32, 21.0, 22.0, 23.0][..], &[1, 1, 4][..])
        );
        let a02 = reduce_amax(&data, &[2, 3, 4], Some(&[0, 2])).unwrap();
        assert_eq!(
            a02.values(),
            &[8.0, 9.0, 10.0, 11.0, 20.0, 21.0, 22.0, 23.0]
        );
        assert!(matches!(
            reduce_amax(&data, &[2, 3, 4], Some(&[3])),
            Err(Error::AxisOutOfRange { axis: 3, rank: 3 })
        ));
    }

    #[test]
    fn reduce_propagates_nan_and_spans_chunks() {
        let mut data = vec![0.5f32; 200_000];
        data[150_000] = -7.0;
        assert_eq!(
            reduce_amax(&data, &[200_000], None).unwrap().values(),
            &[7.0]
        );
        data[3] = f32::NAN;
        assert!(reduce_amax(&data, &[200_000], None).unwrap().values()[0].is_nan());
    }

    #[test]
    fn max_abs_matches_a_serial_fold_at_every_length_and_position() {
        let fold = |d: &[f32]| d.iter().fold(0.0f32, |m, &v| nan_max(m, v.abs()));
        // Every length around the lane width, the largest magnitude (negative, so the
        // sign bit must be dropped) at every position, the rest varied.
        for len in 0..=50 {
            for at in 0..len {
                let mut d: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
                d[at] = -3.5;
                assert_eq!(
                    max_abs(&d).to_bits(),
                    fold(&d).to_bits(),
                    "len {len} at {at}"
                );
                // Inf wins over finite values, NaN over Inf, wherever they are.
                d[at] = f32::NEG_INFINITY;
                assert_eq!(max_abs(&d), f32::INFINITY);
                d[len - 1 - at] = f32::NAN;
                assert!(max_abs(&d).is_nan(), "len {len} NaN at {}", len - 1 - at);
            }
        }
        assert_eq!(max_abs(&[]).to_bits(), 0);
        // -0 is |x| = +0, as the fold gives.
        assert_eq!(max_abs(&[-0.0; 20]).to_bits(), 0);
        assert_eq!(
            max_abs(&[f32::MIN_POSITIVE / 4.0, -0.0]),
            f32::MIN_POSITIVE / 4.0
        );
    }
}
