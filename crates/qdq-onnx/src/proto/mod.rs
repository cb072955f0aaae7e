//! The proto floor: ONNX messages read ([`file`](mod@file)), decoded ([`decode`]) and built
//! (`build`), the element types ([`elem`]), the opset and IR versions ([`version`]) and
//! the attributes each operator defines ([`attributes`]). It imports nothing from the crate; every other floor builds on it.

pub mod attributes;
pub(crate) mod build;
pub mod decode;
pub mod elem;
pub mod external;
pub mod file;
pub mod nibble;
pub mod save_external;
mod schema_attributes;
pub mod version;

pub use build::value_info;
pub(crate) use build::{
    attr_float, attr_int, attr_ints, node, raw_tensor, tensor_f32, tensor_float, tensor_i64,
    value_info_named,
};
#[cfg(test)]
pub(crate) use build::{model, model_io};
pub use decode::weight_elements;
pub use file::{MAX_MODEL_BYTES, ReadError, read_model, read_model_with_data};
