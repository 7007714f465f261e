//! Times nanoml's levelling, alignment and scar kernels on scans stored as NPY files and
//! prints one JSON object per (file, kernel) with the median time. Driven by
//! `tools/compare/gwyddion.py`, which times Gwyddion 2.62's libgwyprocess on the same
//! scans in the same run (through `tools/gwyddion/harness.c`); usable alone too:
//!
//! ```text
//! cargo run --release --example compare_gwyddion -- DIR [REPEATS]
//! ```

#[path = "common/mod.rs"]
mod common;

use anyhow::{Context, Result};
use nanoml::core::io::npy;
use nanoml::spm::align::{RowAlignment, align_rows};
use nanoml::spm::level::{PolyTerms, level_plane, level_poly};
use nanoml::spm::scars::{ScarParams, laplace_fill, mark_scars};
use ndarray::Array2;

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().context("usage: compare_gwyddion DIR [REPEATS]")?;
    let repeats: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(10).max(1);
    for (name, path) in common::npy_files(std::path::Path::new(&dir))? {
        let image: Array2<f64> = npy::read(&path)?;
        let scars = mark_scars(&image, &ScarParams::default())?;
        let terms = PolyTerms::Independent { col_degree: 5, row_degree: 5 };
        let kernels: Vec<(&str, f64)> = vec![
            ("level_plane", common::median_seconds(repeats, || level_plane(&image))),
            ("level_poly_5x5", common::median_seconds(repeats, || level_poly(&image, terms))),
            ("align_median", common::median_seconds(repeats, || align_rows(&image, RowAlignment::Median))),
            (
                "align_median_of_differences",
                common::median_seconds(repeats, || align_rows(&image, RowAlignment::MedianOfDifferences)),
            ),
            ("mark_scars", common::median_seconds(repeats, || mark_scars(&image, &ScarParams::default()))),
            ("laplace_fill_scars", common::median_seconds(repeats, || laplace_fill(&image, &scars))),
        ];
        for (kernel, secs) in kernels {
            println!(r#"{{"file": "{name}", "kernel": "{kernel}", "median_s": {secs}}}"#);
        }
    }
    Ok(())
}
