//! Criterion benchmarks of the morphology kernels on 1024×1024 random masks.
//!
//! `cargo bench --bench morphology`; the side-by-side comparison with scikit-image is
//! `tools/compare/morphology.py` (see docs/benchmarks.md).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use nanoml::core::Xoshiro256PlusPlus;
use nanoml::morphology::*;
use ndarray::Array2;
use std::hint::black_box;

fn random_mask(n: usize, p: f64, seed: u64) -> Array2<bool> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    Array2::from_shape_fn((n, n), |_| rng.bernoulli(p))
}

fn morphology(c: &mut Criterion) {
    let mut g = c.benchmark_group("morphology_1024");
    g.sample_size(30);
    for p in [0.3, 0.5] {
        let m = random_mask(1024, p, 1);
        g.bench_with_input(BenchmarkId::new("euler_number_8", p), &m, |b, m| {
            b.iter(|| euler_number(black_box(m), Connectivity::Eight))
        });
        g.bench_with_input(BenchmarkId::new("euler_number_4", p), &m, |b, m| {
            b.iter(|| euler_number(black_box(m), Connectivity::Four))
        });
        g.bench_with_input(BenchmarkId::new("euler_number_legacy", p), &m, |b, m| {
            b.iter(|| euler_number_legacy(black_box(m)))
        });
        g.bench_with_input(BenchmarkId::new("perimeter_4", p), &m, |b, m| {
            b.iter(|| perimeter(black_box(m), Neighbourhood::Four))
        });
        g.bench_with_input(BenchmarkId::new("perimeter_crofton_4", p), &m, |b, m| {
            b.iter(|| perimeter_crofton(black_box(m), CroftonDirections::Four))
        });
        g.bench_with_input(BenchmarkId::new("label_8", p), &m, |b, m| {
            b.iter(|| label(black_box(m), Connectivity::Eight))
        });
        g.bench_with_input(BenchmarkId::new("label_4", p), &m, |b, m| {
            b.iter(|| label(black_box(m), Connectivity::Four))
        });
        g.bench_with_input(BenchmarkId::new("minkowski_functionals", p), &m, |b, m| {
            b.iter(|| minkowski_functionals(black_box(m), Connectivity::Eight, Spacing::default()))
        });
        g.bench_with_input(BenchmarkId::new("closing_square_3", p), &m, |b, m| {
            b.iter(|| closing_square(black_box(m), 3))
        });
    }
    g.finish();

    let film = Array2::from_shape_fn((512, 512), |(r, c)| ((r % 12) as f64 - 5.5).hypot((c % 12) as f64 - 5.5) > 3.5);
    let mut g = c.benchmark_group("screening_512");
    g.sample_size(10);
    g.bench_function("homogeneity_window200_stride8", |b| {
        b.iter(|| homogeneity(black_box(&film), &HomogeneityParams::default()))
    });
    g.bench_function("scale_invariant_stats", |b| b.iter(|| scale_invariant_stats(black_box(&film))));
    g.finish();
}

criterion_group!(benches, morphology);
criterion_main!(benches);
