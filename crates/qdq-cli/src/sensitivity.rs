//! `qdq sensitivity` and `qdq quantize --keep-float-sensitive N`: which layers lose the
//! most when quantized alone (`qdq_onnx::quantize::sensitivity`), and the QDQ model
//! with the worst of them kept in float.

use std::process::ExitCode;

use burn::tensor::Device;
use qdq_cli::data::ModelData;
use qdq_onnx::quantize::sensitivity::{BROKEN, Breaking, breaking_layers, most_sensitive};
use qdq_onnx::quantize::{
    CalibrationCache, LayerSensitivity, ModelCheck, Prepared, apply, keep_float, sensitivity,
};
use qdq_onnx::runtime::OnnxGraph;

use crate::pipeline::{AutoCheck, Setup, batches, setup};
use crate::{CalibArgs, Fallible, data_args};

/// Which layers `qdq quantize` keeps in float by their sensitivity.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeepFloat {
    /// The N most sensitive layers.
    pub top: usize,
    /// Every layer whose error alone is above this.
    pub above: Option<f64>,
    /// Whether a global `auto` keeps in float the layers that break the model alone
    /// when the quantized model's error passes [`BROKEN`] (`--no-auto-keep-float`
    /// turns it off; `top` or `above` replace it).
    pub guard: bool,
}

impl KeepFloat {
    /// Whether any layer is to be kept in float.
    pub(crate) fn any(&self) -> bool {
        self.top > 0 || self.above.is_some()
    }
}

/// The float model's `outputs` (all when empty) on the first `items` items of `data`
/// (batches of at most `batch`), kept to measure quantized models against; with the
/// number of items kept.
pub(crate) fn model_check(
    graph: &OnnxGraph,
    data: &ModelData,
    (batch, items): (usize, usize),
    outputs: &[String],
) -> Fallible<(ModelCheck, usize)> {
    let mut check = ModelCheck::measuring(outputs.to_vec());
    let mut seen = 0;
    for b in batches(graph, data, batch.min(items))? {
        let (batch_items, inputs) = b?;
        let outputs = graph.run(inputs.clone())?;
        check.push(inputs, &outputs)?;
        seen += batch_items.len();
        if seen >= items {
            break;
        }
    }
    Ok((check, seen))
}

/// The layers ranked on `check`, and the whole quantized model's error on it.
fn ranked(
    s: &Setup,
    cache: &CalibrationCache,
    check: &ModelCheck,
    device: &Device,
) -> Fallible<(Vec<LayerSensitivity>, f64)> {
    let ranking = sensitivity(&s.prepared, cache, check, &s.opts, device)?;
    let all = check.error(&apply(&s.prepared, cache, &s.opts)?, device)?;
    Ok((ranking, all))
}

/// `quantize --keep-float-sensitive`: the prepared model without the layers `keep`
/// selects by their sensitivity on the first `c.auto_items` items of `calib`, run in
/// batches of `batch` (calibration's, which may have fallen back to 1), and their
/// labels, most sensitive first; prints them (stderr; nothing with --json).
pub(crate) fn keep_sensitive_float(
    s: &Setup,
    c: &CalibArgs,
    (cache, batch): (&CalibrationCache, usize),
    calib: &ModelData,
    keep: KeepFloat,
    json: bool,
) -> Fallible<(Prepared, Vec<String>)> {
    let (check, seen) = model_check(&s.float, calib, (batch, c.auto_items), &s.auto_outputs)?;
    let ranking = sensitivity(&s.prepared, cache, &check, &s.opts, s.float.device())?;
    let float = most_sensitive(&ranking, keep.top, keep.above);
    // Every layer float is the FP32 model under a QDQ name: refuse rather than write it.
    if !ranking.is_empty() && float.len() == ranking.len() {
        return Err(format!(
            "--keep-float-sensitive / --keep-float-above keep all {} layers in float, so nothing would be quantized; keep fewer (`qdq sensitivity` prints the ranking)",
            ranking.len()
        )
        .into());
    }
    let kept: Vec<&LayerSensitivity> = ranking
        .iter()
        .filter(|l| float.contains(&l.layer()))
        .collect();
    if !json {
        let shown: Vec<String> = kept
            .iter()
            .map(|l| format!("{}{} ({:.3e})", l.scope, l.label, l.error))
            .collect();
        eprintln!(
            "kept in float, most sensitive first (error with the layer alone quantized, on {seen} items): {}",
            if shown.is_empty() {
                "none".to_string()
            } else {
                shown.join(", ")
            }
        );
    }
    let labels = kept.iter().map(|l| l.label.clone()).collect();
    Ok((keep_float(&s.prepared, &float), labels))
}

/// `auto`'s guard: when the model `auto` kept still errs past [`BROKEN`] on its items,
/// the prepared model without the layers that break it alone ([`breaking_layers`]),
/// kept only if its error there is lower, and their labels; else the prepared model as
/// it is. Says what it did (stderr; nothing with --json).
pub(crate) fn keep_breaking_float(
    s: &Setup,
    cache: &CalibrationCache,
    checked: &AutoCheck,
    json: bool,
) -> Fallible<(Prepared, Option<Vec<String>>)> {
    let device = s.float.device();
    let start = std::time::Instant::now();
    let found = breaking_layers(&s.prepared, cache, &checked.check, &s.opts, device)?;
    let head = format!(
        "auto: the quantized model's output error is {:.3e} on {} items (past {BROKEN})",
        checked.error, checked.items
    );
    let unchanged = |why: String| {
        if !json {
            eprintln!(
                "{head}; {why}, so every layer stays quantized (`qdq sensitivity` ranks them)"
            );
        }
        Ok((s.prepared.clone(), None))
    };
    let layers = match found {
        Breaking::Layers(l) if l.is_empty() => return unchanged("no layer breaks it alone".into()),
        Breaking::Layers(l) => l,
        Breaking::Unsteady(e) => {
            return unchanged(format!(
                "but the float model's own outputs move by {e:.3e} when its inputs move by 0.1 % (outputs that sort or pick, TopK or NMS, jump at any change)"
            ));
        }
        Breaking::TooMany(n) => {
            return unchanged(format!(
                "{n} layers or more each break it alone: no few layers are to blame"
            ));
        }
        // Every layer float would write the FP32 model under a QDQ name.
        Breaking::Every(1) => return unchanged("its only layer breaks it alone".into()),
        Breaking::Every(n) => {
            return unchanged(format!("each of its {n} layers breaks it alone"));
        }
    };
    let float = layers.iter().map(LayerSensitivity::layer).collect();
    let kept = keep_float(&s.prepared, &float);
    let after = checked
        .check
        .error(&apply(&kept, cache, &s.opts)?, device)?;
    let shown: Vec<String> = layers
        .iter()
        .map(|l| format!("{}{} ({:.3e})", l.scope, l.label, l.error))
        .collect();
    // NaN (a broken run) is no better either.
    let better = after.partial_cmp(&checked.error) == Some(std::cmp::Ordering::Less);
    if !better {
        if !json {
            eprintln!(
                "{head}; keeping the layers that break it alone in float ({}) gives {after:.3e}, no better: every layer stays quantized",
                shown.join(", ")
            );
        }
        return Ok((s.prepared.clone(), None));
    }
    if !json {
        eprintln!(
            "{head}: kept in float the layers whose quantization alone passes it: {}; error with them float {after:.3e} ({:.1} s; --no-auto-keep-float quantizes them)",
            shown.join(", "),
            start.elapsed().as_secs_f64()
        );
    }
    let labels = layers.iter().map(|l| l.label.clone()).collect();
    Ok((kept, Some(labels)))
}

/// `qdq sensitivity`: calibrates, then ranks the layers by the whole model's output
/// error with each alone quantized, on the first `items` items of `data` (else of
/// the calibration data); prints the `top` first (all by default).
pub(crate) fn run_sensitivity(
    c: &CalibArgs,
    data: &[String],
    (items, top): (usize, Option<usize>),
    json: bool,
    device: &Device,
) -> Fallible<ExitCode> {
    let s = setup(c, device)?;
    let calib = data_args::load(&s.float, ("--calib", &c.calib), None, &c.pre)?;
    let measured = match data {
        [] => None,
        d => Some(data_args::load(&s.float, ("--data", d), None, &c.pre)?),
    };
    // The batch calibration ran at (1 when the model fixes its batch inside).
    let (cache, batch) = s.calibrate(c, &calib, json)?;
    let (check, seen) = model_check(
        &s.float,
        measured.as_ref().unwrap_or(&calib),
        (batch, items),
        &s.auto_outputs,
    )?;
    let (ranking, all) = ranked(&s, &cache, &check, device)?;
    let shown = &ranking[..top.unwrap_or(ranking.len()).min(ranking.len())];
    if json {
        let layers: Vec<_> = shown
            .iter()
            .enumerate()
            .map(|(i, l)| {
                serde_json::json!({
                    "rank": i + 1, "node": l.label, "graph": l.scope, "op_type": l.op_type,
                    "quantizers": l.quantizers, "error": finite_or_null(l.error),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "model": c.model.model, "items": seen, "layers_measured": ranking.len(),
                "error_all_quantized": finite_or_null(all), "layers": layers,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} layers, each quantized alone; output error Σ(q-f)²/Σf² against FP32 on {seen} items (all layers quantized: {all:.3e})",
        ranking.len(),
    );
    println!(
        "{:>4}  {:>10}  {:<14} {:<40} quantizers",
        "rank", "error", "op", "node"
    );
    for (i, l) in shown.iter().enumerate() {
        println!(
            "{:>4}  {:>10.3e}  {:<14} {:<40} {}",
            i + 1,
            l.error,
            l.op_type,
            format!("{}{}", l.scope, l.label),
            l.quantizers.join(", ")
        );
    }
    println!(
        "keep the N most sensitive in float: qdq quantize ... --keep-float-sensitive N (measured there on the first --auto-items calibration items)"
    );
    Ok(ExitCode::SUCCESS)
}

/// JSON has no NaN: a layer that made the outputs NaN is `null`.
fn finite_or_null(e: f64) -> serde_json::Value {
    if e.is_finite() {
        serde_json::json!(e)
    } else {
        serde_json::Value::Null
    }
}
