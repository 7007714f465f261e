//! Times nanoml-hrtem's potential + multislice for the 1163-atom Au Wulff particle along
//! [011] in a 66.6 × 66.6 × 33 Å box (33 slices of 1 Å, 300 keV, Lobato, infinite
//! projection; ../shared/notes/hrtem.md §8), one CTF image, and one recorded image
//! with a new random microscope each time (CTF, blur, dose noise, MTF; Ragone 2020
//! ranges), and prints JSON lines with the medians. Driven by `tools/compare/hrtem.py`, which times abTEM on
//! the same particle and grids in the same run; usable alone too:
//!
//! ```text
//! cargo run --release --example compare_hrtem -- [REPEATS]
//! ```

#[path = "common/mod.rs"]
mod common;

use anyhow::Result;
use nanoml::hrtem::Element;
use nanoml::hrtem::ctf::Ctf;
use nanoml::hrtem::detector::MicroscopeRanges;
use nanoml::hrtem::multislice::Multislice;
use nanoml::hrtem::potential::{Grid, Parametrization, potential_slices};
use nanoml::hrtem::wulff::{Rounding, wulff_construction};

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let repeats: usize = std::env::args().nth(1).map(|r| r.parse()).transpose()?.unwrap_or(5).max(1);
    let np = wulff_construction(
        Element::AU,
        &[[1, 0, 0], [1, 1, 0], [1, 1, 1]],
        &[6.0, 2.0, 4.0],
        1000,
        Rounding::Above,
        None,
    )?;
    let turned = np.atoms.oriented([0, 1, 1])?;
    let (lo, hi) = turned.bounds().ok_or_else(|| anyhow::anyhow!("no atoms"))?;
    anyhow::ensure!(hi[2] - lo[2] < 33.0, "the particle is taller than the 33 Å box");
    let atoms = turned.centered_in([66.6, 66.6, 33.0])?;
    for n in [256usize, 512, 1024] {
        let grid = Grid { gpts: (n, n), sampling: (66.6 / n as f64, 66.6 / n as f64) };
        let secs = common::median_seconds(repeats, || -> Result<_> {
            let (slices, thicknesses) = potential_slices(&atoms, &grid, 1.0, Parametrization::Lobato)?;
            Ok(Multislice::new(grid, 300e3)?.run(&slices, &thicknesses)?)
        });
        println!(r#"{{"kernel": "potential_multislice", "gpts": {n}, "median_s": {secs}}}"#);
        if n == 256 {
            let (slices, thicknesses) = potential_slices(&atoms, &grid, 1.0, Parametrization::Lobato)?;
            let exit = Multislice::new(grid, 300e3)?.run(&slices, &thicknesses)?;
            let lens = Ctf { defocus: 100.0, cs: 20e4, focal_spread: 30.0, ..Ctf::default() };
            let secs = common::median_seconds(repeats * 4, || lens.image(&exit));
            println!(r#"{{"kernel": "ctf_image", "gpts": {n}, "median_s": {secs}}}"#);
            let ranges = MicroscopeRanges::ragone_2020();
            let mut seed = 0u64;
            let secs = common::median_seconds(repeats * 20, || {
                seed += 1;
                ranges.sample(seed).record(&exit, seed)
            });
            println!(r#"{{"kernel": "record", "gpts": {n}, "median_s": {secs}}}"#);
        }
    }
    Ok(())
}
