//! Times nanoml's morphology kernels on masks stored as NPY files and prints one JSON
//! object per (file, kernel) with the median time. Driven by
//! `tools/compare/morphology.py`, which times scikit-image on the same files in the same
//! run; it can also be used alone:
//!
//! ```text
//! cargo run --release --example compare_morphology -- DIR [REPEATS]
//! ```

use anyhow::{Context, Result};
use nanoml::core::io::npy;
use nanoml::morphology::*;
use ndarray::Array2;
use std::time::Instant;

fn median_seconds<T>(repeats: usize, mut f: impl FnMut() -> T) -> f64 {
    std::hint::black_box(f()); // warm-up
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().context("usage: compare_morphology DIR [REPEATS]")?;
    let repeats: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(30).max(1);
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    files.sort();
    for path in files {
        let mask: Array2<bool> = npy::read(&path)?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
        let kernels: Vec<(&str, f64)> = vec![
            ("euler_number_2", median_seconds(repeats, || euler_number(&mask, Connectivity::Eight))),
            ("euler_number_1", median_seconds(repeats, || euler_number(&mask, Connectivity::Four))),
            ("perimeter_4", median_seconds(repeats, || perimeter(&mask, Neighbourhood::Four))),
            ("perimeter_crofton_4", median_seconds(repeats, || perimeter_crofton(&mask, CroftonDirections::Four))),
            ("label_2", median_seconds(repeats, || label(&mask, Connectivity::Eight))),
            ("label_1", median_seconds(repeats, || label(&mask, Connectivity::Four))),
        ];
        for (kernel, secs) in kernels {
            println!("{{\"file\": \"{name}\", \"kernel\": \"{kernel}\", \"median_s\": {secs:e}}}");
        }
    }
    Ok(())
}
