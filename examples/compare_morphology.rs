//! Times nanoml's morphology kernels on masks stored as NPY files and prints one JSON
//! object per (file, kernel) with the median time. Driven by
//! `tools/compare/morphology.py`, which times scikit-image on the same files in the same
//! run; it can also be used alone:
//!
//! ```text
//! cargo run --release --example compare_morphology -- DIR [REPEATS]
//! ```

#[path = "common/mod.rs"]
mod common;

use anyhow::{Context, Result};
use nanoml::core::io::npy;
use nanoml::morphology::*;
use ndarray::Array2;

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().context("usage: compare_morphology DIR [REPEATS]")?;
    let repeats: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(30).max(1);
    let files = common::npy_files(std::path::Path::new(&dir))?;
    for (name, path) in files {
        let mask: Array2<bool> = npy::read(&path)?;
        let kernels: Vec<(&str, f64)> = vec![
            ("euler_number_2", common::median_seconds(repeats, || euler_number(&mask, Connectivity::Eight))),
            ("euler_number_1", common::median_seconds(repeats, || euler_number(&mask, Connectivity::Four))),
            ("perimeter_4", common::median_seconds(repeats, || perimeter(&mask, Neighbourhood::Four))),
            (
                "perimeter_crofton_4",
                common::median_seconds(repeats, || perimeter_crofton(&mask, CroftonDirections::Four)),
            ),
            ("label_2", common::median_seconds(repeats, || label(&mask, Connectivity::Eight))),
            ("label_1", common::median_seconds(repeats, || label(&mask, Connectivity::Four))),
        ];
        for (kernel, secs) in kernels {
            println!("{{\"file\": \"{name}\", \"kernel\": \"{kernel}\", \"median_s\": {secs:e}}}");
        }
    }
    Ok(())
}
