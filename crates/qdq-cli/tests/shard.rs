//! Sharded calibration through the binary: N local `qdq calibrate --stats --shard k/N`
//! processes on the bundled demo data, then `--merge`, give byte for byte the cache of
//! one unsharded `qdq calibrate`; `quantize --stats` the same model as `quantize
//! --calib`; and bad merges are refused naming the file, shard or quantizer.

mod common;
use common::{qdq, s, scratch};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Each shard's environment variables (`None`: pass `--shard k/N` instead).
type ShardEnv<'a> = &'a dyn Fn(usize) -> Option<Vec<(String, String)>>;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "qdq failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "qdq should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the `count` shards' `qdq calibrate --stats` as parallel processes (`env` sets
/// each one's variables: `None` gives `--shard k/count`); returns the stats files and
/// each process's stdout.
fn shards(dir: &Path, count: usize, env: ShardEnv, extra: &[&str]) -> (Vec<PathBuf>, Vec<String>) {
    let model = data_dir().join("model.onnx");
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let paths: Vec<PathBuf> = (0..count)
        .map(|k| dir.join(format!("s{k}-of-{count}.json")))
        .collect();
    let children: Vec<_> = paths
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_qdq"));
            c.args([
                "calibrate",
                s(&model),
                "--calib",
                s(&calib),
                "--stats",
                s(p),
            ]);
            c.args(["--batch", "13"]).args(extra);
            for v in [
                "SLURM_ARRAY_TASK_ID",
                "SLURM_ARRAY_TASK_COUNT",
                "JOB_COMPLETION_INDEX",
            ] {
                c.env_remove(v);
            }
            match env(k) {
                Some(vars) => {
                    c.envs(vars);
                }
                None => {
                    c.args(["--shard", &format!("{k}/{count}")]);
                }
            }
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs = children
        .into_iter()
        .map(|c| ok(&c.wait_with_output().unwrap()))
        .collect();
    (paths, outs)
}

/// `qdq calibrate` of the demo model: on the data (`merge` empty) or merging `merge`.
fn cache(dir: &Path, name: &str, method: &str, merge: &[PathBuf]) -> Vec<u8> {
    let model = data_dir().join("model.onnx");
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let out = dir.join(name);
    let mut args = vec![
        "calibrate",
        s(&model),
        "-o",
        s(&out),
        "--method",
        method,
        "--json",
    ];
    if merge.is_empty() {
        args.extend(["--calib", s(&calib)]);
    } else {
        args.push("--merge");
        args.extend(merge.iter().map(|p| s(p)));
    }
    ok(&qdq(&args));
    std::fs::read(&out).unwrap()
}

#[test]
fn merged_shards_give_the_single_process_cache_byte_for_byte() {
    let dir = scratch("shard-merge");
    let methods = ["entropy", "mse", "percentile=99.9", "max"];
    let single: Vec<Vec<u8>> = methods
        .iter()
        .map(|m| cache(&dir, &format!("one-{m}.json"), m, &[]))
        .collect();
    // The methods give different caches: the comparison is not of one trivial cache.
    assert_ne!(single[0], single[3]);
    assert_ne!(single[1], single[2]);
    // 3 shards (256 items: 85, 85, 86) by --shard, 4 by Slurm's job array (task ids
    // 1..=4), 2 by a Kubernetes indexed Job; each merge in another file order.
    let slurm = |k: usize| {
        Some(vec![
            ("SLURM_ARRAY_TASK_ID".into(), (k + 1).to_string()),
            ("SLURM_ARRAY_TASK_MIN".into(), "1".into()),
            ("SLURM_ARRAY_TASK_COUNT".into(), "4".into()),
        ])
    };
    let k8s = |k: usize| {
        Some(vec![
            ("JOB_COMPLETION_INDEX".into(), k.to_string()),
            ("QDQ_SHARD_COUNT".into(), "2".into()),
        ])
    };
    let runs: [(usize, ShardEnv, &str); 3] = [
        (3, &|_| None, "--shard"),
        (4, &slurm, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"),
        (2, &k8s, "JOB_COMPLETION_INDEX/QDQ_SHARD_COUNT"),
    ];
    for (count, env, source) in runs {
        let (mut paths, outs) = shards(&dir, count, env, &[]);
        for (k, out) in outs.iter().enumerate() {
            assert!(
                out.contains(&format!("shard {k}/{count} (from {source})")),
                "{out}"
            );
        }
        paths.reverse();
        for (m, want) in methods.iter().zip(&single) {
            let got = cache(&dir, &format!("merged-{count}-{m}.json"), m, &paths);
            assert_eq!(&got, want, "{count} shards, method {m}");
        }
    }

    // quantize --stats writes the model quantize --calib writes.
    let model = data_dir().join("model.onnx");
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let (paths, _) = shards(&dir, 3, &|_| None, &[]);
    let (q1, q2) = (dir.join("q1.onnx"), dir.join("q2.onnx"));
    let m = ["--method", "entropy", "--json"];
    ok(&qdq(&[
        &["quantize", s(&model), "-o", s(&q1), "--calib", s(&calib)],
        &m[..],
    ]
    .concat()));
    let mut args = vec!["quantize", s(&model), "-o", s(&q2), "--stats"];
    args.extend(paths.iter().map(|p| s(p)));
    ok(&qdq(&[&args[..], &m[..]].concat()));
    assert_eq!(std::fs::read(&q1).unwrap(), std::fs::read(&q2).unwrap());
}

#[test]
fn bad_merges_are_refused_by_name() {
    let dir = scratch("shard-refusals");
    let model = data_dir().join("model.onnx");
    let (paths, _) = shards(&dir, 3, &|_| None, &[]);
    let out = dir.join("c.json");
    let merge = |files: &[&PathBuf], extra: &[&str]| {
        let mut args = vec!["calibrate", s(&model), "-o", s(&out), "--merge"];
        args.extend(files.iter().map(|p| s(p)));
        args.extend(["--method", "entropy"]);
        qdq(&[&args[..], extra].concat())
    };
    // A shard given twice, named with its file.
    let e = failed(&merge(&[&paths[0], &paths[1], &paths[1]], &[]));
    assert!(
        e.contains("shard 1/3 is given twice") && e.contains("s1-of-3.json"),
        "{e}"
    );
    // A missing shard.
    let e = failed(&merge(&[&paths[0], &paths[2]], &[]));
    assert!(e.contains("1 of 3 shards are missing: 1/3"), "{e}");
    // Statistics of another placement: the quantizer and the file are named.
    let e = failed(&merge(
        &[&paths[0], &paths[1], &paths[2]],
        &["--skip-op", "MatMul"],
    ));
    assert!(
        e.contains("s0-of-3.json")
            && e.contains("do not belong to this model")
            && e.contains("quantizer `"),
        "{e}"
    );
    // auto needs data.
    let mut args = vec!["calibrate", s(&model), "-o", s(&out), "--merge"];
    args.extend(paths.iter().map(|p| s(p)));
    let e = failed(&qdq(&args));
    assert!(
        e.contains("--method auto (the default)") && e.contains("--method max, entropy"),
        "{e}"
    );
    // A damaged file, named.
    std::fs::write(
        &paths[2],
        b"{\"format\":\"qdq-calibration-stats\",\"format_version\":9}",
    )
    .unwrap();
    let e = failed(&merge(&[&paths[0], &paths[1], &paths[2]], &[]));
    assert!(
        e.contains("s2-of-3.json") && e.contains("format_version Some(9)"),
        "{e}"
    );
    assert!(!out.exists(), "a refused merge writes no cache");
    // Flags: a shard outside its count, --shard without --stats, no --calib.
    let calib = data_dir().join("calib-images-idx3-ubyte.gz");
    let e = failed(&qdq(&[
        "calibrate",
        s(&model),
        "--calib",
        s(&calib),
        "--stats",
        s(&out),
        "--shard",
        "3/3",
    ]));
    assert!(e.contains("expected K/N with 0 <= K < N"), "{e}");
    let e = failed(&qdq(&[
        "calibrate",
        s(&model),
        "--calib",
        s(&calib),
        "-o",
        s(&out),
        "--shard",
        "0/3",
    ]));
    assert!(e.contains("--stats"), "{e}");
    let e = failed(&qdq(&["calibrate", s(&model), "-o", s(&out)]));
    assert!(e.contains("--calib"), "{e}");
}
