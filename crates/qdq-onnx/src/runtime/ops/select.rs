//! Selections whose output size depends on the data: Compress, NonZero, OneHot,
//! ReverseSequence and Unique, on the host (sizes checked before allocating).

use std::cmp::Ordering;

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::host::{Data, Host, ints_of, strides, unravel};
use super::{Ctx, as_bool, norm_axis};
use crate::proto::elem as dt;

/// Compress(input, condition 1-D bool; axis?): the slices along `axis` (or the
/// elements of the flattened input) whose condition is true; a shorter condition
/// counts as false past its end.
pub(crate) fn compress(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let mut x = Host::read(&ctx.input(0)?)?;
    let cond = as_bool(ctx.input(1)?)?.to_vec()?;
    if !ctx.has_attr("axis") {
        x.shape = vec![x.len()];
    }
    let a = norm_axis(ctx.int_attr("axis", 0), x.shape.len())?;
    let dim = x.shape[a];
    let keep: Vec<usize> = cond
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c)
        .map(|(i, _)| i)
        .collect();
    if let Some(&i) = keep.iter().find(|&&i| i >= dim) {
        return Err(op_err(format!(
            "condition selects index {i} past axis {a} of size {dim}"
        )));
    }
    let outer: usize = x.shape[..a].iter().product();
    let inner: usize = x.shape[a + 1..].iter().product();
    let mut idx = Vec::with_capacity(outer * keep.len() * inner);
    for o in 0..outer {
        for &k in &keep {
            idx.extend((0..inner).map(|j| (o * dim + k) * inner + j));
        }
    }
    let mut shape = x.shape.clone();
    shape[a] = keep.len();
    Ok(vec![x.take(&idx, shape).into_value(ctx.device)?])
}

/// NonZero(input) → int64 `[rank, count]`: coordinates of the nonzero elements in
/// row-major order.
pub(crate) fn non_zero(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = ctx.input(0)?;
    let shape = x.shape();
    let nz = as_bool(x)?.to_vec()?;
    let hits: Vec<usize> = (0..nz.len()).filter(|&i| nz[i]).collect();
    let r = shape.len();
    let mut out = vec![0i64; r * hits.len()];
    let mut coord = vec![0; r];
    for (j, &i) in hits.iter().enumerate() {
        unravel(i, &shape, &mut coord);
        for k in 0..r {
            out[k * hits.len() + j] = coord[k] as i64;
        }
    }
    Ok(vec![Value::try_from_i64(
        out,
        &[r, hits.len()],
        ctx.device,
        dt::INT64,
    )?])
}

/// OneHot(indices, depth scalar, values `[off, on]`; axis = -1): a new axis of size
/// `depth` holding `on` at each index (negative indices count from the end; indices
/// outside `[-depth, depth)` give an all-`off` row). Output type: that of `values`.
pub(crate) fn one_hot(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let iv = ctx.input(0)?;
    let ishape = iv.shape();
    let idx: Vec<i64> = Host::read(&iv)?
        .to_f64()
        .iter()
        .map(|&v| v as i64)
        .collect();
    let depth = Host::read(&ctx.input(1)?)?.to_f64();
    let depth = match depth.as_slice() {
        [d] if *d >= 1.0 && d.is_finite() => *d as i64,
        _ => {
            return Err(op_err(format!(
                "depth must be one value >= 1, got {depth:?}"
            )));
        }
    };
    let values = Host::read(&ctx.input(2)?)?;
    if values.len() != 2 {
        return Err(op_err(format!(
            "values must hold [off, on], got shape {:?}",
            values.shape
        )));
    }
    let r = ishape.len() + 1;
    let a = norm_axis(ctx.int_attr("axis", -1), r)?;
    let mut shape = ishape.clone();
    shape.insert(a, depth as usize);
    let n = checked_numel("", "", &shape)?;
    let d = depth as usize;
    let inner: usize = ishape[a..].iter().product();
    let sel: Vec<usize> = (0..n)
        .map(|f| {
            let (o, rest) = (f / (d * inner).max(1), f % (d * inner).max(1));
            let (k, j) = (rest / inner.max(1), rest % inner.max(1));
            let i = idx[o * inner + j];
            let i = if i < 0 { i + depth } else { i };
            usize::from(i == k as i64)
        })
        .collect();
    Ok(vec![values.take(&sel, shape).into_value(ctx.device)?])
}

/// ReverseSequence(input, sequence_lens `[batch]`; batch_axis = 1, time_axis = 0):
/// the first `sequence_lens[b]` steps along the time axis reversed for each batch.
pub(crate) fn reverse_sequence(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&ctx.input(0)?)?;
    let lens = ints_of(&ctx.input(1)?, "sequence_lens")?;
    let r = x.shape.len();
    let ba = norm_axis(ctx.int_attr("batch_axis", 1), r)?;
    let ta = norm_axis(ctx.int_attr("time_axis", 0), r)?;
    if r < 2 || ba == ta || lens.len() != x.shape[ba] {
        return Err(op_err(format!(
            "input {:?} with batch_axis {ba}, time_axis {ta} and {} sequence_lens",
            x.shape,
            lens.len()
        )));
    }
    let steps = x.shape[ta];
    let lens = lens
        .iter()
        .map(|&l| {
            usize::try_from(l)
                .ok()
                .filter(|&l| l <= steps)
                .ok_or_else(|| op_err(format!("sequence length {l} is not in [0, {steps}]")))
        })
        .collect::<RunResult<Vec<_>>>()?;
    let st = strides(&x.shape);
    let mut coord = vec![0; r];
    let idx: Vec<usize> = (0..x.len())
        .map(|f| {
            unravel(f, &x.shape, &mut coord);
            let l = lens[coord[ba]];
            if coord[ta] < l {
                coord[ta] = l - 1 - coord[ta];
            }
            coord.iter().zip(&st).map(|(c, s)| c * s).sum()
        })
        .collect();
    let shape = x.shape.clone();
    Ok(vec![x.take(&idx, shape).into_value(ctx.device)?])
}

/// Orders element `i` against element `j` of `d` (floats by IEEE total order, so NaNs
/// group together; integers exactly).
fn cmp_elem(d: &Data, i: usize, j: usize) -> Ordering {
    match d {
        Data::F32(v) => v[i].total_cmp(&v[j]),
        Data::I64(v, _) => v[i].cmp(&v[j]),
        Data::Bool(v) => v[i].cmp(&v[j]),
    }
}

/// Unique(X; axis?, sorted = 1) → (Y, indices, inverse_indices, counts): the distinct
/// elements (or slices along `axis`), ascending when `sorted`, else in order of first
/// occurrence; `indices` are first occurrences, `inverse_indices` map each input
/// element (slice) to its unique one, `counts` count them (all int64 `[U]` / `[M]`).
pub(crate) fn unique(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let mut x = Host::read(&ctx.input(0)?)?;
    if !ctx.has_attr("axis") {
        x.shape = vec![x.len()];
    }
    let a = norm_axis(ctx.int_attr("axis", 0), x.shape.len())?;
    let m = x.shape[a];
    let outer: usize = x.shape[..a].iter().product();
    let inner: usize = x.shape[a + 1..].iter().product();
    let at = |o: usize, k: usize, j: usize| (o * m + k) * inner + j;
    let cmp_slice = |p: usize, q: usize| {
        (0..outer)
            .flat_map(|o| (0..inner).map(move |j| (o, j)))
            .map(|(o, j)| cmp_elem(&x.data, at(o, p, j), at(o, q, j)))
            .find(|c| c.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&p, &q| cmp_slice(p, q)); // stable: first occurrence leads its group
    // groups of equal slices: (first index, members)
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for &k in &order {
        match groups.last_mut() {
            Some((first, members)) if cmp_slice(*first, k).is_eq() => members.push(k),
            _ => groups.push((k, vec![k])),
        }
    }
    if ctx.int_attr("sorted", 1) == 0 {
        groups.sort_by_key(|g| g.0);
    }
    let mut inverse = vec![0i64; m];
    for (g, (_, members)) in groups.iter().enumerate() {
        for &k in members {
            inverse[k] = g as i64;
        }
    }
    let u = groups.len();
    let idx: Vec<usize> = (0..outer)
        .flat_map(|o| {
            groups
                .iter()
                .flat_map(move |(k, _)| (0..inner).map(move |j| at(o, *k, j)))
        })
        .collect();
    let mut shape = x.shape.clone();
    shape[a] = u;
    let first = groups.iter().map(|g| g.0 as i64).collect();
    let counts = groups.iter().map(|g| g.1.len() as i64).collect();
    Ok(vec![
        x.take(&idx, shape).into_value(ctx.device)?,
        Value::try_from_i64(first, &[u], ctx.device, dt::INT64)?,
        Value::try_from_i64(inverse, &[m], ctx.device, dt::INT64)?,
        Value::try_from_i64(counts, &[u], ctx.device, dt::INT64)?,
    ])
}
