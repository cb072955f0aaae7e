//! `qdq finetune`: quantize, fine-tune the QDQ graph on labelled data, write it.

use std::path::Path;
use std::process::ExitCode;

use burn::prelude::*;
use qdq_data::ModelData;
use qdq_onnx::ModelProto;
use qdq_onnx::finetune::TrainableGraph;
use qdq_onnx::runtime::OnnxGraph;
use qdq_onnx::verify::Probe;
use qdq_vision::train::{TrainConfig, fit};

use crate::data_args;
use crate::pipeline::{probe, run_size, setup, write_model};
use crate::report::{evaluate, report_with};
use crate::{CalibArgs, Fallible, ModelOutput};

/// `qdq finetune`: quantize as `qdq quantize` does, fine-tune the QDQ graph on the
/// training data with `recipe`, write it; with evaluation data, report PTQ and the
/// fine-tuned model against FP32.
pub(crate) fn run_finetune(
    c: &CalibArgs,
    (train_path, labels): (&[String], Option<&Path>),
    recipe: &TrainConfig,
    eval_data: Option<(&[String], Option<&Path>)>,
    output: &ModelOutput,
    json: bool,
    device: &Device,
) -> Fallible<ExitCode> {
    let s = setup(c, device)?;
    // Every data file is read before the long steps, so that an error comes at once.
    let calib_data = data_args::load(&s.float, ("--calib", &c.calib), None, &c.pre)?;
    let train_data = data_args::load(&s.float, ("--train", train_path), labels, &c.pre)?;
    let train_path = train_path.join(" ");
    let Some(train) = train_data.single() else {
        return Err(format!(
            "--train {train_path}: fine-tuning trains a model with one float input, from one array or image folder; this model's inputs are {}",
            train_data
                .inputs()
                .iter()
                .map(|i| format!("`{}` {}", i.name, i.describe()))
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into());
    };
    let Some(train_labels) = train_data.labels() else {
        return Err(format!(
            "--train {train_path}: fine-tuning needs labels; give --labels, a .npz holding `labels`, or class folders"
        )
        .into());
    };
    let train = train.clone().with_label_values(train_labels.to_vec())?;
    if !(1..=3).contains(&train.item_shape().len()) || train.is_empty() {
        return Err(format!(
            "--train {train_path}: fine-tuning takes items of 1 to 3 dimensions ([F], [H, W], [C, H, W]), got {} items of {:?}",
            train.len(),
            train.item_shape()
        )
        .into());
    }
    let test = match eval_data {
        Some((d, l)) => Some(data_args::load(&s.float, ("--data", d), l, &c.pre)?),
        None => None,
    };
    let (cache, ran) = s.calibrate(c, &calib_data, json)?;
    let recipe = &crate::batch_one::training_recipe(recipe, ran, c.batch);
    let probe_input = probe(&s.float, Some(&calib_data))?;
    drop(calib_data);
    let quantized = s.trainable(&cache)?;

    // One checked forward pass first: the training loop has no error path.
    let trainable = TrainableGraph::new(&quantized, device)?;
    let probe = (0..train.len().min(2).min(recipe.batch_size)).collect::<Vec<_>>();
    let classes = trainable
        .classify(qdq_vision::data::batch(&train, &probe, None, device)?.0)?
        .dims()[1];
    if let Some(bad) = train_labels
        .iter()
        .find(|&&l| l < 0 || l as usize >= classes)
    {
        return Err(format!(
            "--train {train_path}: label {bad} is outside the model's {classes} classes"
        )
        .into());
    }
    let ad = device.clone().autodiff();
    ad.seed(recipe.seed);
    let (tuned, timing) = fit(trainable.fork(&ad).train(), &train, recipe, "fine-tuning")?;
    if let Some(d) = timing.diverged {
        return Err(format!(
            "{d}; no model was written (lower --lr, now {}, or check --train's preprocessing)",
            recipe.lr
        )
        .into());
    }
    let tuned = tuned.valid();
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
        "epochs": recipe.epochs,
        "lr": recipe.lr,
        "min_lr": recipe.min_lr,
        "images": train.len(),
        "weights": tuned.names().len(),
        "quantizers": tuned.quantizers(),
        "seconds": timing.seconds,
        "images_per_s": timing.images_per_s,
    });
    let mut header = format!(
        "fine-tuned {} weights through {} quantizers: {} epoch(s) over {} images, lr {:.1e} -> {:.1e}, {:.1} s ({:.0} images/s)",
        tuned.names().len(),
        tuned.quantizers(),
        recipe.epochs,
        train.len(),
        recipe.lr,
        recipe.min_lr,
        timing.seconds,
        timing.images_per_s
    );
    if let Some((f, q)) = ptq_eval.as_ref().and_then(|v| {
        Some((
            v["fp32_accuracy"].as_f64()?,
            v["quantized_accuracy"].as_f64()?,
        ))
    }) {
        header += &format!(
            "
before fine-tuning: FP32 {:.2}%  PTQ {:.2}%",
            f * 100.0,
            q * 100.0
        );
    }
    let more = serde_json::json!({"finetune": summary, "eval_ptq": ptq_eval});
    let quantizers = (&s.prepared, &cache);
    report_with(
        &output.output,
        quantizers,
        eval.as_ref(),
        Some(&header),
        json,
        Some(more),
    );
    Ok(ExitCode::SUCCESS)
}

/// Checks a fine-tuned model against the linter and, with evaluation data, scores the
/// PTQ model and the fine-tuned one against the float graph, in batches of at most
/// `batch` items sized by `probe_input`'s largest tensor.
///
/// # Errors
/// A lint violation (nothing is written then), a model that does not load, a data error.
pub(crate) fn lint_and_score(
    float: &OnnxGraph,
    (quantized, finetuned): (&ModelProto, &ModelProto),
    test: Option<&ModelData>,
    (batch, probe_input): (usize, &Probe),
    device: &Device,
) -> Fallible<(Option<serde_json::Value>, Option<serde_json::Value>)> {
    let violations = qdq_onnx::lint(finetuned);
    if !violations.is_empty() {
        return Err(qdq_onnx::Error::Lint(violations).into());
    }
    let Some(test) = test else {
        return Ok((None, None));
    };
    let ptq = OnnxGraph::from_model(quantized, device)?;
    let tuned = OnnxGraph::from_model(finetuned, device)?;
    // Batches sized by the probe item's largest tensor, as calibration runs are.
    let batch = run_size(batch, probe_input.largest_value());
    Ok((
        Some(evaluate(float, &ptq, test, batch)?),
        Some(evaluate(float, &tuned, test, batch)?),
    ))
}
