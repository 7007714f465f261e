//! Criterion benchmarks of the Rabani Monte Carlo: one step of pyRabani's kernel at
//! L = 128 and 256 (MR = 1), the 3×3 variant, sublattice updating of a 1024² lattice, a
//! batch of simulations, and the Euler categorisation of a film.
//!
//! `cargo bench --bench rabani`; the side-by-side comparison with a numba port of the
//! reference kernel is `tools/compare/rabani.py` (see docs/benchmarks.md).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nanoml::core::NoProgress;
use nanoml::morphology::EulerRule;
use nanoml::rabani::{Dynamics, Params, Simulator, categorize, simulate, simulate_batch};
use std::hint::black_box;

/// A simulator advanced past the wet start, so steps are timed on a drying film.
fn warm(params: &Params) -> Simulator {
    let mut sim = Simulator::new(params, 1).expect("valid parameters");
    for _ in 0..20 {
        sim.step();
    }
    sim
}

fn steps(c: &mut Criterion) {
    let mut g = c.benchmark_group("rabani_step");
    g.sample_size(20);
    for l in [128usize, 256] {
        let params = Params { size: l, kt: 0.35, mu: 3.0, ..Params::default() };
        g.throughput(Throughput::Elements((2 * l * l) as u64)); // attempted updates per step
        let mut sim = warm(&params);
        g.bench_function(BenchmarkId::new("pyrabani", l), |b| b.iter(|| sim.step()));
    }
    let params = Params { size: 1024, kt: 0.35, mu: 3.0, dynamics: Dynamics::Sublattice, ..Params::default() };
    g.throughput(Throughput::Elements(2 * 1024 * 1024));
    let mut sim = warm(&params);
    g.bench_function(BenchmarkId::new("sublattice", 1024), |b| b.iter(|| sim.step()));
    let params = Params { size: 128, mobility: 1, ..Params::rabani_2003() };
    let mut sim = warm(&params);
    g.throughput(Throughput::Elements(128 * 128));
    g.bench_function(BenchmarkId::new("rabani_2003", 128), |b| b.iter(|| sim.step()));
    g.finish();
}

fn batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("rabani_batch");
    g.sample_size(10);
    let params = Params { size: 64, max_steps: 50, ..Params::default() };
    g.throughput(Throughput::Elements(8));
    g.bench_function("8x_L64_50_steps", |b| {
        b.iter(|| simulate_batch(std::slice::from_ref(&params), 8, 1, &NoProgress).expect("valid"))
    });
    let film = simulate(&Params { size: 128, kt: 0.25, mu: 2.8, max_steps: 300, ..Params::default() }, 1)
        .expect("valid")
        .lattice
        .image();
    g.bench_function("categorize_legacy_128", |b| b.iter(|| categorize(black_box(&film), EulerRule::Legacy)));
    g.finish();
}

criterion_group!(benches, steps, batch);
criterion_main!(benches);
