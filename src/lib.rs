//! # nanoml
//!
//! Machine learning on nanoscale microscopy images, as one facade over the nanoml crates.
//! See the README for the map of crates.
#![warn(missing_docs)]

pub use nanoml_core as core;
pub use nanoml_morphology as morphology;

/// The version of this facade crate.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
