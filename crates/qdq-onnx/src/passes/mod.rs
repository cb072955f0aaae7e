//! Graph passes on ONNX models: constants made initializers ([`fold`]), where quantizers
//! go ([`placement`]), writing them in ([`insert`]), the opset they need ([`opset`]),
//! and the element type of every tensor ([`types`]).

pub mod dq_only;
mod error;
pub mod fold;
pub mod insert;
pub mod opset;
pub mod placement;
pub mod sort;
pub mod subgraph;
pub mod types;

pub use dq_only::store_weights_quantized;
pub use error::{PassError, PassResult};
pub use fold::{fold_constant_nodes, fold_weight_chains};
pub use insert::{insert_sites, insert_sites_as};
pub use opset::{MAX_OPSET, check_opset, ir_version_for, model_opset, upgrade_opset};
pub use placement::{PlacementOptions, Site, SiteKind, matches_pattern, node_label, place};
pub use sort::sort_nodes;
pub use subgraph::{GraphPath, path_scope, subgraph, subgraph_mut, visible_constant};
pub use types::{elem_types, elem_types_within, is_float_tensor};
