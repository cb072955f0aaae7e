//! BatchNormalization in training mode (`training_mode = 1`, opset 14+): normalizes with
//! the batch's own mean and (biased) variance per channel and returns the updated
//! running statistics `running * momentum + batch * (1 - momentum)`, as ONNX's
//! reference. Inference mode stays on the burn kernel in `norm.rs`.

use super::super::error::{RunResult, op_err};
use super::super::value::Value;
use super::Ctx;
use super::host::Host;

/// BatchNormalization(X `[N, C, ..]`, scale, B, input_mean, input_var `[C]`; epsilon =
/// 1e-5, momentum = 0.9) → (Y, running_mean, running_var).
pub(crate) fn batch_norm_training(ctx: &Ctx) -> RunResult<Vec<Value>> {
    let x = Host::read(&Value::Float(ctx.float(0)?))?;
    if x.shape.len() < 2 {
        return Err(op_err(format!("X must be [N, C, ..], got {:?}", x.shape)));
    }
    let (n, c) = (x.shape[0], x.shape[1]);
    let inner: usize = x.shape[2..].iter().product();
    let param = |i: usize| -> RunResult<Vec<f64>> {
        let p = Host::read(&Value::Float(ctx.float(i)?))?;
        if p.shape != [c] {
            return Err(op_err(format!(
                "input #{i} of shape {:?} must be [{c}]",
                p.shape
            )));
        }
        Ok(p.to_f64())
    };
    let (scale, bias, mean_in, var_in) = (param(1)?, param(2)?, param(3)?, param(4)?);
    let eps = ctx.float_attr("epsilon", 1e-5) as f64;
    let mom = ctx.float_attr("momentum", 0.9) as f64;
    let v = x.to_f64();
    let at = |b: usize, ch: usize, j: usize| (b * c + ch) * inner + j;
    let count = (n * inner).max(1) as f64;
    let mut y = vec![0f32; v.len()];
    let (mut run_mean, mut run_var) = (Vec::with_capacity(c), Vec::with_capacity(c));
    for ch in 0..c {
        let elems = || (0..n).flat_map(move |b| (0..inner).map(move |j| at(b, ch, j)));
        let mean = elems().map(|i| v[i]).sum::<f64>() / count;
        let var = elems().map(|i| (v[i] - mean).powi(2)).sum::<f64>() / count;
        let inv = 1.0 / (var + eps).sqrt();
        for i in elems() {
            y[i] = ((v[i] - mean) * inv * scale[ch] + bias[ch]) as f32;
        }
        run_mean.push((mean_in[ch] * mom + mean * (1.0 - mom)) as f32);
        run_var.push((var_in[ch] * mom + var * (1.0 - mom)) as f32);
    }
    Ok(vec![
        Host::f32(y, x.shape).into_value(ctx.device)?,
        Host::f32(run_mean, vec![c]).into_value(ctx.device)?,
        Host::f32(run_var, vec![c]).into_value(ctx.device)?,
    ])
}
