//! # qdq-cli
//!
//! The `qdq` command line's building blocks: data loading ([`data`]) and the bundled
//! example model. The binary (`src/main.rs`) is the manual.

pub mod data;
pub mod demo;
