//! Levels a scanning-probe scan and shows what each step did: reads a file (Gwyddion
//! `.gwy`, Nanonis `.sxm`, Igor `.ibw`, or a raw f64 topograph `.dat` — two little-endian
//! u32 `rows, cols`, then row-major little-endian f64), or generates a film with tilt,
//! bow, row offsets, scars and
//! noise when no file is given; then aligns rows, marks and removes scars, removes a
//! polynomial background, runs the AFM screening code's chain, prints a line per step and
//! writes before/after PNGs.
//!
//! Scars are always marked, but filled only when they cover less than 2 % of the image
//! (or with `--remove-scars`): on atomically resolved STM images the atom rows along the
//! fast axis meet Gwyddion's scar criteria, and filling them would erase the lattice.
//!
//! ```text
//! cargo run --release --example level_scan [-- FILE] [--out DIR] [--remove-scars]
//! ```

use anyhow::{Context, Result};
use nanoml::core::io::png::{to_u8_scaled, write_gray8};
use nanoml::spm::SpmImage;
use nanoml::spm::align::{RowAlignment, align_rows};
use nanoml::spm::level::{PolyTerms, fit_plane, level_poly};
use nanoml::spm::scars::{ScarParams, laplace_fill, mark_scars};
use nanoml::spm::screening::{NoiseRule, noisy_rows, normalize_min_max, preprocess_pyrabani};
use nanoml::spm::synth::{Artefacts, apply};
use ndarray::Array2;
use std::path::{Path, PathBuf};

fn generated() -> Result<(Array2<f64>, Array2<f64>)> {
    let n = 256;
    let mut rng = nanoml::core::Xoshiro256PlusPlus::seed_from_u64(3);
    let noise = Array2::from_shape_fn((n, n), |_| rng.normal());
    let film = Array2::from_shape_fn((n, n), |(r, c)| {
        let s: f64 = (0..6)
            .flat_map(|dr| (0..6).map(move |dc| (dr, dc)))
            .map(|(dr, dc)| noise[[(r + dr) % n, (c + dc) % n]])
            .sum();
        if s > 0.0 { 2e-9 } else { 0.0 }
    });
    let terms = PolyTerms::Independent { col_degree: 2, row_degree: 2 };
    let artefacts = Artefacts {
        tilt: (4e-11, -2e-11),
        bow: Some((terms, vec![0.0, 0.0, 3e-9, 0.0, 0.0, 0.0, 2e-9, 0.0, 0.0])),
        row_offset_sigma: 3e-10,
        scars: (4, 3e-9),
        white_noise: 5e-11,
        flicker_noise: 1e-11,
        ..Artefacts::default()
    };
    Ok((apply(&film, &artefacts, 11)?, film))
}

/// The first channel of any file `SpmImage::open` reads (a height channel first when the
/// file names one).
fn load(path: &Path) -> Result<(Array2<f64>, String)> {
    let image = SpmImage::open(path)?;
    let pick = image
        .channels
        .iter()
        .find(|c| c.name.starts_with('Z') || c.name.to_ascii_lowercase().contains("height"))
        .or(image.channels.first())
        .context("a file with at least one channel")?;
    Ok((pick.data.clone(), pick.name.clone()))
}

fn png(dir: &Path, name: &str, image: &Array2<f64>) -> Result<PathBuf> {
    let path = dir.join(name);
    let f32s = image.mapv(|v| v as f32);
    write_gray8(&path, &to_u8_scaled(f32s.view(), None))?;
    Ok(path)
}

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut file, mut out, mut force_scars) = (None, PathBuf::from("target/nanoml-out"), false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--remove-scars" => force_scars = true,
            "--out" => out = PathBuf::from(args.next().context("--out needs a folder")?),
            _ => file = Some(PathBuf::from(a)),
        }
    }
    std::fs::create_dir_all(&out)?;
    let (scan, truth, channel) = match &file {
        Some(f) => {
            let (scan, channel) = load(f)?;
            (scan, None, channel)
        }
        None => {
            let (scan, truth) = generated()?;
            (scan, Some(truth), "height".to_string())
        }
    };
    let (rows, cols) = scan.dim();
    let rms = |a: &Array2<f64>| {
        let m = a.mean().unwrap_or(0.0);
        (a.iter().map(|v| (v - m).powi(2)).sum::<f64>() / a.len().max(1) as f64).sqrt()
    };
    println!(
        "scan: {}, channel {channel:?}, {rows}×{cols}, RMS {:.3e}",
        file.as_ref().map_or("generated film".into(), |f| f.display().to_string()),
        rms(&scan)
    );
    let plane = fit_plane(&scan)?;
    println!("1. plane fit: slopes {:.3e} per column, {:.3e} per row", plane.bx, plane.by);
    let (aligned, shifts) = align_rows(&scan, RowAlignment::MedianOfDifferences)?;
    let (lo, hi) = shifts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    println!("2. row alignment (median of differences): shifts from {lo:.3e} to {hi:.3e}; RMS {:.3e}", rms(&aligned));
    let scars = mark_scars(&aligned, &ScarParams::default())?;
    let marked = scars.iter().filter(|&&m| m).count();
    let scar_rows = scars.outer_iter().filter(|r| r.iter().any(|&m| m)).count();
    let share = 100.0 * marked as f64 / scars.len() as f64;
    let unscarred = if marked > 0 && (share < 2.0 || force_scars) {
        println!(
            "3. scars (Gwyddion's defaults): {marked} pixels ({share:.2} %) on {scar_rows} rows marked and filled by the Laplace equation"
        );
        laplace_fill(&aligned, &scars)?
    } else {
        println!(
            "3. scars (Gwyddion's defaults): {marked} pixels ({share:.2} %) on {scar_rows} rows marked{}",
            if marked > 0 {
                "; not filled: that much is surface structure, not scars (--remove-scars fills them)"
            } else {
                ""
            }
        );
        aligned.clone()
    };
    let terms = PolyTerms::Independent { col_degree: 5, row_degree: 5 };
    let levelled = level_poly(&unscarred, terms)?;
    println!("4. degree-5×5 polynomial background removed; RMS {:.3e}", rms(&levelled));
    if let Some(t) = &truth {
        let diff = &levelled - t;
        println!(
            "   error against the clean film: RMS {:.3e} ({:.1} % of the 2 nm islands)",
            rms(&diff),
            100.0 * rms(&diff) / 2e-9
        );
    }
    let noise = noisy_rows(&normalize_min_max(&aligned)?, NoiseRule::Textual);
    println!(
        "5. noise rows (paper's rule): {} single-valued, {} outliers → {}",
        noise.single_valued.len(),
        noise.outliers.len(),
        if noise.noisy { "noisy" } else { "clean" }
    );
    match preprocess_pyrabani(&scan)? {
        Ok(p) => {
            let fg = p.binary.iter().filter(|&&b| b).count() as f64 / p.binary.len() as f64;
            println!(
                "6. screening chain (pyRabani): thresholds {:.4} / {:.4}, {:.1} % foreground",
                p.thresholds[0],
                p.thresholds[1],
                100.0 * fg
            );
            png(&out, "level_scan_binary.png", &p.binary.mapv(|b| if b { 1.0 } else { 0.0 }))?;
        }
        Err(r) => println!("6. screening chain (pyRabani): rejected ({r:?})"),
    }
    let written = [
        png(&out, "level_scan_raw.png", &scan)?,
        png(&out, "level_scan_aligned.png", &aligned)?,
        png(&out, "level_scan_scars.png", &scars.mapv(|m| if m { 1.0 } else { 0.0 }))?,
        png(&out, "level_scan_levelled.png", &levelled)?,
    ];
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}
