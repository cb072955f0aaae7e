//! Zero points: constant, zero, signed; their type must fit the opset.

use super::{Context, QdqNode};
use crate::lint::{Rule, Violation};
use crate::proto::decode::all_zero;
use crate::proto::elem as dtype;
use crate::proto::elem::dtype_name;

/// Pushes this rule's violations at one Q/DQ node.
pub(super) fn check(cx: &Context, n: &QdqNode, out: &mut Vec<Violation>) {
    let node = n.node;
    let mut push = |rule, message: String, fix: &str| n.push(out, rule, message, fix);
    if let Some(zp_name) = node.input.get(2).filter(|s| !s.is_empty()) {
        match cx.consts.get(zp_name.as_str()) {
            None => push(
                Rule::ZeroPoint,
                format!("zero point `{zp_name}` is not a constant"),
                "use a constant zero point of 0",
            ),
            Some(zp) => {
                if !all_zero(zp) {
                    push(
                        Rule::ZeroPoint,
                        "zero point is not 0; TensorRT only supports symmetric quantization".into(),
                        "quantize symmetrically (zero point 0)",
                    );
                }
                match zp.data_type {
                    dtype::UINT8 | dtype::UINT4 if !cx.options.allow_uint8 => push(
                        Rule::ZeroPoint,
                        "unsigned zero point; TensorRT treats it as signed or rejects it".into(),
                        "use an INT8 (signed) zero point (a signed quantizer), or set LintOptions::allow_uint8 for other runtimes",
                    ),
                    dtype::FLOAT8E4M3FN
                    | dtype::FLOAT8E4M3FNUZ
                    | dtype::FLOAT8E5M2
                    | dtype::FLOAT8E5M2FNUZ
                        if cx.opset < 19 =>
                    {
                        push(
                            Rule::Opset,
                            format!(
                                "{} needs opset 19, model has {}",
                                dtype_name(zp.data_type),
                                cx.opset
                            ),
                            "export with opset >= 19",
                        )
                    }
                    dtype::INT4 | dtype::UINT4 | dtype::INT16 | dtype::UINT16 if cx.opset < 21 => {
                        push(
                            Rule::Opset,
                            format!(
                                "{} needs opset 21, model has {}",
                                dtype_name(zp.data_type),
                                cx.opset
                            ),
                            "export with opset >= 21",
                        )
                    }
                    dtype::FLOAT4E2M1 if cx.opset < 23 => push(
                        Rule::Opset,
                        format!("float4e2m1 needs opset 23, model has {}", cx.opset),
                        "export with opset >= 23",
                    ),
                    _ => {}
                }
            }
        }
    }
}
