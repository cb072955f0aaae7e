//! # qdq-fuzz
//!
//! One function per fuzz target, each taking arbitrary bytes and driving one of qdq's
//! doors for outside input. None may panic, hang or allocate without bound: every
//! outcome is a value or a typed error. `fuzz/` (cargo-fuzz, coverage-guided) calls
//! them for long runs; this crate's tests call them over the committed seed corpora
//! and deterministic mutations of them (`RELIABILITY.md` has both commands and the
//! counts).

#![deny(missing_docs)]

use std::io::Write;

use arbitrary::{Arbitrary, Unstructured};
use burn::tensor::Device;
use onnx_ir::{AttributeProto, AttributeType, Message, ModelProto, NodeProto, TensorProto};
use qdq_onnx::proto::value_info;
use qdq_onnx::quantize::{CalibrationCache, QuantizeOptions};
use qdq_onnx::runtime::{OnnxGraph, Value, dt};

/// Target `onnx_model`: bytes as an ONNX file, through everything that reads one
/// (`qdq_onnx::fuzz::read_inspect_lint`: the reader, the linter, inspect's counts,
/// type inference, placement), constant folding, and, when the graph is small, a run
/// on the runtime. A kernel panic the runtime caught and turned into an error is
/// re-raised here, so the fuzzer reports it.
pub fn onnx_model(bytes: &[u8]) {
    qdq_onnx::fuzz::read_inspect_lint(bytes);
    if let Ok(model) = ModelProto::parse_from_bytes(bytes) {
        let _ = qdq_onnx::quantize::prepare(&model, &QuantizeOptions::default());
    }
    if let Some(panic) = qdq_onnx::fuzz::run_small_graph(bytes) {
        panic!("the runtime caught a kernel panic: {panic}");
    }
}

/// Target `calibration_cache`: bytes as a calibration cache file (qdq JSON or a
/// TensorRT table), loaded and applied to a small fixed model.
pub fn calibration_cache(bytes: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("cache");
    if std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .is_err()
    {
        return;
    }
    let Ok(cache) = CalibrationCache::load(&path) else {
        return;
    };
    let opts = QuantizeOptions::default();
    if let Ok(prepared) = qdq_onnx::quantize::prepare(&small_conv_model(), &opts) {
        let _ = qdq_onnx::quantize::apply(&prepared, &cache, &opts);
    }
}

/// Target `data_file`: bytes as a data file of each kind qdq reads (`.npy`, `.npz`,
/// IDX, gzip IDX, PNG), loaded and read item by item.
pub fn data_file(bytes: &[u8]) {
    let Some((&kind, rest)) = bytes.split_first() else {
        return;
    };
    let name = match kind % 5 {
        0 => "data.npy",
        1 => "data.npz",
        2 => "data-idx3-ubyte",
        3 => "data-idx3-ubyte.gz",
        _ => "images/a.png",
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join(name);
    if let Some(parent) = path.parent()
        && std::fs::create_dir_all(parent).is_err()
    {
        return;
    }
    if std::fs::write(&path, rest).is_err() {
        return;
    }
    if kind % 5 == 4 {
        let input = qdq_data::Input::new("x", vec![None, Some(1), Some(8), Some(8)]);
        let images = qdq_data::images::ImageOptions::for_input(&input, dir.path(), None)
            .and_then(|o| qdq_data::images::load(&dir.path().join("images"), &o));
        if let Ok(d) = images {
            for from in 0..d.len().min(2) {
                let _ = d.read(from, 1);
            }
        }
    } else if let Ok(d) = qdq_data::Dataset::load(&path, None) {
        for from in 0..d.len().min(4) {
            let _ = d.read(from, 1);
        }
        let _ = d.gather(&[d.len().saturating_sub(1), 0]);
    }
}

/// Every attribute name the runtime's ops read (recurrent, control flow, detection and
/// signal ops included), so a fuzzed node can hit each op's attribute checks; the
/// values are random and often of the wrong type, which the ops must refuse by name.
const ATTRIBUTES: &[&str] = &[
    "activation_alpha",
    "activation_beta",
    "activations",
    "align_corners",
    "allowzero",
    "alpha",
    "antialias",
    "approximate",
    "auto_pad",
    "axes",
    "axis",
    "batch_axis",
    "batch_dims",
    "beta",
    "bias",
    "block_size",
    "blocksize",
    "ceil_mode",
    "center_point_box",
    "clip",
    "coordinate_transformation_mode",
    "count_include_pad",
    "cubic_coeff_a",
    "decay_factor",
    "detect_negative",
    "detect_positive",
    "dilations",
    "direction",
    "directions",
    "dtype",
    "else_branch",
    "end",
    "ends",
    "epsilon",
    "equation",
    "exclude_outside",
    "exclusive",
    "fmod",
    "gamma",
    "group",
    "hidden_size",
    "ignore_index",
    "input_forget",
    "inverse",
    "k",
    "keep_aspect_ratio_policy",
    "keepdims",
    "kernel_shape",
    "lambd",
    "largest",
    "layout",
    "linear_before_reset",
    "max",
    "min",
    "mode",
    "momentum",
    "nearest_mode",
    "new_axis",
    "noop_with_empty_axes",
    "norm_coefficient",
    "norm_coefficient_post",
    "num_outputs",
    "num_scan_inputs",
    "onesided",
    "output_datatype",
    "output_dtype",
    "output_padding",
    "output_shape",
    "padding_mode",
    "paddings",
    "pads",
    "periodic",
    "perm",
    "reduction",
    "reverse",
    "sampling_ratio",
    "saturate",
    "scales",
    "scan_input_axes",
    "scan_input_directions",
    "scan_output_axes",
    "scan_output_directions",
    "select_last_index",
    "shape",
    "size",
    "sorted",
    "spatial_scale",
    "split",
    "start",
    "starts",
    "storage_order",
    "strides",
    "then_branch",
    "time_axis",
    "to",
    "training_mode",
    "transA",
    "transB",
    "upper",
    "value",
    "value_float",
    "value_floats",
    "value_int",
    "value_ints",
];

/// Integers that break careless arithmetic.
const EXTREMES: &[i64] = &[
    0,
    1,
    -1,
    2,
    3,
    -2,
    7,
    1 << 31,
    (1 << 31) - 1,
    1 << 32,
    1 << 62,
    i64::MAX,
    i64::MIN,
    -(1 << 31),
];

/// One input of a fuzzed node.
#[derive(Debug)]
struct Operand {
    shape: Vec<usize>,
    int: bool,
    /// An initializer (constant) holding `values`, else a graph input.
    constant: Option<Vec<i64>>,
}

fn operand(u: &mut Unstructured) -> arbitrary::Result<Operand> {
    let rank = u.int_in_range(0..=4)?;
    let shape = (0..rank)
        .map(|_| u.int_in_range(0..=4))
        .collect::<arbitrary::Result<Vec<usize>>>()?;
    let int = u.arbitrary()?;
    let n: usize = shape.iter().product();
    let constant = if u.arbitrary()? {
        Some(
            (0..n)
                .map(|_| number(u))
                .collect::<arbitrary::Result<Vec<i64>>>()?,
        )
    } else {
        None
    };
    Ok(Operand {
        shape,
        int,
        constant,
    })
}

fn number(u: &mut Unstructured) -> arbitrary::Result<i64> {
    Ok(if u.arbitrary()? {
        *u.choose(EXTREMES)?
    } else {
        u.int_in_range(-8..=8)?
    })
}

fn attribute(u: &mut Unstructured) -> arbitrary::Result<AttributeProto> {
    let mut a = AttributeProto::new();
    a.name = (*u.choose(ATTRIBUTES)?).to_string();
    match u.int_in_range(0..=3)? {
        0 => {
            a.type_ = AttributeType::INT.into();
            a.i = number(u)?;
        }
        1 => {
            a.type_ = AttributeType::INTS.into();
            let n = u.int_in_range(0..=8)?;
            a.ints = (0..n)
                .map(|_| number(u))
                .collect::<arbitrary::Result<_>>()?;
        }
        2 => {
            a.type_ = AttributeType::FLOAT.into();
            a.f = f32::arbitrary(u)?;
        }
        _ => {
            a.type_ = AttributeType::STRING.into();
            let s: &str = u.choose(&[
                "NOTSET",
                "SAME_UPPER",
                "VALID",
                "linear",
                "nearest",
                "constant",
                "reflect",
                "edge",
                "forward",
                "reverse",
                "bidirectional",
                "Tanh",
                "Sigmoid",
                "half_pixel",
                "round_prefer_floor",
                "ij,jk->ik",
                "...ii->...i",
            ])?;
            a.s = s.as_bytes().to_vec().into();
        }
    }
    Ok(a)
}

/// Target `runtime_graph`: a one-node graph of any op the runtime supports, with
/// inputs of small shapes (some of them integer constants with extreme values, which
/// shape ops read as sizes) and arbitrary attributes, loaded and run.
pub fn runtime_graph(bytes: &[u8]) {
    let mut u = Unstructured::new(bytes);
    let Ok((model, inputs)) = build_graph(&mut u) else {
        return;
    };
    let device = Device::flex();
    let Ok(graph) = OnnxGraph::from_model(&model, &device) else {
        return;
    };
    if let Err(e) = graph.run(inputs)
        && e.to_string().contains("panicked")
    {
        panic!("the runtime caught a kernel panic: {e}");
    }
}

/// What [`runtime_graph`] builds from `bytes`, in words (op, attributes, inputs), to
/// triage a crash the fuzzer saved.
pub fn describe_runtime_graph(bytes: &[u8]) -> String {
    let Ok((model, inputs)) = build_graph(&mut Unstructured::new(bytes)) else {
        return "no graph".into();
    };
    let Some(g) = model.graph.as_ref() else {
        return "no graph".into();
    };
    let n = &g.node[0];
    let attrs: Vec<String> = n
        .attribute
        .iter()
        .map(|a| format!("{}={:?}/{:?}/{}", a.name, a.i, a.ints, a.f))
        .collect();
    let inits: Vec<String> = g
        .initializer
        .iter()
        .map(|t| format!("{} {:?} type {}", t.name, t.dims, t.data_type))
        .collect();
    let ins: Vec<String> = inputs
        .iter()
        .map(|(k, v)| format!("{k} {:?} type {}", v.shape(), v.elem_type()))
        .collect();
    format!(
        "{} opset {:?} outputs {} attrs {attrs:?} inputs {ins:?} initializers {inits:?}",
        n.op_type,
        model.opset_import.first().map(|o| o.version),
        n.output.len()
    )
}

type Built = (ModelProto, Vec<(String, Value)>);

fn build_graph(u: &mut Unstructured) -> arbitrary::Result<Built> {
    let ops = qdq_onnx::runtime::supported_ops();
    let op = *u.choose(ops)?;
    let n_in = u.int_in_range(0..=4)?;
    let operands = (0..n_in)
        .map(|_| operand(u))
        .collect::<arbitrary::Result<Vec<_>>>()?;
    let n_attr = u.int_in_range(0..=4)?;
    let mut node = NodeProto::new();
    node.op_type = op.into();
    node.name = "fuzzed".into();
    node.attribute = (0..n_attr)
        .map(|_| attribute(u))
        .collect::<arbitrary::Result<_>>()?;
    let n_out = u.int_in_range(1..=3)?;
    node.output = (0..n_out).map(|k| format!("y{k}")).collect();
    let device = Device::flex();
    let mut graph = onnx_ir::GraphProto::new();
    let mut inputs = Vec::new();
    for (k, o) in operands.iter().enumerate() {
        let name = format!("x{k}");
        node.input.push(name.clone());
        let elem = if o.int { dt::INT64 } else { dt::FLOAT };
        let n: usize = o.shape.iter().product();
        match &o.constant {
            Some(values) => {
                let mut t = TensorProto::new();
                t.name = name;
                t.dims = o.shape.iter().map(|&d| d as i64).collect();
                t.data_type = elem;
                t.raw_data = if o.int {
                    values
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<u8>>()
                } else {
                    values
                        .iter()
                        .flat_map(|&v| (v as f32).to_le_bytes())
                        .collect::<Vec<u8>>()
                }
                .into();
                graph.initializer.push(t);
            }
            None => {
                graph.input.push(value_info(&name, elem, &o.shape));
                let value = if o.int {
                    Value::try_from_i64(vec![1; n], &o.shape, &device, dt::INT64)
                } else {
                    let data = (0..n).map(|i| i as f32 * 0.25 - 1.0).collect();
                    Value::try_from_f32(data, &o.shape, &device)
                };
                let Ok(value) = value else {
                    return Err(arbitrary::Error::IncorrectFormat);
                };
                inputs.push((name, value));
            }
        }
    }
    for o in &node.output {
        let mut v = onnx_ir::ValueInfoProto::new();
        v.name = o.clone();
        graph.output.push(v);
    }
    graph.node.push(node);
    let mut model = ModelProto::new();
    model.ir_version = 8;
    with_opset(&mut model, u.int_in_range(7..=21)?);
    model.graph = Some(graph).into();
    Ok((model, inputs))
}

fn with_opset(model: &mut ModelProto, version: i64) {
    model.opset_import.push(Default::default());
    if let Some(o) = model.opset_import.last_mut() {
        o.version = version;
    }
}

/// `x -> Conv(w) -> y` on `[1, 2, 4, 4]`: the model the cache target applies caches to.
fn small_conv_model() -> ModelProto {
    let mut g = onnx_ir::GraphProto::new();
    g.input.push(value_info("x", dt::FLOAT, &[1, 2, 4, 4]));
    let mut w = TensorProto::new();
    w.name = "w".into();
    w.dims = vec![3, 2, 1, 1];
    w.data_type = dt::FLOAT;
    w.raw_data = (0..6)
        .flat_map(|i| (i as f32 * 0.5 - 1.0).to_le_bytes())
        .collect::<Vec<u8>>()
        .into();
    g.initializer.push(w);
    let mut n = NodeProto::new();
    n.op_type = "Conv".into();
    n.name = "conv".into();
    n.input = vec!["x".into(), "w".into()];
    n.output = vec!["y".into()];
    g.node.push(n);
    g.output.push(value_info("y", dt::FLOAT, &[1, 3, 4, 4]));
    let mut m = ModelProto::new();
    m.ir_version = 8;
    with_opset(&mut m, 17);
    m.graph = Some(g).into();
    m
}

/// The model [`calibration_cache`] applies caches to, serialized (seed corpora use it).
pub fn small_conv_model_bytes() -> Vec<u8> {
    small_conv_model().write_to_bytes().unwrap_or_default()
}
