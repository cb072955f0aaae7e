//! The ResNet chapter, reduced: a tiny ResNet trained on 1024 Fashion-MNIST images,
//! every stage run and checked (the full run is `examples/resnet_chapter.rs`).
//!
//! Needs Debian's `dataset-fashion-mnist` (installed by `.ci/run`) and the `.venv`
//! with ONNX Runtime.

use std::path::Path;

use burn::prelude::*;
use qdq_vision::chapter::{ChapterConfig, ptq_methods, run, run_fp32};
use qdq_vision::data::DEFAULT_DIR;
use qdq_vision::ort::default_python;
use qdq_vision::train::TrainConfig;
use qdq_vision::{BlockKind, ResNetConfig};

#[test]
fn every_stage_of_the_chapter_on_a_tiny_resnet() {
    let out = std::env::temp_dir().join(format!("qdq-chapter-{}", std::process::id()));
    let cfg = ChapterConfig {
        model: ResNetConfig::new(BlockKind::Basic, [1, 1, 1, 1])
            .with_num_classes(10)
            .with_in_channels(1)
            .with_small_input(true)
            .with_width(8),
        train: TrainConfig::new(3.0, 0.05)
            .with_batch_size(32)
            .with_augment(false),
        train_images: Some(1024),
        test_images: Some(500),
        calib_images: 256,
        qat_fraction: 0.5,
        low_bits_qat_fraction: 0.5,
        qat_lr_factor: 0.1,
        low_bits: vec![[4, 8]],
        out_dir: out.clone(),
        reuse_checkpoint: false,
        python: default_python(),
        // `QDQ_TEST_DEVICE=cuda` runs the same stages on a GPU (a `--features gpu` build).
        device: qdq::device(&std::env::var("QDQ_TEST_DEVICE").unwrap_or_else(|_| "cpu".into()))
            .unwrap(),
    };
    let report = run(&cfg, Path::new(DEFAULT_DIR)).unwrap();
    println!("{}", report.markdown());
    let acc = |step: &str| {
        report
            .accuracy(step)
            .unwrap_or_else(|| panic!("no row {step}"))
    };

    // FP32 well above chance (10%) after three short epochs on 1024 images.
    let fp32 = acc("FP32");
    assert!(fp32 > 0.5, "FP32 {fp32}");
    // Every method from the one collection, each close to FP32 at 8 bits.
    let ptq: Vec<f64> = ptq_methods()
        .iter()
        .map(|(name, _)| acc(&format!("PTQ {name}")))
        .collect();
    let best = ptq.iter().copied().fold(0.0, f64::max);
    // The best within 2 points of FP32; each method well above chance (entropy can
    // clip a tiny, briefly trained network's activations hard: 9 points here).
    assert!(best > fp32 - 0.02, "best PTQ {best} vs FP32 {fp32}");
    for (a, (name, _)) in ptq.iter().zip(ptq_methods()) {
        assert!(*a > 0.5, "PTQ {name} {a} vs FP32 {fp32}");
    }
    assert_eq!(
        Some(best),
        report.accuracy(&format!("PTQ {}", report.best_ptq))
    );
    // QAT does not lose what PTQ had (noise: 2 points on 500 images).
    assert!(
        acc("QAT") >= best - 0.02,
        "QAT {} vs PTQ {best}",
        acc("QAT")
    );
    assert!(acc("QAT learned amax") >= best - 0.02);
    // ONNX Runtime on the exported file agrees with qdq's fake quant (at most one
    // image of 500 may flip on a near tie).
    assert!(
        (report.ort_accuracy - report.qat_accuracy).abs() <= 1.0 / 500.0,
        "ORT {} vs qdq {}",
        report.ort_accuracy,
        report.qat_accuracy
    );
    assert_eq!(report.qat_accuracy, acc("QAT"));
    // The harder setting ran: 4-bit weights, QAT from its best PTQ.
    let low = ptq_methods()
        .iter()
        .map(|(name, _)| acc(&format!("PTQ w4a8 {name}")))
        .fold(0.0, f64::max);
    assert!(
        low > 0.3 && acc("QAT w4a8") >= low - 0.02,
        "w4a8 PTQ {low} QAT {}",
        acc("QAT w4a8")
    );
    // The table names each quantizer (the seed's print-out) and the files exist.
    assert!(report.quantizers.contains("layer2.0.residual_quantizer"));
    assert!(report.quantizers.contains("fc._weight_quantizer"));
    for file in [
        "fp32.safetensors",
        "fp32.onnx",
        "resnet_qat.onnx",
        "results.json",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    // The checkpoint reloads (torchvision names) to the same FP32 model.
    let device = Device::flex();
    let reloaded = cfg
        .model
        .init(&device)
        .unwrap()
        .load_torchvision(&out.join("fp32.safetensors"))
        .unwrap();
    let data = qdq_vision::data::FashionMnist::load(Path::new(DEFAULT_DIR)).unwrap();
    let test = data.test.first(500);
    let (again, _) = qdq_vision::train::evaluate(&reloaded, &test, "reload").unwrap();
    assert_eq!(again, fp32);
    // The FP32 model written as ONNX (what `qdq quantize` starts from): ONNX Runtime
    // scores it as burn does (one image of 500 may flip on a near tie).
    let ort_fp32 = qdq_vision::ort::accuracy(&cfg.python, &out.join("fp32.onnx"), &test).unwrap();
    assert!(
        (ort_fp32 - fp32).abs() <= 1.0 / 500.0,
        "ORT {ort_fp32} vs burn {fp32}"
    );
    // The first step alone (the example's `--fp32-only`) reuses the checkpoint.
    let cfg = ChapterConfig {
        reuse_checkpoint: true,
        ..cfg
    };
    let rows = run_fp32(&cfg, Path::new(DEFAULT_DIR)).unwrap();
    let steps: Vec<&str> = rows.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(steps, ["FP32 (checkpoint)", "FP32", "export FP32 ONNX"]);
    assert_eq!(rows[1].accuracy, Some(fp32));
    std::fs::remove_dir_all(&out).unwrap();
}
