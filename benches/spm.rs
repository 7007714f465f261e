//! Criterion benchmarks of nanoml-spm's kernels on a 1024×1024 float64 scan (a film with
//! tilt, bow, row offsets, scars and noise). The side-by-side comparison with
//! scikit-image/numpy is `tools/compare/spm.py`.

use criterion::{Criterion, criterion_group, criterion_main};
use nanoml::core::Xoshiro256PlusPlus;
use nanoml::spm::align::{RowAlignment, align_rows};
use nanoml::spm::level::{PolyTerms, level_poly};
use nanoml::spm::scars::{ScarParams, mark_scars};
use nanoml::spm::screening::preprocess_pyrabani;
use nanoml::spm::synth::{Artefacts, apply};
use nanoml::spm::threshold::{histogram, threshold_multiotsu};
use ndarray::Array2;
use std::hint::black_box;

fn scan() -> Array2<f64> {
    let n = 1024;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let film = Array2::from_shape_fn((n, n), |_| if rng.uniform() > 0.5 { 2.0 } else { 0.0 });
    let terms = PolyTerms::Independent { col_degree: 2, row_degree: 2 };
    let artefacts = Artefacts {
        tilt: (0.01, -0.005),
        bow: Some((terms, vec![0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0])),
        row_offset_sigma: 0.3,
        scars: (10, 3.0),
        white_noise: 0.05,
        ..Artefacts::default()
    };
    apply(&film, &artefacts, 1).unwrap_or(film)
}

fn spm(c: &mut Criterion) {
    let img = scan();
    let mut g = c.benchmark_group("spm");
    g.sample_size(20);
    g.bench_function("histogram_256_1024", |b| b.iter(|| histogram(black_box(&img), 256)));
    g.bench_function("multiotsu_3_256_1024", |b| b.iter(|| threshold_multiotsu(black_box(&img), 3, 256)));
    g.bench_function("multiotsu_4_256_1024", |b| b.iter(|| threshold_multiotsu(black_box(&img), 4, 256)));
    g.bench_function("align_rows_median_1024", |b| b.iter(|| align_rows(black_box(&img), RowAlignment::Median)));
    g.bench_function("align_rows_median_of_differences_1024", |b| {
        b.iter(|| align_rows(black_box(&img), RowAlignment::MedianOfDifferences))
    });
    let terms = PolyTerms::Independent { col_degree: 5, row_degree: 5 };
    g.bench_function("level_poly_5x5_1024", |b| b.iter(|| level_poly(black_box(&img), terms)));
    g.bench_function("mark_scars_1024", |b| b.iter(|| mark_scars(black_box(&img), &ScarParams::default())));
    g.bench_function("screening_chain_pyrabani_1024", |b| b.iter(|| preprocess_pyrabani(black_box(&img))));
    g.finish();
}

criterion_group!(benches, spm);
criterion_main!(benches);
