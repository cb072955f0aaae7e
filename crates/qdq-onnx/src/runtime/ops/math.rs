//! Host math kernels without a burn counterpart of the same semantics: CumSum, Hardmax,
//! Shrink, IsInf, IsNaN, MeanVarianceNormalization and Det.

use super::super::error::{RunResult, op_err};
use super::super::value::Value;
use super::host::{Data, Host, ints_of};
use super::{Ctx, norm_axis};

/// Sizes around `axis`: (outer, dim, inner).
fn split_at(shape: &[usize], a: usize) -> (usize, usize, usize) {
    (
        shape[..a].iter().product(),
        shape[a],
        shape[a + 1..].iter().product(),
    )
}

/// CumSum(x, axis scalar; exclusive = 0, reverse = 0): running sums along `axis`
/// (integers wrap).
pub(crate) fn cumsum(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let mut x = Host::read(&ctx.input(0)?)?;
    let axis = match ints_of(&ctx.input(1)?, "axis")?.as_slice() {
        [a] => *a,
        v => return Err(op_err(format!("axis must be one value, got {v:?}"))),
    };
    let a = norm_axis(axis, x.shape.len())?;
    let (outer, dim, inner) = split_at(&x.shape, a);
    let excl = ctx.int_attr("exclusive", 0) != 0;
    let rev = ctx.int_attr("reverse", 0) != 0;
    // running sums of one fibre: `at(s)` is the flat position of step `s` along the axis
    fn run<T: Copy>(
        v: &mut [T],
        at: impl Fn(usize) -> usize,
        d: usize,
        excl: bool,
        rev: bool,
        zero: T,
        add: impl Fn(T, T) -> T,
    ) {
        let mut acc = zero;
        for s in 0..d {
            let k = at(if rev { d - 1 - s } else { s });
            let cur = v[k];
            if excl {
                v[k] = acc;
                acc = add(acc, cur);
            } else {
                acc = add(acc, cur);
                v[k] = acc;
            }
        }
    }
    for b in 0..outer {
        for j in 0..inner {
            let at = |k: usize| (b * dim + k) * inner + j;
            match &mut x.data {
                Data::F32(v) => run(v, at, dim, excl, rev, 0.0, |p, q| p + q),
                Data::I64(v, _) => run(v, at, dim, excl, rev, 0, i64::wrapping_add),
                Data::Bool(_) => return Err(op_err("CumSum of bool")),
            }
        }
    }
    Ok(vec![x.into_value(ctx.device)?])
}
/// Hardmax(input; axis = -1 (opset 13+), 1 before): 1 at the first maximum along
/// `axis` (before opset 13, over the input flattened to 2-D at `axis`), else 0.
pub(crate) fn hardmax(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    let r = x.shape.len();
    let v = x.to_f64();
    let (outer, dim, inner) = if ctx.opset >= 13 {
        split_at(&x.shape, norm_axis(ctx.int_attr("axis", -1), r)?)
    } else {
        let a = norm_axis(ctx.int_attr("axis", 1), r)?;
        (
            x.shape[..a].iter().product(),
            x.shape[a..].iter().product(),
            1,
        )
    };
    let mut out = vec![0f32; v.len()];
    for b in 0..outer {
        for j in 0..inner {
            let at = |k: usize| (b * dim + k) * inner + j;
            let best = (0..dim).fold(None, |m: Option<usize>, k| match m {
                Some(i) if v[at(i)] >= v[at(k)] => Some(i),
                _ => Some(k),
            });
            if let Some(k) = best {
                out[at(k)] = 1.0;
            }
        }
    }
    Ok(vec![Host::f32(out, x.shape).into_value(ctx.device)?])
}

/// Shrink(input; lambd = 0.5, bias = 0): `x + bias` below `-lambd`, `x - bias` above
/// `lambd`, else 0 (any numeric type).
pub(crate) fn shrink(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&ctx.input(0)?)?;
    let (l, b) = (
        ctx.float_attr("lambd", 0.5) as f64,
        ctx.float_attr("bias", 0.0) as f64,
    );
    let f = |v: f64| {
        if v < -l {
            v + b
        } else if v > l {
            v - b
        } else {
            0.0
        }
    };
    let data = match x.data {
        Data::F32(v) => Data::F32(v.iter().map(|&p| f(p as f64) as f32).collect()),
        Data::I64(v, e) => Data::I64(v.iter().map(|&p| f(p as f64) as i64).collect(), e),
        Data::Bool(_) => return Err(op_err("Shrink of bool")),
    };
    Ok(vec![
        Host {
            data,
            shape: x.shape,
        }
        .into_value(ctx.device)?,
    ])
}

/// IsInf(x; detect_negative = 1, detect_positive = 1) and IsNaN(x) → bool.
pub(crate) fn is_special(ctx: &Ctx, op: &str) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    let Data::F32(v) = &x.data else {
        return Err(op_err("internal: float input"));
    };
    let (neg, pos) = (
        ctx.int_attr("detect_negative", 1) != 0,
        ctx.int_attr("detect_positive", 1) != 0,
    );
    let out = v
        .iter()
        .map(|&p| match op {
            "IsNaN" => p.is_nan(),
            _ => p.is_infinite() && ((p > 0.0 && pos) || (p < 0.0 && neg)),
        })
        .collect();
    Ok(vec![Value::try_from_bool(out, &x.shape, ctx.device)?])
}

/// MeanVarianceNormalization(X; axes = [0, 2, 3]): `(x - E[x]) / (sqrt(E[x²] - E[x]²)
/// + 1e-9)`, moments over `axes` (ONNX's function body).
pub(crate) fn mean_variance_norm(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    let r = x.shape.len();
    let axes = ctx.ints_attr("axes").unwrap_or_else(|| vec![0, 2, 3]);
    let mut reduced = vec![false; r];
    for &a in &axes {
        reduced[norm_axis(a, r)?] = true;
    }
    let v = x.to_f64();
    // group id of each element: its coordinates on the kept axes
    let mut coord = vec![0; r];
    let keep_strides: Vec<usize> = {
        let mut s = vec![0; r];
        let mut acc = 1;
        for k in (0..r).rev() {
            if !reduced[k] {
                s[k] = acc;
                acc *= x.shape[k];
            }
        }
        s
    };
    let groups: usize = (0..r)
        .filter(|&k| !reduced[k])
        .map(|k| x.shape[k])
        .product();
    let gid: Vec<usize> = (0..v.len())
        .map(|i| {
            super::host::unravel(i, &x.shape, &mut coord);
            coord.iter().zip(&keep_strides).map(|(c, s)| c * s).sum()
        })
        .collect();
    let (mut s1, mut s2, mut cnt) = (vec![0.0; groups], vec![0.0; groups], vec![0.0; groups]);
    for (i, &g) in gid.iter().enumerate() {
        s1[g] += v[i];
        s2[g] += v[i] * v[i];
        cnt[g] += 1.0;
    }
    let out = gid
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            let m = s1[g] / cnt[g];
            let sd = (s2[g] / cnt[g] - m * m).max(0.0).sqrt();
            ((v[i] - m) / (sd + 1e-9)) as f32
        })
        .collect();
    Ok(vec![Host::f32(out, x.shape).into_value(ctx.device)?])
}

/// Det(X `[*, M, M]`) → `[*]`: LU decomposition with partial pivoting in f64.
pub(crate) fn det(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    let r = x.shape.len();
    if r < 2 || x.shape[r - 1] != x.shape[r - 2] {
        return Err(op_err(format!(
            "input must be [*, M, M], got {:?}",
            x.shape
        )));
    }
    let m = x.shape[r - 1];
    let batch = x.shape[..r - 2].to_vec();
    if m == 0 {
        // the determinant of a 0x0 matrix is 1 (and `chunks(0)` would panic)
        let n = batch.iter().product();
        return Ok(vec![Host::f32(vec![1.0; n], batch).into_value(ctx.device)?]);
    }
    let v = x.to_f64();
    let out = v
        .chunks(m * m)
        .map(|c| {
            let mut a = c.to_vec();
            let mut d = 1.0;
            for col in 0..m {
                let p = (col..m)
                    .max_by(|&i, &j| a[i * m + col].abs().total_cmp(&a[j * m + col].abs()))
                    .unwrap_or(col);
                if a[p * m + col] == 0.0 {
                    return 0.0;
                }
                if p != col {
                    for k in 0..m {
                        a.swap(p * m + k, col * m + k);
                    }
                    d = -d;
                }
                d *= a[col * m + col];
                for i in col + 1..m {
                    let f = a[i * m + col] / a[col * m + col];
                    for k in col..m {
                        a[i * m + k] -= f * a[col * m + k];
                    }
                }
            }
            d as f32
        })
        .collect::<Vec<f32>>();
    Ok(vec![Host::f32(out, batch).into_value(ctx.device)?])
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use crate::proto::{attr_int, model, node, tensor_f32, tensor_i64};
    use crate::runtime::OnnxGraph;

    /// CumSum of `x` (`shape`) along `axis`; ONNX's node cases store float64, which this
    /// branch does not read, so their inputs and stored outputs are restated in float32.
    fn cumsum(x: &[f32], shape: &[usize], axis: i64, exclusive: i64, reverse: i64) -> Vec<f32> {
        let mut n = node("CumSum", "cs", &["x", "a"], &["y"]);
        n.attribute.push(attr_int("exclusive", exclusive));
        n.attribute.push(attr_int("reverse", reverse));
        let m = model(
            vec![n],
            vec![],
            &["y"],
            vec![tensor_f32("x", shape, x), tensor_i64("a", &[], &[axis])],
            14,
        );
        let g = OnnxGraph::from_model(&m, &Device::flex()).unwrap();
        g.run(vec![]).unwrap()[0].1.to_f32().unwrap()
    }

    #[test]
    fn cumsum_matches_onnx_node_cases() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(cumsum(&x, &[5], 0, 0, 0), [1.0, 3.0, 6.0, 10.0, 15.0]);
        assert_eq!(cumsum(&x, &[5], 0, 1, 0), [0.0, 1.0, 3.0, 6.0, 10.0]);
        assert_eq!(cumsum(&x, &[5], 0, 0, 1), [15.0, 14.0, 12.0, 9.0, 5.0]);
        assert_eq!(cumsum(&x, &[5], 0, 1, 1), [14.0, 12.0, 9.0, 5.0, 0.0]);
        let x2 = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            cumsum(&x2, &[2, 3], 0, 0, 0),
            [1.0, 2.0, 3.0, 5.0, 7.0, 9.0]
        );
        assert_eq!(
            cumsum(&x2, &[2, 3], -1, 0, 0),
            [1.0, 3.0, 6.0, 4.0, 9.0, 15.0]
        );
    }
}
