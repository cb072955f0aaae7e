use super::*;

#[test]
fn powers_of_two_and_their_logs_over_the_whole_range() {
    for e in MIN_EXP..=127 {
        let v = pow2(e);
        assert_eq!(f64::from(v), 2f64.powi(e), "2^{e}");
        assert_eq!(floor_log2(v), e);
        if e < 127 {
            // Just below the next power still has this one's log.
            let below = f32::from_bits(pow2(e + 1).to_bits() - 1);
            assert_eq!(floor_log2(below), e, "below 2^{}", e + 1);
        }
    }
    assert_eq!(floor_log2(f32::MAX), 127);
    assert_eq!(floor_log2(3.0), 1);
    assert_eq!(floor_log2(-3.0), 1);
}

#[test]
fn grid_for_a_max_spans_it_with_2049_to_4096_bins() {
    // max = 1: exp = -11, bins = 2^11 + 1 (1 is the left edge of the last bin).
    assert_eq!(
        DyadicGrid::for_max(1.0, 2048),
        DyadicGrid {
            exp: -11,
            bins: 2049
        }
    );
    // Just below 2: the same width, 4096 bins.
    let below_two = f32::from_bits(2.0f32.to_bits() - 1);
    assert_eq!(
        DyadicGrid::for_max(below_two, 2048),
        DyadicGrid {
            exp: -11,
            bins: 4096
        }
    );
    // 255: 2^7 <= 255 < 2^8, exp = -4, floor(255 * 16) + 1 = 4081.
    assert_eq!(
        DyadicGrid::for_max(255.0, 2048),
        DyadicGrid {
            exp: -4,
            bins: 4081
        }
    );
    // A num_bins that is not a power of two rounds up: 100 -> p = 7.
    assert_eq!(DyadicGrid::for_max(1.0, 100).exp, -7);
    // Extremes: the largest float needs exp 116 and 4096 bins, whose last edge
    // 2^128 is stored as f32::MAX; the smallest subnormal gets bins of its width.
    let top = DyadicGrid::for_max(f32::MAX, 2048);
    assert_eq!(
        top,
        DyadicGrid {
            exp: 116,
            bins: 4096
        }
    );
    let edges = top.edges();
    assert_eq!(edges[4095], 4095.0 * 2f32.powi(116));
    assert_eq!(edges[4096], f32::MAX);
    let tiny = f32::from_bits(1);
    assert_eq!(
        DyadicGrid::for_max(tiny, 2048),
        DyadicGrid {
            exp: MIN_EXP,
            bins: 2
        }
    );
    let sub = f32::from_bits(1000);
    let g = DyadicGrid::for_max(sub, 2048);
    assert_eq!(
        g,
        DyadicGrid {
            exp: MIN_EXP,
            bins: 1001
        }
    );
    assert_eq!(g.edges()[1000], sub);
    // 5000 smallest subnormals: 2^12 <= 5000 < 2^13, so exp = -137 - 11.
    let g = DyadicGrid::for_max(f32::from_bits(5000), 2048);
    assert_eq!(
        g,
        DyadicGrid {
            exp: -148,
            bins: 2501
        }
    );
    // num_bins far above 2^21 is capped: at most 2^22 bins.
    let g = DyadicGrid::for_max(below_two, 1 << 22);
    assert_eq!(
        g,
        DyadicGrid {
            exp: -21,
            bins: 1 << 22
        }
    );
}

#[test]
fn every_max_lies_in_the_last_bin_and_edges_are_exact() {
    let mut s = 7u64;
    for _ in 0..20_000 {
        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let max = f32::from_bits(((s >> 33) as u32 % 0x7f7f_ffff) + 1);
        let g = DyadicGrid::for_max(max, 2048);
        assert!(
            (2049..=4096).contains(&g.bins) || g.exp == MIN_EXP,
            "{max:e}: {g:?}"
        );
        let edges = g.edges();
        assert_eq!(DyadicGrid::of_edges(&edges), g);
        let lo = f64::from(edges[g.bins - 1]);
        assert_eq!(lo, (g.bins - 1) as f64 * 2f64.powi(g.exp));
        assert!(lo <= f64::from(max) && f64::from(max) < (g.bins as f64) * 2f64.powi(g.exp));
        // One smaller exponent would need more than 4096 bins.
        if g.exp > MIN_EXP {
            assert!(f64::from(max) >= 4096.0 * 2f64.powi(g.exp - 1), "{max:e}");
        }
    }
}

#[test]
fn coarsening_sums_groups_of_bins() {
    let from = DyadicGrid { exp: -3, bins: 9 };
    let to = DyadicGrid { exp: -1, bins: 3 };
    let counts = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    assert_eq!(coarsen(&counts, from, to), vec![10, 26, 9]);
    assert_eq!(coarsen(&counts, from, from), counts.to_vec());
    // A shift of 64 or more (exp -149 to 116) sends everything to bin 0.
    let far = DyadicGrid {
        exp: 116,
        bins: 4096,
    };
    let from = DyadicGrid {
        exp: MIN_EXP,
        bins: 3,
    };
    assert_eq!(coarsen(&[1, 2, 3], from, far)[0], 6);
}

/// Tests of [`super::super::HistogramCalibrator`] on this grid.
mod calibrator {
    use super::super::super::tests::uniform;
    use super::super::super::{
        Binner, Grid, HistogramCalibrator, HistogramMethod, bin_into, via_histc,
    };
    use super::*;
    use crate::error::Error;

    fn dyadic() -> HistogramCalibrator {
        HistogramCalibrator::new(8, None, false)
            .unwrap()
            .with_grid(Grid::Dyadic)
    }

    fn collect(batches: &[&[f32]]) -> HistogramCalibrator {
        let mut c = dyadic();
        for b in batches {
            c.collect_slice(b).unwrap();
        }
        c
    }

    fn methods() -> [HistogramMethod; 5] {
        [
            HistogramMethod::entropy(),
            HistogramMethod::mse(),
            HistogramMethod::percentile(99.9),
            HistogramMethod::percentile(50.0),
            HistogramMethod::Max,
        ]
    }

    /// Counts, edges and every method's amax (as bits), for exact comparison.
    fn state(c: &HistogramCalibrator) -> (Vec<u64>, Vec<u32>, Vec<u32>) {
        let amax = methods()
            .map(|m| c.compute_amax(m).unwrap().values()[0].to_bits())
            .to_vec();
        let edges = c.edges().iter().map(|e| e.to_bits()).collect();
        (c.counts().to_vec(), edges, amax)
    }

    /// Signed data over six decades with zeros and a far outlier, so batches of
    /// one grow the grid many times.
    fn data() -> Vec<f32> {
        let u = uniform(42, 3000);
        let mut x: Vec<f32> = u
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let scale = 10f32.powi((i % 6) as i32 - 3);
                (v - 0.3) * scale
            })
            .collect();
        x[17] = 0.0;
        x[1000] = -0.0;
        x[2999] = 250.0;
        x
    }

    /// A fixed permutation (Fisher-Yates with the test LCG).
    fn shuffled(x: &[f32], seed: u64) -> Vec<f32> {
        let mut out = x.to_vec();
        let r = uniform(seed, out.len());
        for i in (1..out.len()).rev() {
            out.swap(i, (r[i] * (i + 1) as f32) as usize % (i + 1));
        }
        out
    }

    fn in_batches(x: &[f32], size: usize) -> HistogramCalibrator {
        let batches: Vec<&[f32]> = x.chunks(size).collect();
        collect(&batches)
    }

    #[test]
    fn batch_size_and_order_do_not_change_counts_edges_or_amax() {
        let x = data();
        let whole = in_batches(&x, x.len());
        let want = state(&whole);
        let mut ascending = x.clone();
        ascending.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
        for (name, xs, size) in [
            ("batch 1", x.clone(), 1),
            ("batch 7", x.clone(), 7),
            ("batch 32", x.clone(), 32),
            ("shuffled, batch 7", shuffled(&x, 1), 7),
            ("shuffled, batch 32", shuffled(&x, 2), 32),
            ("ascending |x|, batch 1", ascending, 1),
        ] {
            assert_eq!(state(&in_batches(&xs, size)), want, "{name}");
        }
        // The counts are those of binning all data at once on the final grid.
        let g = DyadicGrid::of_edges(whole.edges());
        assert_eq!(g, DyadicGrid::for_max(250.0, 2048));
        assert_eq!(
            g,
            DyadicGrid {
                exp: -4,
                bins: 4001
            }
        );
        let mut direct = vec![0u64; g.bins];
        for v in &x {
            direct[(f64::from(v.abs()) / 2f64.powi(g.exp)).floor() as usize] += 1;
        }
        assert_eq!(whole.counts(), &direct[..]);
        assert_eq!(
            whole.compute_amax(HistogramMethod::Max).unwrap().values(),
            [250.0]
        );
        // The same data on the reference grid does depend on the split (why this
        // grid exists): its first batch sets the bin width. With batch 1 that is
        // one value of 1e-4 or so, and growing to 250 on it needs billions of bins.
        let reference = |size: usize| {
            let mut c = HistogramCalibrator::new(8, None, false).unwrap();
            for b in x.chunks(size) {
                c.collect_slice(b)?;
            }
            Ok::<_, Error>((c.counts().to_vec(), c.edges().last().copied()))
        };
        let err = reference(1).unwrap_err();
        assert!(err.to_string().contains("2^22"), "{err}");
        assert_ne!(reference(32).unwrap(), reference(x.len()).unwrap());
    }

    /// The orders issue 17 names as adversarial: a tiny first item (1.75e-4, then
    /// 0.74, as on a real detector's output), all zeros before any data, and a single
    /// huge outlier first or last. Each gives the state of binning everything at once.
    #[test]
    fn adversarial_orders_give_the_state_of_all_the_data_at_once() {
        let x = data();
        let want = state(&in_batches(&x, x.len()));
        let mut tiny_first = vec![1.75e-4f32, 0.74];
        tiny_first.extend(&x);
        let tiny_want = state(&in_batches(&tiny_first, tiny_first.len()));
        assert_eq!(
            state(&in_batches(&tiny_first, 1)),
            tiny_want,
            "tiny first item"
        );
        let mut zeros_first = vec![0.0f32; 512];
        zeros_first.extend(&x);
        let zeros_want = state(&in_batches(&zeros_first, zeros_first.len()));
        assert_eq!(
            state(&in_batches(&zeros_first, 64)),
            zeros_want,
            "zeros first"
        );
        // The outlier (250, last in `data`) first, then the rest.
        let mut outlier_first = vec![x[2999]];
        outlier_first.extend(&x[..2999]);
        assert_eq!(state(&in_batches(&outlier_first, 1)), want, "outlier first");
        assert_eq!(state(&in_batches(&x, 1)), want, "outlier last");
    }

    #[test]
    fn skip_zeros_is_split_independent_too() {
        let x = data();
        let skip = |size: usize| {
            let mut c = dyadic().with_skip_zeros(true);
            for b in x.chunks(size) {
                c.collect_slice(b).unwrap();
            }
            c
        };
        let whole = skip(x.len());
        assert_eq!(whole.total(), x.len() as u64 - 2);
        for size in [1, 7, 32] {
            assert_eq!(state(&skip(size)), state(&whole), "batch {size}");
        }
    }

    #[test]
    fn merge_of_shards_is_collecting_all_of_them() {
        let x = data();
        // Shards with very different ranges: the small one is coarsened by 9 steps.
        let small: Vec<f32> = x.iter().map(|v| v * 1e-3).collect();
        let (a, b) = (collect(&[&small]), collect(&[&x[..1000], &x[1000..]]));
        let want = collect(&[&small, &x]);
        for (mut l, r) in [(a.clone(), &b), (b.clone(), &a)] {
            l.merge(r).unwrap();
            assert_eq!(state(&l), state(&want));
        }
        // Many shards of 32, merged in order, equal one histogram.
        let mut merged = dyadic();
        for chunk in x.chunks(32) {
            merged.merge(&collect(&[chunk])).unwrap();
        }
        assert_eq!(state(&merged), state(&collect(&[&x])));
        // Zeros-only and empty shards merge either way.
        let zeros = collect(&[&[0.0, -0.0, 0.0]]);
        let mut z = zeros.clone();
        z.merge(&a).unwrap();
        let mut a2 = a.clone();
        a2.merge(&zeros).unwrap();
        let want = collect(&[&small, &[0.0, 0.0, 0.0]]);
        assert_eq!(state(&z), state(&want));
        assert_eq!(state(&a2), state(&want));
        let mut e = dyadic();
        e.merge(&a).unwrap();
        assert_eq!(state(&e), state(&a));
        // Another grid is refused, naming both; nothing changes.
        let reference = {
            let mut c = HistogramCalibrator::new(8, None, false).unwrap();
            c.collect_slice(&x).unwrap();
            c
        };
        let mut l = a.clone();
        let err = l.merge(&reference).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported { format, .. } if format.contains("Reference grid into a Dyadic")),
            "{err}"
        );
        assert_eq!(state(&l), state(&a));
        // Coarser bins (fewer num_bins) cannot be split: refused.
        let mut coarse = HistogramCalibrator::new(8, None, false)
            .unwrap()
            .with_num_bins(128)
            .with_grid(Grid::Dyadic);
        coarse.collect_slice(&x).unwrap();
        let mut l = a.clone();
        let err = l.merge(&coarse).unwrap_err();
        assert!(
            err.to_string().contains("num_bins 128 into num_bins 2048"),
            "{err}"
        );
        assert_eq!(state(&l), state(&a));
    }

    #[test]
    fn all_zero_data_gives_amax_zero_and_keeps_its_zeros() {
        let mut c = collect(&[&[0.0, -0.0], &[0.0]]);
        assert_eq!(c.total(), 3);
        assert!(c.edges().iter().all(|&e| e == 0.0));
        for m in methods() {
            assert_eq!(c.compute_amax(m).unwrap().values(), [0.0], "{m}");
        }
        c.collect_slice(&[1.0, 0.5]).unwrap();
        let want = collect(&[&[1.0, 0.0, 0.5, 0.0, -0.0]]);
        assert_eq!(state(&c), state(&want));
        assert_eq!(c.counts()[0], 3);
        assert_eq!(c.counts().len(), 2049);
    }

    #[test]
    fn subnormals_are_binned_exactly() {
        let x: Vec<f32> = (1..=3000u32).map(f32::from_bits).collect();
        let c = collect(&[&x[..10], &x[10..]]);
        let g = DyadicGrid::of_edges(c.edges());
        // 2^11 <= 3000 < 2^12 smallest subnormals: exp = -138 - 11 = -149, one per bin.
        assert_eq!(
            g,
            DyadicGrid {
                exp: MIN_EXP,
                bins: 3001
            }
        );
        assert_eq!(c.counts()[0], 0);
        assert!(c.counts()[1..].iter().all(|&n| n == 1));
        assert_eq!(c.edges()[3000], f32::from_bits(3000));
        let p = c
            .compute_amax(HistogramMethod::percentile(50.0))
            .unwrap()
            .values()[0];
        assert!((1500..=1501).contains(&p.to_bits()), "{p:e}");
        // 10x more: bins of 8 subnormals, groups of 8 merged when the range grew.
        let y: Vec<f32> = (1..=30_000u32).map(f32::from_bits).collect();
        let c = collect(&[&y[..3000], &y[3000..]]);
        assert_eq!(DyadicGrid::of_edges(c.edges()).exp, -146);
        assert_eq!(state(&c), state(&collect(&[&y])));
        assert_eq!(c.counts()[1], 8);
    }

    #[test]
    fn values_up_to_f32_max_are_collected_and_max_is_exact() {
        let big = [f32::MAX, -3.0e38, 1.0, 0.0, -f32::MAX];
        let c = collect(&[&big[..2], &big[2..]]);
        assert_eq!(c.counts(), collect(&[&big]).counts());
        let g = DyadicGrid::of_edges(c.edges());
        assert_eq!(
            g,
            DyadicGrid {
                exp: 116,
                bins: 4096
            }
        );
        assert_eq!(c.counts()[4095], 2);
        assert_eq!(c.counts()[3611], 1, "3e38 / 2^116 = 3611.3");
        assert_eq!(c.counts()[0], 2);
        assert_eq!(c.edges()[4096], f32::MAX);
        assert_eq!(
            c.compute_amax(HistogramMethod::Max).unwrap().values(),
            [f32::MAX]
        );
        let p = c
            .compute_amax(HistogramMethod::percentile(99.0))
            .unwrap()
            .values()[0];
        assert_eq!(p, 4095.0 * pow2(116));
        // The searches finish (their float32 arithmetic overflows here; no panic).
        let _ = c.compute_amax(HistogramMethod::entropy());
        let _ = c.compute_amax(HistogramMethod::mse());
    }

    #[test]
    fn non_finite_batches_are_refused_and_leave_the_histogram() {
        let mut c = collect(&[&data()]);
        let before = state(&c);
        for (bad, name) in [(f32::NAN, "NaN"), (f32::NEG_INFINITY, "Inf")] {
            let err = c.collect_slice(&[1e6, bad]).unwrap_err();
            assert!(matches!(&err, Error::Data(m) if m.contains(name)), "{err}");
        }
        assert_eq!(state(&c), before);
        // A failed binning (on a GPU) leaves no trace either, growing or not.
        for batch in [vec![1e6f32, 3.0], vec![0.5]] {
            let err = c
                .collect_scanned(batch.len(), super::super::super::scan(&batch), |_, _| {
                    Err(Error::Gpu("launch failed".into()))
                })
                .unwrap_err();
            assert_eq!(err, Error::Gpu("launch failed".into()));
            assert_eq!(state(&c), before);
        }
    }

    #[test]
    fn with_grid_starts_over_on_another_grid() {
        let mut c = HistogramCalibrator::new(8, None, false).unwrap();
        c.collect_slice(&[1.0, 2.0]).unwrap();
        let c = c.with_grid(Grid::Dyadic);
        assert!(c.counts().is_empty() && c.edges().is_empty());
        assert_eq!(c.grid(), Grid::Dyadic);
        assert!(format!("{c:?}").contains("grid: Dyadic"));
    }

    /// The GPU's histc kernel, emulated by the histc binner on the host, gives the
    /// dyadic bins through `via_histc` wherever it is used.
    #[test]
    fn the_histc_kernel_gives_the_dyadic_bins() {
        for max in [
            1.0f32,
            250.0,
            0.1,
            3.0e-3,
            f32::from_bits(3000),
            1.0e-40,
            2.0e34,
        ] {
            let x: Vec<f32> = uniform(max.to_bits().into(), 5000)
                .iter()
                .map(|u| (u - 0.5) * 2.0 * max)
                .chain([max, -max, 0.0])
                .collect();
            let g = DyadicGrid::for_max(max, 2048);
            let mut want = vec![0u64; g.bins];
            bin_into(&x, g.binner(), &mut want);
            let mut got = vec![0u64; g.bins];
            via_histc(g.binner(), &mut got, |hi, c| {
                bin_into(&x, Binner::new(hi, c.len())?, c);
                Ok(())
            })
            .unwrap()
            .unwrap();
            assert_eq!(got, want, "max {max:e}");
            assert_eq!(want.iter().sum::<u64>(), x.len() as u64);
        }
        // Near f32::MAX the kernel's products overflow: the host bins instead.
        let g = DyadicGrid::for_max(3.0e38, 2048);
        let mut c = vec![0u64; g.bins];
        assert!(via_histc(g.binner(), &mut c, |_, _| Ok(())).is_none());
        // A reference binner goes straight through.
        let b = Binner::new(2.0, 2048).unwrap();
        let mut c = vec![0u64; 2048];
        let mut seen = None;
        via_histc(b, &mut c, |hi, c| {
            seen = Some((hi, c.len()));
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(seen, Some((2.0, 2048)));
    }
}
