//! The README's main command: screen AFM scans for homogeneous nanoparticle structures
//! (Gordon et al., Nano Lett. 2020) with the shipped networks.
//!
//! ```text
//! cargo run --release --example screen                      # the demo set, made on the fly
//! cargo run --release --example screen -- FILE_OR_DIR ...   # your scans (.gwy, .sxm, .ibw, .dat)
//!     [--out DIR] [--stride PX] [--denoise] [--min-confidence P] [--max-std S] [--channel NAME]
//!     [--device cpu|cuda|cuda:N|metal|auto]
//! ```
//!
//! Without paths it builds a demo set of 256×256 AFM-like scans (one of them 512×512): height maps (substrate
//! 0 nm, solvent 1 nm, particles 2 nm) of Rabani films simulated with a seed the shipped
//! networks never saw, labelled by their Euler number, with instrument artefacts added
//! (tilt, bow, row offsets, noise); plus deliberately bad scans (pure noise, a tip crash,
//! two structures side by side, saturated rows). It screens them, prints a table of
//! verdicts, the sensitivity and specificity of the pass/reject decision and the class
//! accuracy, and writes `report.json`, `report.csv`, one overlay PNG per scan and
//! `panel.png` to the output folder (default `target/nanoml-out/screen`).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program: printing is its job

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nanoml::core::io::png::write_rgb8;
use nanoml::core::resample::resize_nearest;
use nanoml::core::{ProgressUpdate, Xoshiro256PlusPlus, derive_seed};
use nanoml::models::DeviceChoice;
use nanoml::morphology::EulerRule;
use nanoml::rabani::dataset::ParamRanges;
use nanoml::rabani::{Category, Params, categorize, simulate};
use nanoml::screening::{Screener, Screening, ScreeningConfig, overlay, write_csv, write_json};
use nanoml::spm::level::PolyTerms;
use nanoml::spm::synth::{Artefacts, Tip, apply};
use ndarray::{Array2, Array3, s};
use rayon::prelude::*;

const SIDE: usize = 256;
/// Lattice side: 256 px / 164 sites = 1.56 px per site, the scale of the training films
/// (200 px / 128 sites).
const LATTICE: usize = 164;
const DEMO_SEED: u64 = 77;

/// A demo scan and what the screening should say about it.
struct Demo {
    name: String,
    heights: Array2<f64>,
    /// `Some(class)` for a good scan that should pass as that class; `None` for a bad
    /// scan that should be rejected.
    expected: Option<&'static str>,
}

fn heights_of(lattice: &Array2<u8>) -> Result<Array2<f64>> {
    let up = resize_nearest(lattice.view(), (SIDE, SIDE))?;
    Ok(up.mapv(|v| f64::from(v.min(2))))
}

fn instrument() -> Artefacts {
    Artefacts {
        tilt: (0.004, -0.002),
        bow: Some((PolyTerms::Limited { max_degree: 2 }, vec![0.0, 0.0, 0.0, 0.3, 0.1, -0.2])),
        row_offset_sigma: 0.02,
        white_noise: 0.08,
        ..Artefacts::default()
    }
}

/// Simulates held-out films until each class has its quota; returns (category, lattice).
fn films(quota: &[(Category, usize)]) -> Result<Vec<(Category, Array2<u8>)>> {
    let ranges = ParamRanges { size: (LATTICE, LATTICE), ..ParamRanges::default() };
    let mut have: Vec<(Category, Array2<u8>)> = vec![];
    let mut next = 0u64;
    while quota.iter().any(|&(c, n)| have.iter().filter(|(h, _)| *h == c).count() < n) {
        if next > 2000 {
            bail!("the demo films did not fill their classes within 2000 simulations");
        }
        let batch: Vec<Result<(Category, Array2<u8>)>> = (next..next + 8)
            .into_par_iter()
            .map(|i| {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed(DEMO_SEED, i));
                let params: Params = ranges.sample(&mut rng);
                let sim = simulate(&params, rng.next_u64())?;
                let image = sim.lattice.image();
                Ok((categorize(&image, EulerRule::Legacy)?.category, image))
            })
            .collect();
        next += 8;
        for film in batch {
            let (category, image) = film?;
            let wanted = quota.iter().find(|(c, _)| *c == category).map_or(0, |q| q.1);
            if have.iter().filter(|(h, _)| *h == category).count() < wanted {
                have.push((category, image));
            }
        }
    }
    have.sort_by_key(|(c, _)| c.class_index());
    Ok(have)
}

fn demo_set() -> Result<Vec<Demo>> {
    let quota = [
        (Category::Liquid, 1),
        (Category::Hole, 1),
        (Category::Cellular, 2),
        (Category::Labyrinth, 2),
        (Category::Island, 2),
    ];
    let films = films(&quota)?;
    let mut demos = vec![];
    for (k, (category, lattice)) in films.iter().enumerate() {
        let heights = apply(&heights_of(lattice)?, &instrument(), derive_seed(DEMO_SEED, 1000 + k as u64))?;
        demos.push(Demo { name: format!("{}-{k}", category.name()), heights, expected: Some(category.name()) });
    }
    let find = |c: Category| films.iter().find(|(f, _)| *f == c).map(|(_, l)| l.clone()).context("demo film missing");
    // Bad scans.
    let noise = Artefacts { white_noise: 0.5, flicker_noise: 0.3, ..instrument() };
    demos.push(Demo { name: "noise".into(), heights: apply(&Array2::zeros((SIDE, SIDE)), &noise, 5)?, expected: None });
    // A tip crash half-way down a 512-pixel scan (the film tiled 2 × 2; the lattice is
    // periodic): from then on a blunt double tip smears the particles, 1.5 nm higher.
    let crash_tip = Tip { radius: 12.0, second_apex: Some(((0, 9), -0.3)), reach: 12 };
    let crash = Artefacts { tip_change: Some((SIDE, crash_tip, 1.5)), scars: (60, 1.5), ..instrument() };
    let film = heights_of(&find(Category::Cellular)?)?;
    let tiled = Array2::from_shape_fn((2 * SIDE, 2 * SIDE), |(r, c)| film[[r % SIDE, c % SIDE]]);
    demos.push(Demo { name: "tip-crash".into(), heights: apply(&tiled, &crash, 6)?, expected: None });
    let mut mixed = heights_of(&find(Category::Island)?)?;
    mixed.slice_mut(s![.., SIDE / 2..]).assign(&heights_of(&find(Category::Liquid)?)?.slice(s![.., SIDE / 2..]));
    demos.push(Demo { name: "mixed".into(), heights: apply(&mixed, &instrument(), 7)?, expected: None });
    let mut saturated = apply(&heights_of(&find(Category::Labyrinth)?)?, &instrument(), 8)?;
    for r in (0..SIDE).step_by(9) {
        saturated.row_mut(r).fill(4.0);
    }
    demos.push(Demo { name: "saturated-rows".into(), heights: saturated, expected: None });
    Ok(demos)
}

/// Every file under the arguments (folders are listed one level deep, sorted).
fn files(args: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    for a in args {
        let p = PathBuf::from(a);
        if p.is_dir() {
            let mut entries: Vec<PathBuf> =
                std::fs::read_dir(&p)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
            entries.sort();
            out.extend(entries);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

fn panel(screenings: &[Screening], config: &ScreeningConfig, path: &Path) -> Result<()> {
    let tiles: Vec<Array3<u8>> = screenings
        .iter()
        .filter_map(|s| overlay(s, config.stride, config.window))
        .map(|t| {
            let (h, w, _) = t.dim();
            let mut out = Array3::zeros((SIDE, SIDE, 3));
            for ((r, c, k), v) in out.indexed_iter_mut() {
                *v = t[[r * h / SIDE, c * w / SIDE, k]];
            }
            out
        })
        .collect();
    if tiles.is_empty() {
        return Ok(());
    }
    let cols = tiles.len().min(4);
    let rows = tiles.len().div_ceil(cols);
    let gap = 8;
    let mut img = Array3::from_elem((rows * (SIDE + gap) + gap, cols * (SIDE + gap) + gap, 3), 255u8);
    for (i, t) in tiles.iter().enumerate() {
        let (r0, c0) = (gap + (i / cols) * (SIDE + gap), gap + (i % cols) * (SIDE + gap));
        img.slice_mut(s![r0..r0 + SIDE, c0..c0 + SIDE, ..]).assign(t);
    }
    write_rgb8(path, &img)?;
    Ok(())
}

fn main() -> Result<()> {
    // Reuse the networks' freed activations instead of faulting in fresh pages each batch.
    nanoml::models::keep_freed_memory();
    let mut config = ScreeningConfig::default();
    let mut out = PathBuf::from("target/nanoml-out/screen");
    let mut paths = vec![];
    let mut device = DeviceChoice::Cpu;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--out" => out = PathBuf::from(value()?),
            "--stride" => config.stride = value()?.parse()?,
            "--denoise" => config.denoise = true,
            "--min-confidence" => config.min_confidence = value()?.parse()?,
            "--max-std" => config.max_class_std = value()?.parse()?,
            "--channel" => config.channel = Some(value()?),
            "--device" => device = value()?.parse()?,
            flag if flag.starts_with("--") => bail!("unknown option {flag}; see the example's documentation"),
            _ => paths.push(a),
        }
    }
    std::fs::create_dir_all(out.join("overlays"))?;
    let t0 = Instant::now();
    let screener = Screener::pretrained(config.clone(), &device.open()?)?;
    let progress = |u: &ProgressUpdate<'_>| {
        eprint!("\r  screened {} / {}", u.done, u.total.unwrap_or(0));
        let _ = std::io::stderr().flush();
    };

    let (screenings, expected): (Vec<Screening>, Vec<Option<&'static str>>) = if paths.is_empty() {
        println!(
            "No files given: screening the demo set (held-out Rabani films as 256×256 AFM-like scans, plus bad scans)."
        );
        println!("Simulating the demo films …");
        let demos = demo_set()?;
        println!("  {} scans in {:.1} s", demos.len(), t0.elapsed().as_secs_f64());
        let counter = nanoml::core::ProgressCounter::new(&progress, "screen", Some(demos.len() as u64));
        let s: Vec<Screening> = demos
            .par_iter()
            .map(|d| {
                let s = screener.screen_heights(&d.name, &d.heights);
                counter.advance(1);
                s
            })
            .collect();
        (s, demos.iter().map(|d| d.expected).collect())
    } else {
        let files = files(&paths)?;
        println!("Screening {} files …", files.len());
        let s = screener.screen_files(&files, &progress);
        let n = s.len();
        (s, vec![None; n])
    };
    eprintln!();

    println!("\n{:<40} {:<9} {:<10} {:>6} {:>7}  reasons", "scan", "verdict", "class", "p(top)", "windows");
    for s in &screenings {
        let top = s.mean_probabilities.iter().fold(f64::NAN, |m, &p| if m.is_nan() || p > m { p } else { m });
        println!(
            "{:<40} {:<9} {:<10} {:>6} {:>7}  {}",
            s.name,
            if s.accepted { "accept" } else { "reject" },
            s.class.unwrap_or("-"),
            if top.is_nan() { "-".into() } else { format!("{top:.2}") },
            s.windows,
            s.reasons_text()
        );
    }
    if expected.iter().any(Option::is_some) {
        let good: Vec<_> = screenings.iter().zip(&expected).filter(|(_, e)| e.is_some()).collect();
        let bad: Vec<_> = screenings.iter().zip(&expected).filter(|(_, e)| e.is_none()).collect();
        let passed = good.iter().filter(|(s, _)| s.accepted).count();
        let rejected = bad.iter().filter(|(s, _)| !s.accepted).count();
        let right_class = good.iter().filter(|(s, e)| s.class == **e).count();
        println!(
            "\nSensitivity (good scans accepted): {passed} / {} = {:.0} %",
            good.len(),
            100.0 * passed as f64 / good.len() as f64
        );
        println!(
            "Specificity (bad scans rejected):  {rejected} / {} = {:.0} %",
            bad.len(),
            100.0 * rejected as f64 / bad.len() as f64
        );
        println!("Class of good scans right:         {right_class} / {}", good.len());
        println!(
            "(The paper reports 74 % sensitivity (45/61 good scans passed) and 83 % specificity (49/59 bad scans rejected) on real AFM scans.)"
        );
    }
    write_json(&screenings, &out.join("report.json"))?;
    write_csv(&screenings, &out.join("report.csv"))?;
    for s in &screenings {
        if let Some(img) = overlay(s, config.stride, config.window) {
            let stem: String =
                Path::new(&s.name).file_name().map_or(s.name.clone(), |f| f.to_string_lossy().into_owned());
            write_rgb8(out.join("overlays").join(format!("{stem}.png")), &img)?;
        }
    }
    panel(&screenings, &config, &out.join("panel.png"))?;
    println!(
        "\nWrote {0}/report.json, {0}/report.csv, {0}/overlays/*.png and {0}/panel.png (window colours: liquid blue, hole purple, cellular green, labyrinth yellow, island red; frame green = accepted) in {1:.1} s.",
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
