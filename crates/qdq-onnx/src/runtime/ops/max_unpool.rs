//! MaxUnpool: the inverse of MaxPool with indices, scattering X `[N, C, D..]` into
//! zeros at the flat positions `I` (MaxPool's Indices output), as ONNX's reference.

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::Value;
use super::Ctx;
use super::host::{Data, Host, ints_of, strides, unravel};

/// MaxUnpool(X, I, output_shape?; kernel_shape, pads = 0, strides = 1): the unpooled
/// shape is `(in - 1) * stride - pad_begin - pad_end + kernel` per spatial dim; a
/// larger `output_shape` pads it with zeros at the end.
pub(crate) fn max_unpool(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    let iv = ctx.input(1)?;
    let idx = ints_of(&iv, "indices")?;
    if iv.shape() != x.shape || x.shape.len() < 3 {
        return Err(op_err(format!(
            "indices {:?} must have the shape of X {:?} (rank at least 3)",
            iv.shape(),
            x.shape
        )));
    }
    let sp = x.shape.len() - 2;
    let kernel = ctx
        .ints_attr("kernel_shape")
        .filter(|k| k.len() == sp)
        .ok_or_else(|| op_err(format!("kernel_shape must have {sp} values")))?;
    let strides_a = ctx.ints_attr("strides").unwrap_or_else(|| vec![1; sp]);
    let pads = ctx.ints_attr("pads").unwrap_or_else(|| vec![0; 2 * sp]);
    if strides_a.len() != sp || pads.len() != 2 * sp {
        return Err(op_err("strides and pads must match the spatial rank"));
    }
    let mut inferred = x.shape[..2].to_vec();
    for d in 0..sp {
        let v = (x.shape[d + 2] as i128 - 1) * strides_a[d] as i128
            - pads[d] as i128
            - pads[d + sp] as i128
            + kernel[d] as i128;
        inferred.push(
            usize::try_from(v)
                .ok()
                .filter(|&v| v >= 1)
                .ok_or_else(|| op_err(format!("unpooled dim {d} would be {v}")))?,
        );
    }
    let total = checked_numel("", "", &inferred)?;
    let shape = match ctx.host_ints(2)? {
        None => inferred.clone(),
        Some(s) => {
            let s: Vec<usize> = s.iter().map(|&v| usize::try_from(v).unwrap_or(0)).collect();
            if s.len() != inferred.len() || s.iter().zip(&inferred).any(|(a, b)| a < b) {
                return Err(op_err(format!(
                    "output_shape {s:?} is smaller than the unpooled shape {inferred:?}"
                )));
            }
            s
        }
    };
    let n = checked_numel("", "", &shape)?;
    let Data::F32(xv) = &x.data else {
        return Err(op_err("internal: float input"));
    };
    let mut y = vec![0f32; total];
    for (&i, &v) in idx.iter().zip(xv) {
        let at = usize::try_from(i)
            .ok()
            .filter(|&i| i < total)
            .ok_or_else(|| op_err(format!("index {i} is out of range [0, {total})")))?;
        y[at] = v;
    }
    let mut out = vec![0f32; n];
    let st = strides(&shape);
    let mut coord = vec![0; inferred.len()];
    for (i, &v) in y.iter().enumerate() {
        unravel(i, &inferred, &mut coord);
        out[coord.iter().zip(&st).map(|(c, s)| c * s).sum::<usize>()] = v;
    }
    Ok(vec![Host::f32(out, shape).into_value(ctx.device)?])
}
