//! `MaxCalibrator`: the running max of |x|, per tensor or per kept axis.

use burn::prelude::*;

use crate::error::{Error, Result};
use crate::tensor_quant::reduce::{nan_max, reduce_amax};
use crate::tensor_quant::{Amax, NumBits};

/// Running max of |x| over the dims not in `axis` (pytorch-quantization's
/// `MaxCalibrator`).
///
/// ```
/// use qdq::calib::MaxCalibrator;
/// let mut c = MaxCalibrator::new(8, None, false);
/// assert!(c.compute_amax().is_none());
/// c.collect_slice(&[0.5, -2.0, 1.0], &[3]).unwrap();
/// assert_eq!(c.compute_amax().unwrap().values(), &[2.0]);
/// ```
#[derive(Clone, Debug)]
pub struct MaxCalibrator {
    num_bits: NumBits,
    axis: Option<Vec<isize>>,
    unsigned: bool,
    track_amax: bool,
    calib_amax: Option<Amax>,
    amaxs: Vec<Amax>,
}

impl MaxCalibrator {
    /// A calibrator keeping `axis` (negative axes count from the end; `None`: per tensor).
    /// `num_bits` and `unsigned` are recorded for reports only, as in the reference.
    pub fn new(num_bits: impl Into<NumBits>, axis: Option<Vec<isize>>, unsigned: bool) -> Self {
        Self {
            num_bits: num_bits.into(),
            axis,
            unsigned,
            track_amax: false,
            calib_amax: None,
            amaxs: Vec::new(),
        }
    }

    /// Also keep every batch's amax (see [`MaxCalibrator::amaxs`]).
    #[must_use]
    pub fn with_track_amax(mut self, track: bool) -> Self {
        self.track_amax = track;
        self
    }

    /// Bits of the quantizer this calibrates.
    pub fn num_bits(&self) -> NumBits {
        self.num_bits
    }

    /// Whether the quantizer is unsigned.
    pub fn unsigned(&self) -> bool {
        self.unsigned
    }

    /// Kept axes.
    pub fn axis(&self) -> Option<&[isize]> {
        self.axis.as_deref()
    }

    /// Per-batch amaxes, when tracking.
    pub fn amaxs(&self) -> &[Amax] {
        &self.amaxs
    }

    /// Folds one batch (row-major `data` of `shape`) into the running max.
    ///
    /// # Errors
    /// An axis out of range, or a batch whose amax shape differs from earlier ones.
    pub fn collect_slice(&mut self, data: &[f32], shape: &[usize]) -> Result<()> {
        let local = reduce_amax(data, shape, self.axis.as_deref())?;
        self.fold(local)
    }

    /// Folds one batch's amax into the running max.
    fn fold(&mut self, local: Amax) -> Result<()> {
        let merged = match self.calib_amax.take() {
            None => local.clone(),
            Some(prev) => {
                if prev.shape() != local.shape() {
                    let err = Error::AmaxShapeChanged {
                        previous: prev.shape().to_vec(),
                        current: local.shape().to_vec(),
                    };
                    self.calib_amax = Some(prev);
                    return Err(err);
                }
                let values = prev
                    .values()
                    .iter()
                    .zip(local.values())
                    .map(|(&a, &b)| nan_max(a, b))
                    .collect();
                Amax::new(values, prev.shape().to_vec())?
            }
        };
        self.calib_amax = Some(merged);
        if self.track_amax {
            self.amaxs.push(local);
        }
        Ok(())
    }

    /// Folds another calibrator's running max into this one (e.g. one collected on
    /// another shard of the data): the result is the running max over both data sets,
    /// exactly (a max does not depend on the split). Tracked per-batch amaxes are
    /// appended.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when the kept axes differ, [`Error::AmaxShapeChanged`]
    /// when the amax shapes do; this calibrator is then unchanged.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if self.axis != other.axis {
            return Err(Error::Unsupported {
                what: "merging max calibrators that keep different axes",
                format: format!("axis {:?} into axis {:?}", other.axis, self.axis),
            });
        }
        let Some(theirs) = other.calib_amax.clone() else {
            return Ok(());
        };
        let track = std::mem::replace(&mut self.track_amax, false);
        let folded = self.fold(theirs);
        self.track_amax = track;
        folded?;
        if self.track_amax {
            self.amaxs.extend(other.amaxs.iter().cloned());
        }
        Ok(())
    }

    /// The collected state, for a statistics file.
    pub fn state(&self) -> MaxState {
        MaxState {
            num_bits: self.num_bits,
            unsigned: self.unsigned,
            axis: self.axis.clone(),
            amax: self
                .calib_amax
                .as_ref()
                .map(|a| (a.values().to_vec(), a.shape().to_vec())),
        }
    }

    /// The calibrator holding `state` (tracking off).
    ///
    /// # Errors
    /// [`Error::Stats`] when the amax shape does not hold its values (or its size
    /// overflows), or a value is negative or not finite.
    pub fn from_state(state: &MaxState) -> Result<Self> {
        let mut c = Self::new(state.num_bits, state.axis.clone(), state.unsigned);
        if let Some((values, shape)) = &state.amax {
            let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if numel != Some(values.len()) {
                return Err(Error::Stats(format!(
                    "max state: amax shape {shape:?} does not hold {} values",
                    values.len()
                )));
            }
            if let Some(v) = values.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                return Err(Error::Stats(format!(
                    "max state: amax value {v} is not finite and >= 0"
                )));
            }
            c.calib_amax = Some(Amax::new(values.clone(), shape.clone())?);
        }
        Ok(c)
    }

    /// Folds one batch given as a tensor.
    /// On a CUDA device (feature `gpu`), a per-tensor max is one pass there and only
    /// the max comes back; per-channel maxima are taken on the host.
    pub fn collect<const D: usize>(&mut self, x: &Tensor<D>) -> Result<()> {
        #[cfg(feature = "gpu")]
        if self.axis.is_none()
            && let Some(max) = crate::tensor_quant::cuda::abs_scan(x)
        {
            let (max_bits, _) = max?;
            return self.fold(Amax::scalar(f32::from_bits(max_bits)));
        }
        let data = crate::tensor_quant::HostValues::of(x)?;
        self.collect_slice(&data, &x.dims())
    }

    /// The running max, `None` before any data.
    pub fn compute_amax(&self) -> Option<Amax> {
        self.calib_amax.clone()
    }

    /// Forgets everything collected.
    pub fn reset(&mut self) {
        self.calib_amax = None;
        self.amaxs.clear();
    }
}

/// A [`MaxCalibrator`]'s collected state as plain data (settings and running max).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxState {
    /// Bits of the quantizer calibrated.
    pub num_bits: NumBits,
    /// Whether the quantizer is unsigned.
    pub unsigned: bool,
    /// Kept axes (`None`: per tensor).
    pub axis: Option<Vec<isize>>,
    /// The running max: its values and keepdims shape; `None` before any data.
    pub amax: Option<(Vec<f32>, Vec<usize>)>,
}

impl std::fmt::Display for MaxCalibrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MaxCalibrator(track_amax={})",
            if self.track_amax { "True" } else { "False" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_max_per_axis_and_shape_change() {
        let mut c = MaxCalibrator::new(8, Some(vec![0]), false).with_track_amax(true);
        c.collect_slice(&[1.0, -3.0, 2.0, 0.5], &[2, 2]).unwrap();
        c.collect_slice(&[-4.0, 0.0, 1.0, 1.0], &[2, 2]).unwrap();
        let a = c.compute_amax().unwrap();
        assert_eq!((a.values(), a.shape()), (&[4.0f32, 2.0][..], &[2, 1][..]));
        assert_eq!(c.amaxs().len(), 2);
        assert_eq!(c.amaxs()[0].values(), &[3.0, 2.0]);
        let err = c.collect_slice(&[1.0, 2.0, 3.0], &[3, 1]).unwrap_err();
        assert!(matches!(err, Error::AmaxShapeChanged { .. }), "{err}");
        // The failed batch left the running max untouched.
        assert_eq!(c.compute_amax().unwrap().values(), &[4.0, 2.0]);
        c.reset();
        assert!(c.compute_amax().is_none());
        assert!(c.amaxs().is_empty());
    }

    #[test]
    fn merge_equals_one_pass_and_refuses_other_axes() {
        let data: Vec<f32> = (0..24).map(|v| (v as f32 - 12.0) * 0.75).collect();
        let mut all = MaxCalibrator::new(8, Some(vec![1]), false);
        all.collect_slice(&data, &[4, 2, 3]).unwrap();
        let mut a = MaxCalibrator::new(8, Some(vec![1]), false);
        let mut b = a.clone();
        a.collect_slice(&data[..6], &[1, 2, 3]).unwrap();
        b.collect_slice(&data[6..], &[3, 2, 3]).unwrap();
        let empty = MaxCalibrator::new(8, Some(vec![1]), false);
        a.merge(&empty).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.compute_amax(), all.compute_amax());
        assert_eq!(a.compute_amax().unwrap().values(), &[9.0, 8.25]);
        // Round trip through the state.
        let back = MaxCalibrator::from_state(&a.state()).unwrap();
        assert_eq!(back.compute_amax(), a.compute_amax());
        let other = MaxCalibrator::new(8, None, false);
        let err = a.merge(&other).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        let mut bad = a.state();
        bad.amax = Some((vec![1.0, 2.0], vec![usize::MAX, 2]));
        let err = MaxCalibrator::from_state(&bad).unwrap_err().to_string();
        assert!(err.contains("does not hold 2 values"), "{err}");
        bad.amax = Some((vec![-1.0], vec![1]));
        let err = MaxCalibrator::from_state(&bad).unwrap_err().to_string();
        assert!(err.contains("-1 is not finite"), "{err}");
    }

    #[test]
    fn negative_axis_is_normalised() {
        // Reference calibrator_test "axis -4" on a 4-D tensor == axis 0.
        let data: Vec<f32> = (0..24).map(|v| v as f32 - 12.0).collect();
        let mut a = MaxCalibrator::new(8, Some(vec![-4]), false);
        let mut b = MaxCalibrator::new(8, Some(vec![0]), false);
        a.collect_slice(&data, &[2, 3, 2, 2]).unwrap();
        b.collect_slice(&data, &[2, 3, 2, 2]).unwrap();
        assert_eq!(a.compute_amax(), b.compute_amax());
        assert_eq!(a.compute_amax().unwrap().values(), &[12.0, 11.0]);
        assert_eq!(a.to_string(), "MaxCalibrator(track_amax=False)");
    }
}
