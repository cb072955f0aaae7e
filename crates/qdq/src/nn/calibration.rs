//! The calibration workflow over a whole model: the seed's `collect_stats` and
//! `compute_amax`, a summary table, and error checks.

use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::walk::{ModulePath, NamedQuantizer, PathMapper, map_paths, named_quantizers};
use crate::calib::HistogramMethod;
use crate::error::{Error, Result};
use crate::tensor_quant::Amax;

/// Puts every quantizer of `model` in calibration mode, as the seed's `collect_stats`
/// does: quantizers with a calibrator stop quantizing and start collecting; those
/// without one are disabled.
pub fn enable_calibration<M: Module>(model: &M) {
    for q in named_quantizers(model) {
        if q.handle.has_calibrator() {
            q.handle.disable_quant();
            q.handle.enable_calib();
        } else {
            q.handle.disable();
        }
    }
}

/// Undoes [`enable_calibration`]: quantizers quantize again and stop collecting.
pub fn disable_calibration<M: Module>(model: &M) {
    for q in named_quantizers(model) {
        if q.handle.has_calibrator() {
            q.handle.enable_quant();
            q.handle.disable_calib();
        } else {
            q.handle.enable();
        }
    }
}

/// Feeds data through `model` in calibration mode: `feed` runs the forward passes
/// (e.g. over a data loader). Returns the first error a quantizer hit, named.
///
/// ```ignore
/// qdq::nn::collect_stats(&model, |m| for batch in &batches { m.forward(batch.clone()); })?;
/// let model = qdq::nn::compute_amax(model, HistogramMethod::percentile(99.99))?;
/// ```
pub fn collect_stats<M: Module>(model: &M, feed: impl FnOnce(&M)) -> Result<()> {
    enable_calibration(model);
    feed(model);
    disable_calibration(model);
    check_quantizers(model)
}

/// Loads amax from every quantizer's calibrator into the model (`load_calib_amax` on
/// each, strict): max calibrators take their running max, histogram calibrators
/// `method`. Can be called again with another method without re-collecting.
///
/// # Errors
/// The first quantizer that saw no data, or whose calibration failed, by name.
pub fn compute_amax<M: Module>(model: M, method: HistogramMethod) -> Result<M> {
    check_quantizers(&model)?;
    let mut table = HashMap::new();
    for q in named_quantizers(&model) {
        if !q.handle.has_calibrator() || q.handle.is_disabled() {
            continue;
        }
        let amax = q
            .handle
            .compute_amax(Some(method))
            .map_err(|e| named(&q, e))?;
        let amax = amax.ok_or_else(|| named(&q, q.handle.no_data_error()))?;
        q.handle.note_amax_shape(amax.shape());
        table.insert(format!("{}._amax", q.name), amax);
    }
    Ok(set_amaxes(model, table))
}

/// Sets amax of the named quantizers (`name` as [`named_quantizers`] reports it).
/// Unknown names are ignored; use [`named_quantizers`] to list them.
pub fn load_amaxes<M: Module>(model: M, amaxes: &HashMap<String, Amax>) -> M {
    for q in named_quantizers(&model) {
        if let Some(a) = amaxes.get(&q.name) {
            q.handle.note_amax_shape(a.shape());
        }
    }
    let table = amaxes
        .iter()
        .map(|(k, v)| (format!("{k}._amax"), v.clone()))
        .collect();
    set_amaxes(model, table)
}

fn set_amaxes<M: Module>(model: M, table: HashMap<String, Amax>) -> M {
    map_paths(model, &mut AmaxMapper { table })
}

/// One line per quantizer, `name: TensorQuantizer(...)`, as the seed prints them.
pub fn quantizer_summary<M: Module>(model: &M) -> String {
    named_quantizers(model)
        .iter()
        .map(|q| format!("{:<40}: {q}\n", q.name))
        .collect()
}

/// The first error any quantizer recorded during `forward`, with its name.
pub fn check_quantizers<M: Module>(model: &M) -> Result<()> {
    for q in named_quantizers(model) {
        if let Some(e) = q.handle.take_error() {
            return Err(named(&q, e));
        }
    }
    Ok(())
}

fn named(q: &NamedQuantizer, e: Error) -> Error {
    Error::Quantizer {
        name: q.name.clone(),
        source: Box::new(e),
    }
}

/// Sets the `_amax` parameters named in `table` (by dotted path).
struct AmaxMapper {
    table: HashMap<String, Amax>,
}

impl PathMapper for AmaxMapper {
    fn map_float<const D: usize>(
        &mut self,
        path: &ModulePath,
        param: Param<Tensor<D>>,
    ) -> Param<Tensor<D>> {
        match self.table.get(&path.dotted()) {
            Some(amax) if D == 1 => {
                let device = param.lazy_device();
                let data = TensorData::new(amax.values().to_vec(), vec![amax.numel()]);
                Param::initialized(param.id, Tensor::from_data(data, &device))
            }
            _ => param,
        }
    }
}
