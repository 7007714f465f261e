//! Helpers shared by the `compare_*` examples (each includes this file as a module).
#![allow(dead_code)]

use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Median wall time of `repeats` calls of `f`, in seconds, after one warm-up call.
pub(crate) fn median_seconds<T>(repeats: usize, mut f: impl FnMut() -> T) -> f64 {
    std::hint::black_box(f()); // warm-up
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The `.npy` files of a folder, sorted by name, with their stems.
pub(crate) fn npy_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    files.sort();
    Ok(files.into_iter().map(|p| (p.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string(), p)).collect())
}
