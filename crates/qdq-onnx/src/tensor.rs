//! Reading constant tensors (initializers and `Constant` nodes) of an ONNX graph.

use std::collections::HashMap;

use onnx_ir::{GraphProto, TensorProto};

/// ONNX `TensorProto.DataType` codes used here.
pub(crate) mod dtype {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT64: i32 = 7;
    pub const FLOAT8E4M3FN: i32 = 17;
    pub const UINT4: i32 = 21;
    pub const INT4: i32 = 22;
}

/// Every constant of a graph by name: initializers and `Constant` node outputs.
pub(crate) fn constants(graph: &GraphProto) -> HashMap<&str, &TensorProto> {
    let mut map: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    for node in graph.node.iter().filter(|n| n.op_type == "Constant") {
        let value = node.attribute.iter().find(|a| a.name == "value");
        if let (Some(out), Some(t)) = (node.output.first(), value.and_then(|a| a.t.as_ref())) {
            map.insert(out.as_str(), t);
        }
    }
    map
}

/// Number of elements (1 for a scalar).
pub(crate) fn numel(t: &TensorProto) -> usize {
    t.dims.iter().map(|&d| d.max(0) as usize).product()
}

/// Float values of a FLOAT tensor (typed or raw little-endian storage).
pub(crate) fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != dtype::FLOAT {
        return None;
    }
    if !t.float_data.is_empty() {
        return Some(t.float_data.clone());
    }
    Some(
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// Whether every element of an integer or FP8 tensor is zero (typed or raw storage).
pub(crate) fn all_zero(t: &TensorProto) -> bool {
    t.int32_data.iter().all(|&v| v == 0)
        && t.int64_data.iter().all(|&v| v == 0)
        && t.float_data.iter().all(|&v| v == 0.0)
        && t.raw_data.iter().all(|&b| b == 0)
}
