//! Export of qdq models to QDQ ONNX, judged by outside tools: the ONNX checker
//! accepts every file, ONNX Runtime runs it, and its output matches qdq's own
//! fake-quant forward. Also: scales and axes land where TensorRT wants them, and
//! every error is found before a file is written.

mod common;

use burn::module::{Module, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, PaddingConfig3d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use common::{Lcg, assert_close, dev, onnx_check, ort_run, scratch, tensor, values};
use onnx_ir::{GraphProto, ModelProto, NodeProto};
use qdq::calib::HistogramMethod;
use qdq::nn::*;
use qdq::tensor_quant::{QUANT_DESC_8BIT_PER_TENSOR, QuantDescriptor};
use qdq_onnx::export::{ExportOptions, Fp8Style, export, export_to_file};
use qdq_onnx::{Error, lint};

/// Calibrates every quantizer of `model` (max) on `batches`.
fn calibrate<M: Module + Clone, const D: usize, const O: usize>(
    model: M,
    forward: impl Fn(&M, Tensor<D>) -> Tensor<O>,
    batches: &[Tensor<D>],
) -> M {
    collect_stats(&model, |m| {
        for b in batches {
            let _ = forward(m, b.clone());
        }
    })
    .unwrap();
    compute_amax(model, HistogramMethod::entropy()).unwrap()
}

fn graph(m: &ModelProto) -> &GraphProto {
    m.graph.as_ref().unwrap()
}

fn node<'a>(m: &'a ModelProto, name: &str) -> &'a NodeProto {
    graph(m)
        .node
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn floats(m: &ModelProto, name: &str) -> (Vec<i64>, Vec<f32>) {
    let t = graph(m)
        .initializer
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no initializer {name}"));
    let v = t
        .raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.dims.clone(), v)
}

fn axis(n: &NodeProto) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == "axis").map(|a| a.i)
}

fn amax_of<M: Module>(model: &M, name: &str) -> Vec<f32> {
    named_quantizers(model)
        .into_iter()
        .find(|q| q.name == name)
        .and_then(|q| q.amax)
        .unwrap_or_else(|| panic!("no calibrated quantizer {name}"))
}

fn op_types(m: &ModelProto) -> Vec<&str> {
    graph(m).node.iter().map(|n| n.op_type.as_str()).collect()
}

// ---------------------------------------------------------------- MLP

#[derive(Module, Debug)]
struct Mlp {
    fc1: QuantLinear,
    fc2: QuantLinear,
}

impl Mlp {
    fn new(desc: Option<&QuantDescriptor>) -> Self {
        let layer = |i, o| {
            let c = QuantLinearConfig::new(i, o);
            match desc {
                Some(d) => c
                    .with_quant_desc_input(d.clone())
                    .with_quant_desc_weight(d.clone()),
                None => c,
            }
            .init(&dev())
            .unwrap()
        };
        Self {
            fc1: layer(6, 16),
            fc2: layer(16, 5),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(relu(self.fc1.forward(x)))
    }
}

fn mlp_data(seed: u64) -> Tensor<2> {
    tensor(Lcg(seed).vec(8 * 6, -2.0, 2.0), [8, 6])
}

#[test]
fn mlp_matches_onnx_runtime_with_weights_per_output_feature() {
    let dir = scratch("mlp");
    let model = calibrate(Mlp::new(None), Mlp::forward, &[mlp_data(1), mlp_data(2)]);
    let x = mlp_data(3);
    let onnx = export(&model, Mlp::forward, x.clone(), &ExportOptions::default()).unwrap();
    assert_eq!(lint(&onnx), vec![]);
    assert_eq!(
        op_types(&onnx),
        [
            "QuantizeLinear",
            "DequantizeLinear",
            "QuantizeLinear",
            "DequantizeLinear",
            "MatMul",
            "Add",
            "Relu",
            "QuantizeLinear",
            "DequantizeLinear",
            "QuantizeLinear",
            "DequantizeLinear",
            "MatMul",
            "Add"
        ]
    );
    // The weight is stored [in, out] for MatMul and quantized per output feature,
    // which is axis 1 there; each of the 16 scales is its row's amax / 127.
    let (dims, w) = floats(&onnx, "fc1.weight");
    assert_eq!(dims, [6, 16]);
    let w_ours = values(model.fc1.weight.val());
    assert_eq!(w[6 * 16 - 1], w_ours[16 * 6 - 1]);
    assert_eq!(w[1], w_ours[6], "transposed");
    let q = node(&onnx, "fc1._weight_quantizer_QuantizeLinear");
    assert_eq!(axis(q), Some(1));
    let amax = amax_of(&model, "fc1._weight_quantizer");
    let (_, scale) = floats(&onnx, "fc1._weight_quantizer_scale");
    let want: Vec<f32> = amax.iter().map(|a| a / 127.0).collect();
    assert_eq!(scale, want);
    let distinct: std::collections::HashSet<u32> = scale.iter().map(|s| s.to_bits()).collect();
    assert_eq!(
        distinct.len(),
        16,
        "one distinct scale per channel exposes a wrong axis"
    );

    let ours = values(model.forward(x.clone()));
    let ort = ort_run(&onnx, &x, &dir);
    assert_close(&ours, &ort, 1e-4, 0.99);
}

// ---------------------------------------------------------------- CNN with a residual

#[derive(Module, Debug)]
struct ResCnn {
    conv1: QuantConv2d,
    bn1: BatchNorm,
    conv2: QuantConv2d,
    bn2: BatchNorm,
    residual_quantizer: TensorQuantizer,
    pool: QuantMaxPool2d,
    gap: QuantAdaptiveAvgPool2d,
    fc: QuantLinear,
}

fn batch_norm(c: usize, seed: u64) -> BatchNorm {
    let mut bn = BatchNormConfig::new(c).init(&dev());
    let mut r = Lcg(seed);
    bn.running_mean = RunningState::new(tensor(r.vec(c, -0.2, 0.2), [c]));
    bn.running_var = RunningState::new(tensor(r.vec(c, 0.5, 1.5), [c]));
    bn.gamma = burn::module::Param::from_tensor(tensor(r.vec(c, 0.5, 1.5), [c]));
    bn
}

impl ResCnn {
    fn new() -> Self {
        let conv = |i, o| {
            QuantConv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(&dev())
                .unwrap()
        };
        Self {
            conv1: conv(3, 8),
            bn1: batch_norm(8, 7),
            conv2: conv(8, 8),
            bn2: batch_norm(8, 8),
            residual_quantizer: TensorQuantizer::new(&QUANT_DESC_8BIT_PER_TENSOR, &dev()).unwrap(),
            pool: QuantMaxPool2dConfig::new([2, 2]).init(&dev()).unwrap(),
            gap: QuantAdaptiveAvgPool2dConfig::new([1, 1])
                .init(&dev())
                .unwrap(),
            fc: QuantLinearConfig::new(8, 4).init(&dev()).unwrap(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let out = self.bn2.forward(self.conv2.forward(x.clone()));
        let x = relu(out + self.residual_quantizer.forward(x));
        let x = self.gap.forward(self.pool.forward(x));
        self.fc.forward(x.flatten(1, 3))
    }
}

fn images(seed: u64, n: usize) -> Tensor<4> {
    tensor(Lcg(seed).vec(n * 3 * 8 * 8, -1.0, 1.0), [n, 3, 8, 8])
}

#[test]
fn residual_cnn_matches_onnx_runtime() {
    let dir = scratch("rescnn");
    let model = calibrate(
        ResCnn::new(),
        ResCnn::forward,
        &[images(1, 4), images(2, 4)],
    );
    let x = images(3, 16);
    let onnx = export(
        &model,
        ResCnn::forward,
        x.clone(),
        &ExportOptions::default(),
    )
    .unwrap();
    assert_eq!(lint(&onnx), vec![]);
    let ops = op_types(&onnx);
    for op in [
        "Conv",
        "BatchNormalization",
        "MaxPool",
        "GlobalAveragePool",
        "Add",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    // The residual quantizer stands on the skip branch, feeding the Add.
    let dq = node(&onnx, "residual_quantizer_DequantizeLinear");
    let add = graph(&onnx)
        .node
        .iter()
        .find(|n| n.op_type == "Add" && n.input.contains(&dq.output[0]))
        .expect("residual DQ feeds the Add");
    assert_eq!(add.input.len(), 2);
    // Conv weights: axis 0, scale = amax / 127 for each of the 8 output channels.
    let q = node(&onnx, "conv2._weight_quantizer_QuantizeLinear");
    assert_eq!(axis(q), Some(0));
    let (dims, scale) = floats(&onnx, "conv2._weight_quantizer_scale");
    assert_eq!(dims, [8]);
    let amax = amax_of(&model, "conv2._weight_quantizer");
    assert_eq!(scale, amax.iter().map(|a| a / 127.0).collect::<Vec<_>>());
    // Activations are per tensor, with a scalar scale and int8 zero point.
    let (dims, scale) = floats(&onnx, "conv1._input_quantizer_scale");
    assert!(dims.is_empty());
    assert_eq!(
        scale,
        [amax_of(&model, "conv1._input_quantizer")[0] / 127.0]
    );

    let ours = values(model.forward(x.clone()));
    let ort = ort_run(&onnx, &x, &dir);
    assert_close(&ours, &ort, 1e-4, 0.99);
}

// ---------------------------------------------------------------- ConvTranspose, 3-D, 1-D

#[derive(Module, Debug)]
struct Deconv {
    up: QuantConvTranspose2d,
    pool: QuantAvgPool2d,
}

impl Deconv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pool.forward(relu(self.up.forward(x)))
    }
}

#[test]
fn conv_transpose_matches_onnx_runtime_with_weights_per_input_channel() {
    let dir = scratch("deconv");
    let model = Deconv {
        up: QuantConvTranspose2dConfig::new([3, 6], [3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_padding_out([1, 1])
            .init(&dev())
            .unwrap(),
        pool: QuantAvgPool2dConfig::new([2, 2]).init(&dev()).unwrap(),
    };
    let model = calibrate(model, Deconv::forward, &[images(4, 2)]);
    let x = images(5, 2);
    let onnx = export(
        &model,
        Deconv::forward,
        x.clone(),
        &ExportOptions::default(),
    )
    .unwrap();
    assert_eq!(lint(&onnx), vec![]);
    // Weight [C_in, C_out, k, k]: TensorRT's deconvolution wants axis 0 (3 scales).
    let q = node(&onnx, "up._weight_quantizer_QuantizeLinear");
    assert_eq!(axis(q), Some(0));
    assert_eq!(floats(&onnx, "up._weight_quantizer_scale").0, [3]);
    let ours = values(model.forward(x.clone()));
    assert_eq!(ours.len(), 2 * 6 * 8 * 8);
    let ort = ort_run(&onnx, &x, &dir);
    assert_close(&ours, &ort, 1e-4, 0.99);
}

#[derive(Module, Debug)]
struct Volume {
    conv: QuantConv3d,
    pool: QuantMaxPool3d,
    avg: QuantAvgPool3d,
}

impl Volume {
    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        self.avg
            .forward(self.pool.forward(relu(self.conv.forward(x))))
    }
}

#[test]
fn conv3d_and_3d_pools_match_onnx_runtime() {
    let dir = scratch("conv3d");
    let model = Volume {
        conv: QuantConv3dConfig::new([2, 4], [3, 3, 3])
            .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
            .init(&dev())
            .unwrap(),
        pool: QuantMaxPool3dConfig::new([2, 2, 2]).init(&dev()).unwrap(),
        avg: QuantAvgPool3dConfig::new([2, 2, 2]).init(&dev()).unwrap(),
    };
    let data = |seed| tensor(Lcg(seed).vec(2 * 2 * 8 * 8 * 8, -1.0, 1.0), [2, 2, 8, 8, 8]);
    let model = calibrate(model, Volume::forward, &[data(1)]);
    let x = data(2);
    let onnx = export(
        &model,
        Volume::forward,
        x.clone(),
        &ExportOptions::default(),
    )
    .unwrap();
    assert_eq!(lint(&onnx), vec![]);
    assert_eq!(floats(&onnx, "conv._weight_quantizer_scale").0, [4]);
    let ours = values(model.forward(x.clone()));
    let ort = ort_run(&onnx, &x, &dir);
    // The two convolutions sum in different orders; a value within float noise of a
    // rounding boundary of the pools' quantizers rounds apart on rare runs (seen once
    // in a full suite: 9.85e-4 on one element, a step of 7.69e-3 over the 8 values an
    // average takes is 9.61e-4): at most two such steps, on at most 1 % of elements.
    let (_, scale) = floats(&onnx, "avg._input_quantizer_scale");
    assert_close(&ours, &ort, scale[0] / 4.0, 0.99);
}

// ---------------------------------------------------------------- FP8

#[test]
fn fp8_exports_standard_and_tensorrt_forms() {
    let dir = scratch("fp8");
    let e4m3 = QuantDescriptor::builder().e4m3().build().unwrap();
    let model = calibrate(Mlp::new(Some(&e4m3)), Mlp::forward, &[mlp_data(1)]);
    let x = mlp_data(3);

    // Below opset 19 there is no FLOAT8E4M3FN: a typed error naming the quantizer.
    let err = export(&model, Mlp::forward, x.clone(), &ExportOptions::default()).unwrap_err();
    match &err {
        Error::Opset {
            quantizer, needed, ..
        } => assert_eq!((quantizer.as_str(), *needed), ("fc1._input_quantizer", 19)),
        other => panic!("{other}"),
    }

    let onnx = export(
        &model,
        Mlp::forward,
        x.clone(),
        &ExportOptions::default().with_opset(19),
    )
    .unwrap();
    let zp = graph(&onnx)
        .initializer
        .iter()
        .find(|t| t.name == "fc1._input_quantizer_zero_point")
        .unwrap();
    assert_eq!(zp.data_type, 17, "FLOAT8E4M3FN");
    let (_, scale) = floats(&onnx, "fc1._input_quantizer_scale");
    assert_eq!(scale, [amax_of(&model, "fc1._input_quantizer")[0] / 448.0]);
    let ours = values(model.forward(x.clone()));
    let ort = ort_run(&onnx, &x, &dir);
    // ONNX's x / (amax/448) and qdq's x * (448/amax) may round apart by one E4M3
    // step (1/16 of the value) on rare elements; the rest agree exactly.
    let big = ours.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_close(&ours, &ort, big / 16.0, 0.95);

    // TensorRT's custom ops: domain `trt`, no zero point; the checker accepts them.
    let trt = export(
        &model,
        Mlp::forward,
        x,
        &ExportOptions::default().with_fp8(Fp8Style::TensorRt),
    )
    .unwrap();
    let q = node(&trt, "fc1._input_quantizer_TRT_FP8QuantizeLinear");
    assert_eq!((q.domain.as_str(), q.input.len()), ("trt", 2));
    assert!(trt.opset_import.iter().any(|o| o.domain == "trt"));
    onnx_check(&trt, &dir);
}

#[test]
fn four_bit_weights_export_as_int4_at_opset_21() {
    let dir = scratch("w4a8");
    // W4A8 as the ResNet chapter trains it: 4-bit weights per output feature, 8-bit
    // activations.
    let w4 = QuantDescriptor::builder()
        .num_bits(4)
        .axis([0])
        .build()
        .unwrap();
    let layer = |i, o| {
        QuantLinearConfig::new(i, o)
            .with_quant_desc_weight(w4.clone())
            .init(&dev())
            .unwrap()
    };
    let mlp = Mlp {
        fc1: layer(6, 16),
        fc2: layer(16, 5),
    };
    let model = calibrate(mlp, Mlp::forward, &[mlp_data(1), mlp_data(2)]);
    let x = mlp_data(3);

    // INT4 Q/DQ exists from opset 21: below, a typed error naming the quantizer.
    let err = export(&model, Mlp::forward, x.clone(), &ExportOptions::default()).unwrap_err();
    match &err {
        Error::Opset {
            quantizer, needed, ..
        } => assert_eq!((quantizer.as_str(), *needed), ("fc1._weight_quantizer", 21)),
        other => panic!("{other}"),
    }

    let onnx = export(
        &model,
        Mlp::forward,
        x.clone(),
        &ExportOptions::default().with_opset(21),
    )
    .unwrap();
    assert_eq!(lint(&onnx), vec![]);
    let zp = |name: &str| {
        graph(&onnx)
            .initializer
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .data_type
    };
    assert_eq!(zp("fc1._weight_quantizer_zero_point"), 22, "INT4");
    assert_eq!(zp("fc1._input_quantizer_zero_point"), 3, "INT8");
    // Each of the 16 scales is its row's amax / 7 (pytorch-quantization's 4-bit bound).
    let amax = amax_of(&model, "fc1._weight_quantizer");
    let (_, scale) = floats(&onnx, "fc1._weight_quantizer_scale");
    assert_eq!(scale, amax.iter().map(|a| a / 7.0).collect::<Vec<_>>());
    assert_eq!(
        axis(node(&onnx, "fc1._weight_quantizer_QuantizeLinear")),
        Some(1)
    );

    onnx_check(&onnx, &dir);
    let ours = values(model.forward(x.clone()));
    let ort = ort_run(&onnx, &x, &dir);
    assert_close(&ours, &ort, 1e-4, 0.99);
}

// ---------------------------------------------------------------- errors, before writing

#[test]
fn uncalibrated_quantizer_is_named_and_nothing_is_written() {
    let dir = scratch("uncalibrated");
    let path = dir.join("out.onnx");
    let model = Mlp::new(None);
    let err = export_to_file(
        &model,
        Mlp::forward,
        mlp_data(1),
        &ExportOptions::default(),
        &path,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("fc1._input_quantizer"), "{msg}");
    assert!(msg.contains("calibrate"), "{msg}");
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no temp file left"
    );
}

#[test]
fn a_refused_export_leaves_the_model_as_it_was() {
    // Four quantizers, none calibrated: export names the first and refuses. The
    // other three failed too; none of that may stay recorded on the model, or the
    // calibration that follows would fail with "Uncalibrated".
    let model = Mlp::new(None);
    let err = export(&model, Mlp::forward, mlp_data(1), &ExportOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Quantizer(qdq::Error::Quantizer { name, source })
            if name == "fc1._input_quantizer" && matches!(**source, qdq::Error::Uncalibrated)),
        "{err}"
    );
    // Calibrating now succeeds (collect_stats reports any error left on the model).
    let model = calibrate(model, Mlp::forward, &[mlp_data(2)]);
    let onnx = export(&model, Mlp::forward, mlp_data(1), &ExportOptions::default()).unwrap();
    assert_eq!(
        op_types(&onnx)
            .iter()
            .filter(|o| **o == "QuantizeLinear")
            .count(),
        4
    );
}

#[test]
fn calibrating_quantizer_is_an_error() {
    let model = Mlp::new(None);
    enable_calibration(&model);
    let err = export(&model, Mlp::forward, mlp_data(1), &ExportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("fc1._input_quantizer"), "{err}");
    assert!(err.to_string().contains("calibrating"), "{err}");
}

#[test]
fn per_channel_needs_opset_13_and_opsets_outside_10_to_21_are_refused() {
    let model = calibrate(Mlp::new(None), Mlp::forward, &[mlp_data(1)]);
    let err = export(
        &model,
        Mlp::forward,
        mlp_data(2),
        &ExportOptions::default().with_opset(12),
    )
    .unwrap_err();
    match err {
        Error::Opset {
            quantizer, needed, ..
        } => assert_eq!((quantizer.as_str(), needed), ("fc1._weight_quantizer", 13)),
        other => panic!("{other}"),
    }
    for opset in [9, 22] {
        let err = export(
            &model,
            Mlp::forward,
            mlp_data(2),
            &ExportOptions::default().with_opset(opset),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::OpsetRange { opset: o, min: 10, max: 21, .. } if o == opset),
            "{err}"
        );
        assert!(
            err.to_string().contains(&format!(
                "opset {opset} is not supported by export; choose 10 to 21"
            )),
            "{err}"
        );
    }
}

#[test]
fn every_opset_from_13_to_21_passes_the_checker_and_runs() {
    let dir = scratch("opsets");
    let model = calibrate(ResCnn::new(), ResCnn::forward, &[images(1, 2)]);
    let x = images(3, 1);
    let ours = values(model.forward(x.clone()));
    for opset in [13, 19, 21] {
        let onnx = export(
            &model,
            ResCnn::forward,
            x.clone(),
            &ExportOptions::default().with_opset(opset),
        )
        .unwrap();
        assert_eq!(onnx.opset_import[0].version, opset);
        let ort = ort_run(&onnx, &x, &dir);
        assert_close(&ours, &ort, 1e-4, 0.99);
    }
}

#[derive(Module, Debug)]
struct Odd {
    fc: QuantLinear,
}

impl Odd {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc.forward(x).cumsum(1).sort(1)
    }
}

#[test]
fn unsupported_operations_are_all_listed_with_their_place() {
    let dir = scratch("unsupported");
    let path = dir.join("odd.onnx");
    let model = Odd {
        fc: QuantLinearConfig::new(6, 3).init(&dev()).unwrap(),
    };
    let model = calibrate(model, Odd::forward, &[mlp_data(1)]);
    let err = export_to_file(
        &model,
        Odd::forward,
        mlp_data(2),
        &ExportOptions::default(),
        &path,
    )
    .unwrap_err();
    let Error::UnsupportedOps(ops) = &err else {
        panic!("{err}")
    };
    let names: Vec<&str> = ops.iter().map(|o| o.op.as_str()).collect();
    assert_eq!(names, ["CumSum", "Sort"], "{err}");
    assert!(
        err.to_string().contains("after fc._input_quantizer"),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn exported_file_is_written_whole_and_reads_back() {
    use qdq_onnx::Message;
    let dir = scratch("file");
    let path = dir.join("mlp.onnx");
    let model = calibrate(Mlp::new(None), Mlp::forward, &[mlp_data(1)]);
    let onnx = export_to_file(
        &model,
        Mlp::forward,
        mlp_data(2),
        &ExportOptions::default(),
        &path,
    )
    .unwrap();
    let back = ModelProto::parse_from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(back, onnx);
    assert_eq!(qdq_onnx::lint_file(&path).unwrap(), vec![]);
    // A path in a missing directory: a typed error naming it.
    let bad = dir.join("missing/x.onnx");
    let err = export_to_file(
        &model,
        Mlp::forward,
        mlp_data(2),
        &ExportOptions::default(),
        &bad,
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing/x.onnx"), "{err}");
}

#[derive(Module, Debug)]
struct Unsigned {
    fc1: QuantLinear,
    fc2: QuantLinear,
}

impl Unsigned {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(relu(self.fc1.forward(x)))
    }
}

#[test]
fn unsigned_quantizers_export_as_uint8_only_when_allowed() {
    let dir = scratch("unsigned");
    let unsigned = QuantDescriptor::builder().unsigned(true).build().unwrap();
    let model = Unsigned {
        fc1: QuantLinearConfig::new(6, 16).init(&dev()).unwrap(),
        fc2: QuantLinearConfig::new(16, 5)
            .with_quant_desc_input(unsigned)
            .init(&dev())
            .unwrap(),
    };
    let model = calibrate(model, Unsigned::forward, &[mlp_data(1)]);
    let x = mlp_data(2);
    // TensorRT takes signed zero points only: the default lint refuses the file.
    let err = export(
        &model,
        Unsigned::forward,
        x.clone(),
        &ExportOptions::default(),
    )
    .unwrap_err();
    let Error::Lint(violations) = &err else {
        panic!("{err}")
    };
    assert_eq!(violations.len(), 2, "{err}");
    assert!(
        violations[0].node.starts_with("fc2._input_quantizer"),
        "{err}"
    );
    // For other runtimes: UINT8 with scale amax / 255, run by ONNX Runtime.
    let mut options = ExportOptions::default();
    options.lint.allow_uint8 = true;
    let onnx = export(&model, Unsigned::forward, x.clone(), &options).unwrap();
    let zp = graph(&onnx)
        .initializer
        .iter()
        .find(|t| t.name == "fc2._input_quantizer_zero_point")
        .unwrap();
    assert_eq!(zp.data_type, 2, "UINT8");
    let (_, scale) = floats(&onnx, "fc2._input_quantizer_scale");
    assert_eq!(scale, [amax_of(&model, "fc2._input_quantizer")[0] / 255.0]);
    let ours = values(model.forward(x.clone()));
    let ort = ort_run(&onnx, &x, &dir);
    assert_close(&ours, &ort, 1e-4, 0.99);
}

#[test]
fn dynamic_batch_runs_with_any_batch_size() {
    let dir = scratch("dynbatch");
    let model = calibrate(ResCnn::new(), ResCnn::forward, &[images(1, 4)]);
    let options = ExportOptions {
        dynamic_batch: true,
        ..Default::default()
    };
    let onnx = export(&model, ResCnn::forward, images(2, 2), &options).unwrap();
    let input = &graph(&onnx).input[0];
    let dim0 = &input.type_.tensor_type().shape.dim[0];
    assert_eq!(dim0.dim_param(), "batch");
    for n in [1, 5] {
        let x = images(3, n);
        let ours = values(model.forward(x.clone()));
        let ort = ort_run(&onnx, &x, &dir);
        assert_close(&ours, &ort, 1e-4, 0.99);
    }
}
