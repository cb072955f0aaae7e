//! Building ONNX protobuf messages: nodes, attributes, initializers, value infos.

use onnx_ir::{AttributeProto, AttributeType, NodeProto, TensorProto, ValueInfoProto};

use super::elem;

/// A node `op(inputs) -> outputs` named `name` in the default domain.
pub(crate) fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n
}

/// An integer attribute.
pub(crate) fn attr_int(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.i = v;
    a.type_ = AttributeType::INT.into();
    a
}

/// An integer-list attribute.
pub(crate) fn attr_ints(name: &str, v: impl IntoIterator<Item = i64>) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.ints = v.into_iter().collect();
    a.type_ = AttributeType::INTS.into();
    a
}

/// A float attribute.
pub(crate) fn attr_float(name: &str, v: f32) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.f = v;
    a.type_ = AttributeType::FLOAT.into();
    a
}

/// A float32 tensor, stored as raw little-endian bytes (compact and fast to write).
pub(crate) fn tensor_f32(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_tensor(name, dims, elem::FLOAT, bytes)
}

/// An int64 tensor.
/// A float32, float16 or bfloat16 (`code`) initializer of `values`, rounded to the
/// type; `None` for any other type.
pub(crate) fn tensor_float(
    name: &str,
    dims: &[usize],
    values: &[f32],
    code: i32,
) -> Option<TensorProto> {
    match code {
        elem::FLOAT => Some(tensor_f32(name, dims, values)),
        elem::FLOAT16 | elem::BFLOAT16 => {
            let bytes = super::decode::f32_to_half(code, values)
                .iter()
                .flat_map(|b| b.to_le_bytes())
                .collect();
            Some(raw_tensor(name, dims, code, bytes))
        }
        _ => None,
    }
}

pub(crate) fn tensor_i64(name: &str, dims: &[usize], values: &[i64]) -> TensorProto {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw_tensor(name, dims, elem::INT64, bytes)
}

/// A tensor of `data_type` from its raw little-endian bytes.
pub(crate) fn raw_tensor(
    name: &str,
    dims: &[usize],
    data_type: i32,
    bytes: Vec<u8>,
) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.iter().map(|&d| d as i64).collect();
    t.data_type = data_type;
    t.raw_data = bytes.into();
    t
}

/// A graph input or output: a tensor of `elem_type` with static `dims`.
pub fn value_info(name: &str, elem_type: i32, dims: &[usize]) -> ValueInfoProto {
    value_info_named(name, elem_type, dims, None)
}

/// [`value_info`] whose first dimension is the symbol `batch` when given.
pub(crate) fn value_info_named(
    name: &str,
    elem_type: i32,
    dims: &[usize],
    batch: Option<&str>,
) -> ValueInfoProto {
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    let mut ty = onnx_ir::TypeProto::new();
    let tensor = ty.mut_tensor_type();
    tensor.elem_type = elem_type;
    let shape = tensor.shape.mut_or_insert_default();
    for (i, &d) in dims.iter().enumerate() {
        shape.dim.push(Default::default());
        if let Some(dim) = shape.dim.last_mut() {
            match batch {
                Some(b) if i == 0 => dim.set_dim_param(b.to_string()),
                _ => dim.set_dim_value(d as i64),
            }
        }
    }
    v.type_ = Some(ty).into();
    v
}

/// A model of `nodes` importing the default-domain `opset`, for tests; `outputs` are
/// declared by name only.
#[cfg(test)]
pub(crate) fn model(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: &[&str],
    inits: Vec<TensorProto>,
    opset: i64,
) -> onnx_ir::ModelProto {
    let outputs = outputs
        .iter()
        .map(|n| {
            let mut v = ValueInfoProto::new();
            v.name = n.to_string();
            v
        })
        .collect();
    model_io(nodes, inputs, outputs, inits, opset)
}

/// [`model`] with typed outputs.
#[cfg(test)]
pub(crate) fn model_io(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
    opset: i64,
) -> onnx_ir::ModelProto {
    let mut m = onnx_ir::ModelProto::new();
    m.opset_import.push(Default::default());
    if let Some(o) = m.opset_import.last_mut() {
        o.version = opset;
    }
    let g = m.graph.mut_or_insert_default();
    g.node = nodes;
    g.input = inputs;
    g.output = outputs;
    g.initializer = inits;
    m
}
