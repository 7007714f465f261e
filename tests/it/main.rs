//! Cross-crate integration tests of the facade (one binary: `cargo test --test it`).

mod io_roundtrip;
mod upscale_topology;
