//! Sharded calibration of an ONNX graph: a [`Calibration`]'s collected state as
//! [`ModelStats`] (one file per shard of the data), and a calibration rebuilt from the
//! merged statistics of all shards, which gives the cache of one pass over all the data
//! bit for bit (histograms on the dyadic grid merge exactly).

use qdq::calib::stats::{ModelStats, Shards};
use qdq::calib::{Calibrator, HistogramCalibrator, MaxCalibrator};

use super::Prepared;
use super::calibrate::{Calibration, Stats};
use crate::error::{Error, Result};
use crate::passes::SiteKind;
use onnx_ir::Message;

/// The fingerprint of a prepared model: its nodes (encoded, attributes included), its
/// initializers (values included), its inputs and outputs, and every quantizer's name,
/// tensor, kind and group. Statistics carry it, so that those of another model, other
/// weights or another placement are refused.
pub fn fingerprint(prepared: &Prepared) -> String {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    if let Some(g) = prepared.model.graph.as_ref() {
        parts.extend(
            g.node
                .iter()
                .map(|n| n.write_to_bytes().unwrap_or_default()),
        );
        parts.extend(
            g.initializer
                .iter()
                .map(|t| t.write_to_bytes().unwrap_or_default()),
        );
        for io in g.input.iter().chain(&g.output) {
            parts.push(io.name.as_bytes().to_vec());
        }
    }
    for s in &prepared.sites {
        parts.push(
            format!(
                "{}\u{0}{}\u{0}{:?}\u{0}{:?}",
                s.name,
                s.key(),
                s.kind,
                s.group
            )
            .into_bytes(),
        );
    }
    qdq::calib::stats::fingerprint("onnx", parts.iter().map(Vec::as_slice))
}

impl Calibration {
    /// The collected state of every activation quantizer (by quantizer name, reading
    /// its tensor), as shard `shards` of the data, `items` items, of the model
    /// `fingerprint` ([`fingerprint`]).
    pub fn stats(&self, fingerprint: String, shards: Shards, items: u64) -> ModelStats {
        let calibrators: Vec<(String, String, Calibrator)> = self
            .sites
            .iter()
            .filter(|s| s.kind == SiteKind::Activation)
            .filter_map(|s| {
                let c = match self.stats.get(&s.key())? {
                    Stats::Histogram(h) => Calibrator::Histogram(h.clone()),
                    Stats::Max(m) => Calibrator::Max(m.clone()),
                };
                Some((s.name.clone(), s.key(), c))
            })
            .collect();
        ModelStats::new(
            fingerprint,
            shards,
            items,
            calibrators
                .iter()
                .map(|(n, t, c)| (n.clone(), t.clone(), c)),
        )
    }

    /// Checks that `stats` were collected for this calibration's model and placement
    /// (`fingerprint` is its model's, [`fingerprint`]).
    ///
    /// # Errors
    /// [`Error::Graph`] naming the quantizer that differs, or the fingerprints.
    pub fn check_stats(&self, fingerprint: &str, stats: &ModelStats) -> Result<()> {
        let mine = self.stats(fingerprint.to_string(), stats.shards.clone(), 0);
        mine.check_same_model(stats).map_err(|e| {
            Error::Graph(format!(
                "the statistics do not belong to this model (recollect them with this model and the same --skip/--skip-op): {e}"
            ))
        })
    }

    /// Takes the collected state from `stats` (merged from every shard) instead of
    /// data: [`Calibration::cache`] then gives what one pass over all the shards'
    /// data gives. `fingerprint` is this calibration's model's ([`fingerprint`]).
    ///
    /// # Errors
    /// Statistics of another model or placement (the quantizer named), or a calibrator
    /// of a kind this calibration does not collect.
    pub fn with_stats(mut self, fingerprint: &str, stats: &ModelStats) -> Result<Self> {
        self.check_stats(fingerprint, stats)?;
        let calibrators = stats
            .calibrators()
            .map_err(|e| Error::Graph(format!("statistics: {e}")))?;
        for s in &self.sites {
            let Some(c) = calibrators.get(&s.name) else {
                continue;
            };
            let stat = match c {
                Calibrator::Histogram(h) => Stats::Histogram(HistogramCalibrator::clone(h)),
                Calibrator::Max(m) => Stats::Max(MaxCalibrator::clone(m)),
            };
            self.stats.insert(s.key(), stat);
        }
        // No batch was fed here; the statistics say whether any data was (none: the
        // cache is refused as for an empty calibration set).
        self.batches = usize::from(stats.items > 0);
        Ok(self)
    }
}
