//! HRTEM training data at a glance: a Wulff-constructed Au particle (Ragone et al.'s
//! surface energies) along [011] → its exit wave by multislice → four images through
//! random microscopes (Table 1 ranges: lens, blur, dose noise, MTF; locally normalised)
//! and the column-height ground truth, as a PNG panel with a table of the microscopes.
//!
//! ```text
//! cargo run --release --example hrtem_gallery [-- --out DIR] [--atoms N] [--seed S]
//! ```

use anyhow::{Context, Result};
use nanoml::core::draw;
use nanoml::core::io::png::{to_u8_scaled, write_rgb8};
use nanoml::hrtem::Element;
use nanoml::hrtem::detector::{MicroscopeRanges, local_normalize};
use nanoml::hrtem::multislice::Multislice;
use nanoml::hrtem::potential::{Grid, Parametrization, potential_slices};
use nanoml::hrtem::truth::{columns, height_map};
use nanoml::hrtem::wulff::{Rounding, wulff_construction};
use ndarray::{Array2, Array3};
use std::path::PathBuf;
use std::time::Instant;

/// Grey tile of an image scaled to its own range, into the panel at (row, col).
fn paste(panel: &mut Array3<u8>, image: &Array2<f32>, (row, col): (usize, usize)) {
    // Image axis 0 is x: draw it across, with y running down the panel.
    for ((j, i), &g) in to_u8_scaled(image.t(), None).indexed_iter() {
        for c in 0..3 {
            panel[[row + j, col + i, c]] = g;
        }
    }
}

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut out, mut size, mut seed) = (PathBuf::from("target/nanoml-out"), 1000usize, 2020u64);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(args.next().context("--out needs a folder")?),
            "--atoms" => size = args.next().context("--atoms needs a number")?.parse()?,
            "--seed" => seed = args.next().context("--seed needs a number")?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let t = Instant::now();
    let np = wulff_construction(
        Element::AU,
        &[[1, 0, 0], [1, 1, 0], [1, 1, 1]],
        &[6.0, 2.0, 4.0],
        size,
        Rounding::Above,
        None,
    )?;
    let (n, sampling) = (256usize, 0.25);
    let side = n as f64 * sampling;
    let turned = np.atoms.oriented([0, 1, 1])?;
    let (lo, hi) = turned.bounds().context("an empty particle")?;
    let atoms = turned.centered_in([side, side, (hi[2] - lo[2]).ceil() + 2.0])?;
    let cols = columns(&atoms, 1.0)?;
    println!(
        "particle: {} Au atoms (asked {size}), [011] along the beam, {} columns of 1–{} atoms; {:.1} ms",
        atoms.len(),
        cols.len(),
        cols.iter().map(|c| c.height).max().unwrap_or(0),
        1e3 * t.elapsed().as_secs_f64()
    );
    let grid = Grid { gpts: (n, n), sampling: (sampling, sampling) };
    let t = Instant::now();
    let (slices, thicknesses) = potential_slices(&atoms, &grid, 1.0, Parametrization::Lobato)?;
    let exit = Multislice::new(grid, 300e3)?.run(&slices, &thicknesses)?;
    println!(
        "exit wave: {n}² at {sampling} Å, {} slices of {:.3} Å, 300 keV, Lobato; {:.1} ms",
        slices.len(),
        thicknesses[0],
        1e3 * t.elapsed().as_secs_f64()
    );
    let ranges = MicroscopeRanges::ragone_2020();
    let (tile, gap, caption) = (n, 8, 28);
    let mut panel = Array3::<u8>::from_elem((caption + tile + gap, 5 * (tile + gap) + gap, 3), 255);
    println!(
        "\n{:>3} {:>9} {:>9} {:>7} {:>6} {:>5} {:>9}  ms to record (lens, blur, noise, MTF)",
        "#", "defocus Å", "Cs µm", "C12 Å", "Δ Å", "blur", "dose e/Å²"
    );
    for k in 0..4 {
        let m = ranges.sample(nanoml::core::derive_seed(seed, k));
        let t = Instant::now();
        let recorded = m.record(&exit, nanoml::core::derive_seed(seed, 100 + k))?;
        let ms = 1e3 * t.elapsed().as_secs_f64();
        let image = local_normalize(&recorded, 12.0 / sampling, 12.0 / sampling)?;
        println!(
            "{k:>3} {:>9.1} {:>9.2} {:>7.1} {:>6.1} {:>5.2} {:>9.0} {ms:>5.1}",
            m.ctf.defocus,
            m.ctf.cs / 1e4,
            m.ctf.astigmatism,
            m.ctf.focal_spread,
            m.blur,
            m.dose
        );
        let col = gap + k as usize * (tile + gap);
        paste(&mut panel, &image, (caption, col));
        draw::text(
            &mut panel,
            (8, col),
            &format!("DF {:.0} CS {:.0}UM DOSE {:.0}", m.ctf.defocus, m.ctf.cs / 1e4, m.dose),
            [0, 0, 0],
            1,
        );
    }
    let truth = height_map(&atoms, (n, n), sampling, 2.0)?;
    let col = gap + 4 * (tile + gap);
    paste(&mut panel, &truth, (caption, col));
    draw::text(&mut panel, (8, col), "COLUMN HEIGHTS (GROUND TRUTH)", [0, 0, 0], 1);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("hrtem_gallery.png");
    write_rgb8(&path, &panel)?;
    println!("\nwrote {} (four random microscopes, then the height map; peak = atoms per column)", path.display());
    Ok(())
}
