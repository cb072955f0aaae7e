//! The seed's ResNet chapter on Fashion-MNIST: train FP32, PTQ with every calibrator,
//! QAT (fixed and learned amax), export to QDQ ONNX scored by ONNX Runtime, and the
//! 4-bit-weight setting. Prints the results table (Markdown) and writes
//! `OUT/results.json`, `OUT/fp32.safetensors` (torchvision names) and
//! `OUT/resnet_qat.onnx`.
//!
//! ```text
//! cargo run --release -p qdq-vision --example resnet_chapter -- \
//!     [--data /usr/share/datasets/fashion-mnist] [--out target/resnet-chapter] \
//!     [--epochs 6] [--width 16] [--layers 1,1,1,1] [--lr 0.1] [--batch 128] [--augment] \
//!     [--train-images N] [--test-images N] [--low-bits W,A]... [--no-low-bits] \
//!     [--qat-fraction 0.1] [--low-bits-qat-fraction 0.3] \
//!     [--python .venv/bin/python] [--retrain] [--fp32-only] [--device cpu|cuda[:N]]
//! ```
//!
//! A second run reuses `OUT/fp32.safetensors` unless `--retrain` is given. Every run
//! also writes the FP32 model as `OUT/fp32.onnx`; `--fp32-only` stops there (the file
//! `qdq quantize` and `bench/corpus/bench.py`'s `chapter-resnet` start from). The harder
//! settings default to `--low-bits 4,8 --low-bits 4,4` (weight, activation bits).

use std::path::PathBuf;

use qdq_vision::chapter::{ChapterConfig, markdown, run, run_fp32};
use qdq_vision::data::DEFAULT_DIR;
use qdq_vision::ort::default_python;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut data = PathBuf::from(DEFAULT_DIR);
    let mut cfg = ChapterConfig::full(PathBuf::from("target/resnet-chapter"), default_python());
    let mut args = std::env::args().skip(1);
    let mut low_bits_given = false;
    let mut fp32_only = false;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => data = value()?.into(),
            "--out" => cfg.out_dir = value()?.into(),
            "--python" => cfg.python = value()?.into(),
            "--device" => cfg.device = qdq::device(&value()?)?,
            "--epochs" => cfg.train.epochs = value()?.parse()?,
            "--width" => cfg.model.width = value()?.parse()?,
            "--layers" => {
                let v: Vec<usize> = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
                cfg.model.layers = v.try_into().map_err(|_| "--layers takes four numbers")?;
            }
            "--lr" => cfg.train.lr = value()?.parse()?,
            "--qat-fraction" => cfg.qat_fraction = value()?.parse()?,
            "--low-bits-qat-fraction" => cfg.low_bits_qat_fraction = value()?.parse()?,
            "--batch" => cfg.train.batch_size = value()?.parse()?,
            "--train-images" => cfg.train_images = Some(value()?.parse()?),
            "--test-images" => cfg.test_images = Some(value()?.parse()?),
            "--no-low-bits" => cfg.low_bits.clear(),
            "--low-bits" => {
                let v: Vec<u32> = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
                let bits: [u32; 2] = v.try_into().map_err(|_| "--low-bits takes W,A")?;
                if !low_bits_given {
                    cfg.low_bits.clear();
                    low_bits_given = true;
                }
                cfg.low_bits.push(bits);
            }
            "--augment" => cfg.train.augment = true,
            "--retrain" => cfg.reuse_checkpoint = false,
            "--fp32-only" => fp32_only = true,
            other => {
                return Err(format!(
                    "unknown flag {other}; see the doc comment of examples/resnet_chapter.rs"
                )
                .into());
            }
        }
    }
    if fp32_only {
        let rows = run_fp32(&cfg, &data)?;
        println!("\n{}", markdown(&rows));
        return Ok(());
    }
    let report = run(&cfg, &data)?;
    println!("\n{}", report.markdown());
    println!(
        "QAT started from PTQ {}; quantizers:\n{}",
        report.best_ptq, report.quantizers
    );
    println!(
        "exported {}: qdq {:.2}%, ONNX Runtime {:.2}%",
        report.onnx.display(),
        100.0 * report.qat_accuracy,
        100.0 * report.ort_accuracy
    );
    Ok(())
}
