//! Equilibrium physics of the kernels: exact Boltzmann sampling on tiny lattices, and
//! Onsager's spontaneous magnetisation for the pure solvent (a lattice gas).
#![allow(clippy::print_stderr)]

mod common;

use common::chi2_goodness_of_fit;
use nanoml_rabani::{Boundary, Cell, Dynamics, Lattice, MoveSchedule, Params, Simulator};
use std::collections::BTreeMap;

/// Key of a state for the histogram: energy (rounded to 1e-9) and liquid count.
fn key(lattice: &Lattice, params: &Params) -> (i64, usize) {
    ((lattice.energy(params) * 1e9).round() as i64, lattice.counts()[1])
}

/// Samples a 4×4 lattice with 2 particles and compares the histogram of (energy, liquid
/// count) with the exact Boltzmann distribution over all 120 · 2^14 states.
fn boltzmann_test(params: &Params, seed: u64) {
    let l = 4;
    let mut exact: BTreeMap<(i64, usize), f64> = BTreeMap::new();
    let mut lat = Lattice::from_image(ndarray::Array2::<u8>::ones((l, l)).view()).unwrap();
    for a in 0..16 {
        for b in a + 1..16 {
            for bits in 0..1u32 << 14 {
                let mut k = 0;
                for i in 0..16 {
                    let cell = if i == a || i == b {
                        Cell::Particle
                    } else {
                        k += 1;
                        if bits >> (k - 1) & 1 == 1 { Cell::Liquid } else { Cell::Substrate }
                    };
                    lat.set(i / l, i % l, cell).unwrap();
                }
                let w = (-lat.energy(params) / params.kt).exp();
                *exact.entry(key(&lat, params)).or_default() += w;
            }
        }
    }
    let z: f64 = exact.values().sum();
    let mut start = ndarray::Array2::<u8>::ones((l, l));
    start[[0, 0]] = 2;
    start[[2, 1]] = 2;
    let mut sim = Simulator::with_lattice(params, Lattice::from_image(start.view()).unwrap(), seed).unwrap();
    let mut observed: BTreeMap<(i64, usize), u64> = exact.keys().map(|&k| (k, 0)).collect();
    let (burn, samples, thin) = (100, 40_000, 4);
    for _ in 0..burn {
        sim.step();
    }
    for _ in 0..samples {
        for _ in 0..thin {
            sim.step();
        }
        *observed.get_mut(&key(sim.lattice(), params)).expect("a state outside the enumeration") += 1;
    }
    let obs: Vec<u64> = observed.values().copied().collect();
    let exp: Vec<f64> = exact.values().map(|w| w / z).collect();
    let (chi2, dof, p) = chi2_goodness_of_fit(&obs, &exp);
    eprintln!("{:?}: chi2 = {chi2:.1}, dof = {dof}, p = {p:.3}", (params.dynamics, params.moves, params.next_nearest));
    assert!(p > 0.001, "chi2 = {chi2}, dof = {dof}, p = {p}");
}

fn tiny(kt: f64) -> Params {
    Params { size: 4, kt, mu: 2.2, e_nl: 1.5, e_nn: 2.0, coverage: 0.125, mobility: 1, ..Params::default() }
}

#[test]
fn pyrabani_kernel_samples_the_boltzmann_distribution() {
    boltzmann_test(&tiny(1.0), 1);
}

#[test]
fn sublattice_dynamics_samples_the_boltzmann_distribution() {
    boltzmann_test(&Params { dynamics: Dynamics::Sublattice, ..tiny(1.0) }, 2);
}

#[test]
fn general_kernel_samples_the_boltzmann_distribution_with_diagonal_bonds_and_sweeps() {
    let params = Params {
        next_nearest: true,
        boundary: Boundary::Open,
        moves: MoveSchedule::ParticleSweeps,
        mobility: 2,
        ..tiny(1.0)
    };
    boltzmann_test(&params, 3);
}

/// Onsager: the lattice gas with J = 1/4 at mu = 2 has liquid density (1 + m)/2 in its
/// liquid phase, m = (1 − sinh(2J/kT)^−4)^(1/8).
fn onsager_test(dynamics: Dynamics) {
    let (l, kt) = (64, 0.45f64);
    let j = 0.25f64;
    let m = (1.0 - (2.0 * j / kt).sinh().powi(-4)).powf(0.125);
    let expected = (1.0 + m) / 2.0;
    let params = Params { size: l, kt, mu: 2.0, dynamics, ..Params::default() };
    let wet = Lattice::from_image(ndarray::Array2::<u8>::ones((l, l)).view()).unwrap();
    let mut sim = Simulator::with_lattice(&params, wet, 11).unwrap();
    for _ in 0..300 {
        sim.step();
    }
    let mut samples = Vec::new();
    for _ in 0..400 {
        for _ in 0..5 {
            sim.step();
        }
        samples.push(sim.lattice().fractions()[1]);
    }
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    // Standard error from 20 blocks of 20 samples (the samples are correlated).
    let blocks: Vec<f64> = samples.chunks(20).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect();
    let bm = blocks.iter().sum::<f64>() / blocks.len() as f64;
    let se = (blocks.iter().map(|b| (b - bm).powi(2)).sum::<f64>() / (blocks.len() * (blocks.len() - 1)) as f64).sqrt();
    eprintln!("{dynamics:?}: liquid density {mean:.5} ± {se:.5}, Onsager {expected:.5}");
    assert!((mean - expected).abs() < 4.0 * se + 5e-4, "{mean} vs {expected} (se {se})");
}

#[test]
fn pure_solvent_reproduces_onsager_magnetisation() {
    onsager_test(Dynamics::RandomSequential);
}

#[test]
fn pure_solvent_reproduces_onsager_magnetisation_with_sublattice_updating() {
    onsager_test(Dynamics::Sublattice);
}
