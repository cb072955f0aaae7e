//! Shards merged through statistics files give bit for bit the single pass.

use super::*;
use crate::calib::{Grid, HistogramMethod};

/// 64-bit LCG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 7) as f32 / (1u64 << 24) as f32
    }
}

/// `n` values: a signed bulk of scale 1, every 97th value 10x larger, some zeros.
fn data(seed: u64, n: usize) -> Vec<f32> {
    let mut r = Rng(seed);
    (0..n)
        .map(|i| {
            let v = (r.unit() - 0.5) * 2.0;
            match i % 97 {
                0 => v * 10.0,
                5 => 0.0,
                _ => v,
            }
        })
        .collect()
}

const METHODS: [&str; 6] = [
    "max",
    "entropy",
    "mse",
    "percentile=99.9",
    "percentile=99.99",
    "percentile=50",
];

/// Statistics of `parts` (batches of one shard), shard `k` of `n`, through a JSON
/// round trip as a file would carry them: a dyadic histogram and a per-tensor max of
/// the same tensor.
fn shard_stats(parts: &[&[f32]], k: u32, n: u32) -> ModelStats {
    let mut h = HistogramCalibrator::new(8, None, false)
        .unwrap()
        .with_grid(Grid::Dyadic);
    let mut m = MaxCalibrator::new(8, None, false);
    for p in parts {
        h.collect_slice(p).unwrap();
        if !p.is_empty() {
            m.collect_slice(p, &[p.len()]).unwrap();
        }
    }
    let (h, m) = (Calibrator::Histogram(h), Calibrator::Max(m));
    let stats = ModelStats::new(
        fingerprint("test", [b"model".as_slice()]),
        Shards::one(k, n).unwrap(),
        parts.iter().map(|p| p.len() as u64).sum(),
        [
            ("act".to_string(), "x".to_string(), &h),
            ("act_max".to_string(), "x".to_string(), &m),
        ],
    );
    ModelStats::parse(&serde_json::to_string(&stats).unwrap()).unwrap()
}

/// Every method's amax (as bits) of merged statistics.
fn amaxes(stats: &ModelStats) -> Vec<u32> {
    let cals = stats.calibrators().unwrap();
    let mut out: Vec<u32> = METHODS
        .iter()
        .map(|m| {
            let m: HistogramMethod = m.parse().unwrap();
            cals["act"].compute_amax(Some(m)).unwrap().unwrap().values()[0].to_bits()
        })
        .collect();
    out.push(
        cals["act_max"]
            .compute_amax(None)
            .unwrap()
            .unwrap()
            .values()[0]
            .to_bits(),
    );
    out
}

/// `all` split at `cuts` (sorted positions) into shards, each fed in batches of
/// `batch`, merged in the order `order`.
fn merged(all: &[f32], cuts: &[usize], batch: usize, order: &[usize]) -> ModelStats {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(all.len());
    let n = (bounds.len() - 1) as u32;
    let shards: Vec<ModelStats> = bounds
        .windows(2)
        .enumerate()
        .map(|(k, w)| {
            let parts: Vec<&[f32]> = all[w[0]..w[1]].chunks(batch).collect();
            shard_stats(&parts, k as u32, n)
        })
        .collect();
    let mut acc = shards[order[0]].clone();
    for &k in &order[1..] {
        acc.merge(&shards[k]).unwrap();
    }
    assert!(acc.shards.missing().is_empty());
    acc
}

#[test]
fn random_splits_into_1_to_8_shards_give_the_single_pass_for_every_method() {
    let all = data(7, 6000);
    let single = shard_stats(&[&all], 0, 1);
    let want = amaxes(&single);
    // Entropy, MSE and the percentiles differ from max (the histogram's max is the max
    // calibrator's): the comparison is not trivial.
    assert_eq!(
        want.iter().collect::<std::collections::HashSet<_>>().len(),
        6
    );
    assert_eq!(want[0], want[6]);
    let mut r = Rng(11);
    for trial in 0..24 {
        let n = 1 + trial % 8;
        let mut cuts: Vec<usize> = (1..n).map(|_| r.next() as usize % all.len()).collect();
        cuts.sort_unstable();
        let batch = 1 + r.next() as usize % 700;
        // A random merge order.
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, r.next() as usize % (i + 1));
        }
        let m = merged(&all, &cuts, batch, &order);
        assert_eq!(
            amaxes(&m),
            want,
            "trial {trial}: cuts {cuts:?}, batch {batch}"
        );
        // The counts themselves equal the single pass's, not only the amaxes.
        assert_eq!(m.quantizers["act"], single.quantizers["act"]);
        assert_eq!(m.items, 6000);
    }
}

#[test]
fn adversarial_shards_tiny_max_huge_outlier_all_zero() {
    // Shard 0: tiny values; shard 1: all zeros; shard 2: the bulk; shard 3: one huge
    // outlier alone; shard 4: subnormals.
    let mut all: Vec<f32> = (1..200).map(|i| i as f32 * 1e-6).collect();
    let c1 = all.len();
    all.extend(std::iter::repeat_n(0.0, 300));
    let c2 = all.len();
    all.extend(data(3, 5000));
    let c3 = all.len();
    all.push(-3.0e4);
    let c4 = all.len();
    all.extend((1..50).map(f32::from_bits));
    let single = shard_stats(&[&all], 0, 1);
    let want = amaxes(&single);
    for order in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1, 3, 0, 4, 2]] {
        let m = merged(&all, &[c1, c2, c3, c4], 64, &order);
        assert_eq!(amaxes(&m), want, "order {order:?}");
        assert_eq!(m.quantizers["act"], single.quantizers["act"]);
    }
    assert_eq!(f32::from_bits(want[6]), 3.0e4);
}

#[test]
fn refusals_name_the_quantizer_the_shard_and_the_file() {
    let a = shard_stats(&[&[1.0, 2.0]], 0, 3);
    let b = shard_stats(&[&[3.0]], 1, 3);
    // A duplicate shard.
    let mut m = a.clone();
    let e = m.merge(&a).unwrap_err().to_string();
    assert!(e.contains("shard 0/3 is given twice"), "{e}");
    assert_eq!(m, a, "a failed merge leaves the statistics unchanged");
    // Another shard count.
    let c = shard_stats(&[&[3.0]], 1, 4);
    let e = m.merge(&c).unwrap_err().to_string();
    assert!(
        e.contains("4 shards cannot merge with statistics of 3"),
        "{e}"
    );
    // Another placement: a quantizer reading another tensor, or missing.
    let mut other = b.clone();
    other.quantizers.get_mut("act").unwrap().reads = "y".into();
    let e = m.merge(&other).unwrap_err().to_string();
    assert!(
        e.contains("quantizer `act` reads x") && e.contains("and y"),
        "{e}"
    );
    let mut other = b.clone();
    other.quantizers.remove("act_max");
    let e = m.merge(&other).unwrap_err().to_string();
    assert!(e.contains("quantizer `act_max`"), "{e}");
    // Another model with the same quantizers.
    let mut other = b.clone();
    other.fingerprint = fingerprint("test", [b"other".as_slice()]);
    let e = m.merge(&other).unwrap_err().to_string();
    assert!(e.contains("fingerprints differ"), "{e}");
    // Files: a gap is named, and a bad file by its path.
    let dir = std::env::temp_dir().join(format!("qdq-stats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pa, pb, pc) = (dir.join("a.json"), dir.join("b.json"), dir.join("c.json"));
    a.save(&pa).unwrap();
    b.save(&pb).unwrap();
    let e = merge_files(&[&pa, &pb], false, |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 of 3 shards are missing: 2/3"), "{e}");
    assert_eq!(
        merge_files(&[&pa, &pb], true, |_| Ok(()))
            .unwrap()
            .shards
            .done,
        [0, 1]
    );
    std::fs::write(
        &pc,
        "{\"format\":\"qdq-calibration-stats\",\"format_version\":2}",
    )
    .unwrap();
    let e = merge_files(&[&pa, &pc], false, |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("c.json") && e.contains("format_version Some(2)"),
        "{e}"
    );
    std::fs::write(&pc, "[1,2]").unwrap();
    let e = ModelStats::load(&pc).unwrap_err().to_string();
    assert!(
        e.contains("c.json") && e.contains("not a qdq statistics file"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fingerprint_is_fnv1a_of_length_prefixed_parts() {
    // FNV-1a 64 of the empty input is its offset basis; of one empty part, the hash of
    // eight zero bytes.
    assert_eq!(fingerprint("k", []), "k:cbf29ce484222325");
    assert_ne!(fingerprint("k", [b"".as_slice()]), fingerprint("k", []));
    // Boundaries count: ["ab"] and ["a", "b"] differ.
    assert_ne!(
        fingerprint("k", [b"ab".as_slice()]),
        fingerprint("k", [b"a".as_slice(), b"b".as_slice()])
    );
}

#[test]
fn hostile_states_are_typed_errors() {
    let good = serde_json::to_string(&shard_stats(&[&[1.0, 2.0, 0.5]], 0, 1)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = v.clone();
        f(&mut v);
        ModelStats::parse(&v.to_string()).unwrap_err().to_string()
    };
    let e = edit(&|v| v["quantizers"]["act"]["calibrator"]["counts"] = serde_json::json!([1, 2]));
    assert!(
        e.contains("quantizer `act`") && e.contains("dyadic grid of 2 bins"),
        "{e}"
    );
    let e = edit(&|v| v["quantizers"]["act"]["calibrator"]["num_bins"] = serde_json::json!(0));
    assert!(e.contains("num_bins 0"), "{e}");
    let e = edit(&|v| v["quantizers"]["act"]["calibrator"]["max_abs"] = serde_json::json!(-1.0));
    assert!(e.contains("max_abs -1"), "{e}");
    let e =
        edit(&|v| v["quantizers"]["act"]["calibrator"]["counts"][0] = serde_json::json!(u64::MAX));
    assert!(e.contains("overflows"), "{e}");
    let e = edit(&|v| v["quantizers"]["act"]["calibrator"]["bins"] = serde_json::json!("zeros"));
    assert!(e.contains("`zeros` bins"), "{e}");
    let e = edit(&|v| v["shards"] = serde_json::json!({"count": 2, "done": [1, 1]}));
    assert!(e.contains("not distinct slices"), "{e}");
    let e = edit(&|v| v["shards"] = serde_json::json!({"count": 0, "done": []}));
    assert!(e.contains("shard count 0"), "{e}");
    let e = edit(&|v| {
        v["quantizers"]["act_max"]["calibrator"]["amax"] =
            serde_json::json!([[1.0], [1u64 << 40, 1u64 << 40]])
    });
    assert!(e.contains("does not hold 1 values"), "{e}");
    let e = edit(&|v| v["extra"] = serde_json::json!(1));
    assert!(e.contains("unknown field `extra`"), "{e}");
}
