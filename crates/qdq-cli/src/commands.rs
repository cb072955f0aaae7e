//! `qdq demo`, `quantize`, `calibrate`, `export`, `eval`, `lint` and `inspect`.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use qdq_cli::demo;
use qdq_onnx::quantize::{CalibrationCache, MethodChoice, QuantizeOptions, apply};
use qdq_onnx::runtime::OnnxGraph;
use qdq_onnx::{Message, ModelProto};

use burn::tensor::Device;

use crate::pipeline::{
    Methods, calibrate, options, prepare_graph, probe, read_model, run_size, setup, write_model,
};
use crate::report::{evaluate, print_eval, report, report_with};
use crate::sensitivity::{KeepFloat, keep_breaking_float, keep_sensitive_float};
use crate::{CalibArgs, Fallible, ModelArgs, ModelOutput, PreArgs};
use crate::{data_args, shard};
use qdq_cli::data::ModelData;
use qdq_cli::feed::model_inputs;
use qdq_onnx::quantize::sensitivity::BROKEN;

pub(crate) fn run_demo(output: &ModelOutput, json: bool, device: &Device) -> Fallible<ExitCode> {
    let model = ModelProto::parse_from_bytes(demo::MODEL)?;
    let opts = QuantizeOptions::default();
    let methods = Methods {
        method: MethodChoice::Auto,
        per: &HashMap::new(),
        auto_items: 8,
        auto_outputs: &[],
        options: &opts,
    };
    let (prepared, float) = prepare_graph(&model, &opts, device)?;
    let input = || -> Fallible<_> {
        model_inputs(&float)?
            .into_iter()
            .next()
            .ok_or_else(|| "the demo model has no input".into())
    };
    let calib = ModelData::from_dataset(input()?, demo::calibration_images()?)?;
    let test = ModelData::from_dataset(input()?, demo::test_images()?)?;
    let (cache, _, _) = calibrate(&prepared, &float, &calib, 32, &methods, json)?;
    let quantized = apply(&prepared, &cache, &opts)?;
    write_model(&quantized, output, probe(&float, Some(&calib))?, device)?;
    let qgraph = OnnxGraph::from_model(&quantized, device)?;
    let eval = evaluate(&float, &qgraph, &test, 100)?;
    let header = format!(
        "Fashion-MNIST CNN (bundled): {} quantizers, auto calibration on {} images",
        prepared.sites.len(),
        calib.len()
    );
    let quantizers = (&prepared, &cache);
    report(&output.output, quantizers, Some(&eval), Some(&header), json);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_quantize(
    c: &CalibArgs,
    (output, cache_path): (&ModelOutput, Option<&Path>),
    (data, labels): (&[String], Option<&Path>),
    (stats, keep): (&[std::path::PathBuf], KeepFloat),
    json: bool,
    device: &Device,
) -> Fallible<ExitCode> {
    let s = setup(c, device)?;
    // Evaluation data is read before the long calibration, so that an error in it
    // comes at once.
    let read_test = || -> Fallible<_> {
        Ok(match data {
            [] => None,
            d => Some(data_args::load(&s.float, ("--data", d), labels, &c.pre)?),
        })
    };
    let (cache, probe_input, test, prepared, batch) = if stats.is_empty() {
        let calib_data = data_args::load(&s.float, ("--calib", &c.calib), None, &c.pre)?;
        let test = read_test()?;
        let (cache, batch, checked) = s.calibrate_checked(c, &calib_data, json)?;
        let prepared = match checked {
            _ if keep.any() => {
                let (p, kept) =
                    keep_sensitive_float(&s, c, (&cache, batch), &calib_data, keep, json)?;
                (p, Some(kept))
            }
            Some(checked) if keep.guard && checked.error > BROKEN => {
                keep_breaking_float(&s, &cache, &checked, json)?
            }
            _ => (s.prepared.clone(), None),
        };
        (
            cache,
            probe(&s.float, Some(&calib_data))?,
            test,
            prepared,
            batch,
        )
    } else {
        // From merged statistics: no calibration data to read.
        let cache = shard::merged_cache(c, &s, stats)?;
        let prepared = (s.prepared.clone(), None);
        (
            cache,
            probe(&s.float, None)?,
            read_test()?,
            prepared,
            c.batch,
        )
    };
    let (prepared, kept_float) = prepared;
    let quantized = apply(&prepared, &cache, &s.opts)?;
    let eval = match &test {
        Some(test) => {
            let q = OnnxGraph::from_model(&quantized, device)?;
            // Batches of as many items as keep the largest tensor within the
            // calibration runs' bound (the probe item's tensors tell): 32 pages of a
            // 640x640 detector at once held gigabytes.
            let batch = run_size(batch, probe_input.largest_value());
            Some(evaluate(&s.float, &q, test, batch)?)
        }
        None => None,
    };
    write_model(&quantized, output, probe_input, device)?;
    // After the model, which is verified before it is kept: a refused model leaves
    // no cache behind either.
    if let Some(p) = cache_path {
        cache.save(p)?;
    }
    report_with(
        &output.output,
        (&prepared, &cache),
        eval.as_ref(),
        None,
        json,
        kept_float.map(|k| serde_json::json!({ "kept_float": k })),
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_calibrate(
    c: &CalibArgs,
    output: Option<&Path>,
    sharding: &shard::ShardArgs,
    json: bool,
    device: &Device,
) -> Fallible<ExitCode> {
    let s = setup(c, device)?;
    if let Some(out) = &sharding.stats {
        let env = |k: &str| std::env::var(k).ok();
        let source = shard::shard_source(sharding.shard, sharding.shard_count, &env)?;
        return shard::run_collect(c, &s, out, source, json);
    }
    if sharding.shard.is_some() || sharding.shard_count.is_some() {
        return Err(
            "--shard and --shard-count select the slice a --stats OUT file collects; give --stats"
                .into(),
        );
    }
    let output = output.ok_or("-o is required")?;
    if !sharding.merge.is_empty() {
        return shard::run_merge(c, &s, &sharding.merge, output, json);
    }
    let data = data_args::load(&s.float, ("--calib", &c.calib), None, &c.pre)?;
    let (cache, _) = s.calibrate(c, &data, json)?;
    cache.save(output)?;
    report(output, (&s.prepared, &cache), None, None, json);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_export(
    m: &ModelArgs,
    cache: &Path,
    output: &ModelOutput,
    json: bool,
    device: &Device,
) -> Fallible<ExitCode> {
    let model = read_model(&m.model)?;
    let opts = options(m)?;
    let cache = CalibrationCache::load(cache)?;
    let (prepared, float) = prepare_graph(&model, &opts, device)?;
    let quantized = apply(&prepared, &cache, &opts)?;
    write_model(&quantized, output, probe(&float, None)?, device)?;
    report(&output.output, (&prepared, &cache), None, None, json);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_eval(
    float: &Path,
    quantized: &Path,
    (data, labels): (&[String], Option<&Path>),
    pre: &PreArgs,
    batch: usize,
    json: bool,
    device: &Device,
) -> Fallible<ExitCode> {
    let f = OnnxGraph::from_model(&read_model(float)?, device)?;
    let q = OnnxGraph::from_model(&read_model(quantized)?, device)?;
    let d = data_args::load(&f, ("--data", data), labels, pre)?;
    // Batches sized by the first item's largest tensor, as calibration runs are (one
    // float run; where it fails, the comparison reports the failure).
    let batch = probe(&f, Some(&d)).map_or(batch, |p| run_size(batch, p.largest_value()));
    let v = evaluate(&f, &q, &d, batch)?;
    if json {
        println!("{v}");
    } else {
        print_eval(&v);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_lint(file: &Path, json: bool) -> Fallible<ExitCode> {
    let violations = qdq_onnx::lint_file(file)?;
    if json {
        let v: Vec<_> = violations
            .iter()
            .map(|v| serde_json::json!({"node": v.node, "rule": format!("{:?}", v.rule), "message": v.message, "fix": v.fix}))
            .collect();
        println!("{}", serde_json::json!({"file": file, "violations": v}));
    } else if violations.is_empty() {
        println!("{}: passes TensorRT's QDQ rules", file.display());
    } else {
        for v in &violations {
            println!("{v}");
        }
        println!("{}: {} violation(s)", file.display(), violations.len());
    }
    Ok(if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Counts the ops of `graph` into `ops` (at `depth` 0) or `sub` (inside subgraphs, to
/// the runtime's nesting limit), `domain:Op` for another domain than ONNX's.
fn count_ops(
    graph: &onnx_ir::GraphProto,
    ops: &mut std::collections::BTreeMap<String, usize>,
    sub: &mut std::collections::BTreeMap<String, usize>,
    depth: usize,
) {
    for n in &graph.node {
        let name = if n.domain.is_empty() || n.domain == "ai.onnx" {
            n.op_type.clone()
        } else {
            format!("{}:{}", n.domain, n.op_type)
        };
        *(if depth == 0 { &mut *ops } else { &mut *sub })
            .entry(name)
            .or_default() += 1;
        if depth < qdq_onnx::runtime::MAX_SUBGRAPH_DEPTH {
            for a in &n.attribute {
                for g in a.g.iter().chain(&a.graphs) {
                    count_ops(g, ops, sub, depth + 1);
                }
            }
        }
    }
}

pub(crate) fn run_inspect(file: &Path, json: bool) -> Fallible<ExitCode> {
    let model = read_model(file)?;
    let graph = model.graph.as_ref().ok_or("the model has no graph")?;
    // Ops of another domain than ONNX's are counted as `domain:Op`; those inside If,
    // Loop and Scan bodies separately.
    let mut ops: std::collections::BTreeMap<String, usize> = Default::default();
    let mut sub_ops: std::collections::BTreeMap<String, usize> = Default::default();
    count_ops(graph, &mut ops, &mut sub_ops, 0);
    // The runtime's own load check: subgraphs and other domains included.
    let unsupported: Vec<String> = qdq_onnx::runtime::unsupported_ops(graph)
        .into_iter()
        .map(|(op, n)| format!("{op} (x{n})"))
        .collect();
    let inits: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    // `int64 [batch_size, sequence_length]`: the type and each dimension's size or name.
    let typed = |v: &onnx_ir::ValueInfoProto| -> (String, Vec<String>) {
        let t = v.type_.tensor_type();
        let dims = t
            .shape
            .dim
            .iter()
            .map(|d| {
                if d.has_dim_value() {
                    d.dim_value().to_string()
                } else if d.dim_param().is_empty() {
                    "?".to_string()
                } else {
                    d.dim_param().to_string()
                }
            })
            .collect();
        (qdq_onnx::runtime::dtype_name(t.elem_type).to_string(), dims)
    };
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .map(|i| (i.name.clone(), typed(i)))
        .collect();
    let outputs: Vec<_> = graph
        .output
        .iter()
        .map(|o| (o.name.clone(), typed(o)))
        .collect();
    let opset = qdq_onnx::passes::model_opset(&model);
    // Saturating: a hostile file may declare dims whose product overflows.
    let params = qdq_onnx::weight_elements(graph);
    let pairs = ops.get("QuantizeLinear").copied().unwrap_or(0);
    let sub_pairs = sub_ops.get("QuantizeLinear").copied().unwrap_or(0);
    let sub_nodes: usize = sub_ops.values().sum();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "file": file, "opset": opset, "ir_version": model.ir_version, "producer": model.producer_name,
                "inputs": inputs.iter().map(|(n, (t, d))| serde_json::json!({"name": n, "type": t, "shape": d})).collect::<Vec<_>>(),
                "outputs": outputs.iter().map(|(n, (t, d))| serde_json::json!({"name": n, "type": t, "shape": d})).collect::<Vec<_>>(),
                "ops": ops, "subgraph_ops": sub_ops, "weight_elements": params,
                "quantize_linear": pairs + sub_pairs, "unsupported_ops": unsupported,
            })
        );
    } else {
        // Other domains' opsets too: a scikit-learn export imports only ai.onnx.ml.
        let others: Vec<String> = model
            .opset_import
            .iter()
            .filter(|o| !o.domain.is_empty() && o.domain != "ai.onnx")
            .map(|o| format!("{} {}", o.domain, o.version))
            .collect();
        let opsets = match (opset, others.is_empty()) {
            (0, true) => "no opset".to_string(),
            (0, false) => format!("opset {}", others.join(", ")),
            (_, true) => format!("opset {opset}"),
            (_, false) => format!("opset {opset} (and {})", others.join(", ")),
        };
        println!(
            "{}: {opsets}, IR {}, producer `{}`",
            file.display(),
            model.ir_version,
            model.producer_name
        );
        for (n, (t, d)) in &inputs {
            println!("  input  {n} {t} [{}]", d.join(", "));
        }
        for (n, (t, d)) in &outputs {
            println!("  output {n} {t} [{}]", d.join(", "));
        }
        let (in_subs, q_in_subs) = match sub_nodes {
            0 => (String::new(), String::new()),
            n => (
                format!(" (and {n} in subgraphs)"),
                format!(", {sub_pairs} of them in subgraphs"),
            ),
        };
        println!(
            "  {} nodes{in_subs}, {params} weight elements, {} QuantizeLinear{q_in_subs}",
            graph.node.len(),
            pairs + sub_pairs
        );
        for (op, n) in &ops {
            println!("    {op:<24} {n}");
        }
        if !sub_ops.is_empty() {
            println!("  in subgraphs (If, Loop, Scan bodies):");
            for (op, n) in &sub_ops {
                println!("    {op:<24} {n}");
            }
        }
        if !unsupported.is_empty() {
            println!(
                "  not runnable by qdq's runtime: {}",
                unsupported.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
