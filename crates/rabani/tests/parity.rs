//! Statistical parity with the reference kernel (pyRabani's `rabani_single`, numba):
//! `fixtures/rabani-reference.json` holds one row per reference run on kT ∈ {0.05, 0.15,
//! 0.25, 0.35} × mu ∈ {2.4, 2.8, 3.2}, L = 128, C = 0.3, MR = 1: 20 seeds with early
//! stopping (MCS_max = 5000) and 10 with MCS_max = 500. The same grid runs here and each
//! grid point is compared by two-sample permutation tests: the Kolmogorov–Smirnov
//! statistic of the substrate and liquid fractions (and of the stopping step), and the
//! total-variation distance of the category frequencies (legacy and modern Euler rules).
#![allow(clippy::print_stderr)]

mod common;

use common::{ks_statistic, permutation_p, tv_distance};
use nanoml_core::NoProgress;
use nanoml_morphology::{Connectivity, EulerRule};
use nanoml_rabani::{EarlyStop, Params, categorize, simulate_batch};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    runs: Vec<RefRun>,
}

#[derive(Deserialize, Clone)]
#[allow(dead_code)]
struct RefRun {
    #[serde(rename = "kT")]
    kt: f64,
    mu: f64,
    #[serde(rename = "L")]
    l: usize,
    #[serde(rename = "C")]
    c: f64,
    #[serde(rename = "MR")]
    mr: u32,
    mcs_max: usize,
    early_stop: bool,
    mcs_run: usize,
    substrate: f64,
    liquid: f64,
    category_legacy: String,
    category_modern: String,
}

struct Ours {
    substrate: f64,
    liquid: f64,
    mcs_run: usize,
    legacy: String,
    modern: String,
}

#[test]
fn matches_the_reference_kernel_statistically() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rabani-reference.json")).unwrap();
    let reference: Reference = serde_json::from_str(&text).unwrap();
    // Grid points in the fixture's order.
    let mut points: Vec<(f64, f64, bool, usize)> = Vec::new();
    for r in &reference.runs {
        let p = (r.kt, r.mu, r.early_stop, r.mcs_max);
        if !points.contains(&p) {
            points.push(p);
        }
    }
    let count = |p: &(f64, f64, bool, usize)| {
        reference.runs.iter().filter(|r| (r.kt, r.mu, r.early_stop, r.mcs_max) == *p).count()
    };
    let mut failures = Vec::new();
    let mut tests = 0;
    for (k, point) in points.iter().enumerate() {
        let (kt, mu, early, mcs_max) = *point;
        let params = Params {
            kt,
            mu,
            size: 128,
            coverage: 0.3,
            mobility: 1,
            max_steps: mcs_max + 1, // pyRabani's loop runs MCS_max + 1 steps
            early_stop: if early { EarlyStop::PyRabani } else { EarlyStop::Off },
            ..Params::default()
        };
        let runs = simulate_batch(std::slice::from_ref(&params), count(point), 2020 + k as u64, &NoProgress).unwrap();
        let ours: Vec<Ours> = runs
            .iter()
            .map(|r| {
                let image = r.simulation.lattice.image();
                let f = r.simulation.lattice.fractions();
                Ours {
                    substrate: f[0],
                    liquid: f[1],
                    mcs_run: r.simulation.steps - 1,
                    legacy: categorize(&image, EulerRule::Legacy).unwrap().category.name().to_string(),
                    modern: categorize(&image, EulerRule::Modern(Connectivity::Eight))
                        .unwrap()
                        .category
                        .name()
                        .to_string(),
                }
            })
            .collect();
        let theirs: Vec<&RefRun> =
            reference.runs.iter().filter(|r| (r.kt, r.mu, r.early_stop, r.mcs_max) == *point).collect();
        let seed = 7 + k as u64;
        let mut check = |what: &str, p: f64| {
            tests += 1;
            if p <= 0.01 {
                failures.push(format!("kT {kt} mu {mu} early {early}: {what} p = {p:.4}"));
            }
            p
        };
        let ks = |a: Vec<f64>, b: Vec<f64>| permutation_p(&a, &b, ks_statistic, 2000, seed);
        let p_sub = check(
            "substrate",
            ks(ours.iter().map(|o| o.substrate).collect(), theirs.iter().map(|r| r.substrate).collect()),
        );
        let p_liq =
            check("liquid", ks(ours.iter().map(|o| o.liquid).collect(), theirs.iter().map(|r| r.liquid).collect()));
        let cat = |a: Vec<String>, b: Vec<String>| permutation_p(&a, &b, tv_distance, 2000, seed);
        let p_leg = check(
            "legacy categories",
            cat(
                ours.iter().map(|o| o.legacy.clone()).collect(),
                theirs.iter().map(|r| r.category_legacy.clone()).collect(),
            ),
        );
        let p_mod = check(
            "modern categories",
            cat(
                ours.iter().map(|o| o.modern.clone()).collect(),
                theirs.iter().map(|r| r.category_modern.clone()).collect(),
            ),
        );
        let p_mcs = if early {
            check(
                "stopping step",
                ks(ours.iter().map(|o| o.mcs_run as f64).collect(), theirs.iter().map(|r| r.mcs_run as f64).collect()),
            )
        } else {
            1.0
        };
        let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        eprintln!(
            "kT {kt:.2} mu {mu:.1} early {early:5}: substrate {:.3} vs {:.3} (p {p_sub:.2}), liquid {:.3} vs {:.3} (p {p_liq:.2}), categories p {p_leg:.2}/{p_mod:.2}, stop p {p_mcs:.2}",
            mean(ours.iter().map(|o| o.substrate).collect()),
            mean(theirs.iter().map(|r| r.substrate).collect()),
            mean(ours.iter().map(|o| o.liquid).collect()),
            mean(theirs.iter().map(|r| r.liquid).collect()),
        );
    }
    eprintln!("{tests} comparisons, {} at p ≤ 0.01", failures.len());
    assert!(failures.is_empty(), "{failures:#?}");
}
