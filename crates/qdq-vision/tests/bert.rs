//! The BERT flow, reduced: a small random-init encoder (2 layers, width 16) is
//! calibrated, quantized with a PTQ method, fine-tuned by distillation (QAT), exported
//! to QDQ ONNX, and ONNX Runtime's output on the file equals qdq's forward.

use burn::prelude::*;
use qdq::calib::HistogramMethod;
use qdq::nn::{collect_stats, compute_amax, named_quantizers};
use qdq_onnx::export::{ExportOptions, export_to_file};
use qdq_vision::bert::{Bert, BertConfig};
use qdq_vision::bert_flow::{Sentences, distill, embed_all, row_cosines};
use qdq_vision::{QuantScheme, ort};

const DIM: usize = 16;

/// `n` sentences of 3..=10 ids in 4..50, framed by 1 and 2, padded with 0 to 12.
fn sentences(n: usize, seed: u64) -> Sentences {
    let mut state = seed;
    let mut next = |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let len = 12;
    let (mut ids, mut mask) = (vec![0i64; n * len], vec![0i64; n * len]);
    for r in 0..n {
        let words = 3 + next(8) as usize;
        let row = std::iter::once(1)
            .chain((0..words).map(|_| 4 + next(46) as i64))
            .chain(std::iter::once(2));
        for (c, id) in row.enumerate() {
            ids[r * len + c] = id;
            mask[r * len + c] = 1;
        }
    }
    Sentences { ids, mask, n, len }
}

#[test]
fn small_bert_calibrate_ptq_qat_export_matches_onnx_runtime() {
    let device = Device::flex();
    let cfg = BertConfig::new(50, 16, DIM, 2, 32, 2);
    device.seed(7);
    let fp32 = cfg.init(&device).unwrap();
    // The same weights (a record carries parameters, not quantizer switches).
    let quant = cfg
        .clone()
        .with_quantize(Some(QuantScheme::seed()))
        .init(&device)
        .unwrap()
        .load_record(fp32.clone().into_record());
    let (calib, train, test) = (sentences(16, 1), sentences(8, 2), sentences(8, 3));

    // Same weights; FP32 has every quantizer off.
    assert!(
        named_quantizers(&fp32)
            .iter()
            .all(|q| q.handle.is_disabled())
    );
    // 4 projections + 4 matmul operands per attention, 2 FFN linears: 2 × (4×2 + 4 + 2×2).
    assert_eq!(named_quantizers(&quant).len(), 32);

    let mut fed = Ok(());
    collect_stats(&quant, |m| fed = embed_all(m, &calib, 8).map(drop)).unwrap();
    fed.unwrap();
    let ptq = compute_amax(quant, HistogramMethod::percentile(99.99)).unwrap();
    let amax = |name: &str| {
        let q = &ptq.layers[0].attention;
        let t = match name {
            "q" => &q.matmul_q_input_quantizer,
            _ => &q.matmul_a_input_quantizer,
        };
        t.amax().unwrap()
    };
    // Probabilities lie in [0, 1]; the calibrated range must too.
    let a = amax("a")[0];
    assert!(a > 0.0 && a <= 1.0, "matmul_a amax {a}");
    assert!(amax("q")[0] > 0.0);

    let fp_test = embed_all(&fp32, &test, 8).unwrap();
    let ptq_test = embed_all(&ptq, &test, 8).unwrap();
    let cos = row_cosines(&ptq_test, &fp_test, DIM);
    assert!(cos.iter().all(|&c| c > 0.99 && c < 1.0), "{cos:?}");

    // QAT: a few steps on one batch, the loss goes down.
    let teacher = embed_all(&fp32, &train, 8).unwrap();
    let ad = device.clone().autodiff();
    let (qat, _, losses) = distill(ptq.fork(&ad).train(), &teacher, &train, 6, 8, 1e-5).unwrap();
    assert_eq!(losses.len(), 6);
    assert!(losses[5] < losses[0], "{losses:?}");
    let qat = qat.fork(&device);

    // Export the encoder and check the file with ONNX Runtime.
    let dir = std::env::temp_dir().join(format!("qdq-bert-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bert.onnx");
    let x = qat.embed(test.rows(0, 4, &device).0).unwrap();
    let options = ExportOptions {
        dynamic_batch: true,
        ..Default::default()
    };
    let proto = export_to_file(&qat, Bert::forward_embedded, x.clone(), &options, &path).unwrap();
    let graph = proto.graph.as_ref().unwrap();
    // Both attention matmuls of each layer read two DequantizeLinear outputs.
    let dq: std::collections::HashSet<&str> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear")
        .map(|n| n.output[0].as_str())
        .collect();
    let attention_matmuls = graph
        .node
        .iter()
        .filter(|n| n.op_type == "MatMul" && n.input.iter().all(|i| dq.contains(i.as_str())))
        .count();
    assert!(
        attention_matmuls >= 4,
        "{attention_matmuls} MatMuls on two DQ inputs"
    );

    let ours = qat
        .forward_embedded(x.clone())
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let input = x.clone().into_data().try_into_vec::<f32>().unwrap();
    let theirs = ort::run(&ort::default_python(), &path, &input, &x.dims()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(ours.len(), 4 * DIM);
    assert_eq!(theirs.len(), ours.len());
    let diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-4,
        "ONNX Runtime differs from qdq's forward by {diff}"
    );
}
