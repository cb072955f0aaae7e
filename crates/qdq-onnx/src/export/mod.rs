//! Export of quantized burn models to QDQ ONNX (the seed's "Export to ONNX").
//!
//! [`export`] runs the model's own forward pass once on burn's capture device, so
//! the model's structure is never written twice. Every enabled, quantizing
//! `TensorQuantizer` becomes a `QuantizeLinear → DequantizeLinear` pair where it
//! stands (including a quantizer used directly in `forward`, such as ResNet's
//! residual quantizer); weights stay float initializers with their own pair, biases
//! stay float. Scales are `amax / 127` (255 unsigned, 448 FP8, 7 for 4-bit) in
//! float32, zero points 0 of type INT8 / UINT8 / FLOAT8E4M3FN / INT4 (4-bit
//! quantizers, opset 21).
//!
//! Everything that can go wrong is found before a byte is written: an uncalibrated
//! or calibrating quantizer (named), per-channel scales below opset 13, FP8 below
//! opset 19, 4-bit below opset 21, other bit widths, every operation the exporter cannot lower (listed with its place), and
//! any TensorRT rule the result would break ([`crate::lint`]). [`export_to_file`]
//! writes atomically.
//!
//! Quantized recurrent layers (`QuantLSTM`, `QuantLSTMCell`, `QuantGRU`, `QuantRNN`)
//! are refused by name ([`Error::UnsupportedLayer`]): ONNX has no quantized
//! recurrent op.
//!
//! Shapes are static, the sample input's, except the batch dimension with
//! [`ExportOptions::dynamic_batch`].

mod lower;
mod trace;

use std::fmt;
use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use onnx_ir::{Message, ModelProto};

use crate::error::{Error, Result};
use crate::lint::{LintOptions, lint_with};
use crate::proto::value_info_named;

/// How FP8 E4M3 quantizers are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fp8Style {
    /// Standard `QuantizeLinear` with a FLOAT8E4M3FN zero point (opset 19+).
    #[default]
    Onnx,
    /// TensorRT's `trt::TRT_FP8QuantizeLinear` / `TRT_FP8DequantizeLinear` custom
    /// ops, for TensorRT versions without opset-19 FP8 (per-tensor only).
    TensorRt,
}

/// Export settings.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// ONNX opset, 10 to 21 (default 17). Per-channel scales need 13, FP8 19.
    pub opset: i64,
    /// FP8 form.
    pub fp8: Fp8Style,
    /// Name of the graph input.
    pub input_name: String,
    /// Name of the graph output.
    pub output_name: String,
    /// Rules the exported model is checked against.
    pub lint: LintOptions,
    /// Make the first (batch) dimension of the input and output symbolic (`batch`):
    /// reshapes that keep the batch write 0 (copy) for it, so the file runs with any
    /// batch size. Trace with a batch of 2 or more so the batch is recognisable.
    pub dynamic_batch: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            opset: 17,
            fp8: Fp8Style::Onnx,
            input_name: "input".into(),
            output_name: "output".into(),
            lint: LintOptions::default(),
            dynamic_batch: false,
        }
    }
}

impl ExportOptions {
    /// Options with opset `opset`.
    pub fn with_opset(mut self, opset: i64) -> Self {
        self.opset = opset;
        self
    }

    /// Options with FP8 style `fp8`.
    pub fn with_fp8(mut self, fp8: Fp8Style) -> Self {
        self.fp8 = fp8;
        self
    }
}

/// An operation of the forward pass that has no ONNX lowering.
#[derive(Clone, Debug, PartialEq)]
pub struct UnsupportedOp {
    /// burn's name for the operation (`CumSum`, `Conv2d`, ...).
    pub op: String,
    /// Its position among the recorded operations of the forward pass.
    pub index: usize,
    /// Why, when it is a case of a supported op.
    pub detail: String,
    /// Where it is: the parameters it reads, or the quantizer before it.
    pub near: String,
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (operation #{}, {})", self.op, self.index, self.near)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// Exports `forward(model, sample)` as a QDQ ONNX model.
///
/// # Errors
/// See the module documentation; each error names the quantizer, operation or rule.
pub fn export<M, const DI: usize, const DO: usize>(
    model: &M,
    forward: impl Fn(&M, Tensor<DI>) -> Tensor<DO>,
    sample: Tensor<DI>,
    options: &ExportOptions,
) -> Result<ModelProto>
where
    M: Module + Clone,
{
    if !(10..=21).contains(&options.opset) {
        return Err(Error::OpsetRange {
            opset: options.opset,
            what: "export",
            min: 10,
            max: 21,
            note: " (default 17; per-channel scales need 13, FP8 19)",
        });
    }
    refuse_recurrent(model)?;
    let trace = trace::trace(model, forward, sample)?;
    let lowered = lower::Lowerer::new(&trace, options).run()?;
    let uses_trt = lowered.uses_trt_domain;
    let mut graph = lowered.graph;
    graph.name = "qdq".into();
    let elem = |id| {
        trace
            .ops
            .iter()
            .flat_map(|op| op.nodes())
            .find(|t| t.id == id)
            .map_or(crate::proto::elem::FLOAT, |t| lower::onnx_type(t.dtype))
    };
    let batch = options.dynamic_batch.then_some("batch");
    graph.input.push(value_info_named(
        &options.input_name,
        elem(trace.input.0),
        &trace.input.1,
        batch,
    ));
    graph.output.push(value_info_named(
        &options.output_name,
        elem(trace.output.0),
        &trace.output.1,
        batch,
    ));
    let mut model_proto = ModelProto::new();
    model_proto.ir_version = crate::passes::opset::ir_version_for(options.opset);
    model_proto.producer_name = "qdq".into();
    model_proto.producer_version = env!("CARGO_PKG_VERSION").into();
    model_proto.graph = Some(graph).into();
    model_proto.opset_import.push(Default::default());
    model_proto.opset_import[0].version = options.opset;
    if uses_trt {
        model_proto.opset_import.push(Default::default());
        model_proto.opset_import[1].domain = "trt".into();
        model_proto.opset_import[1].version = 1;
    }
    let violations = lint_with(&model_proto, &options.lint);
    if !violations.is_empty() {
        return Err(Error::Lint(violations));
    }
    Ok(model_proto)
}

/// Refuses quantized recurrent layers by name, before anything is traced: ONNX has
/// no quantized LSTM/GRU/RNN, and their unrolled graph (one Q/DQ pair per weight and
/// time step, the sequence length baked in) is not what TensorRT builds recurrent
/// engines from. They are found by torch's `weight_ih…` parameter, which every
/// `QuantLSTM`, `QuantLSTMCell`, `QuantGRU` and `QuantRNN` has.
fn refuse_recurrent<M: Module>(model: &M) -> Result<()> {
    use burn::module::Param;
    use qdq::nn::walk::{ModulePath, PathVisitor, visit_paths};

    #[derive(Default)]
    struct Find(Option<ModulePath>);
    impl PathVisitor for Find {
        fn visit_float<const D: usize>(&mut self, path: &ModulePath, _: &Param<Tensor<D>>) {
            // torch's `weight_ih` (a cell) or `weight_ih_l{layer}…` (a layer).
            if self.0.is_none() && path.last().is_some_and(|p| p.starts_with("weight_ih")) {
                self.0 = Some(path.parent());
            }
        }
    }
    let mut find = Find::default();
    visit_paths(model, &mut find);
    let Some(layer) = find.0.map(|p| p.dotted()) else {
        return Ok(());
    };
    Err(Error::UnsupportedLayer {
        layer: if layer.is_empty() {
            "(the model)".into()
        } else {
            layer
        },
        why: "ONNX has no quantized LSTM/GRU/RNN; export the layers around it, or run it in burn"
            .into(),
    })
}

/// [`export`], then writes the model to `path` atomically: on any error no file is
/// written (and an existing file is left as it was).
///
/// # Errors
/// As [`export`], and [`Error::Io`] naming `path` when it cannot be written.
pub fn export_to_file<M, const DI: usize, const DO: usize>(
    model: &M,
    forward: impl Fn(&M, Tensor<DI>) -> Tensor<DO>,
    sample: Tensor<DI>,
    options: &ExportOptions,
    path: impl AsRef<Path>,
) -> Result<ModelProto>
where
    M: Module + Clone,
{
    let path = path.as_ref();
    let model_proto = export(model, forward, sample, options)?;
    let bytes = model_proto.write_to_bytes().map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    qdq::io::write_atomic(path, &bytes).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(model_proto)
}
