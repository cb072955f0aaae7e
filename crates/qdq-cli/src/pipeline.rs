//! The steps commands share: reading the model and data, placing and calibrating
//! quantizers, writing the result.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use qdq_cli::data::ModelData;
pub(crate) use qdq_cli::feed::batches;
use qdq_onnx::passes::PlacementOptions;
use qdq_onnx::quantize::{
    AutoSelect, Calibration, CalibrationCache, DECISIVE, Method, MethodChoice, ModelCheck,
    Prepared, QuantizeOptions, choose_model, prepare,
};
use qdq_onnx::runtime::OnnxGraph;
use qdq_onnx::verify::Probe;
use qdq_onnx::{Message, ModelProto, QdqFormat};

use crate::batch_one::{on_batch, with_fallback};
use crate::{CalibArgs, Fallible, ModelArgs, ModelOutput};

/// Reads the model at `path`, its nodes put in topological order when they are not
/// (some converters append nodes at the end; ONNX Runtime sorts them too), with a note.
pub(crate) fn read_model(path: &Path) -> Fallible<ModelProto> {
    let mut model = qdq_onnx::read_model(path)?;
    // Another ONNX message (a GraphProto, a NodeProto) parses as a model without one.
    if model.graph.is_none() {
        return Err(format!(
            "{}: holds no model graph: is it an ONNX model (a ModelProto), not a graph or tensor saved alone?",
            path.display()
        )
        .into());
    }
    // ONNX writes a tensor's name after its dims and typed values: a file cut short
    // inside an initializer parses as one without a name (and too few values).
    if let Some((k, t)) = model.graph.as_ref().and_then(|g| {
        g.initializer
            .iter()
            .enumerate()
            .find(|(_, t)| t.name.is_empty())
    }) {
        return Err(format!(
            "{}: initializer {k} (dims {:?}) has no name, which ONNX requires: the file looks truncated or corrupt (an interrupted download or copy?); fetch the model again",
            path.display(),
            t.dims
        )
        .into());
    }
    // Judged once every operator is one the runtime runs: a model with others is
    // refused later with all of them listed, which says more.
    if let Some(u) = model
        .graph
        .as_ref()
        .filter(|g| qdq_onnx::runtime::unsupported_ops(g).is_empty())
        .and_then(qdq_onnx::proto::attributes::unknown_attribute)
    {
        return Err(format!(
            "{}: node `{}` ({}) has an attribute `{}`, which no version of {} defines; ONNX Runtime and ONNX's checker refuse such a model: correct or remove the attribute",
            path.display(),
            u.node,
            u.op,
            u.attribute,
            u.op
        )
        .into());
    }
    if let Some(graph) = model.graph.as_mut()
        && qdq_onnx::passes::sort_nodes(graph).map_err(|e| format!("{}: {e}", path.display()))?
    {
        eprintln!(
            "note: {}: its nodes were not in topological order, as ONNX requires; qdq sorted them, as ONNX Runtime does (the file written is sorted)",
            path.display()
        );
    }
    Ok(model)
}

pub(crate) fn options(m: &ModelArgs) -> Fallible<QuantizeOptions> {
    let format = match m.format.as_str() {
        "int8" => QdqFormat::Int8,
        "fp8" => QdqFormat::Fp8E4M3,
        other => return Err(format!("--format {other}: expected int8 or fp8").into()),
    };
    Ok(QuantizeOptions {
        placement: PlacementOptions {
            skip_op_types: m.skip_op.clone(),
            skip_names: m.skip.clone(),
            keep_attention_float: m.keep_attention_float,
            ..Default::default()
        },
        format,
        opset: m.opset,
        dq_only_weights: match m.weights.as_str() {
            "float" => false,
            "int8" => true,
            other => return Err(format!("--weights {other}: expected float or int8").into()),
        },
        weight_bits: m.weight_bits,
    })
}

pub(crate) fn parse_methods(
    c: &CalibArgs,
) -> Fallible<(MethodChoice, HashMap<String, MethodChoice>)> {
    let method: MethodChoice = c.method.parse().map_err(|e| format!("--method: {e}"))?;
    let mut per = HashMap::new();
    for m in &c.method_for {
        let (t, v) = m
            .split_once('=')
            .ok_or_else(|| format!("--method-for {m}: expected TENSOR=METHOD"))?;
        per.insert(
            t.to_string(),
            v.parse().map_err(|e| format!("--method-for {m}: {e}"))?,
        );
    }
    Ok((method, per))
}

/// A model read, folded and with its quantizers placed, as the calibrating commands
/// (`quantize`, `calibrate`, `finetune`) start.
pub(crate) struct Setup {
    pub opts: QuantizeOptions,
    pub method: MethodChoice,
    pub per: HashMap<String, MethodChoice>,
    /// The graph outputs whole models are judged on (--auto-output; empty: all).
    pub auto_outputs: Vec<String>,
    pub prepared: Prepared,
    /// The folded float graph.
    pub float: OnnxGraph,
}

/// Reads `c`'s model and methods and places its quantizers; the float graph lives on
/// `device`.
pub(crate) fn setup(c: &CalibArgs, device: &Device) -> Fallible<Setup> {
    let model = read_model(&c.model.model)?;
    let opts = options(&c.model)?;
    let (method, per) = parse_methods(c)?;
    let (prepared, float) = prepare_graph(&model, &opts, device)?;
    check_methods_for(&per, &prepared)?;
    check_auto_outputs(&c.auto_outputs, &float)?;
    Ok(Setup {
        opts,
        method,
        per,
        auto_outputs: c.auto_outputs.clone(),
        prepared,
        float,
    })
}

/// Refuses an --auto-output that names no output of the model, listing its outputs.
fn check_auto_outputs(names: &[String], float: &OnnxGraph) -> Fallible<()> {
    let outputs: Vec<&str> = float.outputs().iter().map(|o| o.name.as_str()).collect();
    match names.iter().find(|n| !outputs.contains(&n.as_str())) {
        Some(n) => Err(format!(
            "--auto-output {n}: the model has no output `{n}`; its outputs: {}",
            outputs.join(", ")
        )
        .into()),
        None => Ok(()),
    }
}

impl Setup {
    /// The QDQ model fine-tuning trains: [`qdq_onnx::quantize::apply`]'s with float
    /// weights behind their Q/DQ pairs (the pairs are what trains), whatever --weights
    /// says; [`Setup::stored`] stores the trained weights as --weights asks.
    pub(crate) fn trainable(&self, cache: &CalibrationCache) -> Fallible<ModelProto> {
        let float_weights = QuantizeOptions {
            dq_only_weights: false,
            ..self.opts.clone()
        };
        Ok(qdq_onnx::quantize::apply(
            &self.prepared,
            cache,
            &float_weights,
        )?)
    }

    /// A model from [`Setup::trainable`] with its weights stored as --weights asks
    /// (quantized, read by DequantizeLinear, for `int8`), linted.
    pub(crate) fn stored(&self, model: ModelProto) -> Fallible<ModelProto> {
        Ok(qdq_onnx::quantize::finish(model, &self.opts)?)
    }
}

/// Refuses `--skip`/`--skip-op` values that match no node of `model` (a typo would
/// otherwise quantize what the user meant to keep in float), and a placement that
/// leaves nothing to quantize.
fn check_placement(
    model: &ModelProto,
    opts: &QuantizeOptions,
    prepared: &Prepared,
) -> Fallible<()> {
    let nodes = model
        .graph
        .as_ref()
        .map(|g| g.node.as_slice())
        .unwrap_or_default();
    let p = &opts.placement;
    for op in &p.skip_op_types {
        if !nodes.iter().any(|n| n.op_type == *op) {
            let mut ops: Vec<&str> = nodes.iter().map(|n| n.op_type.as_str()).collect();
            ops.sort_unstable();
            ops.dedup();
            return Err(format!(
                "--skip-op {op}: the model has no node of this op type (op types are case-sensitive; the model has: {})",
                ops.join(", ")
            )
            .into());
        }
    }
    let labels: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| qdq_onnx::passes::node_label(n, i))
        .collect();
    for pattern in &p.skip_names {
        if !labels
            .iter()
            .any(|l| qdq_onnx::passes::matches_pattern(pattern, l))
        {
            let some: Vec<&str> = labels.iter().take(5).map(String::as_str).collect();
            return Err(format!(
                "--skip {pattern}: matches no node name (`*` is the only wildcard; names look like {})",
                some.join(", ")
            )
            .into());
        }
    }
    if prepared.sites.is_empty() {
        let why = if p.skip_op_types.is_empty() && p.skip_names.is_empty() {
            "the model has no input of Conv, ConvTranspose, Gemm, MatMul, pooling, a residual Add or Concat on a float tensor".to_string()
        } else {
            "every place TensorRT quantizes is excluded by --skip/--skip-op".to_string()
        };
        return Err(
            format!("no quantizer to place: {why}; the output would equal the input").into(),
        );
    }
    Ok(())
}

/// Refuses `--method-for TENSOR=...` naming no calibrated tensor.
fn check_methods_for(per: &HashMap<String, MethodChoice>, prepared: &Prepared) -> Fallible<()> {
    let activations: Vec<&str> = prepared
        .sites
        .iter()
        .filter(|s| s.kind == qdq_onnx::passes::SiteKind::Activation)
        .map(|s| s.tensor.as_str())
        .collect();
    let mut tensors: Vec<&String> = per.keys().collect();
    tensors.sort();
    for t in tensors {
        if !activations.contains(&t.as_str()) {
            let some: Vec<&str> = activations.iter().take(8).copied().collect();
            return Err(format!(
                "--method-for {t}=...: `{t}` is not a calibrated activation tensor of the model (they are: {}{})",
                some.join(", "),
                if activations.len() > some.len() { ", ..." } else { "" }
            )
            .into());
        }
    }
    Ok(())
}

impl Setup {
    /// The amax methods of `c` as the setup parsed them.
    pub(crate) fn methods<'a>(&'a self, c: &CalibArgs) -> Methods<'a> {
        Methods {
            method: self.method,
            per: &self.per,
            auto_items: c.auto_items,
            auto_outputs: &self.auto_outputs,
            options: &self.opts,
        }
    }

    /// Calibrates on `data` (`c.batch` items a batch, or 1 when the model cannot run
    /// several) by the setup's methods; the cache and the batch size used.
    pub(crate) fn calibrate(
        &self,
        c: &CalibArgs,
        data: &ModelData,
        json: bool,
    ) -> Fallible<(CalibrationCache, usize)> {
        self.calibrate_checked(c, data, json)
            .map(|(cache, batch, _)| (cache, batch))
    }

    /// [`Setup::calibrate`], with what a global `auto` measured the kept model on.
    pub(crate) fn calibrate_checked(
        &self,
        c: &CalibArgs,
        data: &ModelData,
        json: bool,
    ) -> Fallible<(CalibrationCache, usize, Option<AutoCheck>)> {
        calibrate(
            &self.prepared,
            &self.float,
            data,
            c.batch,
            &self.methods(c),
            json,
        )
    }
}

/// The amax methods of a calibration: `method` for every activation, `per` overriding
/// it by tensor; `auto` measures its choices on the first `auto_items` items, for the
/// model `options` write.
pub(crate) struct Methods<'a> {
    pub method: MethodChoice,
    pub per: &'a HashMap<String, MethodChoice>,
    pub auto_items: usize,
    /// The graph outputs the whole-model step measures (empty: all).
    pub auto_outputs: &'a [String],
    pub options: &'a QuantizeOptions,
}

impl Methods<'_> {
    /// Whether any tensor is `auto`.
    pub(crate) fn auto(&self) -> bool {
        self.method == MethodChoice::Auto || self.per.values().any(|m| *m == MethodChoice::Auto)
    }

    /// Whether every tensor is `max` (then no histogram is needed).
    fn max_only(&self) -> bool {
        let max = MethodChoice::Fixed(Method::Max);
        self.method == max && self.per.values().all(|m| *m == max)
    }

    /// Whether tensor `t` is `auto`.
    fn is_auto(&self, t: &str) -> bool {
        *self.per.get(t).unwrap_or(&self.method) == MethodChoice::Auto
    }

    /// The fixed methods: the global one (`max` for the tensors `auto` could not
    /// measure, e.g. all zeros) and the per-tensor ones.
    pub(crate) fn fixed(&self) -> (Method, HashMap<String, Method>) {
        let global = match self.method {
            MethodChoice::Fixed(m) => m,
            MethodChoice::Auto => Method::Max,
        };
        let per = self
            .per
            .iter()
            .filter_map(|(t, m)| match m {
                MethodChoice::Fixed(m) => Some((t.clone(), *m)),
                MethodChoice::Auto => None,
            })
            .collect();
        (global, per)
    }
}

/// Folds constants and places quantizers (refusing a placement that would do nothing
/// or skips that match nothing); returns the prepared model and its float graph.
pub(crate) fn prepare_graph(
    model: &ModelProto,
    opts: &QuantizeOptions,
    device: &Device,
) -> Fallible<(Prepared, OnnxGraph)> {
    let prepared = prepare(model, opts)?;
    check_placement(model, opts, &prepared)?;
    let graph = OnnxGraph::from_model(&prepared.model, device)?;
    Ok((prepared, graph))
}

/// A progress bar of `total` steps, hidden for `--json`.
fn progress(total: usize, what: &str, json: bool) -> ProgressBar {
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} batches, {{elapsed}} (ETA {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Calibrates the prepared model's quantizers on `data`, run through its float `graph`:
/// one pass collecting histograms (or maxima), then, for `auto`, a second pass over the
/// first `methods.auto_items` items measuring each candidate amax on the consumers.
/// Returns the cache, the batch size that ran (1 after a fallback, see
/// [`crate::batch_one`]) and, for a global `auto`, what its whole-model step measured.
pub(crate) fn calibrate(
    prepared: &Prepared,
    graph: &OnnxGraph,
    data: &ModelData,
    batch: usize,
    methods: &Methods,
    json: bool,
) -> Fallible<(CalibrationCache, usize, Option<AutoCheck>)> {
    let start = Instant::now();
    let (calib, batch) = collect(prepared, graph, data, (batch, false), methods, json)?;
    let collected = start.elapsed().as_secs_f64();
    let (cache, checked) = calibrate_all(
        prepared,
        graph,
        data,
        (calib, batch),
        methods,
        json,
        (start, collected),
    )?;
    let left_out: Vec<&str> = prepared
        .left_out(&cache)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    if !left_out.is_empty() {
        eprintln!(
            "note: {} quantizers inside subgraphs saw no calibration data (a branch the data never takes) and stay float: {}",
            left_out.len(),
            left_out.join(", ")
        );
    }
    Ok((cache, batch, checked))
}

/// The float outputs a global `auto` measured its whole models on, and the kept
/// model's error there (to look for layers that break it: `sensitivity`).
pub(crate) struct AutoCheck {
    pub check: ModelCheck,
    /// Items in `check`.
    pub items: usize,
    /// The kept assignment's whole-model error.
    pub error: f64,
}

/// Into how many batches `auto`'s items are cut (batches of `auto_items / 4`, rounded
/// up, or smaller with `--batch`): the whole-model step stops measuring a uniform
/// method after the batch at which it can no longer replace the per-quantizer choices
/// (`choose_model`), which a single batch would never allow.
const AUTO_BATCHES: usize = 4;

/// [`calibrate`] after the collecting pass: the cache of `calib`, with `auto`'s pass on
/// batches of at most `batch` items; `start` and `collected` (seconds the collecting
/// pass took) time auto's phases.
fn calibrate_all(
    prepared: &Prepared,
    graph: &OnnxGraph,
    data: &ModelData,
    (calib, batch): (Calibration, usize),
    methods: &Methods,
    json: bool,
    (start, collected): (Instant, f64),
) -> Fallible<(CalibrationCache, Option<AutoCheck>)> {
    let (method, per) = methods.fixed();
    if !methods.auto() {
        return Ok((calib.cache(method, &per)?, None));
    }
    let mut auto = AutoSelect::new(prepared, &calib, methods.options.format, graph.device())?
        .with_weight_format(methods.options.weight_format()?);
    // A global `auto` ends with the whole model choosing (`choose_model`): the float
    // outputs of the same items are kept for it.
    let global = methods.method == MethodChoice::Auto;
    let mut check = ModelCheck::measuring(methods.auto_outputs.to_vec());
    // The first items, in about AUTO_BATCHES batches (memory stays one batch).
    let auto_batch = batch.min(methods.auto_items.div_ceil(AUTO_BATCHES));
    let pass = batches(graph, data, auto_batch)?;
    let bar = progress(
        methods.auto_items.div_ceil(auto_batch),
        "choosing amaxes (auto)",
        json,
    );
    let mut seen = 0;
    for b in pass {
        let (items, inputs) = b?;
        if global {
            let outputs = auto.feed(graph, inputs.clone())?;
            check.push(inputs, &outputs)?;
        } else {
            auto.feed(graph, inputs)?;
        }
        bar.inc(1);
        seen += items.len();
        if seen >= methods.auto_items {
            break;
        }
    }
    bar.finish_and_clear();
    let probed = start.elapsed().as_secs_f64();
    let chosen = auto
        .choices()
        .into_iter()
        .filter(|(t, _)| methods.is_auto(t))
        .collect();
    if !global {
        return Ok((calib.cache_with(method, &per, &chosen)?, None));
    }
    let choice = choose_model(
        prepared,
        &calib,
        (method, &per),
        &chosen,
        &check,
        methods.options,
        graph.device(),
    )?;
    if !json && choice.errors.len() > 1 {
        let measured: Vec<String> = choice
            .errors
            .iter()
            .map(|(label, e)| format!("{label} {e}"))
            .collect();
        let outputs = graph.outputs().len();
        let which = if methods.auto_outputs.is_empty() && outputs > 1 {
            // Auxiliary outputs (a segmenter's side maps, a detector's raw heads)
            // weigh as much as the one that matters, and cost runs: say how to choose.
            format!(
                " (all {outputs} outputs, each weighing the same; --auto-output NAME judges only the outputs named)"
            )
        } else if methods.auto_outputs.is_empty() {
            String::new()
        } else {
            format!(" (output {})", methods.auto_outputs.join(", "))
        };
        // A lower error that was not kept: say why (the margin `choose_model` asks).
        let kept_error = choice.errors[0].1.error;
        let why = match choice
            .errors
            .iter()
            .skip(1)
            .filter(|(_, m)| m.complete() && m.error < kept_error)
            .min_by(|a, b| a.1.error.total_cmp(&b.1.error))
        {
            Some((label, _)) if choice.label == choice.errors[0].0 => format!(
                " ({label} is lower, but a method applied to every quantizer replaces the per-quantizer choices only at {:.0} % of their error or less)",
                DECISIVE * 100.0
            ),
            _ => String::new(),
        };
        eprintln!(
            "auto: output error of the whole model{which} on {seen} items: {}; kept: {}{why}",
            measured.join(", "),
            choice.label
        );
        // Where the time went, for users weighing `auto` against a fixed method.
        eprintln!(
            "auto: {collected:.1} s histogram pass, {:.1} s probing the consumers, {:.1} s whole-model step",
            probed - collected,
            start.elapsed().as_secs_f64() - probed
        );
    }
    let error = choice
        .errors
        .iter()
        .find(|(label, _)| *label == choice.label)
        .map_or(f64::NAN, |(_, m)| m.error);
    let checked = AutoCheck {
        check,
        items: seen,
        error,
    };
    Ok((choice.cache, Some(checked)))
}

/// The collecting pass of [`calibrate`]: every batch of `data` (`batch.0` items each,
/// or 1 when the model cannot run several: [`crate::batch_one`]) through `graph`,
/// histograms (or maxima, when every method is `max`) collected; an empty `data` is
/// refused unless `batch.1` (a shard may hold no item). The calibration and the batch
/// size that ran.
pub(crate) fn collect(
    prepared: &Prepared,
    graph: &OnnxGraph,
    data: &ModelData,
    (batch, allow_empty): (usize, bool),
    methods: &Methods,
    json: bool,
) -> Fallible<(Calibration, usize)> {
    with_fallback(batch, |batch| {
        collect_at(prepared, graph, data, (batch, allow_empty), methods, json)
    })
}

/// [`collect`] at one batch size.
fn collect_at(
    prepared: &Prepared,
    graph: &OnnxGraph,
    data: &ModelData,
    (batch, allow_empty): (usize, bool),
    methods: &Methods,
    json: bool,
) -> Fallible<Calibration> {
    let graph_proto = prepared
        .model
        .graph
        .as_ref()
        .ok_or("the model has no graph")?;
    let fresh = || -> qdq_onnx::Result<Calibration> {
        let calib = Calibration::new(graph_proto, &prepared.sites, false)?;
        // Nothing asks for a histogram: collect the max alone, without binning.
        Ok(if methods.max_only() {
            calib.max_only()
        } else {
            calib
        })
    };
    // A few batches at once, each worker collecting into its own calibration, joined
    // at the end: the result does not depend on how items are split (the dyadic grid,
    // the max), and burn-flex's elementwise kernels use one core each. Each worker
    // takes a share of the batch, so memory stays about one batch.
    let width = qdq_onnx::quantize::default_width();
    let per_run = batch.div_ceil(width);
    let mut pass = batches(graph, data, per_run)?;
    if pass.total() == 0 && !allow_empty {
        return Err(
            "the calibration set is empty (or smaller than the model's fixed batch)".into(),
        );
    }
    let bar = progress(pass.total(), "calibrating", json);
    // The first item alone, when the batch size is free, to size the others: the
    // statistics do not depend on the split.
    let mut first = None;
    if per_run > 1 && pass.resize(1) {
        let mut calib = fresh()?;
        if let Some(b) = pass.next() {
            let (items, inputs) = b?;
            calib
                .feed(graph, inputs)
                .map_err(|e| Failure::Batch(e, items).into_error(data))?;
            bar.inc(1);
        }
        pass.resize(run_size(per_run, calib.largest_value()));
        bar.set_length(pass.total() as u64 + 1);
        first = Some(calib);
    }
    let workers = width.min(pass.total()).max(1);
    let pass = std::sync::Mutex::new(pass);
    let first = std::sync::Mutex::new(first);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let worker = || -> Result<Calibration, Failure> {
        let taken = first.lock().ok().and_then(|mut f| f.take());
        let mut calib = match taken {
            Some(c) => c,
            None => fresh().map_err(Failure::Feed)?,
        };
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            // Read under the lock (the data streams in order), run outside it.
            let next = pass
                .lock()
                .map_err(|_| Failure::Read("a worker panicked".into()))?
                .next();
            let Some(b) = next else { break };
            let failed = |f: Failure| {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                f
            };
            let (items, inputs) = b.map_err(|e| failed(Failure::Read(e.to_string())))?;
            calib
                .feed(graph, inputs)
                .map_err(|e| failed(Failure::Batch(e, items)))?;
            bar.inc(1);
        }
        Ok(calib)
    };
    let parts: Vec<Result<Calibration, Failure>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..workers).map(|_| scope.spawn(worker)).collect();
        let mut parts = vec![worker()];
        parts.extend(handles.into_iter().map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Failure::Read("a calibration worker panicked".into())))
        }));
        parts
    });
    bar.finish_and_clear();
    // The calling thread's worker comes first; the first failure, in worker order, is
    // the one reported.
    let mut parts = parts.into_iter().map(|p| p.map_err(|f| f.into_error(data)));
    let mut calib = parts.next().expect("the calling thread's worker")?;
    for part in parts {
        calib.absorb(part?)?;
    }
    Ok(calib)
}

/// The most bytes one value of a calibration run may take (16 MiB). Larger runs make
/// larger tensors, which the kernel faults in and zeroes afresh and which no cache
/// holds: on the 640x640 text detectors (largest value 13-20 MB an item) runs of 8
/// items spent a third of their time in the kernel, and one item a run is 30-40 %
/// faster than 8 with a quarter of the peak memory; a 224x224 classifier (1.6 MB) is
/// 15 % faster at 10 items than at 16; small models keep the nominal size.
const RUN_BYTES: usize = 16 << 20;

/// Items per run (calibration, comparison): `nominal`, or fewer so that the largest value, of
/// `largest` elements (f32) for one item, stays within [`RUN_BYTES`]; at least one.
pub(crate) fn run_size(nominal: usize, largest: usize) -> usize {
    match RUN_BYTES.checked_div(largest.saturating_mul(4)) {
        Some(n) => n.clamp(1, nominal),
        None => nominal,
    }
}

/// Why a calibration worker stopped: the data (its message), setting up, or a batch of
/// these items.
enum Failure {
    Read(String),
    Feed(qdq_onnx::Error),
    Batch(qdq_onnx::Error, Vec<usize>),
}

impl Failure {
    /// The error the pass returns: for a batch, [`on_batch`]'s (so that a node failing
    /// on several items falls back to batch 1), else the error naming the items of
    /// `data` it failed on.
    fn into_error(self, data: &ModelData) -> Box<dyn std::error::Error> {
        match self {
            Failure::Read(e) => e.into(),
            Failure::Feed(e) => e.into(),
            Failure::Batch(e, items) => {
                let e = on_batch(e, items.len());
                match e.is::<crate::batch_one::BatchFailure>() {
                    true => e,
                    false => Box::new(OnItems {
                        items: data.describe_items(&items),
                        error: e,
                    }),
                }
            }
        }
    }
}

/// An error running the model on some items, with where they come from (the user's
/// culprit among many files).
#[derive(Debug)]
struct OnItems {
    items: String,
    error: Box<dyn std::error::Error>,
}

impl std::fmt::Display for OnItems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (running the model on {})", self.error, self.items)
    }
}

impl std::error::Error for OnItems {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error.as_ref())
    }
}

/// Writes a model qdq made, or nothing: a model with a non-finite weight is refused
/// before writing; then the safe write (`qdq::io`) keeps the file only if, read back
/// from disk, it runs on `probe` and agrees bit for bit with its fake-quant simulation
/// (`qdq_onnx::verify`). With --external-data, or when the model would be over
/// `max_inline_bytes` (protobuf's limit), its weights go to `<output>.data`
/// ([`write_external`]).
pub(crate) fn write_model(
    model: &ModelProto,
    output: &ModelOutput,
    probe: Probe,
    device: &Device,
) -> Fallible<()> {
    qdq_onnx::verify::check_weights_finite(model, device)?;
    // Shape declarations the model contradicts would make ONNX's checker refuse the
    // file qdq writes (runtimes take them as hints): they are left out, with a note.
    let contradicted = qdq_onnx::verify::contradicted_value_info(model, &probe);
    let pruned;
    let model = match contradicted.first() {
        None => model,
        Some((name, how)) => {
            eprintln!(
                "note: {} value_info entr{} of the model declare{} a shape it does not compute (`{name}`: {how}); left out of the file written, which ONNX's checker would otherwise refuse",
                contradicted.len(),
                if contradicted.len() == 1 { "y" } else { "ies" },
                if contradicted.len() == 1 { "s" } else { "" },
            );
            let mut m = model.clone();
            if let Some(g) = m.graph.as_mut() {
                g.value_info
                    .retain(|v| !contradicted.iter().any(|(n, _)| *n == v.name));
            }
            pruned = m;
            &pruned
        }
    };
    let size = model.compute_size();
    if output.external_data || size > output.max_inline_bytes {
        if !output.external_data {
            eprintln!(
                "note: the model is {size} bytes, over protobuf's limit of {} for one file: its weights go to {} (as with --external-data)",
                output.max_inline_bytes,
                output.data_path().display()
            );
        }
        return write_external(model, output, probe, device);
    }
    write_inline(model, output, probe, device)
}

/// Writes `model` as one file. A `<output>.data` from an earlier run is not
/// qdq's to delete (nothing says it is ours): it is left, with a note.
fn write_inline(
    model: &ModelProto,
    output: &ModelOutput,
    probe: Probe,
    device: &Device,
) -> Fallible<()> {
    let path = output.output.as_path();
    let data = output.data_path();
    if data.exists() {
        eprintln!(
            "note: {} is left as it was: {} keeps its weights inline and does not read it",
            data.display(),
            path.display()
        );
    }
    let bytes = model.write_to_bytes()?;
    qdq::io::write_checked(path, &bytes, |tmp| {
        let written = qdq_onnx::read_model(tmp).map_err(std::io::Error::other)?;
        qdq_onnx::verify::verify_model(&written, probe, device).map_err(std::io::Error::other)
    })
    .map_err(|e| format!("-o {}: {e}; nothing was written", path.display()))?;
    Ok(())
}

/// Writes `model` with its initializers of at least
/// [`EXTERNAL_MIN_BYTES`](qdq_onnx::proto::save_external::EXTERNAL_MIN_BYTES) in
/// `<output>.data`, through one safe write of both files: the data file is renamed
/// into place first and the model last, so a crash between the two leaves the old
/// model (or none), never a new model pointing at missing data. The model is
/// verified as it is read back from the temporary files, its data file name
/// redirected to the temporary data file.
fn write_external(
    model: &ModelProto,
    output: &ModelOutput,
    probe: Probe,
    device: &Device,
) -> Fallible<()> {
    use qdq_onnx::proto::save_external::{EXTERNAL_MIN_BYTES, split_external};
    let path = output.output.as_path();
    let data_path = output.data_path();
    let fail =
        |e: &dyn std::fmt::Display| format!("-o {}: {e}; nothing was written", path.display());
    // Checked here too: the automatic switch is only known now.
    qdq::io::check_not_symlink("-o's external data", &data_path).map_err(|e| fail(&e))?;
    let location = data_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| fail(&"external data needs an output file name in UTF-8"))?;
    let (shell, data) = split_external(model, location, EXTERNAL_MIN_BYTES);
    if data.is_empty() {
        eprintln!(
            "note: no initializer of {EXTERNAL_MIN_BYTES} bytes or more: {} keeps its weights inline",
            path.display()
        );
        drop(shell);
        return write_inline(model, output, probe, device);
    }
    let bytes = shell.write_to_bytes()?;
    drop(shell);
    if bytes.len() as u64 > qdq_onnx::MAX_MODEL_BYTES {
        return Err(fail(&format_args!(
            "even with its weights in {location} the model is {} bytes, over protobuf's limit of {}",
            bytes.len(),
            qdq_onnx::MAX_MODEL_BYTES
        ))
        .into());
    }
    let write_data = |f: &mut std::fs::File| {
        let mut w = std::io::BufWriter::new(f);
        data.write_to(&mut w)?;
        std::io::Write::flush(&mut w)
    };
    let write_model = |f: &mut std::fs::File| std::io::Write::write_all(f, &bytes);
    let files: Vec<(&Path, qdq::io::Fill<'_>)> = vec![
        (data_path.as_path(), Box::new(write_data)),
        (path, Box::new(write_model)),
    ];
    qdq::io::write_files(files, |tmps| {
        let written = qdq_onnx::read_model_with_data(tmps[1], Some((location, tmps[0])))
            .map_err(std::io::Error::other)?;
        qdq_onnx::verify::verify_model(&written, probe, device).map_err(std::io::Error::other)
    })
    .map_err(|e| fail(&e))?;
    Ok(())
}

/// The input the written model is checked on: the first batch of `data` as the
/// float graph takes it, or, with no data, a fixed synthetic input; with where the
/// float graph's own outputs on it are not finite.
pub(crate) fn probe(graph: &OnnxGraph, data: Option<&ModelData>) -> Fallible<Probe> {
    let inputs = match data {
        Some(d) => batches(graph, d, 1)?.next().transpose()?.map(|b| b.1),
        None => None,
    };
    let inputs = match inputs {
        Some(inputs) => inputs,
        None => qdq_onnx::verify::probe_inputs(graph.inputs(), graph.device())?,
    };
    Ok(Probe::new(inputs, graph)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_hold_as_many_items_as_their_largest_value_allows() {
        // A 640x640 detector's largest value, 4 915 200 floats (19.7 MB) an item: one
        // a run; a 224x224 classifier's, 401 408: 10; a small model keeps the nominal.
        assert_eq!(run_size(16, 4_915_200), 1);
        assert_eq!(run_size(16, 401_408), 10);
        assert_eq!(run_size(16, 38_400), 16);
        // Nothing seen (an empty shard), or a value past any budget.
        assert_eq!(run_size(16, 0), 16);
        assert_eq!(run_size(16, usize::MAX), 1);
    }
}
