//! Cross-crate integration tests of the facade (one binary: `cargo test --test it`).

mod io_roundtrip;
mod screening;
mod upscale_topology;
