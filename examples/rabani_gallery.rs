//! A gallery of the morphologies of the Rabani model: simulates a grid of kT, mu and
//! mobility on 128×128 lattices (in parallel), labels every film by the Euler number of its
//! dry substrate (pyRabani's categories, scikit-image ≤ 0.17's rule), prints the grid's
//! categories, and draws one film per category with its parameters and Euler number into
//! `target/nanoml-out/rabani_gallery.png` (substrate dark, liquid blue, particles gold).
//!
//! ```text
//! cargo run --release --example rabani_gallery [-- --out DIR]
//! ```

use anyhow::{Context, Result};
use nanoml::core::io::png::write_rgb8;
use nanoml::core::{ProgressUpdate, draw};
use nanoml::morphology::EulerRule;
use nanoml::rabani::{Category, Labelled, Params, Run, categorize, simulate_batch};
use ndarray::Array3;
use std::io::Write;
use std::path::PathBuf;

const COLOURS: [[u8; 3]; 3] = [[40, 36, 48], [70, 130, 200], [240, 190, 60]];

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut out_dir = PathBuf::from("target/nanoml-out");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out_dir = PathBuf::from(args.next().context("--out needs a folder")?),
            other => anyhow::bail!("unknown argument {other:?} (only --out DIR)"),
        }
    }
    let mut grid = Vec::new();
    for mobility in [1, 3] {
        for kt in [0.05, 0.15, 0.25, 0.35] {
            for mu in [2.4, 2.6, 2.8, 3.0, 3.2] {
                grid.push(Params { kt, mu, mobility, size: 128, max_steps: 501, ..Params::default() });
            }
        }
    }
    println!("Simulating {} films (L = 128, C = 0.3, 501 steps) …", grid.len());
    let progress = |u: &ProgressUpdate<'_>| {
        eprint!("\r  {} / {}", u.done, u.total.unwrap_or(0));
        let _ = std::io::stderr().flush();
    };
    let runs = simulate_batch(&grid, 1, 2020, &progress)?;
    eprintln!();
    let labelled: Vec<(Run, Labelled)> = runs
        .into_iter()
        .map(|r| {
            let label = categorize(&r.simulation.lattice.image(), EulerRule::Legacy)?;
            Ok((r, label))
        })
        .collect::<Result<_>>()?;
    println!("\nCategory of each film (rows: kT; columns: mu):");
    for mobility in [1, 3] {
        println!("MR = {mobility}      mu = 2.4        2.6        2.8        3.0        3.2");
        for kt in [0.05, 0.15, 0.25, 0.35] {
            let row: Vec<String> = labelled
                .iter()
                .filter(|(r, _)| grid[r.params_index].mobility == mobility && grid[r.params_index].kt == kt)
                .map(|(_, l)| format!("{:<10}", l.category.name()))
                .collect();
            println!("kT = {kt:.2}     {}", row.join(" "));
        }
    }
    // One film per category: the first in grid order.
    let tile = 256;
    let classes = &Category::ALL[..5];
    let (caption, gap) = (40, 8);
    let mut panel = Array3::<u8>::from_elem((caption + tile + gap, classes.len() * (tile + gap) + gap, 3), 255);
    println!("\nGallery (one film per category):");
    println!("{:<10} {:>5} {:>5} {:>3} {:>6} {:>8} {:>10}", "category", "kT", "mu", "MR", "steps", "euler", "euler/N");
    for (k, class) in classes.iter().enumerate() {
        let col = gap + k * (tile + gap);
        let Some((run, label)) = labelled.iter().find(|(_, l)| l.category == *class) else {
            draw::text(&mut panel, (caption + tile / 2, col + 10), &format!("NO {} FILM", class.name()), [0, 0, 0], 2);
            println!("{:<10} (none in this grid)", class.name());
            continue;
        };
        let p = &grid[run.params_index];
        println!(
            "{:<10} {:>5.2} {:>5.2} {:>3} {:>6} {:>8} {:>10.5}",
            class.name(),
            p.kt,
            p.mu,
            p.mobility,
            run.simulation.steps,
            label.euler,
            label.normalised_euler
        );
        let image = run.simulation.lattice.image();
        let scale = tile / image.nrows();
        for ((r, c), &v) in image.indexed_iter() {
            draw::fill_rect(
                &mut panel,
                (caption + r * scale, col + c * scale),
                (scale, scale),
                COLOURS[usize::from(v)],
            );
        }
        draw::text(&mut panel, (4, col), class.name(), [0, 0, 0], 2);
        let params = format!("KT {:.2} MU {:.1} MR {} EULER {}", p.kt, p.mu, p.mobility, label.euler);
        draw::text(&mut panel, (24, col), &params, [60, 60, 60], 1);
    }
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let png = out_dir.join("rabani_gallery.png");
    write_rgb8(&png, &panel)?;
    println!("\nwrote {}", png.display());
    Ok(())
}
