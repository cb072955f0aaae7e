//! Graph passes on ONNX models: constants made initializers ([`fold`]), where quantizers
//! go ([`placement`]), writing them in ([`insert`]), and the opset they need ([`opset`]).

pub mod fold;
pub mod insert;
pub mod opset;
pub mod placement;

pub use fold::fold_constant_nodes;
pub use insert::insert_sites;
pub use opset::{MAX_OPSET, model_opset, upgrade_opset};
pub use placement::{PlacementOptions, Site, SiteKind, matches_pattern, node_label, place};
