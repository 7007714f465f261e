//! Criterion benchmarks of nanoml-core's image kernels.

use criterion::{Criterion, criterion_group, criterion_main};
use nanoml::core::Xoshiro256PlusPlus;
use nanoml::core::resample::{resize_bilinear, resize_nearest};
use nanoml::core::warp::{Affine2, Padding, warp_affine};
use ndarray::Array2;
use std::hint::black_box;

fn core(c: &mut Criterion) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let img = Array2::from_shape_fn((512, 512), |_| rng.uniform_f32());
    let lattice = Array2::from_shape_fn((128, 128), |(r, c)| ((r * 7 + c * 13) % 3) as u8);
    let mut g = c.benchmark_group("core");
    g.sample_size(20);
    g.bench_function("resize_bilinear_512_to_1024", |b| {
        b.iter(|| resize_bilinear(black_box(img.view()), (1024, 1024)))
    });
    g.bench_function("resize_nearest_lattice_128_to_200", |b| {
        b.iter(|| resize_nearest(black_box(lattice.view()), (200, 200)))
    });
    let t = Affine2::rotation(0.3).then(Affine2::scale(1.1, 0.9)).about(255.5, 255.5);
    g.bench_function("warp_affine_512_periodic", |b| {
        b.iter(|| warp_affine(black_box(img.view()), &t, (512, 512), Padding::Periodic))
    });
    g.bench_function("xoshiro256pp_1M_uniform", |b| {
        b.iter(|| {
            let mut r = Xoshiro256PlusPlus::seed_from_u64(1);
            (0..1_000_000).map(|_| r.uniform()).sum::<f64>()
        })
    });
    g.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
