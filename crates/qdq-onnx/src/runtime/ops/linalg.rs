//! Matrix products: MatMul (numpy semantics: 1-D promotion, batched, broadcasting batch
//! dims) and Gemm (alpha, beta, transA, transB, broadcast C).

use super::super::error::{RunResult, checked_numel, op_err};
use super::super::value::{DynTensor, Value, dyn_map, dyn_zip};
use super::Ctx;
use super::elementwise::{Bin, binary, broadcast_shape, expand_to};
use super::shape::permute;
use burn::tensor::Float;

/// numpy `matmul` of two float tensors.
pub(crate) fn matmul_t(a: DynTensor<Float>, b: DynTensor<Float>) -> RunResult<DynTensor<Float>> {
    let (ra, rb) = (a.rank(), b.rank());
    if ra == 0 || rb == 0 {
        return Err(op_err("MatMul of a scalar"));
    }
    let a = if ra == 1 {
        a.clone().reshape(&[1, a.shape[0]])?
    } else {
        a
    };
    let b = if rb == 1 {
        b.clone().reshape(&[b.shape[0], 1])?
    } else {
        b
    };
    let (sa, sb) = (a.shape.clone(), b.shape.clone());
    let (n, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (k2, m) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if k != k2 {
        return Err(op_err(format!(
            "MatMul inner dims differ: {:?} x {:?}",
            sa, sb
        )));
    }
    let batch = broadcast_shape(&sa[..sa.len() - 2], &sb[..sb.len() - 2])?;
    let mut product = batch.clone();
    product.extend([n, m]);
    checked_numel("", "", &product)?;
    let full = |x: DynTensor<Float>, r: usize, c: usize| {
        let mut s = batch.clone();
        s.extend([r, c]);
        expand_to(x.lift(batch.len() + 2)?, &s)
    };
    let a = full(a, n, k)?;
    let b = full(b, k, m)?;
    let mut out = batch.clone();
    out.extend([n, m]);
    let t = dyn_zip!(a.t, b.t, |x, y, R| x.matmul(y))?;
    let mut res = DynTensor::with(t, out);
    let mut final_shape = batch;
    if ra != 1 {
        final_shape.push(n);
    }
    if rb != 1 {
        final_shape.push(m);
    }
    if final_shape != res.shape {
        res = res.reshape(&final_shape)?;
    }
    Ok(res)
}

pub(crate) fn matmul(ctx: &Ctx) -> RunResult<Vec<Value>> {
    Ok(vec![Value::Float(matmul_t(ctx.float(0)?, ctx.float(1)?)?)])
}

pub(crate) fn gemm(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let mut a = ctx.float(0)?;
    let mut b = ctx.float(1)?;
    if a.rank() != 2 || b.rank() != 2 {
        return Err(op_err(format!(
            "Gemm needs 2-D A and B, got {:?} and {:?}",
            a.shape, b.shape
        )));
    }
    if ctx.int_attr("transA", 0) != 0 {
        a = permute(a, &[1, 0])?;
    }
    if ctx.int_attr("transB", 0) != 0 {
        b = permute(b, &[1, 0])?;
    }
    let alpha = ctx.float_attr("alpha", 1.0);
    let beta = ctx.float_attr("beta", 1.0);
    let mut y = matmul_t(a, b)?;
    if alpha != 1.0 {
        y = DynTensor::with(dyn_map!(y.t, |t, R| t.mul_scalar(alpha)), y.shape);
    }
    let mut y = Value::Float(y);
    if let Some(c) = ctx.opt(2) {
        let c = super::as_float(c)?;
        if broadcast_shape(&c.shape, &y.shape())? != y.shape() {
            return Err(op_err(format!(
                "Gemm C of shape {:?} does not broadcast to {:?}",
                c.shape,
                y.shape()
            )));
        }
        let c = if beta != 1.0 {
            DynTensor::with(dyn_map!(c.t, |t, R| t.mul_scalar(beta)), c.shape)
        } else {
            c
        };
        if beta != 0.0 {
            y = binary(y, Value::Float(c), Bin::Add)?;
        }
    }
    Ok(vec![y])
}
