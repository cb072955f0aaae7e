//! Calibration statistics files: every quantizer's collected state (running max,
//! histogram counts, grid and settings), written per shard of the data and merged
//! exactly, so that calibration split over N processes or machines gives bit for bit
//! the amaxes of one pass (histograms on [`super::Grid::Dyadic`]; see its notes).
//!
//! The file is JSON (`format: "qdq-calibration-stats"`, `format_version: 1`):
//!
//! ```json
//! {"format":"qdq-calibration-stats","format_version":1,
//!  "fingerprint":"onnx:5f0c9b2a7d31e4c8","shards":{"count":4,"done":[2]},"items":2500,
//!  "quantizers":{"conv1_in":{"reads":"x","calibrator":{"kind":"histogram", ...}}}}
//! ```
//!
//! `fingerprint` hashes what the statistics belong to (the model's structure and its
//! quantizer placement, see [`fingerprint`]); each quantizer also names the tensor (or
//! module path and shape) it `reads`, so a merge of files from different models or
//! placements is refused naming the quantizer that differs. `shards` records which of
//! `count` slices of the data the file covers, so duplicates and gaps are named too.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::histogram::HistogramState;
use super::max::MaxState;
use super::{Calibrator, HistogramCalibrator, MaxCalibrator};
use crate::error::{Error, Result};

/// `format` of a statistics file.
pub const STATS_FORMAT: &str = "qdq-calibration-stats";

/// `format_version` this build writes and reads.
pub const STATS_FORMAT_VERSION: u32 = 1;

/// Largest statistics file read (256 MiB): far above what a model's histograms take
/// (about 10 KB per quantizer), and a bound on what reading one may allocate (the
/// text, and at most 4x its size in counts: each count takes at least 2 bytes of JSON).
pub const MAX_STATS_BYTES: u64 = 1 << 28;

/// Most shards a run may be split into.
pub const MAX_SHARDS: u32 = 1 << 20;

/// A calibrator's collected state, tagged by `kind` (`max` or `histogram`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CalibratorState {
    /// A [`MaxCalibrator`]'s.
    Max(MaxState),
    /// A [`HistogramCalibrator`]'s.
    Histogram(HistogramState),
}

impl Calibrator {
    /// The collected state, for a statistics file.
    pub fn state(&self) -> CalibratorState {
        match self {
            Calibrator::Max(c) => CalibratorState::Max(c.state()),
            Calibrator::Histogram(c) => CalibratorState::Histogram(c.state()),
        }
    }

    /// The calibrator holding `state`.
    ///
    /// # Errors
    /// An inconsistent state ([`MaxCalibrator::from_state`],
    /// [`HistogramCalibrator::from_state`]).
    pub fn from_state(state: &CalibratorState) -> Result<Self> {
        Ok(match state {
            CalibratorState::Max(s) => Calibrator::Max(MaxCalibrator::from_state(s)?),
            CalibratorState::Histogram(s) => {
                Calibrator::Histogram(HistogramCalibrator::from_state(s)?)
            }
        })
    }

    /// Folds `other`'s collected data into this one ([`MaxCalibrator::merge`],
    /// [`HistogramCalibrator::merge`]).
    ///
    /// # Errors
    /// Calibrators of different kinds or settings; this one is then unchanged.
    pub fn merge(&mut self, other: &Calibrator) -> Result<()> {
        match (self, other) {
            (Calibrator::Max(a), Calibrator::Max(b)) => a.merge(b),
            (Calibrator::Histogram(a), Calibrator::Histogram(b)) => {
                let (sa, sb) = (a.state(), b.state());
                let settings =
                    |s: &HistogramState| (s.num_bits, s.unsigned, s.num_bins, s.grid, s.skip_zeros);
                if settings(&sa) != settings(&sb) {
                    return Err(Error::Unsupported {
                        what: "merging histograms with different settings",
                        format: format!(
                            "(num_bits, unsigned, num_bins, grid, skip_zeros) {:?} into {:?}",
                            settings(&sb),
                            settings(&sa)
                        ),
                    });
                }
                a.merge(b)
            }
            (a, b) => Err(Error::Unsupported {
                what: "merging calibrators of different kinds",
                format: format!("a {} into a {}", b.kind(), a.kind()),
            }),
        }
    }
}

/// Which of `count` slices of the data a statistics file covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shards {
    /// Number of slices the data was split into (1 to [`MAX_SHARDS`]).
    pub count: u32,
    /// The slices covered, 0-based (`--shard K/N` has K in 0..N), ascending, no
    /// repeats.
    pub done: Vec<u32>,
}

impl Shards {
    /// Slice `index` of `count`.
    ///
    /// # Errors
    /// `count` is 0 or above [`MAX_SHARDS`], or `index >= count`.
    pub fn one(index: u32, count: u32) -> Result<Self> {
        let s = Self {
            count,
            done: vec![index],
        };
        s.check()?;
        Ok(s)
    }

    /// The slices not covered.
    pub fn missing(&self) -> Vec<u32> {
        (0..self.count)
            .filter(|k| self.done.binary_search(k).is_err())
            .collect()
    }

    fn check(&self) -> Result<()> {
        if !(1..=MAX_SHARDS).contains(&self.count) {
            return Err(Error::Stats(format!(
                "shard count {} is not in 1..={MAX_SHARDS}",
                self.count
            )));
        }
        let ascending = self.done.windows(2).all(|w| w[0] < w[1]);
        if !ascending || self.done.last().is_some_and(|&k| k >= self.count) {
            return Err(Error::Stats(format!(
                "shards {:?} are not distinct slices of 0..{}",
                self.done, self.count
            )));
        }
        Ok(())
    }
}

/// One quantizer's statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizerStats {
    /// What the quantizer reads: the ONNX tensor, or a burn module's path and shape.
    pub reads: String,
    /// Its calibrator's state.
    pub calibrator: CalibratorState,
}

/// The statistics a calibration run collected over (a shard of) its data, for every
/// quantizer of one model: what a statistics file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelStats {
    /// [`STATS_FORMAT`].
    pub format: String,
    /// [`STATS_FORMAT_VERSION`].
    pub format_version: u32,
    /// What the statistics belong to ([`fingerprint`]).
    pub fingerprint: String,
    /// Which slices of the data they cover.
    pub shards: Shards,
    /// Number of data items collected.
    pub items: u64,
    /// Statistics by quantizer name.
    pub quantizers: BTreeMap<String, QuantizerStats>,
}

/// The header read first, so that another file or version is named before its body
/// is parsed.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    format_version: Option<u32>,
}

/// A stable 64-bit FNV-1a hash of `parts` (each length-prefixed, so that the parts'
/// boundaries count), as 16 hex digits after `kind:` (`onnx:`, `burn:`): the
/// fingerprint of a model and its quantizer placement.
///
/// Written out (six lines) because the `fnv` crate, although in the dependency tree,
/// changes burn's feature resolution when added here, and a stable hash must not
/// depend on Rust's `DefaultHasher`, which may change between releases.
pub fn fingerprint<'a>(kind: &str, parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for p in parts {
        for &b in (p.len() as u64).to_le_bytes().iter().chain(p) {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }
    format!("{kind}:{h:016x}")
}

fn io_err(path: &Path, message: String) -> Error {
    Error::Io {
        path: path.display().to_string(),
        message,
    }
}

impl ModelStats {
    /// Statistics of `quantizers` (name → what it reads, its calibrator) for shard
    /// `shards` of the data, `items` items of it, of the model `fingerprint`.
    pub fn new<'a>(
        fingerprint: String,
        shards: Shards,
        items: u64,
        quantizers: impl IntoIterator<Item = (String, String, &'a Calibrator)>,
    ) -> Self {
        Self {
            format: STATS_FORMAT.into(),
            format_version: STATS_FORMAT_VERSION,
            fingerprint,
            shards,
            items,
            quantizers: quantizers
                .into_iter()
                .map(|(name, reads, c)| {
                    let calibrator = c.state();
                    (name, QuantizerStats { reads, calibrator })
                })
                .collect(),
        }
    }

    /// The calibrator of every quantizer, by name.
    ///
    /// # Errors
    /// An inconsistent state, naming the quantizer.
    pub fn calibrators(&self) -> Result<BTreeMap<String, Calibrator>> {
        self.quantizers
            .iter()
            .map(|(name, q)| {
                let c = Calibrator::from_state(&q.calibrator).map_err(|e| Error::Quantizer {
                    name: name.clone(),
                    source: Box::new(e),
                })?;
                Ok((name.clone(), c))
            })
            .collect()
    }

    /// Checks that `other` describes the same model and placement as this, naming the
    /// first quantizer that differs (missing on one side, or reading another tensor).
    ///
    /// # Errors
    /// [`Error::Stats`] saying what differs.
    pub fn check_same_model(&self, other: &ModelStats) -> Result<()> {
        for (name, q) in &self.quantizers {
            match other.quantizers.get(name) {
                None => {
                    return Err(Error::Stats(format!(
                        "quantizer `{name}` (reading {}) is in one statistics file but not the other: they come from different models or placements",
                        q.reads
                    )));
                }
                Some(o) if o.reads != q.reads => {
                    return Err(Error::Stats(format!(
                        "quantizer `{name}` reads {} in one statistics file and {} in the other: different models or placements",
                        q.reads, o.reads
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some((name, q)) = other
            .quantizers
            .iter()
            .find(|(n, _)| !self.quantizers.contains_key(*n))
        {
            return Err(Error::Stats(format!(
                "quantizer `{name}` (reading {}) is in one statistics file but not the other: they come from different models or placements",
                q.reads
            )));
        }
        if self.fingerprint != other.fingerprint {
            return Err(Error::Stats(format!(
                "model fingerprints differ ({} and {}): the same quantizers, but another model structure",
                self.fingerprint, other.fingerprint
            )));
        }
        Ok(())
    }

    /// Folds `other` (statistics of other slices of the same data, for the same model)
    /// into this: each quantizer's calibrators merged, the slices and items added.
    /// Merging is exact: the result does not depend on the order of the merges.
    ///
    /// # Errors
    /// [`Error::Stats`] for another model or placement ([`ModelStats::check_same_model`]),
    /// another shard count, or a slice both cover (named); a calibrator merge error,
    /// naming the quantizer. On error this is unchanged.
    pub fn merge(&mut self, other: &ModelStats) -> Result<()> {
        self.check_same_model(other)?;
        if self.shards.count != other.shards.count {
            return Err(Error::Stats(format!(
                "statistics of {} shards cannot merge with statistics of {} shards",
                other.shards.count, self.shards.count
            )));
        }
        if let Some(k) = other
            .shards
            .done
            .iter()
            .find(|k| self.shards.done.binary_search(k).is_ok())
        {
            return Err(Error::Stats(format!(
                "shard {k}/{} is given twice",
                self.shards.count
            )));
        }
        let mut merged = self.calibrators()?;
        let theirs = other.calibrators()?;
        for (name, c) in &mut merged {
            c.merge(&theirs[name]).map_err(|e| Error::Quantizer {
                name: name.clone(),
                source: Box::new(e),
            })?;
        }
        for (name, q) in &mut self.quantizers {
            q.calibrator = merged[name].state();
        }
        self.shards.done.extend(&other.shards.done);
        self.shards.done.sort_unstable();
        self.items = self.items.saturating_add(other.items);
        Ok(())
    }

    /// Writes the statistics as JSON through the one safe write ([`crate::io`]).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_with(
            path,
            |f| {
                let mut w = BufWriter::new(f);
                serde_json::to_writer(&mut w, self).map_err(std::io::Error::other)?;
                w.write_all(b"\n")?;
                w.flush()
            },
            |_| Ok(()),
        )
        .map_err(|e| io_err(path, e.to_string()))
    }

    /// Reads statistics written by [`ModelStats::save`], checking everything in them
    /// (a hostile file gets a typed error, never a panic or an unbounded allocation).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file: unreadable, over [`MAX_STATS_BYTES`], not a
    /// statistics file, another `format_version`, malformed JSON, an inconsistent
    /// shard list or calibrator state (the quantizer named).
    pub fn load(path: &Path) -> Result<Self> {
        let err = |m: String| io_err(path, m);
        let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let mut text = String::new();
        file.take(MAX_STATS_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| err(e.to_string()))?;
        if text.len() as u64 > MAX_STATS_BYTES {
            return Err(err(format!(
                "larger than {MAX_STATS_BYTES} bytes; not a statistics file"
            )));
        }
        Self::parse(&text).map_err(|e| err(e.to_string()))
    }

    /// [`ModelStats::load`] of JSON text.
    ///
    /// # Errors
    /// As [`ModelStats::load`], without the file name.
    pub fn parse(text: &str) -> Result<Self> {
        let header: Header = serde_json::from_str(text)
            .map_err(|e| Error::Stats(format!("not a qdq statistics file ({e})")))?;
        if header.format.as_deref() != Some(STATS_FORMAT) {
            return Err(Error::Stats(format!(
                "not a qdq statistics file (format {:?}, expected \"{STATS_FORMAT}\")",
                header.format.unwrap_or_default()
            )));
        }
        if header.format_version != Some(STATS_FORMAT_VERSION) {
            return Err(Error::Stats(format!(
                "statistics format_version {:?}; this qdq reads version {STATS_FORMAT_VERSION}",
                header.format_version
            )));
        }
        let stats: ModelStats = serde_json::from_str(text)
            .map_err(|e| Error::Stats(format!("malformed statistics ({e})")))?;
        stats.shards.check()?;
        if stats.shards.done.is_empty() {
            return Err(Error::Stats("the statistics cover no shard".into()));
        }
        stats.calibrators()?;
        Ok(stats)
    }
}

/// Merges the statistics of every file in `paths` (the files of all shards of one
/// run), each first given to `check` (e.g. that it belongs to the model at hand),
/// refusing duplicated shards and, unless `partial`, missing ones.
///
/// # Errors
/// [`Error::Io`] naming the file that cannot be read, fails `check` or cannot be
/// merged (with the reason: another model or placement, a repeated shard, ...);
/// [`Error::Stats`] naming the missing shards.
pub fn merge_files(
    paths: &[&Path],
    partial: bool,
    check: impl Fn(&ModelStats) -> Result<()>,
) -> Result<ModelStats> {
    let Some((first, rest)) = paths.split_first() else {
        return Err(Error::Stats("no statistics files to merge".into()));
    };
    let load = |p: &Path| {
        let stats = ModelStats::load(p)?;
        check(&stats).map_err(|e| io_err(p, e.to_string()))?;
        Ok::<_, Error>(stats)
    };
    let mut merged = load(first)?;
    for p in rest {
        let stats = load(p)?;
        merged
            .merge(&stats)
            .map_err(|e| io_err(p, format!("cannot merge with {} ({e})", first.display())))?;
    }
    let missing = merged.shards.missing();
    if !partial && !missing.is_empty() {
        let named: Vec<String> = missing
            .iter()
            .take(16)
            .map(|k| format!("{k}/{}", merged.shards.count))
            .collect();
        return Err(Error::Stats(format!(
            "{} of {} shards are missing: {}{}",
            missing.len(),
            merged.shards.count,
            named.join(", "),
            if missing.len() > named.len() {
                ", ..."
            } else {
                ""
            }
        )));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests;
