//! The seed's flow on a pretrained BERT sentence encoder (paraphrase-MiniLM-L3-v2):
//! FP32 checked against ONNX Runtime, calibration (histogram activations, per-row max
//! weights), the quantizer table, PTQ with each method, QAT by distillation to the FP32
//! embeddings, export to QDQ ONNX, ONNX Runtime against qdq's forward, and what the
//! difference is made of (`bench/bert/qdq_vs_onnx.py`: the file with the reference's
//! Q/DQ arithmetic, the float ops alone, codes that the two rounding formulas disagree
//! on, and how far one ulp of input moves each side).
//!
//! ```text
//! .venv/bin/python bench/bert/prepare.py target/bert
//! cargo run --example bert -- target/bert
//! ```
//!
//! Metrics on 160 held-out sentences and their 160 queries (every third word dropped):
//! cosine to the FP32 embeddings (mean and minimum over the 320), and retrieval top-1 (the
//! share of queries whose nearest sentence by cosine is their own).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use qdq::calib::HistogramMethod;
use qdq::nn::{collect_stats, compute_amax, quantizer_summary};
use qdq_onnx::export::{ExportOptions, export_to_file};
use qdq_vision::bert::{Bert, BertConfig};
use qdq_vision::bert_flow::{Sentences, distill, embed_all, retrieval_top1, row_cosines};
use qdq_vision::{QuantScheme, ort};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const DIM: usize = 384;
const BATCH: usize = 32;

fn main() -> Res<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/bert".into()),
    );
    let python = ort::default_python();
    let device = Device::flex();
    let data = Data::load(&dir.join("sentences.safetensors"))?;
    let weights = dir.join("minilm-l3.safetensors");

    // FP32 against ONNX Runtime on the original file.
    let fp32 = BertConfig::minilm_l3().init(&device)?.load_hf(&weights)?;
    let t = Instant::now();
    let fp32_test = embed_all(&fp32, &data.test, BATCH)?;
    let fp32_query = embed_all(&fp32, &data.query, BATCH)?;
    let cos: Vec<f64> = [
        row_cosines(&fp32_test, &data.test_ort, DIM),
        row_cosines(&fp32_query, &data.query_ort, DIM),
    ]
    .concat();
    let max_abs = fp32_test
        .iter()
        .chain(&fp32_query)
        .zip(data.test_ort.iter().chain(&data.query_ort))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "FP32 vs ONNX Runtime (original model): min cosine {:.7}, max |diff| {max_abs:.2e} ({:.1} s)",
        min(&cos),
        t.elapsed().as_secs_f64()
    );
    let mut rows = vec![Row::new(
        "ONNX Runtime FP32 (original)",
        &data.test_ort,
        &data.query_ort,
        &data,
    )];
    rows.push(Row::new("FP32 (qdq)", &fp32_test, &fp32_query, &data));
    rows.last().unwrap().print();

    // PTQ: calibrate once, every method from the one collection.
    let quant = BertConfig::minilm_l3()
        .with_quantize(Some(QuantScheme::seed()))
        .init(&device)?
        .load_hf(&weights)?;
    let t = Instant::now();
    let mut fed = Ok(());
    collect_stats(&quant, |m| fed = embed_all(m, &data.calib, BATCH).map(drop))?;
    fed?;
    println!(
        "calibration: {} sentences, {:.1} s",
        data.calib.n,
        t.elapsed().as_secs_f64()
    );
    let methods = [
        HistogramMethod::Max,
        HistogramMethod::entropy(),
        HistogramMethod::mse(),
        HistogramMethod::percentile(99.99),
        HistogramMethod::percentile(99.999),
    ];
    let mut best: Option<(f64, String, Bert)> = None;
    for method in methods {
        let m = compute_amax(quant.clone(), method)?;
        let (test, query) = (
            embed_all(&m, &data.test, BATCH)?,
            embed_all(&m, &data.query, BATCH)?,
        );
        let row = Row::with_fp32(
            &format!("PTQ {method}"),
            &test,
            &query,
            &fp32_test,
            &fp32_query,
        );
        row.print();
        if best.as_ref().is_none_or(|b| row.cos_mean > b.0) {
            best = Some((row.cos_mean, method.to_string(), m));
        }
        rows.push(row);
    }
    let (_, best_name, best) = best.expect("methods");
    println!(
        "\nquantizers of PTQ {best_name}:\n{}",
        quantizer_summary(&best)
    );

    // QAT from the best PTQ model: distillation to the FP32 embeddings.
    let teacher = embed_all(&fp32, &data.train, BATCH)?;
    let ad = device.clone().autodiff();
    let student = best.clone().fork(&ad).train();
    let (qat, timing, losses) = distill(student, &teacher, &data.train, 2, 16, 1e-5)?;
    println!(
        "QAT: {} steps, loss {:.5} -> {:.5}, {:.1} s",
        losses.len(),
        losses.first().unwrap_or(&f64::NAN),
        losses.last().unwrap_or(&f64::NAN),
        timing.seconds
    );
    let qat = qat.fork(&device);
    let (test, query) = (
        embed_all(&qat, &data.test, BATCH)?,
        embed_all(&qat, &data.query, BATCH)?,
    );
    let row = Row::with_fp32(
        &format!("QAT (from PTQ {best_name})"),
        &test,
        &query,
        &fp32_test,
        &fp32_query,
    );
    row.print();
    rows.push(row);

    // Export the QAT encoder (embeddings → pooled) and check it with ONNX Runtime.
    let onnx = dir.join("minilm_l3_qat.onnx");
    let (ids, _) = data.test.rows(0, 8, &device);
    let x = qat.embed(ids)?;
    let options = ExportOptions {
        dynamic_batch: true,
        ..Default::default()
    };
    let proto = export_to_file(&qat, Bert::forward_embedded, x.clone(), &options, &onnx)?;
    let ours = qat
        .forward_embedded(x.clone())
        .into_data()
        .try_into_vec::<f32>()?;
    let dims = x.dims().to_vec();
    let x_nudged = x.clone() * (1.0 + f32::EPSILON);
    let x_float = x.clone();
    let xs = x.into_data().try_into_vec::<f32>()?;
    let theirs = ort::run(&python, &onnx, &xs, &dims)?;
    let diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let cos = row_cosines(&ours, &theirs, DIM);
    println!(
        "exported {} ({} nodes): ONNX Runtime vs qdq forward on 8 sentences: max |diff| {diff:.2e}, min cosine {:.7}",
        onnx.display(),
        proto.graph.as_ref().map_or(0, |g| g.node.len()),
        min(&cos)
    );
    // How far one ulp of input moves qdq's own quantized forward.
    let nudged = qat
        .forward_embedded(x_nudged)
        .into_data()
        .try_into_vec::<f32>()?;
    let moved = ours
        .iter()
        .zip(&nudged)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("qdq on x vs on x * (1 + 2^-23): max |diff| {moved:.2e}");
    // The float ops alone: every quantizer off in qdq, every Q/DQ pair bypassed in the file.
    for q in qdq::nn::named_quantizers(&qat) {
        q.handle.disable();
    }
    let float = qat
        .forward_embedded(x_float)
        .into_data()
        .try_into_vec::<f32>()?;
    let float_file = dir.join("export_qdq_float.bin");
    std::fs::write(
        &float_file,
        float
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect::<Vec<u8>>(),
    )?;
    explain_difference(&python, &dir, &qat, &xs, &ours)?;

    println!(
        "\n| model | cosine to FP32 (mean) | cosine to FP32 (min) | retrieval top-1 (%) |\n|---|---:|---:|---:|"
    );
    for r in &rows {
        println!(
            "| {} | {:.5} | {:.5} | {:.1} |",
            r.name,
            r.cos_mean,
            r.cos_min,
            100.0 * r.top1
        );
    }
    Ok(())
}

/// Runs `bench/bert/qdq_vs_onnx.py` on the export: where ONNX Runtime's output differs
/// from qdq's, and whether the Q/DQ arithmetic accounts for it (see the script).
fn explain_difference(python: &Path, dir: &Path, qat: &Bert, x: &[f32], ours: &[f32]) -> Res<()> {
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let (amax, xb, ob) = (
        dir.join("minilm_l3_qat.safetensors"),
        dir.join("export_x.bin"),
        dir.join("export_qdq.bin"),
    );
    qdq::nn::save_safetensors(qat, &amax)?;
    std::fs::write(&xb, bytes(x))?;
    std::fs::write(&ob, bytes(ours))?;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/bert/qdq_vs_onnx.py"
    );
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(dir.join("minilm_l3_qat.onnx"))
        .args([&amax, &xb, &ob])
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(format!("{script}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

struct Row {
    name: String,
    cos_mean: f64,
    cos_min: f64,
    top1: f64,
}

impl Row {
    /// A row whose cosine is to ONNX Runtime's FP32 (the reference itself).
    fn new(name: &str, test: &[f32], query: &[f32], data: &Data) -> Self {
        Self::with_fp32(name, test, query, &data.test_ort, &data.query_ort)
    }

    fn with_fp32(
        name: &str,
        test: &[f32],
        query: &[f32],
        fp_test: &[f32],
        fp_query: &[f32],
    ) -> Self {
        let cos = [
            row_cosines(test, fp_test, DIM),
            row_cosines(query, fp_query, DIM),
        ]
        .concat();
        Self {
            name: name.into(),
            cos_mean: cos.iter().sum::<f64>() / cos.len() as f64,
            cos_min: min(&cos),
            top1: retrieval_top1(query, test, DIM),
        }
    }

    fn print(&self) {
        println!(
            "{:<32} cosine mean {:.5} min {:.5}  retrieval top-1 {:.1}%",
            self.name,
            self.cos_mean,
            self.cos_min,
            100.0 * self.top1
        );
    }
}

/// `sentences.safetensors` of `bench/bert/prepare.py`.
struct Data {
    calib: Sentences,
    train: Sentences,
    test: Sentences,
    query: Sentences,
    test_ort: Vec<f32>,
    query_ort: Vec<f32>,
}

impl Data {
    fn load(path: &Path) -> Res<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("{}: {e} (run bench/bert/prepare.py first)", path.display()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)?;
        let ints = |name: &str| -> Res<(Vec<i64>, Vec<usize>)> {
            let t = st.tensor(name)?;
            let v = t
                .data()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            Ok((v, t.shape().to_vec()))
        };
        let floats = |name: &str| -> Res<Vec<f32>> {
            let t = st.tensor(name)?;
            Ok(t.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect())
        };
        let sentences = |split: &str| -> Res<Sentences> {
            let (ids, shape) = ints(&format!("{split}_ids"))?;
            let (mask, _) = ints(&format!("{split}_mask"))?;
            Ok(Sentences {
                ids,
                mask,
                n: shape[0],
                len: shape[1],
            })
        };
        Ok(Self {
            calib: sentences("calib")?,
            train: sentences("train")?,
            test: sentences("test")?,
            query: sentences("query")?,
            test_ort: floats("test_ort")?,
            query_ort: floats("query_ort")?,
        })
    }
}
