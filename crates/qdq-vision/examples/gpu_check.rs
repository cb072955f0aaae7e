//! Every GPU measurement of qdq in one run (`scripts/gpu-check.sh` builds and runs it):
//!
//! 1. parity: fake quant, real quant, the straight-through gradient, histogram and
//!    max calibration on CUDA against the CPU path, bit for bit;
//! 2. why burn's op chain on CUDA differs from the CPU in a few elements;
//! 3. speed: fake quant of 256 M values, its backward, histogram collection of a 51 M
//!    value activation;
//! 4. the seed's ResNet-50 calibration (1024 images in 2 batches of 512): data pass,
//!    then amax by every method;
//! 5. with `--chapter DIR` (Fashion-MNIST IDX files), the test suite's reduced ResNet
//!    chapter on the GPU: train, PTQ, QAT, learned amax, export, ONNX Runtime;
//! 6. with `--full-chapter DIR` (all of Fashion-MNIST), the README's full-size chapter.
//!
//! Prints one `RESULT {json}` line per measurement, and a summary. Exits non-zero if
//! any parity check fails.
//!
//! ```text
//! cargo run --release -p qdq-vision --features gpu --example gpu_check -- [--quick] \
//!     [--skip-checks] [--chapter DIR] [--full-chapter DIR [--low-bits-qat-fraction F]]
//! ```

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use qdq::calib::{HistogramCalibrator, HistogramMethod, MaxCalibrator};
use qdq::nn::{collect_stats, compute_amax, named_quantizers};
use qdq::tensor_quant::{IntRange, fake_tensor_quant, ops, tensor_quant};
use qdq_vision::resnet::{QuantScheme, ResNetConfig};

fn result(what: &str, fields: serde_json::Value) {
    let mut v = fields;
    v["what"] = what.into();
    println!("RESULT {v}");
}

/// Deterministic values with every awkward case: half-way points of the 8-bit grid
/// (amax 2: k/63.5 + 1/127), zeros of both signs, values beyond amax, tiny values.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n)
        .map(|i| {
            let r = next();
            let u = (r >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            match i % 8 {
                0 => ((r % 255) as f32 - 127.0) / 63.5 + 1.0 / 127.0,
                1 => {
                    if r % 2 == 0 {
                        0.0
                    } else {
                        -0.0
                    }
                }
                2 => (u - 0.5) * 8.0,
                3 => (u - 0.5) * 1e-6,
                _ => (u - 0.5) * 4.0,
            }
        })
        .collect()
}

/// The histogram methods every check runs, in report order.
fn methods() -> [HistogramMethod; 5] {
    [
        HistogramMethod::Max,
        HistogramMethod::entropy(),
        HistogramMethod::mse(),
        HistogramMethod::percentile(99.9),
        HistogramMethod::percentile(99.99),
    ]
}

fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32 data")
}

/// Elements whose bits differ (two NaNs count as equal: CUDA's NaN has one payload).
fn mismatches(a: &[f32], b: &[f32]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()))
        .count()
}

struct Parity {
    failed: usize,
}

impl Parity {
    fn check(&mut self, what: &str, gpu: &[f32], cpu: &[f32]) {
        let bad = mismatches(gpu, cpu);
        if bad > 0 {
            self.failed += 1;
        }
        println!("parity {what:<48} {} values, {bad} differ", cpu.len());
        result(
            "parity",
            serde_json::json!({"case": what, "values": cpu.len(), "differ": bad}),
        );
    }
}

fn parity(gpu: &Device, cpu: &Device, p: &mut Parity) -> qdq::Result<()> {
    let n = 1 << 20;
    let data = values(n, 1);
    let on =
        |d: &Device, v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), d);
    let amax = |d: &Device, a: f32| Tensor::<1>::from_data([a], d);

    // Integer formats, per tensor.
    for (bits, unsigned, narrow, a) in [
        (8, false, true, 2.0f32),
        (8, false, false, 2.0),
        (4, false, true, 1.5),
        (16, false, true, 3.0),
        (8, false, true, 1e-30),
        (7, false, true, 0.37),
    ] {
        let g = fake_tensor_quant(on(gpu, &data), amax(gpu, a), bits, unsigned, narrow)?;
        let c = fake_tensor_quant(on(cpu, &data), amax(cpu, a), bits, unsigned, narrow)?;
        p.check(
            &format!("fake_tensor_quant {bits}-bit narrow={narrow} amax={a:e}"),
            &host(g),
            &host(c),
        );
    }
    // Unsigned on non-negative data, and its error on negative data.
    let relu: Vec<f32> = data.iter().map(|v| v.max(0.0)).collect();
    let g = fake_tensor_quant(on(gpu, &relu), amax(gpu, 2.0), 8, true, false)?;
    let c = fake_tensor_quant(on(cpu, &relu), amax(cpu, 2.0), 8, true, false)?;
    p.check("fake_tensor_quant unsigned 8-bit", &host(g), &host(c));
    let err = fake_tensor_quant(on(gpu, &data), amax(gpu, 2.0), 8, true, false).unwrap_err();
    let expected = fake_tensor_quant(on(cpu, &data), amax(cpu, 2.0), 8, true, false).unwrap_err();
    let same = err == expected;
    if !same {
        p.failed += 1;
    }
    println!("parity unsigned error: gpu `{err}` cpu `{expected}` same={same}");
    // Real quantization: codes and scale.
    let (gq, gs) = tensor_quant(on(gpu, &data), amax(gpu, 2.0), 8, false, true)?;
    let (cq, cs) = tensor_quant(on(cpu, &data), amax(cpu, 2.0), 8, false, true)?;
    p.check("tensor_quant codes", &host(gq), &host(cq));
    p.check("tensor_quant scale", &host(gs), &host(cs));

    // Per channel: weights [64, 3, 3, 3], amax [64, 1, 1, 1].
    let w = &data[..64 * 27];
    let wa: Vec<f32> = (0..64).map(|c| 0.25 + c as f32 * 0.0625).collect();
    let per_channel = |d: &Device| {
        let x = Tensor::<4>::from_data(TensorData::new(w.to_vec(), [64, 3, 3, 3]), d);
        let a = Tensor::<4>::from_data(TensorData::new(wa.clone(), [64, 1, 1, 1]), d);
        fake_tensor_quant(x, a, 8, false, true).map(|t| t.flatten::<1>(0, 3))
    };
    p.check(
        "fake_tensor_quant per channel [64,3,3,3]",
        &host(per_channel(gpu)?),
        &host(per_channel(cpu)?),
    );

    // The straight-through gradient through autodiff, per tensor and per channel.
    let weights = values(n, 2);
    let grad = |d: &Device, per_channel: bool| -> qdq::Result<Vec<f32>> {
        let d = d.clone().autodiff();
        let (x, a) = if per_channel {
            let x = Tensor::<2>::from_data(TensorData::new(data.clone(), [1024, 1024]), &d);
            let a: Vec<f32> = (0..1024).map(|c| 0.5 + (c % 7) as f32 * 0.25).collect();
            (x, Tensor::<2>::from_data(TensorData::new(a, [1024, 1]), &d))
        } else {
            let x = Tensor::<2>::from_data(TensorData::new(data.clone(), [1024, 1024]), &d);
            (x, Tensor::<2>::from_data([[1.5f32]], &d))
        };
        let x = x.require_grad();
        let w = Tensor::<2>::from_data(TensorData::new(weights.clone(), [1024, 1024]), &d);
        let y = fake_tensor_quant(x.clone(), a, 8, false, true)?;
        let grads = (y * w).sum().backward();
        Ok(host(
            x.grad(&grads).expect("x is tracked").flatten::<1>(0, 1),
        ))
    };
    p.check(
        "STE gradient per tensor",
        &grad(gpu, false)?,
        &grad(cpu, false)?,
    );
    p.check(
        "STE gradient per channel",
        &grad(gpu, true)?,
        &grad(cpu, true)?,
    );

    // Histogram calibration: two batches (the second grows the grid), then every method.
    let second: Vec<f32> = values(n, 3).iter().map(|v| v * 1.7).collect();
    let mut hg = HistogramCalibrator::new(8, None, false)?;
    let mut hc = HistogramCalibrator::new(8, None, false)?;
    for batch in [&data, &second] {
        hg.collect(&on(gpu, batch))?;
        hc.collect(&on(cpu, batch))?;
    }
    let counts_equal = hg.counts() == hc.counts() && hg.edges() == hc.edges();
    if !counts_equal {
        p.failed += 1;
    }
    println!(
        "parity histogram counts ({} bins) equal={counts_equal}",
        hc.counts().len()
    );
    result(
        "parity",
        serde_json::json!({"case": "histogram counts", "values": hc.counts().len(), "differ": usize::from(!counts_equal)}),
    );
    for method in methods() {
        let g = hg.compute_amax(method)?.values().to_vec();
        let c = hc.compute_amax(method)?.values().to_vec();
        p.check(&format!("histogram amax {method}"), &g, &c);
    }
    let mut mg = MaxCalibrator::new(8, None, false);
    let mut mc = MaxCalibrator::new(8, None, false);
    mg.collect(&on(gpu, &second))?;
    mc.collect(&on(cpu, &second))?;
    p.check(
        "max calibrator",
        mg.compute_amax().expect("collected").values(),
        mc.compute_amax().expect("collected").values(),
    );
    Ok(())
}

/// Where burn's own op chain on CUDA departs from the reference arithmetic (qdq's CPU
/// kernel): the probe's four ops with a scalar divisor (`div_scalar`), the same with
/// the reference's codes multiplied by `1/s` instead, qdq's chain (tensor divisor),
/// and burn-flex's chain on the CPU.
fn chain_on_cuda(gpu: &Device, cpu: &Device) -> qdq::Result<()> {
    let n = 1 << 22;
    let data = values(n, 4);
    let s = 127.0f32 / 2.0;
    let on = |d: &Device| Tensor::<1>::from_data(TensorData::new(data.clone(), [n]), d);
    let probe = |d: &Device| {
        host(
            on(d)
                .mul_scalar(s)
                .round()
                .clamp(-127.0, 127.0)
                .div_scalar(s),
        )
    };
    let qdq_chain = |d: &Device| {
        let a = Tensor::<1>::from_data([2.0f32], d).expand([n]);
        let range = IntRange::new(8, false, true).expect("valid");
        host(ops::fake_quant_chain(on(d), a, range))
    };
    let amax = Tensor::<1>::from_data([2.0f32], cpu);
    let reference = host(fake_tensor_quant(on(cpu), amax.clone(), 8, false, true)?);
    let codes = host(tensor_quant(on(cpu), amax, 8, false, true)?.0);
    let reciprocal: Vec<f32> = codes.iter().map(|q| q * (1.0 / s)).collect();
    let g = probe(gpu);
    let differ = mismatches(&g, &reference);
    for (i, (a, b)) in g
        .iter()
        .zip(&reference)
        .enumerate()
        .filter(|(_, (a, b))| a.to_bits() != b.to_bits())
        .take(3)
    {
        println!(
            "  e.g. x = {:e}: code {}, CUDA chain {a:e}, reference {b:e}, code * (1/s) {:e}",
            data[i], codes[i], reciprocal[i]
        );
    }
    let as_reciprocal = mismatches(&g, &reciprocal);
    let qdq_gpu = mismatches(&qdq_chain(gpu), &reference);
    let flex = qdq_chain(cpu);
    let flex_differ = mismatches(&flex, &reference);
    let flex_signed_zero = flex
        .iter()
        .zip(&reference)
        .filter(|(a, b)| a.to_bits() != b.to_bits() && **a == 0.0 && **b == 0.0)
        .count();
    println!(
        "burn's chain x*s, round, clamp, /s on the device vs the reference: {differ} of {n} differ; vs the reference's codes * (1/s): {as_reciprocal} differ; qdq's chain (tensor divisor) on the device: {qdq_gpu} differ; burn-flex's chain on the CPU: {flex_differ} differ ({flex_signed_zero} of them +0 for -0)"
    );
    result(
        "chain_on_device",
        serde_json::json!({"values": n, "div_scalar": differ, "div_scalar_vs_reciprocal": as_reciprocal, "tensor_divisor": qdq_gpu, "flex_chain": flex_differ, "flex_chain_signed_zero": flex_signed_zero}),
    );
    Ok(())
}

/// Mean milliseconds of `f` over `reps` runs after two warm-ups.
fn time_ms(device: &Device, reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..2 {
        f();
    }
    device.sync().expect("sync");
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    device.sync().expect("sync");
    start.elapsed().as_secs_f64() * 1e3 / reps as f64
}

fn speed(gpu: &Device) -> qdq::Result<()> {
    let n = 256 << 20;
    let x = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), gpu);
    let amax = Tensor::<1>::from_data([3.0f32], gpu);
    let range = IntRange::new(8, false, true)?;
    let bytes = 2.0 * 4.0 * n as f64;
    let fq = time_ms(gpu, 20, || {
        let _ = fake_tensor_quant(x.clone(), amax.clone(), 8, false, true).expect("fake quant");
    });
    let chain = time_ms(gpu, 10, || {
        let _ = ops::fake_quant_chain(x.clone(), amax.clone().expand([n]), range);
    });
    println!(
        "fake quant 256 M values: qdq fused {fq:.3} ms ({:.2} TB/s), burn op chain {chain:.3} ms",
        bytes / fq / 1e9
    );
    result(
        "fake_quant_256M",
        serde_json::json!({"values": n, "fused_ms": fq, "fused_tb_s": bytes / fq / 1e9, "op_chain_ms": chain}),
    );

    // Forward + backward of a QAT fake quant (y.sum() then backward), fused vs op chain.
    let ad = gpu.clone().autodiff();
    let xa = Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &ad).require_grad();
    let aa = Tensor::<1>::from_data([3.0f32], &ad);
    let fused_step = time_ms(gpu, 10, || {
        let y = fake_tensor_quant(xa.clone(), aa.clone(), 8, false, true).expect("fake quant");
        let _ = y.sum().backward();
    });
    let chain_step = time_ms(gpu, 5, || {
        let fwd = ops::fake_quant_chain(xa.clone().detach(), aa.clone().expand([n]), range);
        let y = ops::ste(xa.clone(), aa.clone().expand([n]), fwd);
        let _ = y.sum().backward();
    });
    println!(
        "QAT fake quant forward+backward 256 M: fused {fused_step:.3} ms, op chain {chain_step:.3} ms"
    );
    result(
        "qat_step_256M",
        serde_json::json!({"values": n, "fused_ms": fused_step, "op_chain_ms": chain_step}),
    );
    drop((x, xa));

    // Histogram collection of a 51 M-value activation (ReLU output: half zeros).
    let m = 51 << 20;
    let act = Tensor::<1>::random([m], Distribution::Normal(0.0, 1.0), gpu).clamp_min(0.0);
    let mut calib = HistogramCalibrator::new(8, None, false)?;
    let hist = time_ms(gpu, 20, || calib.collect(&act).expect("collect"));
    println!(
        "histogram collection 51 M values: {hist:.3} ms ({:.1} G values/s)",
        m as f64 / hist / 1e6
    );
    result(
        "histogram_51M",
        serde_json::json!({"values": m, "ms": hist}),
    );
    Ok(())
}

fn resnet50_calibration(gpu: &Device, quick: bool) -> qdq::Result<()> {
    let (batches, batch) = if quick { (1, 32) } else { (2, 512) };
    let model = ResNetConfig::resnet50(1000)
        .with_quantize(Some(QuantScheme::seed()))
        .init(gpu)?;
    let histograms = named_quantizers(&model)
        .iter()
        .filter(|q| q.handle.calibrator_kind() == Some("HistogramCalibrator"))
        .count();
    let images: Vec<Tensor<4>> = (0..batches)
        .map(|_| Tensor::random([batch, 3, 224, 224], Distribution::Normal(0.0, 1.0), gpu))
        .collect();
    gpu.sync().expect("sync");
    let start = Instant::now();
    collect_stats(&model, |m| {
        for b in &images {
            let _ = m.forward(b.clone());
        }
    })?;
    gpu.sync().expect("sync");
    let data_pass = start.elapsed().as_secs_f64();
    println!(
        "ResNet-50 calibration: {} images, {histograms} histogram quantizers, data pass {data_pass:.3} s",
        batches * batch
    );
    let mut total = data_pass;
    let mut methods = serde_json::Map::new();
    for method in methods() {
        let start = Instant::now();
        let _ = compute_amax(model.clone(), method)?;
        let s = start.elapsed().as_secs_f64();
        total += s;
        println!("  amax {method:<16} {s:.3} s");
        methods.insert(method.to_string(), s.into());
    }
    println!("  total, every method: {total:.3} s");
    result(
        "resnet50_calibration",
        serde_json::json!({"images": batches * batch, "histogram_quantizers": histograms, "data_pass_s": data_pass, "amax_s": methods, "total_s": total}),
    );
    Ok(())
}

/// The full-size chapter (the README's command) on the GPU; `low_bits_qat` is the
/// QAT fraction of the 4-bit settings.
fn full_chapter(
    gpu: &Device,
    data: &std::path::Path,
    low_bits_qat: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    use qdq_vision::chapter::{ChapterConfig, run};
    let mut cfg = ChapterConfig::full(
        std::env::temp_dir().join("qdq-gpu-chapter-full"),
        std::env::var_os("QDQ_PYTHON").map_or_else(|| "python3".into(), Into::into),
    );
    cfg.device = gpu.clone();
    cfg.reuse_checkpoint = false;
    cfg.low_bits_qat_fraction = low_bits_qat;
    let report = run(&cfg, data)?;
    println!("{}", report.markdown());
    result("full_chapter", serde_json::to_value(&report.rows)?);
    Ok(())
}

/// The reduced chapter of `tests/chapter.rs`, on the GPU, with its assertions.
fn chapter(
    gpu: &Device,
    data: &std::path::Path,
    failed: &mut usize,
) -> Result<(), Box<dyn std::error::Error>> {
    use qdq_vision::chapter::{ChapterConfig, run};
    use qdq_vision::resnet::BlockKind;
    use qdq_vision::train::TrainConfig;
    let mut cfg = ChapterConfig::full(
        std::env::temp_dir().join("qdq-gpu-chapter"),
        std::env::var_os("QDQ_PYTHON").map_or_else(|| "python3".into(), Into::into),
    );
    cfg.model = ResNetConfig::new(BlockKind::Basic, [1, 1, 1, 1])
        .with_num_classes(10)
        .with_in_channels(1)
        .with_small_input(true)
        .with_width(8);
    cfg.train = TrainConfig::new(3.0, 0.05)
        .with_batch_size(32)
        .with_augment(false);
    cfg.train_images = Some(1024);
    cfg.test_images = Some(500);
    cfg.calib_images = 256;
    cfg.qat_fraction = 0.5;
    cfg.low_bits_qat_fraction = 0.5;
    cfg.qat_lr_factor = 0.1;
    cfg.low_bits = vec![[4, 8]];
    cfg.reuse_checkpoint = false;
    cfg.device = gpu.clone();
    let report = run(&cfg, data)?;
    println!("{}", report.markdown());
    let acc = |step: &str| report.accuracy(step).unwrap_or(f64::NAN);
    let best = acc(&format!("PTQ {}", report.best_ptq));
    let checks = [
        ("FP32 well above chance", acc("FP32") > 0.5),
        (
            "best PTQ within 2 points of FP32",
            best > acc("FP32") - 0.02,
        ),
        (
            "QAT not below best PTQ - 2 points",
            acc("QAT") >= best - 0.02,
        ),
        (
            "QAT learned amax not below best PTQ - 2 points",
            acc("QAT learned amax") >= best - 0.02,
        ),
        (
            "ONNX Runtime within one image of QAT",
            (report.ort_accuracy - report.qat_accuracy).abs() <= 1.0 / 500.0,
        ),
    ];
    for (what, ok) in checks {
        println!("chapter check {what}: {}", if ok { "ok" } else { "FAILED" });
        *failed += usize::from(!ok);
    }
    result("chapter", serde_json::to_value(&report.rows)?);
    Ok(())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let skip_checks = std::env::args().any(|a| a == "--skip-checks");
    let flag = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let chapter_dir = flag("--chapter").map(std::path::PathBuf::from);
    let full_dir = flag("--full-chapter").map(std::path::PathBuf::from);
    let low_bits_qat: f64 =
        flag("--low-bits-qat-fraction").map_or(0.1, |v| v.parse().expect("a number"));
    // `QDQ_GPU_CHECK_ON=libtorch-cpu` runs the whole check on LibTorch's CPU device
    // (no kernels of ours): a dry run of everything but the GPU, on any machine.
    #[allow(deprecated)]
    let gpu = match std::env::var("QDQ_GPU_CHECK_ON").as_deref() {
        Ok("libtorch-cpu") => Device::libtorch(),
        _ => qdq::device("cuda").unwrap_or_else(|e| {
            eprintln!("gpu_check: {e}");
            std::process::exit(2)
        }),
    };
    let cpu = Device::flex();
    let mut p = Parity { failed: 0 };
    let outcome = (|| -> qdq::Result<()> {
        if skip_checks {
            return Ok(());
        }
        parity(&gpu, &cpu, &mut p)?;
        chain_on_cuda(&gpu, &cpu)?;
        if !quick {
            speed(&gpu)?;
        }
        resnet50_calibration(&gpu, quick)
    })();
    if let Err(e) = outcome {
        eprintln!("gpu_check: {e}");
        std::process::exit(2);
    }
    if let Some(dir) = chapter_dir
        && let Err(e) = chapter(&gpu, &dir, &mut p.failed)
    {
        eprintln!("gpu_check: chapter: {e}");
        std::process::exit(2);
    }
    if let Some(dir) = full_dir
        && let Err(e) = full_chapter(&gpu, &dir, low_bits_qat)
    {
        eprintln!("gpu_check: full chapter: {e}");
        std::process::exit(2);
    }
    if p.failed > 0 {
        eprintln!("gpu_check: {} parity checks failed", p.failed);
        std::process::exit(1);
    }
    println!("gpu_check: every parity check passed");
}
