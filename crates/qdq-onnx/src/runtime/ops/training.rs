//! Optimizer steps of domain `ai.onnx.preview.training`: Momentum (standard and
//! Nesterov), Adagrad and Adam, each over one or more tensors
//! `(R, T, X1..Xn, G1..Gn, state1..)`, with ONNX's reference update rules in f64.

use super::super::error::{RunResult, op_err};
use super::super::value::Value;
use super::Ctx;
use super::host::Host;

/// The `n` tensor groups of an optimizer with `states` state inputs per tensor: the
/// inputs after `R, T` split into X, G and the states, all of one shape per tensor.
fn groups(ctx: &Ctx, states: usize) -> RunResult<(f64, f64, Vec<Vec<Host>>)> {
    let per = 2 + states;
    let rest = ctx.inputs.len().saturating_sub(2);
    if rest == 0 || !rest.is_multiple_of(per) {
        return Err(op_err(format!(
            "expected R, T and {per} inputs per tensor, got {} inputs",
            ctx.inputs.len()
        )));
    }
    let n = rest / per;
    let scalar = |i: usize| -> RunResult<f64> {
        match Host::read(&ctx.input(i)?)?.to_f64().as_slice() {
            [v] => Ok(*v),
            _ => Err(op_err(format!("input #{i} must be a scalar"))),
        }
    };
    let (r, t) = (scalar(0)?, scalar(1)?);
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let g: Vec<Host> = (0..per)
            .map(|j| Host::read(&ctx.input(2 + j * n + k)?))
            .collect::<RunResult<_>>()?;
        if g.iter().any(|h| h.shape != g[0].shape) {
            return Err(op_err(format!("tensor group {k} has mismatched shapes")));
        }
        out.push(g);
    }
    Ok((r, t, out))
}

/// Writes per-group results: all first outputs, then all second outputs, ...
fn emit(ctx: &Ctx, groups: &[Vec<Host>], results: Vec<Vec<Vec<f64>>>) -> RunResult<Vec<Value>> {
    let kinds = results.first().map_or(0, Vec::len);
    let mut outs = Vec::new();
    for j in 0..kinds {
        for (g, res) in groups.iter().zip(&results) {
            let v = res[j].iter().map(|&x| x as f32).collect();
            outs.push(Host::f32(v, g[0].shape.clone()).into_value(ctx.device)?);
        }
    }
    Ok(outs)
}

/// Momentum(R, T, X.., G.., V..; alpha, beta, mode, norm_coefficient) → (X_new.., V_new..).
pub(crate) fn momentum(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let (r, t, gs) = groups(ctx, 1)?;
    let alpha = ctx.float_attr("alpha", 0.0) as f64;
    let beta = if t > 0.0 {
        ctx.float_attr("beta", 0.0) as f64
    } else {
        1.0
    };
    let norm = ctx.float_attr("norm_coefficient", 0.0) as f64;
    let nesterov = match ctx.string_attr("mode", "standard").as_str() {
        "standard" => false,
        "nesterov" => true,
        m => return Err(op_err(format!("unknown mode `{m}`"))),
    };
    let results = gs
        .iter()
        .map(|g| {
            let (x, gr, v) = (g[0].to_f64(), g[1].to_f64(), g[2].to_f64());
            let (mut xs, mut vs) = (Vec::new(), Vec::new());
            for i in 0..x.len() {
                let gg = norm * x[i] + gr[i];
                let vn = alpha * v[i] + beta * gg;
                xs.push(if nesterov {
                    x[i] - r * (gg + alpha * vn)
                } else {
                    x[i] - r * vn
                });
                vs.push(vn);
            }
            vec![xs, vs]
        })
        .collect();
    emit(ctx, &gs, results)
}

/// Adagrad(R, T, X.., G.., H..; decay_factor = 0, epsilon = 1e-6, norm_coefficient = 0)
/// → (X_new.., H_new..).
pub(crate) fn adagrad(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let (r, t, gs) = groups(ctx, 1)?;
    let decay = ctx.float_attr("decay_factor", 0.0) as f64;
    let eps = ctx.float_attr("epsilon", 1e-6) as f64;
    let norm = ctx.float_attr("norm_coefficient", 0.0) as f64;
    let rate = r / (1.0 + t * decay);
    let results = gs
        .iter()
        .map(|g| {
            let (x, gr, h) = (g[0].to_f64(), g[1].to_f64(), g[2].to_f64());
            let (mut xs, mut hs) = (Vec::new(), Vec::new());
            for i in 0..x.len() {
                let gg = norm * x[i] + gr[i];
                let hn = h[i] + gg * gg;
                xs.push(x[i] - rate * gg / (hn.sqrt() + eps));
                hs.push(hn);
            }
            vec![xs, hs]
        })
        .collect();
    emit(ctx, &gs, results)
}

/// Adam(R, T, X.., G.., V.., H..; alpha = 0.9, beta = 0.999, epsilon = 1e-6,
/// norm_coefficient = 0, norm_coefficient_post = 0) → (X_new.., V_new.., H_new..).
pub(crate) fn adam(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let (r, t, gs) = groups(ctx, 2)?;
    let alpha = ctx.float_attr("alpha", 0.9) as f64;
    let beta = ctx.float_attr("beta", 0.999) as f64;
    let eps = ctx.float_attr("epsilon", 1e-6) as f64;
    let norm = ctx.float_attr("norm_coefficient", 0.0) as f64;
    let post = ctx.float_attr("norm_coefficient_post", 0.0) as f64;
    let rate = if t > 0.0 {
        r * (1.0 - beta.powf(t)).sqrt() / (1.0 - alpha.powf(t))
    } else {
        r
    };
    let results = gs
        .iter()
        .map(|g| {
            let (x, gr, v, h) = (g[0].to_f64(), g[1].to_f64(), g[2].to_f64(), g[3].to_f64());
            let (mut xs, mut vs, mut hs) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..x.len() {
                let gg = norm * x[i] + gr[i];
                let vn = alpha * v[i] + (1.0 - alpha) * gg;
                let hn = beta * h[i] + (1.0 - beta) * gg * gg;
                let xn = x[i] - rate * (vn / (hn.sqrt() + eps));
                xs.push((1.0 - post) * xn);
                vs.push(vn);
                hs.push(hn);
            }
            vec![xs, vs, hs]
        })
        .collect();
    emit(ctx, &gs, results)
}
