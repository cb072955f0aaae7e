//! Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (input `[N, C, d1..]`,
//! integer targets `[N, d1..]`, optional class weights `[C]`, `ignore_index`,
//! reduction `none` / `sum` / `mean` (default)), on the host in f64.

use super::super::error::{RunResult, op_err};
use super::super::value::Value;
use super::Ctx;
use super::host::{Host, ints_of};

/// The loss of log-probabilities `logp` (`[N, C, d..]`) against `target`: per element
/// `-logp[n, t, d] * w[t]` (0 where `t == ignore_index`), then reduced.
fn nll(ctx: &Ctx, logp: &[f64], shape: &[usize]) -> RunResult<Value> {
    if shape.len() < 2 {
        return Err(op_err(format!("input must be [N, C, d1..], got {shape:?}")));
    }
    let tv = ctx.input(1)?;
    let target = ints_of(&tv, "target")?;
    let (n, c) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let mut tshape = vec![n];
    tshape.extend_from_slice(&shape[2..]);
    if tv.shape() != tshape {
        return Err(op_err(format!(
            "target of shape {:?} must be {tshape:?} for input {shape:?}",
            tv.shape()
        )));
    }
    let weight = match ctx.opt(2) {
        None => None,
        Some(w) => {
            let w = Host::read(&w)?;
            if w.shape != [c] {
                return Err(op_err(format!(
                    "weight of shape {:?} must be [{c}]",
                    w.shape
                )));
            }
            Some(w.to_f64())
        }
    };
    let ignore = ctx
        .has_attr("ignore_index")
        .then(|| ctx.int_attr("ignore_index", 0));
    let mut loss = Vec::with_capacity(target.len());
    let mut wsum = 0.0;
    for (i, &t) in target.iter().enumerate() {
        if Some(t) == ignore {
            loss.push(0.0);
            continue;
        }
        let cls = usize::try_from(t)
            .ok()
            .filter(|&k| k < c)
            .ok_or_else(|| op_err(format!("target class {t} is out of range [0, {c})")))?;
        let w = weight.as_ref().map_or(1.0, |w| w[cls]);
        let (b, d) = (i / inner.max(1), i % inner.max(1));
        loss.push(-logp[(b * c + cls) * inner + d] * w);
        wsum += w;
    }
    let out = match ctx.string_attr("reduction", "mean").as_str() {
        "none" => Host::f32(loss.iter().map(|&v| v as f32).collect(), tshape),
        "sum" => Host::f32(vec![loss.iter().sum::<f64>() as f32], vec![]),
        "mean" => {
            // onnxruntime divides by the summed weights; all ignored gives 0, not NaN
            let s: f64 = loss.iter().sum();
            let m = if wsum == 0.0 { 0.0 } else { s / wsum };
            Host::f32(vec![m as f32], vec![])
        }
        other => return Err(op_err(format!("unknown reduction `{other}`"))),
    };
    out.into_value(ctx.device)
}

/// NegativeLogLikelihoodLoss(input, target, weight?).
pub(crate) fn nll_loss(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    Ok(vec![nll(ctx, &x.to_f64(), &x.shape)?])
}

/// SoftmaxCrossEntropyLoss(scores, labels, weights?) → (loss, log_prob?): the NLL of
/// `log_softmax(scores, axis = 1)`.
pub(crate) fn softmax_cross_entropy(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    if x.shape.len() < 2 {
        return Err(op_err(format!(
            "scores must be [N, C, d1..], got {:?}",
            x.shape
        )));
    }
    let (n, c) = (x.shape[0], x.shape[1]);
    let inner: usize = x.shape[2..].iter().product();
    let v = x.to_f64();
    let mut logp = vec![0.0; v.len()];
    for b in 0..n {
        for d in 0..inner {
            let at = |k: usize| (b * c + k) * inner + d;
            let m = (0..c).map(|k| v[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let lse = (0..c).map(|k| (v[at(k)] - m).exp()).sum::<f64>().ln() + m;
            for k in 0..c {
                logp[at(k)] = v[at(k)] - lse;
            }
        }
    }
    let loss = nll(ctx, &logp, &x.shape)?;
    let mut outs = vec![loss];
    if ctx.wants_output(1) {
        let lp = logp.iter().map(|&p| p as f32).collect();
        outs.push(Host::f32(lp, x.shape.clone()).into_value(ctx.device)?);
    }
    Ok(outs)
}
