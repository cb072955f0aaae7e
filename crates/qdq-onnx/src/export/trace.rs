//! Recording a model's forward pass on burn's capture device, with every quantizer
//! in lowering mode and every parameter named by its path in the model.

use std::collections::{BTreeMap, HashMap};

use burn::backend::capture::{CaptureBackend, TensorId};
use burn::backend::ir::OperationIr;
use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::{DispatchTensor, TensorData};
use qdq::nn::lowering::{QuantLowering, record_quantizers};
use qdq::nn::named_quantizers;
use qdq::nn::walk::{ModulePath, PathVisitor, visit_paths};

use crate::error::{Error, Result};

/// Where a quantizer was applied: the tensor it read and what the Q/DQ pair needs.
#[derive(Clone, Debug)]
pub(crate) struct QuantSite {
    pub input: TensorId,
    pub lowering: QuantLowering,
    /// The quantizer's path in the model (`layer1.0.conv1._input_quantizer`).
    pub name: String,
}

/// A recorded forward pass.
pub(crate) struct Trace {
    pub ops: Vec<OperationIr>,
    /// Concrete tensors: parameters, constants and the sample input.
    pub values: BTreeMap<TensorId, TensorData>,
    pub input: (TensorId, Vec<usize>),
    pub output: (TensorId, Vec<usize>),
    /// Quantizer markers by the id of the marker's output.
    pub quant: HashMap<TensorId, QuantSite>,
    /// Parameter paths by tensor id.
    pub params: HashMap<TensorId, String>,
}

fn id_of(t: DispatchTensor) -> Result<TensorId> {
    Tensor::<1>::from_dispatch(t)
        .try_into_primitive::<CaptureBackend>()
        .map(|p| p.id())
        .map_err(|e| Error::Capture(format!("a tensor left the capture device: {e:?}")))
}

/// Runs `forward(model, sample)` on a capture device and records it.
pub(crate) fn trace<M, const DI: usize, const DO: usize>(
    model: &M,
    forward: impl Fn(&M, Tensor<DI>) -> Tensor<DO>,
    sample: Tensor<DI>,
) -> Result<Trace>
where
    M: Module + Clone,
{
    // Quantizer state (calibrating, unset amax) fails before anything is recorded.
    let names = named_quantizers(model);
    for q in &names {
        if !q.handle.is_disabled() && q.handle.is_calib() {
            return Err(Error::Quantizer(qdq::Error::Quantizer {
                name: q.name.clone(),
                source: Box::new(qdq::Error::Unsupported {
                    what: "export",
                    format: "a calibrating quantizer; finish calibration (compute_amax) first"
                        .into(),
                }),
            }));
        }
    }
    let device = Device::capture();
    // What the scope learns besides the graph.
    struct Recorded {
        /// The first quantizer that failed in forward, named, with its error.
        failure: Option<Error>,
        quant: HashMap<TensorId, QuantSite>,
        params: HashMap<TensorId, String>,
        dims: [Vec<usize>; 2],
    }
    let mut inner: Result<Recorded> = Err(Error::Capture("the forward pass did not run".into()));
    let captured = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        device.capture_scope(|scope| {
            // `valid()` makes running states (BatchNorm statistics) independent copies:
            // a clone shares them, and moving them would strand the caller's model on
            // the capture device.
            let captured_model = model.valid().to_device(&device);
            let x = sample.to_device(&device);
            let in_dims = x.dims().to_vec();
            let mut visitor = ParamNames::default();
            visit_paths(&captured_model, &mut visitor);
            let (y, recording) = record_quantizers(|| forward(&captured_model, x.clone()));
            // Records name their quantizer by handle; `names` holds every handle alive.
            let by_id: HashMap<_, &str> = names
                .iter()
                .rev() // the first of several paths to one quantizer wins, as before
                .map(|q| (q.handle.id(), q.name.as_str()))
                .collect();
            let name_of = |h: &qdq::nn::QuantizerHandle| {
                by_id
                    .get(&h.id())
                    .map_or_else(|| "TensorQuantizer".to_string(), |n| n.to_string())
            };
            let failure = recording.failures.into_iter().next().map(|(h, e)| {
                Error::Quantizer(qdq::Error::Quantizer {
                    name: name_of(&h),
                    source: Box::new(e),
                })
            });
            let out_dims = y.dims().to_vec();
            let ids = (id_of(x.into_dispatch()), id_of(y.into_dispatch()));
            let (Ok(x_id), Ok(y_id)) = ids else {
                inner = Err(Error::Capture("the input or output is not on the capture device".into()));
                return scope.complete([], []);
            };
            let mut quant = HashMap::new();
            for r in recording.records {
                let name = name_of(&r.handle);
                match (id_of(r.input), id_of(r.output)) {
                    (Ok(input), Ok(output)) => {
                        let lowering = r.lowering;
                        quant.insert(output, QuantSite { input, lowering, name });
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        inner = Err(e);
                        return scope.complete([x_id], [y_id]);
                    }
                }
            }
            inner = Ok(Recorded {
                failure,
                quant,
                params: visitor.names,
                dims: [in_dims, out_dims],
            });
            scope.complete([x_id], [y_id])
        })
    }))
    .map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Error::Capture(format!(
            "the forward pass panicked on the capture device ({msg}); export records operations without running them, so a forward that reads tensor values (into_data, into_scalar) cannot be exported"
        ))
    })?
    .map_err(|e| Error::Capture(e.to_string()))?;
    let Recorded {
        failure,
        quant,
        params,
        dims: [in_dims, out_dims],
    } = inner?;
    // Errors a quantizer met in forward (an unset amax, ...) carry its name; they
    // were never recorded on the quantizers, so the model is left as it was.
    if let Some(e) = failure {
        return Err(e);
    }
    let graph = captured.graph;
    Ok(Trace {
        ops: graph.operations,
        values: captured.values,
        input: (graph.inputs[0], in_dims),
        output: (graph.outputs[0], out_dims),
        quant,
        params,
    })
}

/// Maps each float parameter's capture id to its dotted path.
#[derive(Default)]
struct ParamNames {
    names: HashMap<TensorId, String>,
}

impl PathVisitor for ParamNames {
    fn visit_float<const D: usize>(&mut self, path: &ModulePath, param: &Param<Tensor<D>>) {
        if let Ok(id) = id_of(param.val().into_dispatch()) {
            self.names.entry(id).or_insert_with(|| path.dotted());
        }
    }
}
