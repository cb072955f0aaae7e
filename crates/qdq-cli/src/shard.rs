//! Sharded calibration from the command line: `qdq calibrate --stats OUT [--shard K/N]`
//! collects one slice of the data into a statistics file; `qdq calibrate --merge
//! STATS...` and `qdq quantize --stats STATS...` merge the files of all slices into the
//! cache one unsharded pass gives (bit for bit).
//!
//! The shard comes from `--shard K/N` (K in 0..N), else from Slurm's job array
//! (`SLURM_ARRAY_TASK_ID` less `SLURM_ARRAY_TASK_MIN`, of `SLURM_ARRAY_TASK_COUNT`),
//! else from a Kubernetes indexed Job (`JOB_COMPLETION_INDEX`, of `--shard-count` or
//! `QDQ_SHARD_COUNT`); with none of them, the whole data is shard 0/1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use qdq::calib::stats::{ModelStats, Shards, merge_files};
use qdq_onnx::quantize::{Calibration, CalibrationCache, MethodChoice, fingerprint};

use crate::pipeline::{Setup, collect};
use crate::report::report;
use crate::{CalibArgs, Fallible, data_args};

/// Sharding flags of `qdq calibrate`.
#[derive(Args, Clone, Default)]
pub(crate) struct ShardArgs {
    /// Write this slice's statistics (every quantizer's histogram or max, JSON) here
    /// instead of a cache; merge the files of all slices with --merge.
    #[arg(long, value_name = "OUT", conflicts_with = "output")]
    pub stats: Option<PathBuf>,
    /// The slice of the calibration items to collect: K of N (K in 0..N), contiguous
    /// runs of the items (whole batches where the model fixes its batch size). Default:
    /// from Slurm's job array or a Kubernetes indexed Job, else all the data (0/1).
    #[arg(long, value_name = "K/N", requires = "stats", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// Number of slices for a Kubernetes indexed Job (its `completions`; or set
    /// QDQ_SHARD_COUNT), whose JOB_COMPLETION_INDEX gives K.
    #[arg(long, value_name = "N", requires = "stats", conflicts_with = "shard")]
    pub shard_count: Option<u32>,
    /// Merge these statistics files (all slices of one run, for MODEL) into the cache
    /// -o instead of reading data; --method is then max, entropy, mse or percentile.
    #[arg(long, value_name = "STATS", num_args = 1.., conflicts_with_all = ["calib", "stats"])]
    pub merge: Vec<PathBuf>,
}

/// `K/N` with `N >= 1` and `K < N`.
fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let parse = |v: &str| v.trim().parse::<u32>().ok();
    match s.split_once('/').map(|(k, n)| (parse(k), parse(n))) {
        Some((Some(k), Some(n))) if k < n && n <= qdq::calib::stats::MAX_SHARDS => Ok((k, n)),
        _ => Err(format!(
            "`{s}`: expected K/N with 0 <= K < N <= {} (K counts from 0), e.g. 0/4",
            qdq::calib::stats::MAX_SHARDS
        )),
    }
}

/// The shard to collect and where it came from: `--shard`, else Slurm's or
/// Kubernetes' variables (read through `env`), else the whole data.
///
/// # Errors
/// A variable that is not a number, a Slurm task without a count, an index outside
/// its count, a Kubernetes index without a count.
pub(crate) fn shard_source(
    shard: Option<(u32, u32)>,
    count_flag: Option<u32>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(u32, u32, String), String> {
    if let Some((k, n)) = shard {
        return Ok((k, n, "--shard".into()));
    }
    let num = |name: &str| -> Result<Option<u32>, String> {
        env(name)
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{name}={v} is not a whole number"))
            })
            .transpose()
    };
    let checked = |k: u32, n: u32, source: String| {
        if n == 0 || k >= n || n > qdq::calib::stats::MAX_SHARDS {
            return Err(format!(
                "{source}: shard {k} of {n} is not a slice (0 <= K < N)"
            ));
        }
        Ok((k, n, source))
    };
    if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let n = num("SLURM_ARRAY_TASK_COUNT")?.ok_or(
            "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: run as a job array (sbatch --array=0-N)",
        )?;
        let k = id.checked_sub(min).ok_or(format!(
            "SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"
        ))?;
        return checked(k, n, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT".into());
    }
    if let Some(k) = num("JOB_COMPLETION_INDEX")? {
        let (n, from) = match (count_flag, num("QDQ_SHARD_COUNT")?) {
            (Some(n), _) => (n, "--shard-count"),
            (None, Some(n)) => (n, "QDQ_SHARD_COUNT"),
            (None, None) => {
                return Err("JOB_COMPLETION_INDEX is set: give the number of shards (the Job's completions) with --shard-count or QDQ_SHARD_COUNT".into());
            }
        };
        return checked(k, n, format!("JOB_COMPLETION_INDEX/{from}"));
    }
    if let Some(n) = count_flag {
        return Err(format!(
            "--shard-count {n} without JOB_COMPLETION_INDEX: give --shard K/{n}"
        ));
    }
    Ok((
        0,
        1,
        "no --shard, Slurm or Kubernetes index: all the data".into(),
    ))
}

/// `qdq calibrate --stats OUT`: collects slice K of N of the calibration items and
/// writes its statistics.
pub(crate) fn run_collect(
    c: &CalibArgs,
    s: &Setup,
    out: &Path,
    (k, n, source): (u32, u32, String),
    json: bool,
) -> Fallible<ExitCode> {
    let data = data_args::load(&s.float, ("--calib", &c.calib), None, &c.pre)?;
    let total = data.len();
    let data = data.shard(k as usize, n as usize)?;
    let methods = s.methods(c);
    let (calib, _) = collect(
        &s.prepared,
        &s.float,
        &data,
        (c.batch, true),
        &methods,
        json,
    )?;
    let stats = calib.stats(
        fingerprint(&s.prepared),
        Shards::one(k, n)?,
        data.len() as u64,
    );
    stats.save(out)?;
    if json {
        let line = serde_json::json!({
            "stats": out.display().to_string(),
            "shard": k,
            "shards": n,
            "shard_source": source,
            "items": data.len(),
            "total_items": total,
            "quantizers": stats.quantizers.len(),
        });
        println!("{line}");
    } else {
        println!(
            "shard {k}/{n} (from {source}): {} of {total} items, {} quantizers; statistics written to {}",
            data.len(),
            stats.quantizers.len(),
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The cache of the merged statistics `paths` for the setup's model, by its methods
/// (`auto` refused: it measures candidates on data, which a merge does not read).
///
/// # Errors
/// `auto`; a file that cannot be read, belongs to another model or placement, repeats
/// a shard (each named); missing shards; a method that fails on a histogram.
pub(crate) fn merged_cache(
    c: &CalibArgs,
    s: &Setup,
    paths: &[PathBuf],
) -> Fallible<CalibrationCache> {
    let methods = s.methods(c);
    if methods.auto() {
        let auto = if s.method == MethodChoice::Auto {
            "--method auto (the default)".to_string()
        } else {
            "--method-for ...=auto".to_string()
        };
        return Err(format!(
            "{auto} measures each candidate amax on calibration data, which merging statistics does not read; give --method max, entropy, mse or percentile=P (e.g. --method percentile=99.99), or run auto unsharded"
        )
        .into());
    }
    let graph = s
        .prepared
        .model
        .graph
        .as_ref()
        .ok_or("the model has no graph")?;
    let calib = Calibration::new(graph, &s.prepared.sites, false)?;
    let print = fingerprint(&s.prepared);
    let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let merged = merge_files(&paths, false, |stats: &ModelStats| {
        calib
            .check_stats(&print, stats)
            .map_err(|e| qdq::Error::Stats(e.to_string()))
    })?;
    let calib = calib.with_stats(&print, &merged)?;
    let (method, per) = methods.fixed();
    Ok(calib.cache(method, &per)?)
}

/// `qdq calibrate MODEL --merge STATS... -o cache.json`.
pub(crate) fn run_merge(
    c: &CalibArgs,
    s: &Setup,
    paths: &[PathBuf],
    output: &Path,
    json: bool,
) -> Fallible<ExitCode> {
    let cache = merged_cache(c, s, paths)?;
    cache.save(output)?;
    report(output, (&s.prepared, &cache), None, None, json);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|v| v.0 == k).map(|v| v.1.to_string())
    }

    #[test]
    fn shard_comes_from_the_flag_slurm_or_kubernetes() {
        let none = env(&[]);
        assert_eq!(
            shard_source(Some((2, 4)), None, &none).unwrap(),
            (2, 4, "--shard".into())
        );
        let (k, n, src) = shard_source(None, None, &none).unwrap();
        assert_eq!((k, n), (0, 1));
        assert!(src.contains("all the data"), "{src}");
        // Slurm, with an array that starts at 1.
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        let (k, n, src) = shard_source(None, None, &slurm).unwrap();
        assert_eq!(
            (k, n, src.as_str()),
            (2, 4, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
        );
        let e = shard_source(None, None, &env(&[("SLURM_ARRAY_TASK_ID", "3")])).unwrap_err();
        assert!(e.contains("SLURM_ARRAY_TASK_COUNT is not"), "{e}");
        let e = shard_source(
            None,
            None,
            &env(&[
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ]),
        )
        .unwrap_err();
        assert!(e.contains("shard 4 of 4"), "{e}");
        // Kubernetes.
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1"), ("QDQ_SHARD_COUNT", "3")]);
        assert_eq!(
            shard_source(None, None, &k8s).unwrap(),
            (1, 3, "JOB_COMPLETION_INDEX/QDQ_SHARD_COUNT".into())
        );
        assert_eq!(shard_source(None, Some(5), &k8s).unwrap().1, 5);
        let e = shard_source(None, None, &env(&[("JOB_COMPLETION_INDEX", "x")])).unwrap_err();
        assert!(
            e.contains("JOB_COMPLETION_INDEX=x is not a whole number"),
            "{e}"
        );
        let e = shard_source(None, None, &env(&[("JOB_COMPLETION_INDEX", "0")])).unwrap_err();
        assert!(e.contains("--shard-count"), "{e}");
        assert!(parse_shard("4/4").is_err() && parse_shard("1/0").is_err());
        assert_eq!(parse_shard(" 3/8").unwrap(), (3, 8));
    }
}
