//! Export of issue 19's layers: a quantized instance norm exports as its input Q/DQ
//! and one `InstanceNormalization` node (1d/2d/3d, affine or not, opsets 13 to 18)
//! and ONNX Runtime agrees with qdq's forward; quantized recurrent layers are
//! refused by name before anything is traced or written.

mod common;

use burn::module::Module;
use burn::prelude::*;
use common::{Lcg, assert_close, dev, ort_run, scratch, tensor, values};
use onnx_ir::ModelProto;
use qdq::calib::HistogramMethod;
use qdq::nn::*;
use qdq_onnx::Error;
use qdq_onnx::export::{ExportOptions, export, export_to_file};

fn op_types(m: &ModelProto) -> Vec<&str> {
    m.graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect()
}

#[derive(Module, Debug)]
struct Styler {
    conv: QuantConv2d,
    norm: QuantInstanceNorm2d,
}

impl Styler {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.norm.forward(self.conv.forward(x))
    }
}

#[test]
fn instance_norm_exports_with_input_qdq_and_matches_onnx_runtime() {
    let dir = scratch("instnorm");
    let mut norm = QuantInstanceNorm2dConfig::new(4)
        .with_affine(true)
        .init(&dev())
        .unwrap();
    norm.norm.gamma = Some(burn::module::Param::from_tensor(tensor(
        vec![0.5, 1.5, -1.0, 2.0],
        [4],
    )));
    norm.norm.beta = Some(burn::module::Param::from_tensor(tensor(
        vec![0.1, -0.2, 0.3, 0.0],
        [4],
    )));
    let model = Styler {
        conv: QuantConv2dConfig::new([2, 4], [3, 3]).init(&dev()).unwrap(),
        norm,
    };
    let data = |seed| tensor(Lcg(seed).vec(2 * 2 * 6 * 6, -1.0, 1.0), [2, 2, 6, 6]);
    collect_stats(&model, |m| {
        let _ = m.forward(data(1));
    })
    .unwrap();
    let model = compute_amax(model, HistogramMethod::entropy()).unwrap();
    let x = data(2);
    let onnx = export(
        &model,
        Styler::forward,
        x.clone(),
        &ExportOptions::default(),
    )
    .unwrap();
    // burn's instance norm (group norm's primitive ops) is fused back into one node.
    let q = ["QuantizeLinear", "DequantizeLinear"];
    let want: Vec<&str> = [
        &q[..],
        &q[..],
        &["Conv"],
        &q[..],
        &["InstanceNormalization"],
    ]
    .concat();
    assert_eq!(op_types(&onnx), want);
    let graph = onnx.graph.as_ref().unwrap();
    // gamma and beta keep their parameter names, now [C] as the op wants.
    let fused = graph.node.last().unwrap();
    assert_eq!(fused.input[1..], ["norm.norm.gamma", "norm.norm.beta"]);
    for name in &fused.input[1..] {
        let t = graph.initializer.iter().find(|t| &t.name == name).unwrap();
        assert_eq!(t.dims, [4]);
    }
    // Nothing the decomposition read (int64 shapes, epsilon, [1, C, 1, 1] gamma/beta)
    // is left: the Conv's weight and bias, three scales and zero points, gamma, beta.
    let left: Vec<_> = graph
        .initializer
        .iter()
        .map(|t| (&t.name, &t.dims))
        .collect();
    assert_eq!(left.len(), 10, "{left:?}");
    let ours = values(model.forward(x.clone()));
    let ort = ort_run(&onnx, &x, &dir);
    assert_close(&ours, &ort, 1e-5, 1.0);
}

/// Largest |a - b|.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// A lone quantized instance norm of rank `D`, exported at `opset` (axes of
/// ReduceMean are an attribute before 18 and an input from 18): exactly Q, DQ,
/// InstanceNormalization with the norm's epsilon, checked (full_check) and run by
/// ONNX Runtime; returns the largest difference to qdq's forward.
fn lone_norm<const D: usize, M: Module + Clone>(
    model: M,
    forward: fn(&M, Tensor<D>) -> Tensor<D>,
    shape: [usize; D],
    opset: i64,
    dynamic_batch: bool,
    dir: &std::path::Path,
) -> f32 {
    let n = shape.iter().product();
    // Channels at different offsets and scales, so a per-tensor norm would be wrong.
    let x = tensor(Lcg(D as u64).vec(n, -1.0, 1.0), shape);
    let c = shape[1];
    let offset = tensor((0..c).map(|i| i as f32 - 1.5).collect(), [c]);
    let mut bshape = [1; D];
    bshape[1] = c;
    let x = x * 3.0 + offset.reshape(bshape);
    collect_stats(&model, |m| {
        let _ = forward(m, x.clone());
    })
    .unwrap();
    let model = compute_amax(model, HistogramMethod::percentile(99.9)).unwrap();
    let options = ExportOptions {
        dynamic_batch,
        ..ExportOptions::default().with_opset(opset)
    };
    let onnx = export(&model, forward, x.clone(), &options).unwrap();
    assert_eq!(
        op_types(&onnx),
        [
            "QuantizeLinear",
            "DequantizeLinear",
            "InstanceNormalization"
        ]
    );
    let graph = onnx.graph.as_ref().unwrap();
    let fused = &graph.node[2];
    assert_eq!(fused.attribute[0].name, "epsilon");
    assert_eq!(fused.attribute[0].f, 1e-3);
    assert_eq!(graph.initializer.len(), 4, "scale, zero point, gamma, beta");
    let ours = values(forward(&model, x.clone()));
    let ort = ort_run(&onnx, &x, dir);
    max_diff(&ours, &ort)
}

#[derive(Module, Debug)]
struct Norm1 {
    norm: QuantInstanceNorm1d,
}
#[derive(Module, Debug)]
struct Norm3 {
    norm: QuantInstanceNorm3d,
}

#[test]
fn instance_norm_1d_3d_affine_or_not_export_as_one_node() {
    let dir = scratch("instnorm-ranks");
    let n1 = |affine| Norm1 {
        norm: QuantInstanceNorm1dConfig::new(4)
            .with_affine(affine)
            .with_epsilon(1e-3)
            .init(&dev())
            .unwrap(),
    };
    let n3 = |affine| Norm3 {
        norm: QuantInstanceNorm3dConfig::new(3)
            .with_affine(affine)
            .with_epsilon(1e-3)
            .init(&dev())
            .unwrap(),
    };
    let f1: fn(&Norm1, Tensor<3>) -> Tensor<3> = |m, x| m.norm.forward(x);
    let f3: fn(&Norm3, Tensor<5>) -> Tensor<5> = |m, x| m.norm.forward(x);
    // Affine with gamma/beta that are not 1/0, so a dropped affine shows.
    let mut affine3 = n3(true);
    affine3.norm.norm.gamma = Some(burn::module::Param::from_tensor(tensor(
        vec![0.5, -2.0, 1.25],
        [3],
    )));
    affine3.norm.norm.beta = Some(burn::module::Param::from_tensor(tensor(
        vec![0.25, 0.0, -1.0],
        [3],
    )));
    let diffs = [
        lone_norm(n1(false), f1, [2, 4, 7], 17, false, &dir),
        lone_norm(n1(true), f1, [3, 4, 5], 18, true, &dir),
        lone_norm(n3(false), f3, [2, 3, 2, 3, 4], 13, false, &dir),
        lone_norm(affine3, f3, [2, 3, 3, 2, 2], 18, false, &dir),
    ];
    // Normalized outputs are O(1): ONNX Runtime's kernel sums in another order, so
    // the outputs agree to a few f32 ulps, not bit for bit.
    for (i, d) in diffs.iter().enumerate() {
        assert!(*d <= 1e-5, "case {i}: max |diff| {d}");
    }
}

#[derive(Module, Debug)]
struct Tagger {
    fc: QuantLinear,
    lstm: QuantLSTM,
}

#[derive(Module, Debug)]
struct Stepper {
    cell: QuantLSTMCell,
}

#[test]
fn recurrent_layers_are_refused_by_name_and_nothing_is_written() {
    let dir = scratch("rnn-refused");
    let path = dir.join("tagger.onnx");
    let model = Tagger {
        fc: QuantLinearConfig::new(3, 3).init(&dev()).unwrap(),
        lstm: QuantLSTMConfig::new(3, 4)
            .with_num_layers(2)
            .init(&dev())
            .unwrap(),
    };
    let x = tensor(Lcg(3).vec(5 * 2 * 3, -1.0, 1.0), [5, 2, 3]);
    let err = export_to_file(
        &model,
        |m: &Tagger, x: Tensor<3>| m.lstm.forward(m.fc.forward(x), None).0,
        x,
        &ExportOptions::default(),
        &path,
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedLayer { layer, .. } if layer == "lstm"),
        "{err}"
    );
    assert!(err.to_string().contains("no quantized LSTM"), "{err}");
    assert!(!path.exists());

    let model = Stepper {
        cell: QuantLSTMCellConfig::new(3, 2).init(&dev()).unwrap(),
    };
    let err = export(
        &model,
        |m: &Stepper, x: Tensor<2>| m.cell.forward(x, None).hidden,
        tensor(vec![0.5; 6], [2, 3]),
        &ExportOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedLayer { layer, .. } if layer == "cell"),
        "{err}"
    );
}
