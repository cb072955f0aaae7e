use super::*;
use crate::error::{Error, Result};
use crate::tensor_quant::NumBits;
use burn::prelude::*;

/// Deterministic uniform [0, 1) values (64-bit LCG, top 24 bits).
pub(super) fn uniform(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn hist(data: &[f32]) -> HistogramCalibrator {
    let mut c = HistogramCalibrator::new(8, None, false).unwrap();
    c.collect_slice(data).unwrap();
    c
}

fn amax(c: &HistogramCalibrator, m: HistogramMethod) -> f32 {
    c.compute_amax(m).unwrap().values()[0]
}

/// The binning step can fail (on a GPU); the batch then leaves no trace, whether it
/// would have laid the first grid, grown it or filled it.
#[test]
fn a_failed_binning_leaves_the_histogram_unchanged() {
    let fail = |_: Binner, _: &mut [u64]| -> Result<()> { Err(Error::Gpu("launch failed".into())) };
    let mut c = HistogramCalibrator::new(8, None, false).unwrap();
    let first = uniform(1, 1000);
    let e = c
        .collect_scanned(first.len(), scan(&first), fail)
        .unwrap_err();
    assert_eq!(e, Error::Gpu("launch failed".into()));
    assert!(c.counts().is_empty() && c.edges().is_empty() && c.total() == 0);
    c.collect_slice(&first).unwrap();
    let (counts, edges) = (c.counts().to_vec(), c.edges().to_vec());
    for scale in [3.0f32, 0.5] {
        // 3.0 grows the grid, 0.5 fills the existing one.
        let batch: Vec<f32> = uniform(2, 1000).iter().map(|v| v * scale).collect();
        assert!(c.collect_scanned(batch.len(), scan(&batch), fail).is_err());
        assert_eq!((c.counts(), c.edges()), (&counts[..], &edges[..]));
        assert_eq!(
            c.compute_amax(HistogramMethod::Max).unwrap().values(),
            &[edges[2048]]
        );
    }
    // After the failures, the batch that grows the grid collects as if they never were.
    let grown: Vec<f32> = uniform(2, 1000).iter().map(|v| v * 3.0).collect();
    c.collect_scanned(grown.len(), scan(&grown), |b, counts| {
        bin_into(&grown, b, counts);
        Ok(())
    })
    .unwrap();
    let mut direct = HistogramCalibrator::new(8, None, false).unwrap();
    direct.collect_slice(&first).unwrap();
    direct.collect_slice(&grown).unwrap();
    assert!(c.counts().len() > 2048);
    assert_eq!((c.counts(), c.edges()), (direct.counts(), direct.edges()));
}

#[test]
fn max_method_is_the_max_calibrators_amax_through_growth_and_merge() {
    let batches: Vec<Vec<f32>> = (0..3)
        .map(|k| {
            uniform(k, 500)
                .into_iter()
                .map(|v| (v - 0.5) * (k + 1) as f32)
                .collect()
        })
        .collect();
    let mut hist = HistogramCalibrator::new(8, None, false).unwrap();
    let mut max = crate::calib::MaxCalibrator::new(8, None, false);
    for b in &batches[..2] {
        hist.collect_slice(b).unwrap();
        max.collect_slice(b, &[b.len()]).unwrap();
    }
    let mut other = HistogramCalibrator::new(8, None, false).unwrap();
    other.collect_slice(&batches[2]).unwrap();
    max.collect_slice(&batches[2], &[500]).unwrap();
    hist.merge(&other).unwrap_err(); // different first maxima: different widths
    hist.collect_slice(&batches[2]).unwrap();
    let want = max.compute_amax().unwrap();
    assert_eq!(hist.compute_amax(HistogramMethod::Max).unwrap(), want);
    // Exact: the largest |x| itself, not a bin edge.
    let largest = batches.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
    assert_eq!(want.values(), [largest]);
    assert!(hist.edges().last().unwrap() > &largest);
    let mut merged = HistogramCalibrator::new(8, None, false).unwrap();
    merged.merge(&hist).unwrap();
    assert_eq!(
        merged.compute_amax(HistogramMethod::Max).unwrap().values(),
        [largest]
    );
    assert_eq!(
        "max".parse::<HistogramMethod>().unwrap(),
        HistogramMethod::Max
    );
    merged.reset();
    assert!(merged.compute_amax(HistogramMethod::Max).is_err());
}

#[test]
fn grow_keeps_width_and_adds_counts_index_wise() {
    // calibrator_test "grow": x1 = [0, 255 x5], x2 = [0, 255 x4, 256].
    let mut c = hist(&[0.0, 255.0, 255.0, 255.0, 255.0, 255.0]);
    let width = 255.0f32 / 2048.0;
    assert_eq!(c.edges().len(), 2049);
    assert_eq!((c.counts()[0], c.counts()[2047]), (1, 5));
    c.collect_slice(&[0.0, 255.0, 255.0, 255.0, 255.0, 256.0])
        .unwrap();
    // ceil(256 / (255/2048)) = 2057 bins, edges k * width.
    assert_eq!(c.counts().len(), 2057);
    assert_eq!(c.edges()[1] - c.edges()[0], width);
    assert_eq!(c.edges()[2057], 2057.0 * width);
    assert_eq!(c.edges()[2048], 255.0);
    // 255 is now the left edge of bin 2048; the old 255s stay in bin 2047.
    let nonzero: Vec<(usize, u64)> = c
        .counts()
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(k, &n)| (k, n))
        .collect();
    assert_eq!(nonzero, vec![(0, 2), (2047, 5), (2048, 4), (2056, 1)]);

    let e = amax(&c, HistogramMethod::entropy());
    assert!((e - 255.0).abs() < (e - 256.0).abs(), "entropy {e}");
    // Every candidate up to 2047 sees no data below it (bin 0 := bin 1 = 0), the
    // last NaN one wins.
    assert_eq!(e, 2047.0 * width);
    let m = amax(&c, HistogramMethod::mse());
    assert!((m - 255.0).abs() < 0.5, "mse {m}");
}

#[test]
fn skip_zeros_percentile() {
    // calibrator_test: [0 x5, 1..5], [0 x5, 6..10], skip_zeros -> p50 ~ 5.
    let mut c = HistogramCalibrator::new(8, None, false)
        .unwrap()
        .with_skip_zeros(true);
    c.collect_slice(&[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
        .unwrap();
    c.collect_slice(&[0.0, 0.0, 0.0, 0.0, -0.0, 6.0, 7.0, 8.0, 9.0, 10.0])
        .unwrap();
    assert_eq!(c.total(), 10);
    assert_eq!(c.counts()[0], 0);
    let p = amax(&c, HistogramMethod::percentile(50.0));
    assert!((p - 5.0).abs() < 10.0 / 2048.0, "{p}");
    // An all-zero batch is ignored (the reference fails on max() of nothing).
    c.collect_slice(&[0.0; 7]).unwrap();
    assert_eq!(c.total(), 10);
    let mut fresh = HistogramCalibrator::new(8, None, false)
        .unwrap()
        .with_skip_zeros(true);
    fresh.collect_slice(&[0.0, -0.0]).unwrap();
    assert!(fresh.edges().is_empty());
    assert!(matches!(
        fresh.compute_amax(HistogramMethod::mse()),
        Err(Error::NoData { .. })
    ));
}

#[test]
fn percentile_of_arange() {
    // calibrator_test: arange(100) p90 ~ 89, unsigned p80 ~ 79, + arange(0,50,.5) p99 ~ 97.
    let x: Vec<f32> = (0..100).map(|v| v as f32).collect();
    let tol = 100.0 / 1024.0;
    let mut c = hist(&x);
    assert!((amax(&c, HistogramMethod::percentile(90.0)) - 89.0).abs() < tol);
    let mut u = HistogramCalibrator::new(8, None, true).unwrap();
    u.collect_slice(&x).unwrap();
    assert!((amax(&u, HistogramMethod::percentile(80.0)) - 79.0).abs() < tol);
    let halves: Vec<f32> = (0..100).map(|v| v as f32 * 0.5).collect();
    c.collect_slice(&halves).unwrap();
    assert!((amax(&c, HistogramMethod::percentile(99.0)) - 97.0).abs() < tol);
    // Left edge of the bin: value 89 sits in bin trunc(89 * 2048 / 99) = 1841.
    let c = hist(&x);
    assert_eq!(amax(&c, HistogramMethod::percentile(90.0)), c.edges()[1841]);
}

#[test]
fn mse_prefers_the_bulk_over_one_outlier() {
    // calibrator_test: ones * 255 with one 256 -> closer to 255; unsigned 512/513.
    let mut x = vec![255.0f32; 11 * 7 * 3 * 3];
    x[0] = 256.0;
    let m = amax(&hist(&x), HistogramMethod::mse());
    assert!((m - 255.0).abs() < (m - 256.0).abs(), "{m}");
    let mut x = vec![512.0f32; 11 * 7 * 3 * 3];
    x[0] = 513.0;
    let mut u = HistogramCalibrator::new(8, None, true).unwrap();
    u.collect_slice(&x).unwrap();
    let m = amax(&u, HistogramMethod::mse());
    assert!((m - 512.0).abs() < (m - 513.0).abs(), "{m}");
}

#[test]
fn entropy_ignores_one_outlier() {
    // calibrator_test: U(0,1) with one 10 -> amax < 1.1 (signed, unsigned, two batches).
    let mut x = uniform(1234, 31 * 7 * 3 * 3);
    x[0] = 10.0;
    for unsigned in [false, true] {
        let mut c = HistogramCalibrator::new(8, None, unsigned).unwrap();
        c.collect_slice(&x).unwrap();
        let e = amax(&c, HistogramMethod::entropy());
        assert!(e < 1.1 && e > 0.5, "unsigned={unsigned}: {e}");
    }
    let mut c = hist(&uniform(7, 5000));
    c.collect_slice(&x).unwrap();
    let e = amax(&c, HistogramMethod::entropy());
    assert!(e < 1.1 && e > 0.5, "two batches: {e}");
}

#[test]
fn entropy_nan_rule_picks_the_bottom_of_data_far_from_zero() {
    // Data only in [0.9, 1.0]: every candidate below 0.9 keeps no data (NaN), and
    // the last NaN candidate wins, so amax is about the data's minimum.
    let x: Vec<f32> = uniform(99, 20_000).iter().map(|u| 0.9 + 0.1 * u).collect();
    let c = hist(&x);
    let first = c.counts().iter().position(|&n| n > 0).unwrap();
    let e = amax(&c, HistogramMethod::entropy());
    assert_eq!(e, c.edges()[first]);
    assert!((e - 0.9).abs() < 1e-3, "{e}");
}

#[test]
fn linspace_edges_for_a_non_dyadic_max() {
    let e = 0.1f32;
    let c = hist(&[0.05, e]);
    let edges = c.edges();
    let step = e / 2048.0;
    assert_eq!(edges.len(), 2049);
    assert_eq!(edges[2048], e);
    for (i, &v) in edges.iter().enumerate() {
        let want = if i < 1024 {
            step * i as f32
        } else {
            e - step * (2048 - i) as f32
        };
        assert_eq!(v.to_bits(), want.to_bits(), "edge {i}");
    }
    // The two halves really differ from a plain i * step somewhere.
    assert!((1024..2048).any(|i| edges[i] != step * i as f32));
    // histc: multiply, then divide, in float32.
    let x = uniform(3, 5000).iter().map(|u| u * e).collect::<Vec<_>>();
    let mut c = HistogramCalibrator::new(8, None, false).unwrap();
    c.collect_slice(&[e]).unwrap();
    c.collect_slice(&x).unwrap();
    let mut want = vec![0u64; 2048];
    want[2047] += 1;
    for &v in &x {
        want[(((v * 2048.0) / e) as usize).min(2047)] += 1;
    }
    assert_eq!(c.counts(), &want[..]);
}

#[test]
fn binner_matches_the_histc_formula_up_to_max_bins() {
    for n in [1usize, 7, 2048, 100_003, MAX_BINS] {
        for hi in [1.0f32, 0.1, 255.0, 3.3e-3, 6.02e23] {
            let b = Binner::new(hi, n).unwrap();
            let want = |v: f32| ((((v * n as f32) / hi) as usize).min(n - 1)) as u32;
            let edges =
                [0, 1, n / 3, n / 2, n.saturating_sub(1), n].map(|k| k as f32 * (hi / n as f32));
            let values = uniform(n as u64, 2000).into_iter().map(|u| u * hi);
            for v in values.chain(edges).chain([0.0, -0.0, hi, -hi]) {
                assert_eq!(b.bin(v), want(v.abs()), "n={n} hi={hi} v={v}");
            }
        }
    }
    // Integer-valued data on a unit grid: every value on a left edge.
    let x: Vec<f32> = (0..=2048).map(|v| v as f32).collect();
    let mut want = vec![1u64; 2048];
    want[2047] = 2;
    assert_eq!(hist(&x).counts(), &want[..]);
}

#[test]
fn first_batch_of_zeros_then_data() {
    let mut c = hist(&[0.0, 0.0, -0.0]);
    assert_eq!(c.counts()[0], 3);
    assert!(c.edges().iter().all(|&e| e == 0.0));
    for m in [
        HistogramMethod::entropy(),
        HistogramMethod::mse(),
        HistogramMethod::percentile(99.0),
    ] {
        assert_eq!(amax(&c, m), 0.0, "{m}");
    }
    c.collect_slice(&[0.0; 4]).unwrap();
    c.collect_slice(&[1.0, 2.0]).unwrap();
    // The grid is laid by the first non-zero batch; the 7 zeros stay in bin 0.
    let mut want = hist(&[1.0, 2.0]);
    want.counts[0] += 7;
    assert_eq!((c.counts(), c.edges()), (want.counts(), want.edges()));
}

#[test]
fn non_finite_batch_is_rejected_and_leaves_the_histogram() {
    let mut c = hist(&[1.0, 2.0]);
    let before = (c.counts().to_vec(), c.edges().to_vec());
    for (bad, name) in [
        (f32::NAN, "NaN"),
        (f32::INFINITY, "Inf"),
        (f32::NEG_INFINITY, "Inf"),
    ] {
        let err = c.collect_slice(&[0.5, bad, 3.0]).unwrap_err();
        assert!(matches!(&err, Error::Data(m) if m.contains(name)), "{err}");
    }
    // NaN wins over Inf in the message, as it is the worse news.
    let err = c.collect_slice(&[f32::INFINITY, -f32::NAN]).unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    assert_eq!((c.counts(), c.edges()), (&before.0[..], &before.1[..]));
    let err = c.collect_slice(&[1e37]).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert_eq!(c.counts(), &before.0[..]);
    // Tiny first batch, huge second one: refuse instead of allocating billions of bins.
    let mut c = hist(&[1e-3]);
    let err = c.collect_slice(&[1e6]).unwrap_err();
    assert!(err.to_string().contains("2^22"), "{err}");
    assert_eq!(c.counts().len(), 2048);
}

#[test]
fn counts_do_not_saturate_at_2_pow_24() {
    let n = (1usize << 24) + 5;
    let c = hist(&vec![1.0f32; n]);
    assert_eq!(c.counts()[2047], n as u64);
    let mut m = c.clone();
    m.merge(&c).unwrap();
    assert_eq!(m.counts()[2047], 2 * n as u64);
}

#[test]
fn parallel_binning_equals_serial() {
    let x: Vec<f32> = uniform(5, 1 << 20)
        .iter()
        .map(|u| (u - 0.5) * 6.0)
        .collect();
    let c = hist(&x);
    let hi = c.edges()[2048];
    let mut want = vec![0u64; 2048];
    for &v in &x {
        want[((v.abs() * 2048.0 / hi) as usize).min(2047)] += 1;
    }
    assert_eq!(c.counts(), &want[..]);
    assert_eq!(c.total(), 1 << 20);
}

#[test]
fn merge_same_grid_grown_grid_and_mismatch() {
    let x1 = [0.0, 255.0, 255.0, 255.0, 255.0, 255.0];
    let x2 = [0.0, 255.0, 255.0, 255.0, 255.0, 256.0];
    let (a, mut b) = (hist(&x1), hist(&x1));
    b.collect_slice(&x2).unwrap();
    // a on the first grid, b grown from it: merging gives x1 twice plus x2.
    let mut want = hist(&x1);
    want.collect_slice(&x1).unwrap();
    want.collect_slice(&x2).unwrap();
    for (mut l, r) in [(a.clone(), &b), (b.clone(), &a)] {
        l.merge(r).unwrap();
        assert_eq!((l.counts(), l.edges()), (want.counts(), want.edges()));
    }
    let mut d = hist(&[1.0]);
    let err = d.merge(&a).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert_eq!(d.counts(), hist(&[1.0]).counts());
    // Empty and zeros-only histograms merge anywhere.
    let mut e = HistogramCalibrator::new(8, None, false).unwrap();
    e.merge(&a).unwrap();
    assert_eq!(e.counts(), a.counts());
    let mut z = hist(&[0.0, 0.0]);
    z.merge(&a).unwrap();
    assert_eq!(z.counts()[0], a.counts()[0] + 2);
    let mut a2 = a.clone();
    a2.merge(&hist(&[0.0])).unwrap();
    assert_eq!(a2.counts()[0], a.counts()[0] + 1);
}

#[test]
fn repeated_compute_amax_matches_fresh_calibrators() {
    let mut x: Vec<f32> = uniform(11, 50_000).iter().map(|u| u * u * 4.0).collect();
    x.extend(uniform(12, 100).iter().map(|u| 8.0 + u));
    let methods = [
        HistogramMethod::entropy(),
        HistogramMethod::mse(),
        HistogramMethod::percentile(99.9),
        HistogramMethod::Entropy {
            start_bin: 64,
            stride: 3,
        },
        HistogramMethod::Mse {
            start_bin: 200,
            stride: 7,
        },
    ];
    let fresh: Vec<f32> = methods.iter().map(|&m| amax(&hist(&x), m)).collect();
    let c = hist(&x);
    let counts = c.counts().to_vec();
    for _ in 0..2 {
        for (&m, &want) in methods.iter().zip(&fresh) {
            assert_eq!(amax(&c, m).to_bits(), want.to_bits(), "{m}");
        }
    }
    assert_eq!(c.counts(), &counts[..]);
}

#[test]
fn errors() {
    let err = HistogramCalibrator::new(8, Some(vec![0]), false).unwrap_err();
    assert_eq!(err, Error::HistogramAxis { axis: vec![0] });
    assert!(matches!(
        HistogramCalibrator::new(1, None, false),
        Err(Error::InvalidNumBits { .. })
    ));
    let c = HistogramCalibrator::new(8, None, false).unwrap();
    let err = c.compute_amax(HistogramMethod::entropy()).unwrap_err();
    assert!(
        matches!(&err, Error::NoData { calibrator } if calibrator.contains("HistogramCalibrator"))
    );
    for p in [-0.1, 100.5, f64::NAN] {
        assert!(matches!(
            c.compute_amax(HistogramMethod::percentile(p)),
            Err(Error::InvalidPercentile(_))
        ));
    }
    assert_eq!(
        "maximum".parse::<HistogramMethod>(),
        Err(Error::UnknownCalibMethod("maximum".into()))
    );
    assert!(matches!(
        "percentile=abc".parse::<HistogramMethod>(),
        Err(Error::UnknownCalibMethod(_))
    ));
    assert!(matches!(
        "percentile=101".parse::<HistogramMethod>(),
        Err(Error::InvalidPercentile(_))
    ));

    let mut c = HistogramCalibrator::new(8, None, false)
        .unwrap()
        .with_num_bins(100);
    c.collect_slice(&[1.0, 2.0]).unwrap();
    assert_eq!(
        c.compute_amax(HistogramMethod::entropy()),
        Err(Error::TooFewBins {
            method: "entropy",
            bins: 100,
            start_bin: 128
        })
    );
    assert!(matches!(
        c.compute_amax(HistogramMethod::Mse {
            start_bin: 100,
            stride: 1
        }),
        Err(Error::TooFewBins { method: "mse", .. })
    ));
    // start_bin == bins is one candidate for entropy (inclusive), none for MSE.
    assert!(
        c.compute_amax(HistogramMethod::Entropy {
            start_bin: 100,
            stride: 1
        })
        .is_ok()
    );
    for m in [
        HistogramMethod::Entropy {
            start_bin: 8,
            stride: 0,
        },
        HistogramMethod::Mse {
            start_bin: 8,
            stride: 0,
        },
    ] {
        assert!(
            matches!(c.compute_amax(m), Err(Error::Unsupported { .. })),
            "{m}"
        );
    }
    let mut f = HistogramCalibrator::new(NumBits::FP8_E4M3, None, false).unwrap();
    f.collect_slice(&uniform(1, 1000)).unwrap();
    assert!(matches!(
        f.compute_amax(HistogramMethod::entropy()),
        Err(Error::Unsupported { .. })
    ));
    let m = amax(&f, HistogramMethod::mse());
    assert!(m > 0.5 && m <= 1.0, "{m}");
    c.reset();
    assert!(c.counts().is_empty() && c.edges().is_empty());
    assert!(matches!(
        c.compute_amax(HistogramMethod::mse()),
        Err(Error::NoData { .. })
    ));
}

#[test]
fn method_names_parse_print_and_serde() {
    for (s, m) in [
        ("entropy", HistogramMethod::entropy()),
        ("mse", HistogramMethod::mse()),
        ("percentile", HistogramMethod::percentile(99.99)),
        ("percentile=99.9", HistogramMethod::percentile(99.9)),
    ] {
        assert_eq!(s.parse::<HistogramMethod>().unwrap(), m);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<HistogramMethod>(&json).unwrap(), m);
    }
    assert_eq!(
        HistogramMethod::percentile(99.99).to_string(),
        "percentile=99.99"
    );
    assert_eq!(HistogramMethod::entropy().to_string(), "entropy");
    assert_eq!(HistogramMethod::mse().to_string(), "mse");
    assert_eq!(
        serde_json::to_string(&HistogramMethod::entropy()).unwrap(),
        r#"{"entropy":{"start_bin":128,"stride":1}}"#
    );
}

#[test]
fn display_and_tensor_collect() {
    let mut c = HistogramCalibrator::new(8, None, false).unwrap();
    assert_eq!(c.to_string(), "HistogramCalibrator(calib_bin_edges=None)");
    let device = Device::flex();
    let x = Tensor::<2>::from_floats([[0.0f32, -255.0], [3.0, 1.0]], &device);
    c.collect(&x).unwrap();
    assert_eq!(
        c.to_string(),
        "HistogramCalibrator(calib_bin_edges=[0.000, ..., 255.000](2049))"
    );
    assert_eq!(c.counts(), hist(&[0.0, 255.0, 3.0, 1.0]).counts());
    assert!(format!("{c:?}").contains("total: 4"));
}
