//! Index gathers and scatters: GatherElements, ScatterElements (and its deprecated alias
//! Scatter), GatherND and ScatterND, on the host with every index range-checked (an
//! out-of-range index is an error naming it, never a panic).

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::host::{Data, Host, index_in, ints_of, strides, unravel};
use super::{Ctx, norm_axis};

/// GatherElements(data, indices; axis = 0): `out[i] = data[i with i[axis] = indices[i]]`;
/// `indices` has the rank of `data`, and no larger dims off the axis. Output: shape of
/// `indices`, type of `data`.
pub(crate) fn gather_elements(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let data = Host::read(&ctx.input(0)?)?;
    let iv = ctx.input(1)?;
    let idx = ints_of(&iv, "indices")?;
    let ishape = iv.shape();
    let flat = element_offsets(&data.shape, &ishape, &idx, ctx.int_attr("axis", 0))?;
    Ok(vec![data.take(&flat, ishape).into_value(ctx.device)?])
}

/// Flat offsets into `shape` of the elements that `indices` (of `ishape`) address along
/// `axis`, as GatherElements and ScatterElements read them.
fn element_offsets(
    shape: &[usize],
    ishape: &[usize],
    idx: &[i64],
    axis: i64,
) -> RunResult<Vec<usize>> {
    let r = shape.len();
    if ishape.len() != r || r == 0 {
        return Err(op_err(format!(
            "indices of shape {ishape:?} must have the rank of data {shape:?} (at least 1)"
        )));
    }
    let a = norm_axis(axis, r)?;
    if (0..r).any(|k| k != a && ishape[k] > shape[k]) {
        return Err(op_err(format!(
            "indices of shape {ishape:?} exceed data {shape:?} off axis {a}"
        )));
    }
    let st = strides(shape);
    let mut coord = vec![0; r];
    idx.iter()
        .enumerate()
        .map(|(i, &v)| {
            unravel(i, ishape, &mut coord);
            coord[a] = index_in(v, shape[a], "index")?;
            Ok(coord.iter().zip(&st).map(|(c, s)| c * s).sum())
        })
        .collect()
}

/// How a scatter combines an update with the value already there.
#[derive(Clone, Copy)]
enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

fn reduction(ctx: &Ctx) -> RunResult<Reduction> {
    Ok(match ctx.string_attr("reduction", "none").as_str() {
        "none" => Reduction::None,
        "add" => Reduction::Add,
        "mul" => Reduction::Mul,
        "max" => Reduction::Max,
        "min" => Reduction::Min,
        other => return Err(op_err(format!("unknown reduction `{other}`"))),
    })
}

/// `dst[at[i]] = dst[at[i]] (red) src[i]`, for data of the same kind.
fn put(dst: &mut Host, at: &[usize], src: &Host, red: Reduction) -> RunResult<()> {
    fn comb<T: Copy + PartialOrd>(d: &mut [T], at: &[usize], s: &[T], f: impl Fn(T, T) -> T) {
        for (&o, &u) in at.iter().zip(s) {
            d[o] = f(d[o], u);
        }
    }
    match (&mut dst.data, &src.data) {
        (Data::F32(d), Data::F32(s)) => comb(d, at, s, |x, u| match red {
            Reduction::None => u,
            Reduction::Add => x + u,
            Reduction::Mul => x * u,
            Reduction::Max => x.max(u),
            Reduction::Min => x.min(u),
        }),
        (Data::I64(d, _), Data::I64(s, _)) => comb(d, at, s, |x, u| match red {
            Reduction::None => u,
            Reduction::Add => x.wrapping_add(u),
            Reduction::Mul => x.wrapping_mul(u),
            Reduction::Max => x.max(u),
            Reduction::Min => x.min(u),
        }),
        (Data::Bool(d), Data::Bool(s)) => comb(d, at, s, |x, u| match red {
            Reduction::None => u,
            Reduction::Add | Reduction::Max => x || u,
            Reduction::Mul | Reduction::Min => x && u,
        }),
        _ => return Err(op_err("updates must have the type of data")),
    }
    Ok(())
}

/// ScatterElements(data, indices, updates; axis = 0, reduction = "none") and the
/// deprecated Scatter: a copy of `data` with `updates` written at the addressed
/// elements. `indices` and `updates` share a shape.
pub(crate) fn scatter_elements(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let mut data = Host::read(&ctx.input(0)?)?;
    let iv = ctx.input(1)?;
    let upd = Host::read(&ctx.input(2)?)?;
    let ishape = iv.shape();
    if upd.shape != ishape {
        return Err(op_err(format!(
            "updates of shape {:?} must match indices {ishape:?}",
            upd.shape
        )));
    }
    let idx = ints_of(&iv, "indices")?;
    let at = element_offsets(&data.shape, &ishape, &idx, ctx.int_attr("axis", 0))?;
    put(&mut data, &at, &upd, reduction(ctx)?)?;
    Ok(vec![data.into_value(ctx.device)?])
}

/// The slices that ND `indices` (last dim `k`) address in `shape` after `batch` batch
/// dims: for each index tuple, the flat offset of its slice; plus the slice size.
fn nd_offsets(
    shape: &[usize],
    ishape: &[usize],
    idx: &[i64],
    batch: usize,
) -> RunResult<(Vec<usize>, usize)> {
    let Some(&k) = ishape.last() else {
        return Err(op_err("indices must have rank at least 1"));
    };
    if batch >= ishape.len() || batch + k > shape.len() || shape[..batch] != ishape[..batch] {
        return Err(op_err(format!(
            "indices of shape {ishape:?} do not address data {shape:?} with batch_dims {batch}"
        )));
    }
    let st = strides(shape);
    let slice: usize = shape[batch + k..].iter().product();
    let per_batch: usize = shape[batch..].iter().product();
    let n: usize = ishape[..ishape.len() - 1].iter().product();
    let inner: usize = ishape[batch..ishape.len() - 1].iter().product();
    let offs = (0..n)
        .map(|t| {
            let mut o = (t / inner.max(1)) * per_batch;
            for j in 0..k {
                let d = batch + j;
                o += index_in(idx[t * k + j], shape[d], "index")? * st[d];
            }
            Ok(o)
        })
        .collect::<RunResult<Vec<_>>>()?;
    Ok((offs, slice))
}

/// GatherND(data, indices; batch_dims = 0): output shape
/// `indices.shape[..-1] + data.shape[batch_dims + k..]`, `k = indices.shape[-1]`.
pub(crate) fn gather_nd(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let data = Host::read(&ctx.input(0)?)?;
    let iv = ctx.input(1)?;
    let ishape = iv.shape();
    let idx = ints_of(&iv, "indices")?;
    let batch = usize::try_from(ctx.int_attr("batch_dims", 0))
        .map_err(|_| op_err("batch_dims must be non-negative"))?;
    let (offs, slice) = nd_offsets(&data.shape, &ishape, &idx, batch)?;
    let k = ishape[ishape.len() - 1];
    let mut out_shape = ishape[..ishape.len() - 1].to_vec();
    out_shape.extend_from_slice(&data.shape[batch + k..]);
    checked_numel("", "", &out_shape)?;
    let flat: Vec<usize> = offs
        .iter()
        .flat_map(|&o| (0..slice).map(move |j| o + j))
        .collect();
    Ok(vec![data.take(&flat, out_shape).into_value(ctx.device)?])
}

/// ScatterND(data, indices, updates; reduction = "none"): a copy of `data` with the
/// slices of `updates` (shape `indices.shape[..-1] + data.shape[k..]`) written at the
/// addressed slices.
pub(crate) fn scatter_nd(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let mut data = Host::read(&ctx.input(0)?)?;
    let iv = ctx.input(1)?;
    let upd = Host::read(&ctx.input(2)?)?;
    let ishape = iv.shape();
    let idx = ints_of(&iv, "indices")?;
    let (offs, slice) = nd_offsets(&data.shape, &ishape, &idx, 0)?;
    let k = ishape[ishape.len() - 1];
    let mut want = ishape[..ishape.len() - 1].to_vec();
    want.extend_from_slice(&data.shape[k..]);
    if upd.shape != want {
        return Err(op_err(format!(
            "updates of shape {:?} must be {want:?}",
            upd.shape
        )));
    }
    let at: Vec<usize> = offs
        .iter()
        .flat_map(|&o| (0..slice).map(move |j| o + j))
        .collect();
    put(&mut data, &at, &upd, reduction(ctx)?)?;
    Ok(vec![data.into_value(ctx.device)?])
}
