//! # qdq-cli
//!
//! The `qdq` command line's building blocks: data loading ([`data`]) and the bundled
//! example model. The binary (`src/main.rs`) is the manual.

#![deny(missing_docs)]

/// The data loaders, from `qdq-data`.
pub use qdq_data as data;
pub mod allocator;
pub mod demo;
pub mod feed;
