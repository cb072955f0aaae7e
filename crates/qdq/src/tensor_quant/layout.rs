//! How an amax tensor broadcasts over an input: which amax entry each element uses.
//!
//! The input is walked in row-major order. Elements sharing one amax entry come in
//! contiguous runs of `inner` elements ("blocks"); block `o` uses amax entry
//! `pattern[o % pattern.len()]`. Per-tensor amax is one block of the whole tensor.

use crate::error::{Error, Result};

/// The broadcast of an amax shape over an input shape, flattened for kernels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmaxLayout {
    /// Number of contiguous input elements that share one amax entry.
    pub inner: usize,
    /// Amax entry of each block, periodic.
    pub pattern: Vec<usize>,
    /// Number of amax entries.
    pub amax_len: usize,
}

impl AmaxLayout {
    /// Layout of `amax_shape` broadcast against `input_shape`.
    ///
    /// Accepted: any amax with one element (per tensor), or an amax of the input's rank
    /// whose every dim is 1 or the input's dim (keepdims per channel, e.g. `[C,1,1,1]`).
    pub fn new(input_shape: &[usize], amax_shape: &[usize]) -> Result<Self> {
        let numel: usize = input_shape.iter().product();
        let amax_len: usize = amax_shape.iter().product();
        if amax_len == 1 {
            return Ok(Self {
                inner: numel.max(1),
                pattern: vec![0],
                amax_len,
            });
        }
        let fits = amax_shape.len() == input_shape.len()
            && amax_shape
                .iter()
                .zip(input_shape)
                .all(|(&a, &x)| a == 1 || a == x);
        if !fits {
            return Err(Error::AmaxShape {
                amax: amax_shape.to_vec(),
                input: input_shape.to_vec(),
            });
        }
        let first = amax_shape.iter().position(|&a| a != 1).unwrap_or(0);
        let last = amax_shape.iter().rposition(|&a| a != 1).unwrap_or(0);
        let inner: usize = input_shape[last + 1..].iter().product();
        let dims = &input_shape[first..=last];
        let period: usize = dims.iter().product();
        // Row-major strides of amax restricted to dims first..=last (0 where broadcast).
        let mut amax_strides = vec![0usize; dims.len()];
        let mut stride: usize = amax_shape[last + 1..].iter().product();
        for d in (first..=last).rev() {
            if amax_shape[d] != 1 {
                amax_strides[d - first] = stride;
            }
            stride *= amax_shape[d];
        }
        let pattern = (0..period)
            .map(|mut j| {
                let mut idx = 0;
                for (k, &size) in dims.iter().enumerate().rev() {
                    idx += (j % size) * amax_strides[k];
                    j /= size;
                }
                idx
            })
            .collect();
        Ok(Self {
            inner: inner.max(1),
            pattern,
            amax_len,
        })
    }

    /// Amax entry used by the block holding element `index`.
    #[inline]
    pub fn entry_of(&self, index: usize) -> usize {
        self.pattern[(index / self.inner) % self.pattern.len()]
    }
}

/// Elements per parallel task: large enough to amortise scheduling, small enough
/// to balance two to many cores.
const CHUNK: usize = 1 << 15;

/// Applies `f(&params[entry], element)` to every element of `data` in place, in
/// parallel, where `entry` is the amax entry the layout assigns to the element.
pub fn par_map_inplace<P: Copy + Sync>(
    data: &mut [f32],
    layout: &AmaxLayout,
    params: &[P],
    f: impl Fn(&P, f32) -> f32 + Sync,
) {
    use rayon::prelude::*;
    let run = |start: usize, chunk: &mut [f32]| {
        crate::simd::widest(|| {
            for_each_block(start, chunk.len(), layout, |lo, hi, entry| {
                // A local copy: the compiler cannot prove a reference into `params`
                // is not written through `chunk`, and would reload it per element
                // rather than vectorize.
                let p = params[entry];
                for v in &mut chunk[lo..hi] {
                    *v = f(&p, *v);
                }
            });
        });
    };
    if data.len() <= CHUNK {
        run(0, data);
    } else {
        data.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(i, chunk)| run(i * CHUNK, chunk));
    }
}

/// `f` of every element of `data`, in place, in parallel: [`par_map_inplace`] with one
/// entry for the whole slice (elementwise functions such as the runtime's Erf).
pub fn par_map_each(data: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    let whole = AmaxLayout {
        inner: data.len().max(1),
        pattern: vec![0],
        amax_len: 1,
    };
    par_map_inplace(data, &whole, &[()], |_, x| f(x));
}

/// Like [`par_map_inplace`], writing `f(&params[entry], src[i])` to `dst[i]`.
pub fn par_map<P: Copy + Sync>(
    src: &[f32],
    dst: &mut [f32],
    layout: &AmaxLayout,
    params: &[P],
    f: impl Fn(&P, f32) -> f32 + Sync,
) {
    use rayon::prelude::*;
    assert_eq!(
        src.len(),
        dst.len(),
        "par_map: source and destination lengths differ"
    );
    let run = |start: usize, s: &[f32], d: &mut [f32]| {
        crate::simd::widest(|| {
            for_each_block(start, s.len(), layout, |lo, hi, entry| {
                let p = params[entry];
                for (o, &x) in d[lo..hi].iter_mut().zip(&s[lo..hi]) {
                    *o = f(&p, x);
                }
            });
        });
    };
    if src.len() <= CHUNK {
        run(0, src, dst);
    } else {
        src.par_chunks(CHUNK)
            .zip(dst.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(i, (s, d))| run(i * CHUNK, s, d));
    }
}

/// Splits the element range `[start, start+len)` at block boundaries and calls
/// `f(local_lo, local_hi, amax_entry)` for each piece.
#[inline(always)]
fn for_each_block(
    start: usize,
    len: usize,
    layout: &AmaxLayout,
    mut f: impl FnMut(usize, usize, usize),
) {
    let end = start + len;
    let mut pos = start;
    while pos < end {
        let block = pos / layout.inner;
        let block_end = ((block + 1) * layout.inner).min(end);
        f(
            pos - start,
            block_end - start,
            layout.pattern[block % layout.pattern.len()],
        );
        pos = block_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over several parallel chunks, every element gets `f` of itself.
    #[test]
    fn par_map_each_maps_every_element() {
        let mut v: Vec<f32> = (0..3 * CHUNK + 5).map(|i| i as f32).collect();
        par_map_each(&mut v, |x| x * 2.0 + 1.0);
        assert!(
            v.iter()
                .enumerate()
                .all(|(i, &y)| y == i as f32 * 2.0 + 1.0)
        );
        let mut empty: Vec<f32> = Vec::new();
        par_map_each(&mut empty, |x| x + 1.0);
        assert!(empty.is_empty());
    }

    #[test]
    fn per_tensor_is_one_block() {
        let l = AmaxLayout::new(&[2, 3, 4], &[1, 1, 1]).unwrap();
        assert_eq!((l.inner, l.pattern.clone()), (24, vec![0]));
        let l = AmaxLayout::new(&[2, 3, 4], &[]).unwrap();
        assert_eq!(l.inner, 24);
    }

    #[test]
    fn per_channel_axis0_and_axis1() {
        let l = AmaxLayout::new(&[4, 3, 2, 2], &[4, 1, 1, 1]).unwrap();
        assert_eq!((l.inner, l.pattern.clone()), (12, vec![0, 1, 2, 3]));
        let l = AmaxLayout::new(&[2, 3, 5], &[1, 3, 1]).unwrap();
        assert_eq!((l.inner, l.pattern.clone()), (5, vec![0, 1, 2]));
        // element 17 = (1, 0, 2) uses channel 0
        assert_eq!(l.entry_of(17), 0);
        assert_eq!(l.entry_of(12), 2);
    }

    #[test]
    fn multi_axis_with_broadcast_gap() {
        // amax [2,1,3] over [2,4,3]: entry = i0*3 + i2, inner 1, period 24
        let l = AmaxLayout::new(&[2, 4, 3], &[2, 1, 3]).unwrap();
        assert_eq!(l.inner, 1);
        for i0 in 0..2 {
            for i1 in 0..4 {
                for i2 in 0..3 {
                    let flat = (i0 * 4 + i1) * 3 + i2;
                    assert_eq!(l.entry_of(flat), i0 * 3 + i2);
                }
            }
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(matches!(
            AmaxLayout::new(&[4, 3], &[3, 1]),
            Err(Error::AmaxShape { .. })
        ));
        assert!(AmaxLayout::new(&[4, 3], &[4]).is_err());
    }

    #[test]
    fn par_map_visits_every_element_with_its_entry() {
        let shape = [3, 50_000];
        let l = AmaxLayout::new(&shape, &[3, 1]).unwrap();
        let src: Vec<f32> = vec![1.0; 150_000];
        let mut dst = vec![0.0; 150_000];
        par_map(&src, &mut dst, &l, &[10.0f32, 20.0, 30.0], |p, x| x * p);
        assert!(dst[..50_000].iter().all(|&v| v == 10.0));
        assert!(dst[50_000..100_000].iter().all(|&v| v == 20.0));
        assert!(dst[100_000..].iter().all(|&v| v == 30.0));
        let mut inplace = src.clone();
        par_map_inplace(&mut inplace, &l, &[10.0f32, 20.0, 30.0], |p, x| x * p);
        assert_eq!(inplace, dst);
    }
}
