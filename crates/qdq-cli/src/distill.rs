//! `qdq finetune --distill`: label-free QAT. The FP32 graph is the teacher; the QDQ
//! graph learns to give its outputs on the same unlabeled items (the calibration data
//! unless --train names other data), any number of typed inputs.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use qdq_data::ModelData;
use qdq_onnx::finetune::{DistillLoss, TrainableGraph, distill_loss};
use qdq_onnx::runtime::{OnnxGraph, Value};
use qdq_vision::train::TrainConfig;

use crate::data_args;
use crate::finetune::lint_and_score;
use crate::pipeline::{probe, setup, write_model};
use crate::report::report_with;
use crate::{CalibArgs, Fallible, ModelOutput};
use qdq_cli::feed::batches;

/// Batches the loss is measured on before and after training (the first ones).
const MEASURED_BATCHES: usize = 8;

/// What `--distill` compares: `--distill-output` names (empty: every float output)
/// and `--distill-loss` values (`LOSS` for all, `NAME=LOSS` for one).
pub(crate) struct DistillArgs<'a> {
    /// `--train`: the items to fine-tune on (default: the calibration data).
    pub train: Option<&'a [String]>,
    pub outputs: &'a [String],
    pub losses: &'a [String],
}

/// The outputs to distill and each one's loss, from the teacher's outputs on one batch.
fn choose_losses(
    args: &DistillArgs,
    teacher: &[(String, Value)],
) -> Fallible<Vec<(String, DistillLoss)>> {
    let names: Vec<&str> = teacher.iter().map(|(n, _)| n.as_str()).collect();
    let mut all = None;
    let mut per = Vec::new();
    for l in args.losses {
        match l.split_once('=') {
            Some((name, loss)) => {
                if !names.contains(&name) {
                    return Err(format!(
                        "--distill-loss {l}: the model has no output `{name}` (outputs: {})",
                        names.join(", ")
                    )
                    .into());
                }
                per.push((
                    name.to_string(),
                    DistillLoss::parse(loss).map_err(|e| format!("--distill-loss {l}: {e}"))?,
                ));
            }
            None => {
                all = Some(DistillLoss::parse(l).map_err(|e| format!("--distill-loss {l}: {e}"))?)
            }
        }
    }
    for o in args.outputs {
        if !names.contains(&o.as_str()) {
            return Err(format!(
                "--distill-output {o}: the model has no output `{o}` (outputs: {})",
                names.join(", ")
            )
            .into());
        }
    }
    let mut chosen = Vec::new();
    for (name, v) in teacher {
        let named = args.outputs.contains(name);
        if !args.outputs.is_empty() && !named {
            continue;
        }
        if !matches!(v, Value::Float(_)) {
            if named {
                return Err(format!(
                    "--distill-output {name}: the output is {}; distillation compares float outputs",
                    v.describe()
                )
                .into());
            }
            continue; // shapes, masks, indices: nothing to learn from
        }
        let loss = per
            .iter()
            .find(|(n, _)| n == name)
            .map(|p| p.1)
            .or(all)
            .unwrap_or_else(|| DistillLoss::default_for(&v.shape()));
        chosen.push((name.clone(), loss));
    }
    if chosen.is_empty() {
        return Err("--distill: the model has no float output to distill".into());
    }
    Ok(chosen)
}

/// The mean distillation loss over the first [`MEASURED_BATCHES`] batches (no grad).
fn measure(
    model: &TrainableGraph,
    teacher: &OnnxGraph,
    data: &ModelData,
    losses: &[(String, DistillLoss)],
    batch: usize,
) -> Fallible<f64> {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for b in batches(teacher, data, batch)?.take(MEASURED_BATCHES) {
        let (_, inputs) = b?;
        let t = teacher.run(inputs.clone())?;
        let s = model.forward(inputs)?;
        sum += f64::from(distill_loss(losses, s, t)?.into_scalar::<f32>());
        n += 1;
    }
    Ok(sum / n.max(1) as f64)
}

/// A batch's values moved to `device` (where the trained weights are).
fn to_device(inputs: Vec<(String, Value)>, device: &Device) -> Fallible<Vec<(String, Value)>> {
    inputs
        .into_iter()
        .map(|(n, v)| {
            let shape = v.shape();
            let moved = match v {
                Value::Float(t) => Value::try_from_f32(t.to_vec()?, &shape, device)?,
                Value::Int(t, e) => Value::try_from_i64(t.to_vec()?, &shape, device, e)?,
                Value::Bool(t) => Value::try_from_bool(t.to_vec()?, &shape, device)?,
                other => other,
            };
            Ok((n, moved))
        })
        .collect()
}

/// `qdq finetune --distill`: quantize as `qdq quantize` does, fine-tune the QDQ graph
/// towards the float graph's outputs on `train` (default: the calibration data) with
/// `recipe`'s schedule, write it; with evaluation data, report PTQ and the fine-tuned
/// model against FP32.
pub(crate) fn run_distill(
    c: &CalibArgs,
    args: &DistillArgs,
    recipe: &TrainConfig,
    eval_data: Option<(&[String], Option<&Path>)>,
    output: &ModelOutput,
    json: bool,
    device: &Device,
) -> Fallible<ExitCode> {
    let s = setup(c, device)?;
    let calib_data = data_args::load(&s.float, ("--calib", &c.calib), None, &c.pre)?;
    let train_data = match args.train {
        Some(t) => Some(data_args::load(&s.float, ("--train", t), None, &c.pre)?),
        None => None,
    };
    let test = match eval_data {
        Some((d, l)) => Some(data_args::load(&s.float, ("--data", d), l, &c.pre)?),
        None => None,
    };
    let (cache, ran) = s.calibrate(c, &calib_data, json)?;
    let recipe = &crate::batch_one::training_recipe(recipe, ran, c.batch);
    let probe_input = probe(&s.float, Some(&calib_data))?;
    let quantized = s.trainable(&cache)?;
    let data = train_data.as_ref().unwrap_or(&calib_data);
    if data.is_empty() {
        return Err("--distill: no item to train on".into());
    }

    let trainable = TrainableGraph::new(&quantized, device)?;
    let losses = choose_losses(args, &s.float.run(probe_input.inputs.clone())?)?;
    let before = measure(&trainable, &s.float, data, &losses, recipe.batch_size)?;

    let ad = device.clone().autodiff();
    ad.seed(recipe.seed);
    let per_epoch = batches(&s.float, data, recipe.batch_size)?.total().max(1);
    let steps = ((recipe.epochs * per_epoch as f64).round() as usize).max(1);
    let mut optim = SgdConfig::new()
        .with_momentum(Some(
            MomentumConfig::new()
                .with_momentum(recipe.momentum)
                .with_dampening(0.0),
        ))
        .with_weight_decay(Some(WeightDecayConfig::new(recipe.weight_decay)))
        .init();
    let mut schedule = CosineAnnealingLrSchedulerConfig::new(recipe.lr, steps)
        .with_min_lr(recipe.min_lr)
        .init()
        .map_err(|e| format!("learning-rate schedule: {e}"))?;
    let mut model = trainable.fork(&ad).train();
    let start = Instant::now();
    let (mut step, mut items) = (0, 0usize);
    // Passes over the data in its order (batches group items of one shape), until
    // `steps` steps are done: the loop is bounded by `steps`.
    'passes: while step < steps {
        for b in batches(&s.float, data, recipe.batch_size)? {
            if step == steps {
                break 'passes;
            }
            let (batch_items, inputs) = b?;
            let n = batch_items.len();
            let teacher = s.float.run(inputs.clone())?;
            let student = model.forward(to_device(inputs, &ad)?)?;
            let loss = distill_loss(&losses, student, teacher)?;
            let value = f64::from(loss.clone().into_scalar::<f32>());
            if !value.is_finite() {
                return Err(format!(
                    "the distillation loss became {value} at step {} of {steps}; no model was written (lower --lr, now {})",
                    step + 1,
                    recipe.lr
                )
                .into());
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(schedule.step().base(), model, grads);
            step += 1;
            items += n;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let tuned = model.valid();
    let after = measure(&tuned, &s.float, data, &losses, recipe.batch_size)?;
    // --weights int8: stored quantized now, after training (the PTQ model scored
    // beside it keeps float weights: the same DQ values).
    let finetuned = s.stored(tuned.write_into(&quantized)?)?;
    let (ptq_eval, eval) = lint_and_score(
        &s.float,
        (&quantized, &finetuned),
        test.as_ref(),
        (ran, &probe_input),
        device,
    )?;
    write_model(&finetuned, output, probe_input, device)?;
    let summary = serde_json::json!({
        "distill": losses.iter().map(|(n, l)| serde_json::json!({"output": n, "loss": l.to_string()})).collect::<Vec<_>>(),
        "distill_loss_before": before,
        "distill_loss_after": after,
        "epochs": recipe.epochs,
        "steps": steps,
        "lr": recipe.lr,
        "min_lr": recipe.min_lr,
        "items": data.len(),
        "weights": tuned.names().len(),
        "quantizers": tuned.quantizers(),
        "seconds": seconds,
        "items_per_s": items as f64 / seconds.max(1e-9),
    });
    let mut header = format!(
        "distilled {} weights through {} quantizers from the FP32 model ({}): {steps} steps over {} items, lr {:.1e} -> {:.1e}, {seconds:.1} s\ndistillation loss {before:.6} -> {after:.6} (first {} batches)",
        tuned.names().len(),
        tuned.quantizers(),
        losses
            .iter()
            .map(|(n, l)| format!("{n}: {l}"))
            .collect::<Vec<_>>()
            .join(", "),
        data.len(),
        recipe.lr,
        recipe.min_lr,
        MEASURED_BATCHES.min(per_epoch),
    );
    if let Some(q) = ptq_eval.as_ref().and_then(|v| v["cosine"].as_f64()) {
        header += &format!("\nbefore fine-tuning: PTQ cosine to FP32 {q:.6}");
    }
    let more = serde_json::json!({"finetune": summary, "eval_ptq": ptq_eval});
    report_with(
        &output.output,
        (&s.prepared, &cache),
        eval.as_ref(),
        Some(&header),
        json,
        Some(more),
    );
    Ok(ExitCode::SUCCESS)
}
