//! Times nanoml's thresholds on images stored as NPY files and prints one JSON object per
//! (file, kernel) with the median time. Driven by `tools/compare/spm.py`, which times
//! scikit-image on the same files in the same run; it can also be used alone:
//!
//! ```text
//! cargo run --release --example compare_spm -- DIR [REPEATS]
//! ```

#[path = "common/mod.rs"]
mod common;

use anyhow::{Context, Result};
use nanoml::core::io::npy;
use nanoml::core::window::{Coverage, WindowGrid};
use nanoml::spm::screening::preprocess_pyrabani;
use nanoml::spm::threshold::{threshold_multiotsu, threshold_otsu};
use ndarray::Array2;

/// The screening code's chain ([`preprocess_pyrabani`]: min–max, binned
/// median-of-differences alignment, noise rows, degree-5 separable background, min–max,
/// 3-class multi-Otsu on 1000 bins, binarisation, flat-binarisation test), then the
/// 200-pixel windows at stride 8 (as views). Both test images pass every check, so every
/// step runs.
fn chain(image: &Array2<f64>) -> Result<usize> {
    let Ok(p) = preprocess_pyrabani(image)? else { anyhow::bail!("the scan was rejected") };
    let grid = WindowGrid::square(p.binary.dim(), 200, 8, Coverage::PyRabani)?;
    Ok(grid.views(p.binary.view())?.count())
}

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().context("usage: compare_spm DIR [REPEATS]")?;
    let repeats: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20).max(1);
    let files = common::npy_files(std::path::Path::new(&dir))?;
    for (name, path) in files {
        let image: Array2<f64> = npy::read(&path)?;
        let kernels: Vec<(&str, f64)> = vec![
            ("multiotsu_3_256", common::median_seconds(repeats, || threshold_multiotsu(&image, 3, 256))),
            ("multiotsu_3_1000", common::median_seconds(repeats, || threshold_multiotsu(&image, 3, 1000))),
            ("multiotsu_4_256", common::median_seconds(repeats, || threshold_multiotsu(&image, 4, 256))),
            ("otsu_256", common::median_seconds(repeats, || threshold_otsu(&image, 256))),
            ("screening_chain", common::median_seconds(repeats, || chain(&image))),
        ];
        for (kernel, secs) in kernels {
            println!(r#"{{"file": "{name}", "kernel": "{kernel}", "median_s": {secs}}}"#);
        }
    }
    Ok(())
}
