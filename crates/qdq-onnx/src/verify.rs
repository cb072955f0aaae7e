//! The last gate before qdq calls a written model done: no non-finite weight, and the
//! file, read back, runs on qdq's runtime and gives exactly what its fake-quant
//! simulation gives.
//!
//! The simulation is the same graph with every Q→DQ pair fused into the runtime's
//! one-node fake quant (`FakeQuantizeLinear`, the node fine-tuning trains through):
//! two independent implementations of the pair, which must agree bit for bit on the
//! probe input. A file that cannot be parsed, a Q/DQ node the runtime rejects, an
//! output that is NaN or Inf, or any difference is an error.

use std::collections::{HashMap, HashSet};

use burn::tensor::Device;
use onnx_ir::ModelProto;

use crate::runtime::{
    Dim, OnnxGraph, ProbeFill, RunError, Value, ValueKind, ValueSpec, dt, probe_values,
};

/// Why a written model is refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A float weight holds NaN or Inf (training diverged, or the input model had it).
    #[error(
        "weight `{initializer}` holds {value} at flat index {index}; a model with non-finite weights is not written (if it came from fine-tuning, lower --lr)"
    )]
    NonFiniteWeight {
        /// The initializer.
        initializer: String,
        /// Flat index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// The model did not run on qdq's runtime.
    #[error("the written model does not run on qdq's runtime: {0}")]
    Run(#[from] RunError),
    /// The model's graph has no Q/DQ pair fit for the simulation (structure error).
    #[error("the written model's Q/DQ pairs cannot be simulated: {0}")]
    Simulation(String),
    /// An output of the probe run is NaN or Inf.
    #[error(
        "output `{output}` of the written model is {value} at flat index {index} on the probe input, where the float model's is finite"
    )]
    NonFiniteOutput {
        /// The output.
        output: String,
        /// Flat index.
        index: usize,
        /// The value.
        value: f32,
    },
    /// The Q/DQ graph and its fake-quant simulation disagree.
    #[error(
        "output `{output}` of the written model differs from its fake-quant simulation at flat index {index} ({written} vs {simulated})"
    )]
    Mismatch {
        /// The output.
        output: String,
        /// Flat index.
        index: usize,
        /// Value from the Q/DQ graph.
        written: f32,
        /// Value from the fused fake-quant graph.
        simulated: f32,
    },
}

/// The first float initializer of `model`, in file order, holding a value no written
/// model may have: NaN anywhere (a diverged fine-tuning, a damaged file), ±Inf in a
/// tensor that is quantized or is a Q/DQ scale. ±Inf elsewhere is a legitimate
/// constant (Clip's open bound, an attention mask's -inf) and stays as the user's
/// model had it.
///
/// # Errors
/// [`VerifyError::NonFiniteWeight`] naming it; an initializer that cannot be decoded.
pub fn check_weights_finite(model: &ModelProto, device: &Device) -> Result<(), VerifyError> {
    let Some(graph) = model.graph.as_ref() else {
        return Ok(());
    };
    // Inputs of Q/DQ nodes (any domain: TRT_FP8QuantizeLinear too) that must be finite:
    // a QuantizeLinear's input and the scale of either.
    let mut quantized = std::collections::HashSet::new();
    for n in &graph.node {
        if n.op_type.ends_with("QuantizeLinear") {
            if !n.op_type.ends_with("DequantizeLinear") {
                quantized.extend(n.input.first());
            }
            quantized.extend(n.input.get(1));
        }
    }
    for t in &graph.initializer {
        if !matches!(
            t.data_type,
            dt::FLOAT | dt::FLOAT16 | dt::DOUBLE | dt::BFLOAT16
        ) {
            continue;
        }
        let strict = quantized.contains(&t.name);
        let bad = |x: &f32| x.is_nan() || (strict && x.is_infinite());
        let v = Value::from_tensor_proto(t, device)?;
        if let Some((index, &value)) = v.to_f32()?.iter().enumerate().find(|(_, x)| bad(x)) {
            return Err(VerifyError::NonFiniteWeight {
                initializer: t.name.clone(),
                index,
                value,
            });
        }
    }
    Ok(())
}

/// The input a written model is checked on, with where the float model's own outputs
/// on it are not finite: a model may give NaN by design (a graph network's masked
/// targets), and its quantized copy may then give it at the same places, nowhere else.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The graph inputs.
    pub inputs: Vec<(String, Value)>,
    /// By output name, the flat indices where the float output is NaN or infinite.
    pub float_non_finite: HashMap<String, HashSet<usize>>,
    /// The shape of every tensor the float model computed on `inputs`, by name (those
    /// inside subgraphs under their scoped names).
    pub shapes: HashMap<String, Vec<usize>>,
}

impl Probe {
    /// The most elements of any one tensor the float model computed on the probe's
    /// inputs (one item, or the model's fixed batch).
    pub fn largest_value(&self) -> usize {
        self.shapes
            .values()
            .map(|s| s.iter().product::<usize>())
            .max()
            .unwrap_or(0)
    }

    /// `inputs`, with the non-finite places of `float`'s outputs on them.
    ///
    /// # Errors
    /// The float model does not run on them.
    pub fn new(inputs: Vec<(String, Value)>, float: &OnnxGraph) -> Result<Self, VerifyError> {
        let mut float_non_finite = HashMap::new();
        let mut shapes = HashMap::new();
        let outputs = float.run_with(inputs.clone(), &mut |name, v| {
            if v.is_tensor() {
                shapes.insert(name.to_string(), v.shape());
            }
            Ok(())
        })?;
        for (name, v) in outputs {
            let Ok(values) = v.to_f32() else { continue };
            let bad: HashSet<usize> = (0..values.len())
                .filter(|&i| !values[i].is_finite())
                .collect();
            if !bad.is_empty() {
                float_non_finite.insert(name, bad);
            }
        }
        Ok(Self {
            inputs,
            float_non_finite,
            shapes,
        })
    }

    /// `inputs` alone: every output must be finite.
    pub fn strict(inputs: Vec<(String, Value)>) -> Self {
        Self {
            inputs,
            float_non_finite: HashMap::new(),
            shapes: HashMap::new(),
        }
    }
}

/// The `value_info` entries of `model`'s main graph whose declared shape contradicts
/// the one the float model computed on the probe (another rank, or a fixed dim of
/// another size), as `(name, "declared [..], computed [..]")`. ONNX's checker refuses a
/// file whose shape inference meets such a contradiction, while runtimes run it (the
/// declarations are hints): a stale export, a hand-edited file.
pub fn contradicted_value_info(model: &ModelProto, probe: &Probe) -> Vec<(String, String)> {
    let Some(graph) = model.graph.as_ref() else {
        return Vec::new();
    };
    graph
        .value_info
        .iter()
        .filter_map(|v| {
            let computed = probe.shapes.get(&v.name)?;
            let spec = ValueSpec::from_proto(v);
            (spec.kind == ValueKind::Tensor && !spec.fits(computed)).then(|| {
                let declared: Vec<String> = spec
                    .dims
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => n.to_string(),
                        _ => "?".to_string(),
                    })
                    .collect();
                (
                    v.name.clone(),
                    format!("declared [{}], computed {computed:?}", declared.join(", ")),
                )
            })
        })
        .collect()
}

/// Runs `model` on the probe's inputs and its fake-quant simulation on the same
/// inputs, and checks that every output is finite (but where the float model's is not)
/// and that the two agree bit for bit.
///
/// # Errors
/// See [`VerifyError`].
pub fn verify_model(model: &ModelProto, probe: Probe, device: &Device) -> Result<(), VerifyError> {
    let Probe {
        inputs,
        float_non_finite,
        ..
    } = probe;
    check_weights_finite(model, device)?;
    let written = OnnxGraph::from_model(model, device)?.run(inputs.clone())?;
    let mut simulated_model = model.clone();
    if let Some(g) = simulated_model.graph.as_mut() {
        crate::finetune::fuse::fuse_qdq_pairs(g)
            .map_err(|e| VerifyError::Simulation(e.to_string()))?;
    }
    let simulated = OnnxGraph::from_model(&simulated_model, device)?.run(inputs)?;
    for ((name, w), (_, s)) in written.iter().zip(&simulated) {
        let (w, s) = (w.to_f32()?, s.to_f32()?);
        let expected = float_non_finite.get(name);
        if let Some((index, &value)) = w
            .iter()
            .enumerate()
            .find(|(i, x)| !x.is_finite() && !expected.is_some_and(|e| e.contains(i)))
        {
            return Err(VerifyError::NonFiniteOutput {
                output: name.clone(),
                index,
                value,
            });
        }
        if let Some(index) = (0..w.len().max(s.len()))
            .find(|&i| w.get(i).map(|x| x.to_bits()) != s.get(i).map(|x| x.to_bits()))
        {
            return Err(VerifyError::Mismatch {
                output: name.clone(),
                index,
                written: w.get(index).copied().unwrap_or(f32::NAN),
                simulated: s.get(index).copied().unwrap_or(f32::NAN),
            });
        }
    }
    Ok(())
}

/// A deterministic probe input for each of `inputs` when no data is at hand (e.g.
/// `qdq export` from a cache): dynamic dimensions become 1, floats a fixed spread of
/// values in [-1, 1], integers 0, bools false.
///
/// # Errors
/// An input of a type the runtime cannot hold, or whose size overflows.
pub fn probe_inputs(
    inputs: &[ValueSpec],
    device: &Device,
) -> Result<Vec<(String, Value)>, VerifyError> {
    let fill = ProbeFill {
        max_dim: usize::MAX,
        max_elements: 1 << 28,
        // A fixed spread over [-1, 1): every sign and magnitude class.
        float: |i| ((i as u64 * 2_654_435_761) % 2001) as f32 / 1000.0 - 1.0,
        bool_value: false,
    };
    Ok(probe_values(inputs, &fill, device)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::build::{model, node, tensor_f32, tensor_i64, value_info};

    fn check(weight: f32, bound: f32) -> Result<(), VerifyError> {
        // y = DQ(Q(w)) + Clip(x, -inf..bound): w quantized, the Clip bound not.
        let m = model(
            vec![
                node("QuantizeLinear", "q", &["w", "s"], &["wq"]),
                node("DequantizeLinear", "dq", &["wq", "s"], &["wd"]),
                node("Clip", "clip", &["wd", "lo", "hi"], &["y"]),
            ],
            vec![],
            &["y"],
            vec![
                tensor_f32("w", &[2], &[0.5, weight]),
                tensor_f32("s", &[], &[0.01]),
                tensor_f32("lo", &[], &[f32::NEG_INFINITY]),
                tensor_f32("hi", &[], &[bound]),
                tensor_i64("unused", &[1], &[0]),
            ],
            17,
        );
        check_weights_finite(&m, &Device::flex())
    }

    #[test]
    fn infinite_clip_bounds_are_kept_and_non_finite_quantized_weights_refused() {
        check(1.0, f32::INFINITY).unwrap();
        let e = check(f32::INFINITY, 6.0).unwrap_err();
        assert!(
            matches!(&e, VerifyError::NonFiniteWeight { initializer, index: 1, .. } if initializer == "w"),
            "{e}"
        );
        let e = check(1.0, f32::NAN).unwrap_err();
        assert!(
            matches!(&e, VerifyError::NonFiniteWeight { initializer, index: 0, .. } if initializer == "hi"),
            "{e}"
        );
    }

    /// `y = x / x`: NaN where x is 0, in the float model as in its QDQ copy (`x /
    /// DQ(Q(x))`). A probe that knows where the float model's outputs are NaN accepts those
    /// places and no other; a strict probe accepts none.
    #[test]
    fn nan_where_the_float_model_gives_nan_is_accepted_nowhere_else() {
        let device = Device::flex();
        let x = || vec![value_info("x", crate::proto::elem::FLOAT, &[3])];
        let float = model(
            vec![node("Div", "div", &["x", "x"], &["y"])],
            x(),
            &["y"],
            vec![],
            17,
        );
        let written = model(
            vec![
                node("QuantizeLinear", "q", &["x", "s"], &["xq"]),
                node("DequantizeLinear", "dq", &["xq", "s"], &["xd"]),
                node("Div", "div", &["x", "xd"], &["y"]),
            ],
            x(),
            &["y"],
            vec![tensor_f32("s", &[], &[0.01])],
            17,
        );
        let float = OnnxGraph::from_model(&float, &device).unwrap();
        let input = |v: Vec<f32>| vec![("x".to_string(), Value::from_f32(v, &[3], &device))];
        let probe = Probe::new(input(vec![0.0, 0.5, 1.0]), &float).unwrap();
        assert_eq!(probe.float_non_finite["y"], HashSet::from([0]));
        verify_model(&written, probe, &device).unwrap();
        let e =
            verify_model(&written, Probe::strict(input(vec![0.0, 0.5, 1.0])), &device).unwrap_err();
        assert!(
            matches!(&e, VerifyError::NonFiniteOutput { output, index: 0, .. } if output == "y"),
            "{e}"
        );
        // 0.004 rounds to 0 in the QDQ copy, not in float: infinity there is refused.
        let probe = Probe::new(input(vec![0.0, 0.004, 1.0]), &float).unwrap();
        let e = verify_model(&written, probe, &device).unwrap_err();
        assert!(
            matches!(&e, VerifyError::NonFiniteOutput { index: 1, .. }),
            "{e}"
        );
        assert!(
            e.to_string().ends_with("where the float model's is finite"),
            "{e}"
        );
    }
}
