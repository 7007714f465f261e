//! Criterion benchmarks of nanoml-hrtem: the Wulff construction, potential + multislice
//! of the 1163-atom Au particle at 256² (66.6 Å box, 33 slices), one CTF image and one
//! recorded image with a new random microscope. The side-by-side comparison with abTEM
//! is `tools/compare/hrtem.py`.

use criterion::{Criterion, criterion_group, criterion_main};
use nanoml::hrtem::Element;
use nanoml::hrtem::ctf::Ctf;
use nanoml::hrtem::detector::MicroscopeRanges;
use nanoml::hrtem::multislice::Multislice;
use nanoml::hrtem::potential::{Grid, Parametrization, potential_slices};
use nanoml::hrtem::wulff::{Rounding, wulff_construction};
use std::hint::black_box;

fn hrtem(c: &mut Criterion) {
    let surfaces = [[1, 0, 0], [1, 1, 0], [1, 1, 1]];
    let energies = [6.0, 2.0, 4.0];
    let mut g = c.benchmark_group("hrtem");
    g.sample_size(10);
    g.bench_function("wulff_au_1000", |b| {
        b.iter(|| wulff_construction(Element::AU, black_box(&surfaces), &energies, 1000, Rounding::Above, None))
    });
    let Ok(np) = wulff_construction(Element::AU, &surfaces, &energies, 1000, Rounding::Above, None) else { return };
    let Ok(atoms) = np.atoms.oriented([0, 1, 1]).and_then(|a| a.centered_in([66.6, 66.6, 33.0])) else { return };
    let grid = Grid { gpts: (256, 256), sampling: (66.6 / 256.0, 66.6 / 256.0) };
    g.bench_function("potential_multislice_au1163_256", |b| {
        b.iter(|| {
            let (slices, thicknesses) = potential_slices(black_box(&atoms), &grid, 1.0, Parametrization::Lobato)?;
            Multislice::new(grid, 300e3)?.run(&slices, &thicknesses)
        })
    });
    let Ok((slices, thicknesses)) = potential_slices(&atoms, &grid, 1.0, Parametrization::Lobato) else { return };
    let Ok(exit) = Multislice::new(grid, 300e3).and_then(|mut m| m.run(&slices, &thicknesses)) else { return };
    let lens = Ctf { defocus: 100.0, cs: 20e4, focal_spread: 30.0, ..Ctf::default() };
    g.bench_function("ctf_image_256", |b| b.iter(|| lens.image(black_box(&exit))));
    let ranges = MicroscopeRanges::ragone_2020();
    let mut seed = 0u64;
    g.bench_function("record_random_microscope_256", |b| {
        b.iter(|| {
            seed += 1;
            ranges.sample(seed).record(black_box(&exit), seed)
        })
    });
    g.finish();
}

criterion_group!(benches, hrtem);
criterion_main!(benches);
