//! What commands print: the quantizer table and the FP32-vs-quantized evaluation,
//! as text or JSON.

use std::path::Path;

use qdq_cli::data::ModelData;
use qdq_onnx::quantize::{CalibrationCache, Prepared, report};
use qdq_onnx::runtime::OnnxGraph;

use crate::Fallible;
use crate::batch_one::{on_batch, with_fallback};
use crate::pipeline::batches;

pub(crate) fn quantizer_table(
    prepared: &Prepared,
    cache: &CalibrationCache,
) -> Vec<serde_json::Value> {
    let left_out: Vec<&str> = prepared
        .left_out(cache)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    prepared
        .sites
        .iter()
        .map(|s| {
            let e = cache.entries.get(&s.key());
            let amax = match left_out.contains(&s.name.as_str()) {
                true => Vec::new(),
                false => e.map(|e| e.amax.clone()).unwrap_or_default(),
            };
            let method = match e {
                _ if left_out.contains(&s.name.as_str()) => "left out: no data".to_string(),
                Some(e) => e.method.clone(),
                None => String::new(),
            };
            serde_json::json!({
                "name": s.name,
                "tensor": s.key(),
                "method": method,
                "amax": if amax.is_empty() { serde_json::Value::Null } else if amax.len() == 1 { serde_json::json!(amax[0]) } else { serde_json::json!({"channels": amax.len(), "max": amax.iter().fold(0f32, |m, v| m.max(*v))}) },
            })
        })
        .collect()
}

pub(crate) fn print_table(rows: &[serde_json::Value]) {
    println!("{:<48} {:<18} amax", "quantizer", "method");
    for r in rows {
        let amax = match &r["amax"] {
            serde_json::Value::Object(o) => format!(
                "{} channels, max {:.4}",
                o["channels"],
                o["max"].as_f64().unwrap_or(0.0)
            ),
            serde_json::Value::Null => "-".into(),
            v => format!("{:.4}", v.as_f64().unwrap_or(0.0)),
        };
        println!(
            "{:<48} {:<18} {}",
            r["name"].as_str().unwrap_or(""),
            r["method"].as_str().unwrap_or(""),
            amax
        );
    }
}

/// FP32 vs quantized on `data`: every output compared (SQNR and cosine; top-1
/// agreement and, with labels, accuracy for `[batch, classes]` outputs), and the tensor
/// where the error jumps. The top-level figures are the first output's; accuracy the
/// first `[batch, classes]` output's. Batches of `batch` items, or 1 when the model
/// cannot run several ([`crate::batch_one`]).
pub(crate) fn evaluate(
    float: &OnnxGraph,
    quant: &OnnxGraph,
    data: &ModelData,
    batch: usize,
) -> Fallible<serde_json::Value> {
    with_fallback(batch, |b| evaluate_at(float, quant, data, b)).map(|(v, _)| v)
}

/// [`evaluate`] at one batch size.
fn evaluate_at(
    float: &OnnxGraph,
    quant: &OnnxGraph,
    data: &ModelData,
    batch: usize,
) -> Fallible<serde_json::Value> {
    // Batches are read as the comparison reaches them; a read error stops it.
    let mut failed = None;
    let read = batches(float, data, batch)?
        .map_while(|b| b.map_err(|e| failed = Some(e)).ok())
        .map(|(items, inputs)| (items.len(), inputs));
    let outputs = report::compare_outputs(float, quant, read, data.labels())
        .map_err(|e| on_batch(e, batch.min(data.len())))?;
    if let Some(e) = failed {
        return Err(e);
    }
    check_labels(&outputs, data.labels())?;
    let first = outputs.first().ok_or("the model has no output")?;
    let finite = |x: f64| x.is_finite().then_some(x); // infinite SQNR (equal outputs): null
    let per_output: Vec<serde_json::Value> = outputs
        .iter()
        .map(|o| {
            let mut v = serde_json::json!({
                "name": o.name,
                "shape": o.item_shape,
                "sqnr_db": finite(o.agreement.sqnr_db),
                "cosine": o.agreement.cosine,
            });
            if o.classes.is_some() {
                v["top1_agreement"] = serde_json::json!(o.agreement.top1);
            }
            if let Some((f, q)) = o.accuracy {
                v["fp32_accuracy"] = serde_json::json!(f);
                v["quantized_accuracy"] = serde_json::json!(q);
            }
            if let Some(e) = o.exact {
                v["exact"] = serde_json::json!(e);
            }
            v
        })
        .collect();
    let mut v = serde_json::json!({
        "items": first.items,
        "sqnr_db": finite(first.agreement.sqnr_db),
        "cosine": first.agreement.cosine,
        "outputs": per_output,
    });
    if first.classes.is_some() {
        v["top1_agreement"] = serde_json::json!(first.agreement.top1);
    }
    if let Some((f, q)) = outputs.iter().find_map(|o| o.accuracy) {
        v["fp32_accuracy"] = serde_json::json!(f);
        v["quantized_accuracy"] = serde_json::json!(q);
    }
    // Where the error jumps, on the first batch (at most 8 items: fewer where the
    // model's tensors are large): per-tensor SQNR, float vs quantized.
    if let Some(first) = batches(float, data, batch.min(8))?.next() {
        let (items, inputs) = first?;
        let layers = report::layer_sqnr(float, quant, inputs)?;
        if let Some((tensor, drop)) = report::error_jump(&layers) {
            let sqnr = layers
                .iter()
                .find(|(n, _)| n == tensor)
                .map_or(0.0, |l| l.1);
            v["error_jump"] = serde_json::json!({
                "tensor": tensor, "sqnr_db": sqnr, "drop_db": drop, "items": items.len()
            });
        }
    }
    Ok(v)
}

/// Refuses labels that the first `[batch, classes]` output cannot score: each must be
/// below its class count.
fn check_labels(outputs: &[report::OutputReport], labels: Option<&[i64]>) -> Fallible<()> {
    let Some((o, classes)) = outputs.iter().find_map(|o| Some((o, o.classes?))) else {
        return Ok(());
    };
    let bad = labels
        .unwrap_or_default()
        .iter()
        .enumerate()
        .find(|(_, l)| usize::try_from(**l).is_ok_and(|l| l >= classes));
    if let Some((i, l)) = bad {
        return Err(format!(
            "--labels: label {l} (item {i}) is outside the model's {classes} classes (output \
             `{}` scores classes 0..={}); give labels that index the model's output",
            o.name,
            classes - 1
        )
        .into());
    }
    Ok(())
}

pub(crate) fn print_eval(v: &serde_json::Value) {
    let jump = &v["error_jump"];
    if let Some(t) = jump["tensor"].as_str() {
        let on = match jump["items"].as_u64().unwrap_or(0) {
            1 => "the first item".to_string(),
            n => format!("the first {n} items"),
        };
        println!(
            "largest error jump: tensor `{t}` (SQNR falls {:.1} dB, to {:.1} dB, on {on})",
            jump["drop_db"].as_f64().unwrap_or(0.0),
            jump["sqnr_db"].as_f64().unwrap_or(0.0),
        );
    }
    if let (Some(a), Some(b)) = (
        v["fp32_accuracy"].as_f64(),
        v["quantized_accuracy"].as_f64(),
    ) {
        println!(
            "accuracy: FP32 {:.2}%  quantized {:.2}%  ({} items)",
            a * 100.0,
            b * 100.0,
            v["items"]
        );
    }
    println!("FP32 vs quantized outputs ({} items):", v["items"]);
    for o in v["outputs"].as_array().into_iter().flatten() {
        let top1 = o["top1_agreement"].as_f64().map_or(String::new(), |t| {
            format!("top-1 agreement {:.2}%, ", t * 100.0)
        }) + &o["exact"].as_f64().map_or(String::new(), |e| {
            format!("exactly equal {:.2}%, ", e * 100.0)
        });
        let sqnr = o["sqnr_db"]
            .as_f64()
            .map_or("inf (equal)".into(), |d| format!("{d:.1} dB"));
        let shape: Vec<String> = o["shape"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.to_string())
            .collect();
        println!(
            "  {} [{}]: {top1}SQNR {sqnr}, cosine {:.5}",
            o["name"].as_str().unwrap_or(""),
            shape.join(", "),
            o["cosine"].as_f64().unwrap_or(0.0)
        );
    }
}

/// Prints what a command wrote: JSON, or a header, the quantizer table, the evaluation.
pub(crate) fn report(
    output: &Path,
    (prepared, cache): (&Prepared, &CalibrationCache),
    eval: Option<&serde_json::Value>,
    header: Option<&str>,
    json: bool,
) {
    report_with(output, (prepared, cache), eval, header, json, None);
}

/// [`report`] with more top-level JSON fields (`more`, an object).
pub(crate) fn report_with(
    output: &Path,
    (prepared, cache): (&Prepared, &CalibrationCache),
    eval: Option<&serde_json::Value>,
    header: Option<&str>,
    json: bool,
    more: Option<serde_json::Value>,
) {
    let table = &quantizer_table(prepared, cache);
    if json {
        let mut v = serde_json::json!({"output": output, "quantizers": table, "eval": eval});
        if let (Some(o), Some(serde_json::Value::Object(m))) = (v.as_object_mut(), more) {
            o.extend(m);
        }
        println!("{v}");
        return;
    }
    if let Some(h) = header {
        println!("{h}\n");
    }
    print_table(table);
    if let Some(e) = eval {
        println!();
        print_eval(e);
    }
    // Every model written went through the lint (quantize::apply); a cache did not.
    let linted = output.extension().is_some_and(|e| e == "onnx");
    let note = if linted {
        " (passes the TensorRT lint)"
    } else {
        ""
    };
    println!("\nwrote {}{note}", output.display());
}
