//! Quantizer markers: a Q/DQ pair on an activation, a held-back weight quantizer on a
//! constant.

use super::*;

impl Lowerer<'_> {
    pub(super) fn quant_marker(&mut self, input: &TensorIr, out: &TensorIr) -> Result<bool> {
        let Some(site) = self.trace.quant.get(&out.id).cloned() else {
            return Ok(false);
        };
        debug_assert_eq!(site.input, input.id);
        if self.consts.contains_key(&input.id) {
            self.deferred.insert(
                out.id,
                Deferred {
                    konst: input.id,
                    site,
                },
            );
        } else {
            let x = self.value(input.id)?;
            let y = self.qdq(&x, &site)?;
            self.names.insert(out.id, y);
        }
        Ok(true)
    }

    /// Emits the Q/DQ pair for `site` on `input`; returns the dequantized name.
    pub(super) fn qdq(&mut self, input: &str, site: &QuantSite) -> Result<String> {
        let l = &site.lowering;
        let fail = |what: String, needed: i64| Error::Opset {
            quantizer: site.name.clone(),
            what,
            needed,
            opset: self.options.opset,
        };
        let format = match (l.num_bits, l.unsigned) {
            (NumBits::Int(8), false) => QdqFormat::Int8,
            (NumBits::Int(8), true) => QdqFormat::Uint8,
            // W4A8's weights (and w4a4's activations, which the lint then judges):
            // ONNX's INT4, opset 21.
            (NumBits::Int(4), false) => QdqFormat::Int4,
            (NumBits::E4M3(_), _) => match self.options.fp8 {
                Fp8Style::Onnx => QdqFormat::Fp8E4M3,
                Fp8Style::TensorRt => QdqFormat::TrtFp8E4M3,
            },
            (bits, _) => {
                return Err(Error::Quantizer(qdq::Error::Quantizer {
                    name: site.name.clone(),
                    source: Box::new(qdq::Error::Unsupported {
                        what: "ONNX export",
                        format: format!(
                            "{bits}-bit quantizers{}; ONNX Q/DQ holds signed 4-bit (opset 21) and 8-bit integers and FP8 E4M3",
                            if l.unsigned { " (unsigned)" } else { "" }
                        ),
                    }),
                }));
            }
        };
        if format == QdqFormat::TrtFp8E4M3 && l.axis.is_some() {
            return Err(Error::Quantizer(qdq::Error::Quantizer {
                name: site.name.clone(),
                source: Box::new(qdq::Error::Unsupported {
                    what: "per-channel amax",
                    format: "TensorRT's TRT_FP8 custom ops (scalar scale only); use Fp8Style::Onnx"
                        .into(),
                }),
            }));
        }
        let needed = format.min_opset(l.axis.is_some());
        if self.options.opset < needed {
            let what = match format {
                QdqFormat::Fp8E4M3 => "FP8 E4M3 QuantizeLinear (FLOAT8E4M3FN)".to_string(),
                QdqFormat::Int4 => "INT4 QuantizeLinear (4-bit quantizers)".to_string(),
                _ => format!("per-channel quantization (axis {})", l.axis.unwrap_or(0)),
            };
            return Err(fail(what, needed));
        }
        self.uses_trt_domain |= format == QdqFormat::TrtFp8E4M3;
        let uses = self.quant_uses.entry(site.name.clone()).or_insert(0);
        *uses += 1;
        let prefix = if *uses == 1 {
            site.name.clone()
        } else {
            format!("{}.{}", site.name, *uses - 1)
        };
        // The record's own scales: qdq defines them, for the format it recorded.
        Ok(insert_qdq_scaled(
            &mut self.graph,
            input,
            &prefix,
            &l.scales(),
            l.axis.map(|a| a as i64),
            format,
        ))
    }
}
