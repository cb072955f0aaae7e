//! Ops that take part of a tensor: Slice and Split.

use super::*;

/// ONNX Slice bounds for one axis: the selected indices.
pub(crate) fn slice_indices(dim: usize, start: i64, end: i64, step: i64) -> Vec<usize> {
    let d = dim as i64;
    let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (fix(start), fix(end));
    let mut out = Vec::new();
    if step > 0 {
        let (s, e) = (s.clamp(0, d), e.clamp(0, d));
        let mut i = s;
        while i < e {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
    } else {
        let (s, e) = (s.clamp(0, d - 1), e.clamp(-1, d - 1));
        let mut i = s;
        while i > e {
            out.push(i as usize);
            i = i.saturating_add(step);
        }
    }
    out
}

pub(super) fn slice(ctx: &Ctx) -> RunResult<Value> {
    let v = ctx.input(0)?;
    let shape = v.shape();
    let (starts, ends, axes, steps) = if ctx.opset < 10 {
        (
            ctx.ints_attr("starts").unwrap_or_default(),
            ctx.ints_attr("ends").unwrap_or_default(),
            ctx.ints_attr("axes"),
            None,
        )
    } else {
        (
            ctx.host_ints(1)?.ok_or_else(|| op_err("missing starts"))?,
            ctx.host_ints(2)?.ok_or_else(|| op_err("missing ends"))?,
            ctx.host_ints(3)?,
            ctx.host_ints(4)?,
        )
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(op_err(
            "starts, ends, axes and steps must have the same length",
        ));
    }
    let mut v = v;
    for i in 0..starts.len() {
        let axis = norm_axis(axes[i], shape.len())?;
        if steps[i] == 0 {
            return Err(op_err("slice step 0"));
        }
        let idx = slice_indices(shape[axis], starts[i], ends[i], steps[i]);
        let contiguous = steps[i] == 1 || idx.len() <= 1;
        v = if contiguous {
            let start = idx.first().copied().unwrap_or(0);
            map_kind!(v, |t| narrow(t, axis, start, idx.len())?)
        } else {
            map_kind!(v, |t| select(t, axis, &idx)?)
        };
    }
    Ok(v)
}

pub(super) fn split(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let v = ctx.input(0)?;
    let shape = v.shape();
    let axis = norm_axis(ctx.int_attr("axis", 0), shape.len())?;
    let dim = shape[axis];
    let n_out = ctx.node.output.len();
    let sizes: Vec<usize> = match if ctx.opset < 13 {
        ctx.ints_attr("split").filter(|s| !s.is_empty())
    } else {
        ctx.host_ints(1)?
    } {
        Some(s) => s.into_iter().map(|x| x.max(0) as usize).collect(),
        None => {
            let n = if ctx.has_attr("num_outputs") {
                ctx.int_attr("num_outputs", 1) as usize
            } else if ctx.opset >= 18 {
                // ONNX Runtime and the checker refuse it too: a written model must not
                // pass here and fail there.
                return Err(op_err(format!(
                    "Split at opset {} has neither a `split` input nor a `num_outputs` attribute (one is required from opset 18)",
                    ctx.opset
                )));
            } else {
                n_out
            };
            if n == 0 || n > n_out.max(1) {
                return Err(op_err(format!(
                    "Split into {n} outputs, but the node has {n_out}"
                )));
            }
            let chunk = dim.div_ceil(n);
            (0..n)
                .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
                .collect()
        }
    };
    if sizes.iter().try_fold(0usize, |a, &b| a.checked_add(b)) != Some(dim) {
        return Err(op_err(format!(
            "split sizes {sizes:?} do not sum to dim {dim} of axis {axis}"
        )));
    }
    let mut start = 0;
    let mut outs = Vec::new();
    for s in sizes {
        let p = v.clone();
        outs.push(map_kind!(p, |t| narrow(t, axis, start, s)?));
        start += s;
    }
    Ok(outs)
}
