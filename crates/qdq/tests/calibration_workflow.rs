//! The seed's calibration workflow over a whole model: collect once, compute amax with
//! several methods, print the table, save and load.

mod common;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use common::{Lcg, dev, tensor};
use qdq::Error;
use qdq::calib::HistogramMethod;
use qdq::nn::{TensorQuantizer, collect_stats, compute_amax, named_quantizers, quantizer_summary};
use qdq::tensor_quant::{CalibMethod, QuantDescriptor};

#[derive(Module, Debug)]
struct Mlp {
    fc1: Linear,
    _act_quantizer: TensorQuantizer,
    fc2: Linear,
    _out_quantizer: TensorQuantizer,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        let hist = QuantDescriptor::builder()
            .calib_method(CalibMethod::Histogram)
            .build()
            .unwrap();
        Self {
            fc1: LinearConfig::new(8, 16).init(device),
            _act_quantizer: TensorQuantizer::new(&hist, device).unwrap(),
            fc2: LinearConfig::new(16, 4).init(device),
            _out_quantizer: TensorQuantizer::new(&QuantDescriptor::default(), device).unwrap(),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self
            ._act_quantizer
            .forward(burn::tensor::activation::relu(self.fc1.forward(x)));
        self._out_quantizer.forward(self.fc2.forward(h))
    }
}

fn batches() -> Vec<Tensor<2>> {
    let mut rng = Lcg(11);
    (0..4)
        .map(|_| tensor(rng.vec(32 * 8, -1.0, 1.0), [32, 8], &dev()))
        .collect()
}

#[test]
fn collect_once_then_compute_amax_with_each_method() {
    let model = Mlp::new(&dev());
    let data = batches();
    collect_stats(&model, |m| {
        for b in &data {
            let _ = m.forward(b.clone());
        }
    })
    .unwrap();

    // The max calibrator's amax is the max |fc2 output| over every batch.
    let max_out = data
        .iter()
        .map(|b| {
            model
                .fc2
                .forward(burn::tensor::activation::relu(model.fc1.forward(b.clone())))
                .abs()
                .max()
                .into_scalar::<f32>()
        })
        .fold(0.0f32, f32::max);
    let max_act = data
        .iter()
        .map(|b| {
            burn::tensor::activation::relu(model.fc1.forward(b.clone()))
                .max()
                .into_scalar::<f32>()
        })
        .fold(0.0f32, f32::max);

    let mut amaxes = Vec::new();
    let mut model = model;
    for method in [
        HistogramMethod::percentile(99.99),
        HistogramMethod::mse(),
        HistogramMethod::entropy(),
        HistogramMethod::percentile(75.0),
    ] {
        model = compute_amax(model, method).unwrap();
        let found = named_quantizers(&model);
        assert_eq!(
            found[1].amax,
            Some(vec![max_out]),
            "max calibrator ignores the method"
        );
        let act = found[0].amax.clone().unwrap()[0];
        assert!(
            act > 0.0 && act <= max_act * 1.001,
            "{method}: {act} vs max {max_act}"
        );
        amaxes.push(act);
    }
    // Percentile 75 is far below percentile 99.99 of the same histogram.
    assert!(amaxes[3] < amaxes[0] * 0.8, "{amaxes:?}");
    let summary = quantizer_summary(&model);
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with(
            "_act_quantizer                          : TensorQuantizer(8bit fake per-tensor amax="
        ),
        "{summary}"
    );
    assert!(
        lines[0].ends_with("calibrator=HistogramCalibrator scale=1.0 quant)"),
        "{summary}"
    );
    assert_eq!(
        lines[1],
        format!(
            "_out_quantizer                          : TensorQuantizer(8bit fake per-tensor amax={max_out:.4} calibrator=MaxCalibrator scale=1.0 quant)"
        )
    );
}

#[test]
fn uncalibrated_quantizer_is_named_in_the_error() {
    let model = Mlp::new(&dev());
    let err = compute_amax(model, HistogramMethod::entropy()).unwrap_err();
    match err {
        Error::Quantizer { name, source } => {
            assert_eq!(name, "_act_quantizer");
            assert!(matches!(*source, Error::NoData { .. }), "{source}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn forward_errors_surface_from_collect_stats_by_name() {
    let d = dev();
    let model = Mlp::new(&d);
    let err = collect_stats(&model, |m| {
        let _ = m.forward(tensor(vec![f32::NAN; 8], [1, 8], &d));
    })
    .unwrap_err();
    assert!(
        err.to_string().starts_with("quantizer `_act_quantizer`"),
        "{err}"
    );
}
