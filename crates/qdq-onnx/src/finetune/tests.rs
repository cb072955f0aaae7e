//! Fine-tuning a QDQ graph: the fused pair is the pair bit for bit with the reference's
//! straight-through gradient; the weights found are the graph's weights; training
//! lowers the loss; writing back changes the weights and nothing else.

use std::collections::HashMap;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::TensorData;
use onnx_ir::ModelProto;

use super::TrainableGraph;
use crate::proto::decode::floats;
use crate::proto::elem as dtype;
use crate::proto::{model, node, raw_tensor, tensor_f32, value_info};
use crate::quantize::{Calibration, Method, QuantizeOptions, apply, prepare};
use crate::runtime::{OnnxGraph, Value};

fn dev() -> Device {
    Device::flex()
}

/// x [N,1,4,4] -> Conv(2x1x3x3, pad 1) -> Relu -> Flatten -> Gemm(32 -> 3) -> logits.
fn float_model() -> ModelProto {
    crate::test_models::conv_relu_gemm(value_info("x", dtype::FLOAT, &[2, 1, 4, 4]))
}

fn batch(seed: u32) -> Vec<f32> {
    (0..32)
        .map(|i| {
            (((i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(seed * 40503)
                >> 16)
                % 100) as f32
                / 50.0
                - 1.0
        })
        .collect()
}

fn input(values: Vec<f32>, device: &Device) -> Vec<(String, Value)> {
    vec![("x".into(), Value::from_f32(values, &[2, 1, 4, 4], device))]
}

/// The float model quantized (max calibration on two batches) the way `qdq quantize`
/// does it.
fn qdq_model() -> ModelProto {
    let opts = QuantizeOptions::default();
    let prepared = prepare(&float_model(), &opts).unwrap();
    let graph = OnnxGraph::from_model(&prepared.model, &dev()).unwrap();
    let mut calib = Calibration::new(
        prepared.model.graph.as_ref().unwrap(),
        &prepared.sites,
        false,
    )
    .unwrap();
    for s in 0..2 {
        calib.feed(&graph, input(batch(s), &dev())).unwrap();
    }
    let cache = calib.cache(Method::Max, &HashMap::new()).unwrap();
    apply(&prepared, &cache, &opts).unwrap()
}

fn output(outs: Vec<(String, Value)>) -> Vec<f32> {
    outs.into_iter().next().unwrap().1.to_f32().unwrap()
}

#[test]
fn fused_pair_is_the_pair_with_a_straight_through_gradient() {
    // x -> Q(scale 0.1, int8 zero point) -> DQ -> y, and a weightless graph around it.
    let scale = tensor_f32("s", &[], &[0.1]);
    let zp = raw_tensor("z", &[], dtype::INT8, vec![0]);
    let m = model(
        vec![
            node("QuantizeLinear", "q", &["x", "s", "z"], &["xq"]),
            node("DequantizeLinear", "dq", &["xq", "s", "z"], &["y"]),
        ],
        vec![value_info("x", dtype::FLOAT, &[8])],
        &["y"],
        vec![scale, zp],
        13,
    );
    let x = [-20.0f32, -12.8, -12.6, 0.04, 0.26, 0.25, 12.6, 12.8];
    let pair = OnnxGraph::from_model(&m, &dev()).unwrap();
    let expected = output(
        pair.run(vec![(
            "x".into(),
            Value::from_f32(x.to_vec(), &[8], &dev()),
        )])
        .unwrap(),
    );
    assert_eq!(expected[4], 3.0 * 0.1f32);
    assert_eq!(expected[5], 2.0 * 0.1f32, "2.5 rounds half to even");
    assert_eq!(expected[0], -128.0 * 0.1f32, "int8 saturates at -128");

    let mut fused = m.clone();
    assert_eq!(
        super::fuse::fuse_qdq_pairs(fused.graph.as_mut().unwrap()).unwrap(),
        1
    );
    let g = &fused.graph.as_ref().unwrap().node;
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].op_type, "FakeQuantizeLinear");
    assert_eq!(g[0].input, ["x", "s", "z"]);

    let ad = dev().autodiff();
    let graph = OnnxGraph::from_model(&fused, &dev()).unwrap();
    let xt = Tensor::<1>::from_data(TensorData::new(x.to_vec(), [8]), &ad).require_grad();
    let outs = graph
        .run(vec![("x".into(), Value::from_float_tensor(xt.clone()))])
        .unwrap();
    let y = outs
        .into_iter()
        .next()
        .unwrap()
        .1
        .into_float_tensor::<1>()
        .unwrap();
    let got: Vec<f32> = y.clone().into_data().try_into_vec::<f32>().unwrap();
    assert_eq!(got, expected, "the fused value is the pair's, bit for bit");
    let grads = y.sum().backward();
    let g: Vec<f32> = xt
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    // Passed where |x| <= 127 * 0.1, zero outside.
    assert_eq!(g, [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
}

#[test]
fn asymmetric_pairs_are_refused_by_name() {
    let m = model(
        vec![
            node("QuantizeLinear", "q", &["x", "s", "z"], &["xq"]),
            node("DequantizeLinear", "dq", &["xq", "s", "z"], &["y"]),
        ],
        vec![value_info("x", dtype::FLOAT, &[2])],
        &["y"],
        vec![
            tensor_f32("s", &[], &[0.1]),
            raw_tensor("z", &[], dtype::UINT8, vec![128]),
        ],
        13,
    );
    let mut fused = m.clone();
    super::fuse::fuse_qdq_pairs(fused.graph.as_mut().unwrap()).unwrap();
    let g = OnnxGraph::from_model(&fused, &dev()).unwrap();
    let e = g
        .run(vec![(
            "x".into(),
            Value::from_f32(vec![0.0, 1.0], &[2], &dev()),
        )])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`dq`") && e.contains("asymmetric"), "{e}");
}

#[test]
fn training_lowers_the_loss_and_writes_back_only_the_weights() {
    let qdq = qdq_model();
    let pairs = qdq
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear")
        .count();
    let model = TrainableGraph::new(&qdq, &dev()).unwrap();
    assert_eq!(
        model.names(),
        ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    );
    assert_eq!(model.quantizers(), pairs);
    assert_eq!(pairs, 4, "conv and fc: input and weight");

    // Before training, the trainable graph computes what the QDQ model computes.
    let x = input(batch(7), &dev());
    let reference = OnnxGraph::from_model(&qdq, &dev()).unwrap();
    let before = output(reference.run(x.clone()).unwrap());
    assert_eq!(output(model.forward(x.clone()).unwrap()), before);

    // A few SGD steps towards fixed labels.
    let ad = dev().autodiff();
    let mut model = model.fork(&ad).train();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &ad);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut optim = SgdConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..20 {
        let outs = model.forward(input(batch(7), &ad)).unwrap();
        let logits = outs
            .into_iter()
            .next()
            .unwrap()
            .1
            .into_float_tensor::<2>()
            .unwrap();
        let loss = loss_fn.forward(logits, labels.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.1, model, grads);
    }
    assert!(losses[19] < 0.5 * losses[0], "the loss falls: {losses:?}");

    // Written back: the weights changed, every other initializer (scales, zero
    // points) is byte for byte the same, and the file computes what the module does.
    let trained = model.valid();
    let written = trained.write_into(&qdq).unwrap();
    let init = |m: &ModelProto| -> HashMap<String, onnx_ir::TensorProto> {
        m.graph
            .as_ref()
            .unwrap()
            .initializer
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect()
    };
    let (old, new) = (init(&qdq), init(&written));
    assert_eq!(old.len(), new.len());
    for (name, t) in &old {
        if trained.names().contains(name) {
            assert_ne!(floats(t), floats(&new[name]), "{name} trained");
            assert_eq!(t.dims, new[name].dims);
        } else {
            assert_eq!(t, &new[name], "{name} untouched");
        }
    }
    let after = OnnxGraph::from_model(&written, &dev()).unwrap();
    let file_out = output(after.run(x.clone()).unwrap());
    assert_eq!(file_out, output(trained.forward(x).unwrap()));
    assert_ne!(file_out, before);
}

#[test]
fn a_graph_without_weights_is_refused() {
    let m = model(
        vec![node("Relu", "relu", &["x"], &["y"])],
        vec![value_info("x", dtype::FLOAT, &[2])],
        &["y"],
        Vec::new(),
        13,
    );
    let e = TrainableGraph::new(&m, &dev()).unwrap_err().to_string();
    assert!(e.contains("no weight to train"), "{e}");
}
