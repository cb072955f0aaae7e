//! Writing `QuantizeLinear → DequantizeLinear` pairs into a graph: the one Q/DQ
//! writer both exporters (native burn models and imported ONNX graphs) use.
//!
//! Scales follow pytorch-quantization's export (spec §6): `scale = amax / bound` in
//! float32 with bound 127 (255 unsigned, 448 for FP8 E4M3, 7 for INT4 weights), a zero
//! amax giving scale 1; zero points are 0 of type INT8 (UINT8 unsigned, FLOAT8E4M3FN
//! for FP8, INT4 for 4-bit weights).

use onnx_ir::GraphProto;
use qdq::tensor_quant::NumBits;

use crate::proto;
use crate::proto::elem as dtype;

/// The format a pair quantizes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QdqFormat {
    /// Signed 8-bit integers, zero point INT8 0.
    Int8,
    /// Unsigned 8-bit integers, zero point UINT8 0 (TensorRT prefers signed).
    Uint8,
    /// Signed 4-bit integers (opset 21), zero point INT4 0: the weights of W4A8.
    /// pytorch-quantization's `num_bits=4, narrow_range=True`: scale `amax / 7`, so
    /// values within amax land in `[-7, 7]` (QuantizeLinear saturates to `[-8, 7]`).
    Int4,
    /// FP8 E4M3FN with a standard (opset 19+) zero point of type FLOAT8E4M3FN.
    Fp8E4M3,
    /// FP8 E4M3 as TensorRT's custom `trt::TRT_FP8QuantizeLinear` /
    /// `trt::TRT_FP8DequantizeLinear` pair (no zero point), for TensorRT versions
    /// older than opset-19 FP8 support; what pytorch-quantization and ModelOpt emit.
    TrtFp8E4M3,
}

impl QdqFormat {
    /// The grid this format holds, as qdq names it: (bits, unsigned).
    pub fn grid(self) -> (NumBits, bool) {
        match self {
            QdqFormat::Int8 => (NumBits::Int(8), false),
            QdqFormat::Uint8 => (NumBits::Int(8), true),
            QdqFormat::Int4 => (NumBits::Int(4), false),
            QdqFormat::Fp8E4M3 | QdqFormat::TrtFp8E4M3 => (NumBits::FP8_E4M3, false),
        }
    }

    /// The largest grid value amax maps to: 127, 255, 448 or 7 ([`NumBits::max_bound`],
    /// qdq's one definition).
    pub fn bound(self) -> f32 {
        let (bits, unsigned) = self.grid();
        bits.max_bound(unsigned)
    }

    /// Lowest opset whose Q/DQ can hold this format (and an `axis`, when `per_axis`).
    pub fn min_opset(self, per_axis: bool) -> i64 {
        match self {
            QdqFormat::Int4 => 21,
            QdqFormat::Fp8E4M3 => 19,
            _ if per_axis => 13,
            QdqFormat::TrtFp8E4M3 => 13,
            _ => 10,
        }
    }

    /// Zero point type; `None` for the TensorRT custom pair, which takes none.
    fn zero_point_type(self) -> Option<i32> {
        match self {
            QdqFormat::Int8 => Some(dtype::INT8),
            QdqFormat::Uint8 => Some(dtype::UINT8),
            QdqFormat::Int4 => Some(dtype::INT4),
            QdqFormat::Fp8E4M3 => Some(dtype::FLOAT8E4M3FN),
            QdqFormat::TrtFp8E4M3 => None,
        }
    }

    /// (domain, Q op, DQ op).
    fn ops(self) -> (&'static str, &'static str, &'static str) {
        match self {
            QdqFormat::TrtFp8E4M3 => ("trt", "TRT_FP8QuantizeLinear", "TRT_FP8DequantizeLinear"),
            _ => ("", "QuantizeLinear", "DequantizeLinear"),
        }
    }
}

/// `amax / bound` per entry in float32, 1 where amax is 0 (the reference's rule, so
/// an uncalibrated channel never gets a zero scale).
pub fn scales(amax: &[f32], format: QdqFormat) -> Vec<f32> {
    let (bits, unsigned) = format.grid();
    amax.iter().map(|&a| bits.qdq_scale(unsigned, a)).collect()
}

/// Adds a Q/DQ pair on tensor `input` to `graph`: scale and zero-point initializers
/// named `{prefix}_scale` / `{prefix}_zero_point`, nodes `{prefix}_QuantizeLinear`
/// and `{prefix}_DequantizeLinear`. Per-channel when `amax` has several entries, on
/// `axis`. Returns the name of the dequantized tensor, for the consumer to read.
/// The TensorRT FP8 form uses domain `trt` (the model must import it) and no zero
/// point.
pub fn insert_qdq(
    graph: &mut GraphProto,
    input: &str,
    prefix: &str,
    amax: &[f32],
    axis: Option<i64>,
    format: QdqFormat,
) -> String {
    insert_qdq_scaled(graph, input, prefix, &scales(amax, format), axis, format)
}

/// [`insert_qdq`] with the scales already computed (one per channel, or one), e.g.
/// by [`qdq::nn::lowering::QuantLowering::scales`]: the writer then computes no
/// quantization parameter itself.
pub fn insert_qdq_scaled(
    graph: &mut GraphProto,
    input: &str,
    prefix: &str,
    scales: &[f32],
    axis: Option<i64>,
    format: QdqFormat,
) -> String {
    insert_qdq_as(
        graph,
        input,
        prefix,
        scales,
        axis,
        format,
        FloatForm::default(),
    )
}

/// How a pair holds a tensor of the model's own float type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloatForm {
    /// The quantized tensor's element type: float32 (default), float16, bfloat16 or
    /// double.
    pub elem: i32,
    /// The output opset takes float16/bfloat16 scales (19 and newer).
    pub typed_scales: bool,
}

impl Default for FloatForm {
    fn default() -> Self {
        Self {
            elem: dtype::FLOAT,
            typed_scales: false,
        }
    }
}

impl FloatForm {
    /// Whether the pair is written in the tensor's own type: float32 always; float16
    /// and bfloat16 with typed scales and a standard Q/DQ. Otherwise (double, which no
    /// Q/DQ takes; float16 below opset 19; TensorRT's FP8 ops) the pair is wrapped in
    /// `Cast`s to float32 and back, as pytorch-quantization exports FP16 models.
    pub fn native(self, format: QdqFormat) -> bool {
        match self.elem {
            dtype::FLOAT => true,
            dtype::FLOAT16 | dtype::BFLOAT16 => {
                self.typed_scales && format != QdqFormat::TrtFp8E4M3
            }
            _ => false,
        }
    }
}

/// The scale initializer in float32, or rounded to float16/bfloat16 (`elem`); a scale
/// that rounds to 0 (an amax under float16's smallest step times the bound) gets the
/// smallest positive value of the type, so no scale is ever 0.
fn scale_tensor(name: &str, dims: &[usize], scales: &[f32], elem: i32) -> onnx_ir::TensorProto {
    let bits: Vec<u16> = match elem {
        dtype::FLOAT16 | dtype::BFLOAT16 => proto::decode::f32_to_half(elem, scales)
            .into_iter()
            .map(|b| b.max(1))
            .collect(),
        _ => return proto::tensor_f32(name, dims, scales),
    };
    let bytes = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    proto::raw_tensor(name, dims, elem, bytes)
}

/// [`insert_qdq_scaled`] for a tensor of type `form.elem`: scale and DQ output in that
/// type where the opset allows it, else `Cast → Q → DQ → Cast` through float32 (see
/// [`FloatForm`]). The dequantized tensor has the input's type either way.
pub fn insert_qdq_as(
    graph: &mut GraphProto,
    input: &str,
    prefix: &str,
    scales: &[f32],
    axis: Option<i64>,
    format: QdqFormat,
    form: FloatForm,
) -> String {
    let native = form.native(format);
    let output = format!("{prefix}_dequantized");
    if !native {
        let cast_in = format!("{prefix}_float32");
        let mut n = proto::node("Cast", &format!("{prefix}_Cast"), &[input], &[&cast_in]);
        n.attribute
            .push(proto::attr_int("to", i64::from(dtype::FLOAT)));
        graph.node.push(n);
        let inner = insert_qdq_as(
            graph,
            &cast_in,
            &format!("{prefix}_float32"),
            scales,
            axis,
            format,
            FloatForm::default(),
        );
        let mut n = proto::node("Cast", &format!("{prefix}_CastBack"), &[&inner], &[&output]);
        n.attribute
            .push(proto::attr_int("to", i64::from(form.elem)));
        graph.node.push(n);
        return output;
    }
    let per_axis = scales.len() > 1;
    let dims: &[usize] = if per_axis { &[scales.len()] } else { &[] };
    let scale_name = format!("{prefix}_scale");
    let zp_name = format!("{prefix}_zero_point");
    graph
        .initializer
        .push(scale_tensor(&scale_name, dims, scales, form.elem));
    let mut params = vec![scale_name.as_str()];
    if let Some(zp_type) = format.zero_point_type() {
        // Zero bytes: 0 in INT8, UINT8 and FLOAT8E4M3FN alike, two INT4 zeros a byte.
        let zeros = if crate::proto::nibble::is_4bit(zp_type) {
            vec![0u8; crate::proto::nibble::packed_len(scales.len())]
        } else {
            vec![0u8; scales.len()]
        };
        graph
            .initializer
            .push(proto::raw_tensor(&zp_name, dims, zp_type, zeros));
        params.push(&zp_name);
    }
    let quantized = format!("{prefix}_quantized");
    let (domain, q_op, dq_op) = format.ops();
    for (op, from, to) in [(q_op, input, &quantized), (dq_op, &quantized, &output)] {
        let inputs: Vec<&str> = std::iter::once(from)
            .chain(params.iter().copied())
            .collect();
        let mut n = proto::node(op, &format!("{prefix}_{op}"), &inputs, &[to]);
        n.domain = domain.into();
        if let (true, Some(axis)) = (per_axis, axis) {
            n.attribute.push(proto::attr_int("axis", axis));
        }
        graph.node.push(n);
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::{Rule, lint};
    use onnx_ir::{ModelProto, NodeProto, TensorProto};

    #[test]
    fn scales_follow_the_reference_export() {
        // Spec §6: QuantConv2d input amax 2.435065 -> scale 0.019173743 (the spec's
        // amax is printed rounded, so the scales agree to 7 digits); amax 0 -> 1.
        let s = scales(&[2.435065, 0.0], QdqFormat::Int8);
        assert_eq!(s, vec![2.435065f32 / 127.0, 1.0]);
        assert_eq!(format!("{:.7}", s[0]), "0.0191737");
        // modelopt FP8 example: amax 2 -> 0.004464286.
        assert_eq!(
            format!("{:.9}", scales(&[2.0], QdqFormat::Fp8E4M3)[0]),
            "0.004464286"
        );
        assert_eq!(scales(&[255.0], QdqFormat::Uint8), vec![1.0]);
        assert_eq!(QdqFormat::Int8.min_opset(true), 13);
        assert_eq!(QdqFormat::Fp8E4M3.min_opset(false), 19);
        // INT4 weights: pytorch-quantization's num_bits=4 grid, amax 0.7 -> 0.1.
        assert_eq!(QdqFormat::Int4.bound(), 7.0);
        assert_eq!(
            scales(&[0.7, 0.0], QdqFormat::Int4),
            vec![0.7f32 / 7.0, 1.0]
        );
        assert_eq!(QdqFormat::Int4.min_opset(true), 21);
    }

    fn conv_model(opset: i64, format: QdqFormat, w_axis: i64) -> ModelProto {
        let mut g = GraphProto::new();
        let mut w = TensorProto::new();
        w.name = "w".into();
        w.dims = vec![2, 1, 1, 1];
        w.data_type = dtype::FLOAT;
        w.float_data = vec![0.5, -0.25];
        g.initializer.push(w);
        let x = insert_qdq(&mut g, "x", "conv_input", &[2.5], None, format);
        let wd = insert_qdq(
            &mut g,
            "w",
            "conv_weight",
            &[0.5, 0.25],
            Some(w_axis),
            format,
        );
        let mut conv = NodeProto::new();
        conv.op_type = "Conv".into();
        conv.name = "conv".into();
        conv.input = vec![x, wd];
        conv.output = vec!["y".into()];
        g.node.push(conv);
        g.input
            .push(crate::proto::value_info("x", dtype::FLOAT, &[1, 1, 1, 1]));
        g.output
            .push(crate::proto::value_info("y", dtype::FLOAT, &[1, 2, 1, 1]));
        let mut m = ModelProto::new();
        m.graph = Some(g).into();
        m.opset_import.push(Default::default());
        m.opset_import[0].version = opset;
        m
    }

    #[test]
    fn inserted_pairs_pass_the_tensorrt_linter() {
        assert_eq!(lint(&conv_model(13, QdqFormat::Int8, 0)), vec![]);
        assert_eq!(lint(&conv_model(19, QdqFormat::Fp8E4M3, 0)), vec![]);
        // The linter catches what the writer cannot know: a wrong axis, a low opset.
        let wrong: Vec<Rule> = lint(&conv_model(13, QdqFormat::Int8, 1))
            .iter()
            .map(|v| v.rule)
            .collect();
        assert!(wrong.contains(&Rule::WeightAxis), "{wrong:?}");
        let old: Vec<Rule> = lint(&conv_model(17, QdqFormat::Fp8E4M3, 0))
            .iter()
            .map(|v| v.rule)
            .collect();
        assert!(
            old.iter().all(|r| *r == Rule::Opset) && !old.is_empty(),
            "{old:?}"
        );
    }

    #[test]
    fn pair_layout_and_names() {
        let m = conv_model(13, QdqFormat::Int8, 0);
        let g = m.graph.as_ref().unwrap();
        let names: Vec<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv_input_QuantizeLinear",
                "conv_input_DequantizeLinear",
                "conv_weight_QuantizeLinear",
                "conv_weight_DequantizeLinear",
                "conv"
            ]
        );
        let wq = &g.node[2];
        assert_eq!(
            wq.input,
            ["w", "conv_weight_scale", "conv_weight_zero_point"]
        );
        assert_eq!(
            (wq.attribute[0].name.as_str(), wq.attribute[0].i),
            ("axis", 0)
        );
        assert!(
            g.node[0].attribute.is_empty(),
            "per-tensor pairs carry no axis"
        );
        let zp = g
            .initializer
            .iter()
            .find(|t| t.name == "conv_weight_zero_point")
            .unwrap();
        assert_eq!(
            (zp.data_type, zp.dims.clone(), zp.raw_data.to_vec()),
            (dtype::INT8, vec![2], vec![0, 0])
        );
    }
}
