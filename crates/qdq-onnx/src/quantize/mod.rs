//! Quantizing an FP32 ONNX model: fold constants and place quantizers ([`prepare`]),
//! calibrate in one streaming pass ([`Calibration`]), write the QDQ model with the
//! opset it needs and lint it ([`apply`]).

pub mod auto;
mod auto_model;
mod cache;
mod calibrate;
pub mod report;
pub mod sensitivity;
mod shard;

use onnx_ir::ModelProto;
use qdq::calib::HistogramMethod;

pub use auto::{AutoSelect, Choice};
pub use auto_model::{
    DECISIVE, Measured, ModelCheck, ModelChoice, Stopped, choose_model, default_width,
};
pub use cache::{CalibrationCache, Entry};
pub use calibrate::Calibration;
pub use sensitivity::{LayerSensitivity, keep_float, sensitivity};
pub use shard::fingerprint;

use crate::error::{Error, Result};
use crate::lint::{LintOptions, lint_with};
use crate::passes::{
    PlacementOptions, Site, SiteKind, fold_constant_nodes, fold_weight_chains, insert_sites_as,
    model_opset, place, upgrade_opset,
};
use crate::qdq::QdqFormat;

/// How an activation's amax is chosen: `max`, `entropy`, `mse` or a percentile, all
/// from the one histogram collection (parsed from `max`, `entropy`, `mse`,
/// `percentile` or `percentile=99.9`).
pub type Method = HistogramMethod;

/// A method as the commands take it: one of [`Method`], or `auto` (per quantizer, the
/// candidate amax whose quantization least changes the consumers' output; see
/// [`auto`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MethodChoice {
    /// This method for every tensor it applies to.
    Fixed(Method),
    /// Chosen per tensor by [`AutoSelect`].
    Auto,
}

impl std::str::FromStr for MethodChoice {
    type Err = String;

    /// `auto`, or what [`Method`] parses.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            other => other.parse().map(Self::Fixed).map_err(|e| match e {
                qdq::Error::UnknownCalibMethod(m) => format!(
                    "unknown calibration method `{m}`; expected one of auto, max, entropy, mse, percentile, percentile=P"
                ),
                e => e.to_string(),
            }),
        }
    }
}

impl std::fmt::Display for MethodChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(m) => m.fmt(f),
            Self::Auto => f.write_str("auto"),
        }
    }
}

/// Settings of a quantization.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    /// Where quantizers go.
    pub placement: PlacementOptions,
    /// INT8 or FP8 E4M3 (standard Q/DQ; opset 19 is then required).
    pub format: QdqFormat,
    /// Opset of the output; `None`: the model's, raised to what per-channel (13) or
    /// FP8 (19) needs.
    pub opset: Option<i64>,
    /// Store each quantized weight as its INT8 (FP8 with `Fp8E4M3`) values followed by
    /// DequantizeLinear, no QuantizeLinear (ModelOpt's "dq_only"; about 4x smaller
    /// files, 8x with 4-bit weights, the same DQ output). Default false: float weights
    /// with a Q/DQ pair.
    pub dq_only_weights: bool,
    /// Bits of the weight quantizers: 8 (default; the format's) or 4 (W4A8: INT4 per
    /// output channel, scale `amax / 7`, opset 21; with [`QdqFormat::Int8`] only).
    pub weight_bits: u32,
}

impl QuantizeOptions {
    /// The format the weight quantizers are written in: [`QuantizeOptions::format`]
    /// at 8 bits, [`QdqFormat::Int4`] at 4.
    ///
    /// # Errors
    /// Bits other than 4 and 8, or 4-bit weights with activations other than INT8.
    pub fn weight_format(&self) -> Result<QdqFormat> {
        match (self.weight_bits, self.format) {
            (8, f) => Ok(f),
            (4, QdqFormat::Int8) => Ok(QdqFormat::Int4),
            (4, f) => Err(Error::Graph(format!(
                "4-bit weights go with INT8 activations (W4A8); the format is {f:?}"
            ))),
            (b, _) => Err(Error::Graph(format!(
                "weights of {b} bits: ONNX Q/DQ writes 8-bit or 4-bit (INT4, opset 21) weights"
            ))),
        }
    }
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        Self {
            placement: PlacementOptions::default(),
            format: QdqFormat::Int8,
            opset: None,
            dq_only_weights: false,
            weight_bits: 8,
        }
    }
}

/// A float model ready to calibrate: constants folded, quantizers placed.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The float model (constant nodes folded into initializers).
    pub model: ModelProto,
    /// The quantizers.
    pub sites: Vec<Site>,
}

/// Folds constants and places quantizers.
///
/// # Errors
/// The model has no graph or is quantized already.
pub fn prepare(model: &ModelProto, options: &QuantizeOptions) -> Result<Prepared> {
    let mut model = model.clone();
    fold_constant_nodes(&mut model);
    fold_weight_chains(&mut model);
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Graph("the model has no graph".into()))?;
    let sites = place(graph, &options.placement)?;
    Ok(Prepared { model, sites })
}

impl Prepared {
    /// The quantizers [`apply`] leaves out with `cache`: activation quantizers inside a
    /// subgraph that the cache has no amax for (a branch calibration never took; see
    /// [`Calibration::uncalibrated`]), and the weight quantizers of their consumers
    /// (a Conv whose input stays float keeps float weights).
    pub fn left_out(&self, cache: &CalibrationCache) -> Vec<&Site> {
        let missing: Vec<&Site> = self
            .sites
            .iter()
            .filter(|s| s.in_subgraph() && s.kind == SiteKind::Activation)
            .filter(|s| !cache.entries.contains_key(&s.key()))
            .collect();
        let float_node = |graph: &crate::passes::GraphPath, node: usize| {
            missing
                .iter()
                .any(|m| m.graph == *graph && m.consumers.iter().any(|c| c.0 == node))
        };
        self.sites
            .iter()
            .filter(|s| {
                missing.iter().any(|m| m.name == s.name)
                    || (matches!(s.kind, SiteKind::Weight { .. })
                        && s.in_subgraph()
                        && s.consumers.iter().all(|c| float_node(&s.graph, c.0)))
            })
            .collect()
    }
}

/// Writes the QDQ model: a pair per site with its amax from `cache` (by [`Site::key`];
/// weights missing from it get their per-channel max), the opset raised as needed, then
/// the TensorRT lint. The [`Prepared::left_out`] quantizers are not written.
///
/// # Errors
/// A site without amax in the cache (named), an opset ONNX does not define
/// ([`Error::OpsetRange`]) or that cannot hold the format, an upgrade that cannot be
/// done, or a lint violation.
pub fn apply(
    prepared: &Prepared,
    cache: &CalibrationCache,
    options: &QuantizeOptions,
) -> Result<ModelProto> {
    finish(build(prepared, cache, options)?, options)
}

/// [`apply`] without the storage of weights and the lint: the pairs written and the
/// opset raised. A model with only some layers quantized (as [`sensitivity`] builds
/// them) may break TensorRT's placement rules and still measure its error.
fn build(
    prepared: &Prepared,
    cache: &CalibrationCache,
    options: &QuantizeOptions,
) -> Result<ModelProto> {
    let left_out: Vec<String> = prepared
        .left_out(cache)
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let kept = Prepared {
        model: prepared.model.clone(),
        sites: prepared
            .sites
            .iter()
            .filter(|s| !left_out.contains(&s.name))
            .cloned()
            .collect(),
    };
    let prepared = &kept;
    let mut model = prepared.model.clone();
    let mut amaxes = std::collections::HashMap::new();
    {
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| Error::Graph("the model has no graph".into()))?;
        for s in &prepared.sites {
            let amax = match (cache.entries.get(&s.key()), &s.kind) {
                (Some(e), _) => e.amax.clone(),
                // Weights need no data: a cache of activations only (a TensorRT
                // calibration table) gets per-channel max from the weights themselves.
                (None, SiteKind::Weight { axis }) => calibrate::site_weight_amax(graph, s, *axis)?,
                (None, SiteKind::Activation) => {
                    return Err(Error::Graph(format!(
                        "quantizer `{}`: tensor `{}` is not in the calibration cache; recalibrate",
                        s.name,
                        s.key()
                    )));
                }
            };
            amaxes.insert(s.name.clone(), amax);
        }
    }
    let per_channel = prepared
        .sites
        .iter()
        .any(|s| matches!(s.kind, SiteKind::Weight { .. }));
    let weight_format = options.weight_format()?;
    let needed = options.format.min_opset(per_channel).max(if per_channel {
        weight_format.min_opset(true)
    } else {
        0
    });
    let model_opset = model_opset(&model);
    let base = options.opset.unwrap_or_else(|| model_opset.max(needed));
    crate::passes::check_opset(base, "quantize")?;
    if base < needed {
        return Err(Error::Graph(format!(
            "opset {base} cannot hold {:?} Q/DQ{}; use opset {needed} or newer",
            options.format,
            if weight_format == QdqFormat::Int4 {
                " with INT4 weights"
            } else if per_channel {
                " with per-channel weights"
            } else {
                ""
            }
        )));
    }
    // Float16/bfloat16 scales need opset 19: a half-precision model is raised there when
    // the upgrade can be done (so its Q/DQ run in float16, no Casts in the way of
    // TensorRT's FP16 kernels), else written at its own opset with Casts to float32
    // around each pair (pytorch-quantization's form).
    let wants_19 = options.opset.is_none() && base < 19 && has_half_sites(prepared);
    if wants_19 {
        if write_pairs(&mut model, prepared, &amaxes, options, 19).is_ok() {
            return Ok(model);
        }
        model = prepared.model.clone();
    }
    write_pairs(&mut model, prepared, &amaxes, options, base)?;
    Ok(model)
}

/// Whether a quantizer's tensor is float16 or bfloat16.
fn has_half_sites(prepared: &Prepared) -> bool {
    let Some(graph) = prepared.model.graph.as_ref() else {
        return false;
    };
    let types = crate::passes::types::elem_types(graph);
    prepared.sites.iter().any(|s| {
        matches!(
            types.get(&s.tensor),
            Some(&(crate::proto::elem::FLOAT16 | crate::proto::elem::BFLOAT16))
        )
    })
}

/// Inserts the pairs (into subgraphs first, deepest first, so the node indices of the
/// paths above stay valid) and raises the opset to `target`.
fn write_pairs(
    model: &mut ModelProto,
    prepared: &Prepared,
    amaxes: &std::collections::HashMap<String, Vec<f32>>,
    options: &QuantizeOptions,
    target: i64,
) -> Result<()> {
    let formats = (options.format, options.weight_format()?);
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| Error::Graph("the model has no graph".into()))?;
    let mut paths: Vec<&crate::passes::GraphPath> =
        prepared.sites.iter().map(|s| &s.graph).collect();
    paths.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    paths.dedup();
    for path in paths {
        let here: Vec<Site> = prepared
            .sites
            .iter()
            .filter(|s| s.graph == *path)
            .cloned()
            .collect();
        let g = crate::passes::subgraph_mut(graph, path).ok_or_else(|| {
            Error::Graph(format!(
                "quantizer `{}`: its subgraph is missing",
                here[0].name
            ))
        })?;
        insert_sites_as(g, &here, amaxes, formats, target >= 19)?;
    }
    upgrade_opset(model, target)?;
    Ok(())
}

/// Weights stored quantized when asked, then the TensorRT lint: the model, or its
/// violations. [`apply`] ends with it; fine-tuning, which trains the float weights of
/// a model applied without `dq_only_weights`, calls it on the trained model.
///
/// # Errors
/// A weight that cannot be stored quantized (named), or lint violations.
pub fn finish(mut model: ModelProto, options: &QuantizeOptions) -> Result<ModelProto> {
    if options.dq_only_weights {
        if options.format == QdqFormat::TrtFp8E4M3 {
            return Err(Error::Graph(
                "weights stored quantized need standard DequantizeLinear; TensorRT's TRT_FP8 ops take float weights".into(),
            ));
        }
        crate::passes::store_weights_quantized(&mut model)?;
    }
    let violations = lint_with(&model, &LintOptions::default());
    if !violations.is_empty() {
        return Err(Error::Lint(violations));
    }
    Ok(model)
}
