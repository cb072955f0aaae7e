//! Export of issue 19's layers: a quantized instance norm exports with its input
//! Q/DQ and ONNX Runtime agrees with qdq's forward; quantized recurrent layers are
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
    // burn's instance norm is group norm with one group per channel, traced as its
    // primitive ops: after the norm's input Q/DQ come mean, variance, scale, shift
    // (not yet fused into one InstanceNormalization node).
    let q = ["QuantizeLinear", "DequantizeLinear"];
    let norm = [
        "Reshape",
        "ReduceMean",
        "Sub",
        "Mul",
        "ReduceMean",
        "Add",
        "Sqrt",
        "Div",
        "Reshape",
        "Mul",
        "Add",
    ];
    let want: Vec<&str> = [&q[..], &q[..], &["Conv"], &q[..], &norm[..]].concat();
    assert_eq!(op_types(&onnx), want);
    let ours = values(model.forward(x.clone()));
    let ort = ort_run(&onnx, &x, &dir);
    assert_close(&ours, &ort, 1e-4, 0.99);
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
