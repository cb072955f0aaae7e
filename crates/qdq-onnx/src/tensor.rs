//! Reading constant tensors (initializers and `Constant` nodes) of an ONNX graph.

use std::collections::HashMap;

use onnx_ir::{GraphProto, TensorProto};

/// ONNX `TensorProto.DataType` codes: the runtime's one table.
pub(crate) use crate::runtime::dt as dtype;

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

/// Number of elements (1 for a scalar), saturating at `usize::MAX` for dims whose
/// product overflows (a hostile file; found by the `onnx_model` fuzz target after
/// 5.3 million runs).
pub(crate) fn numel(t: &TensorProto) -> usize {
    t.dims
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(0))
        .fold(1usize, usize::saturating_mul)
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

/// Total element count of a graph's initializers (what `qdq inspect` reports), summed
/// without overflow: dims from a hostile file saturate at `u64::MAX`, negative dims
/// count as 0.
pub fn initializer_elements(graph: &GraphProto) -> u64 {
    graph
        .initializer
        .iter()
        .map(|t| {
            t.dims.iter().try_fold(1u64, |acc, &d| {
                acc.checked_mul(u64::try_from(d).unwrap_or(0))
            })
        })
        .fold(0u64, |acc, n| acc.saturating_add(n.unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numel_saturates_instead_of_overflowing() {
        let mut t = TensorProto::new();
        t.dims = vec![1 << 32, 1 << 32, 3];
        assert_eq!(numel(&t), usize::MAX);
        t.dims = vec![2, -1, 3];
        assert_eq!(numel(&t), 0);
    }

    #[test]
    fn initializer_elements_saturates_instead_of_overflowing() {
        let mut g = GraphProto::new();
        for dims in [vec![2, 3], vec![], vec![-4, 5]] {
            let mut t = TensorProto::new();
            t.dims = dims;
            g.initializer.push(t);
        }
        assert_eq!(initializer_elements(&g), 6 + 1);
        let mut huge = TensorProto::new();
        huge.dims = vec![1 << 32, 1 << 32];
        g.initializer.push(huge.clone());
        g.initializer.push(huge);
        assert_eq!(initializer_elements(&g), u64::MAX);
    }
}
