//! Exit waves and images against abTEM 1.0.11 on the same atoms, grid, slices,
//! parametrisation and lens (`tools/fixtures/hrtem_abtem.py`): a 1163-atom Au particle
//! along [001] and [011] and a thin Au crystal; Pearson correlation of the intensities.
#![allow(clippy::print_stderr)]

use nanoml_core::io::npy;
use nanoml_hrtem::Atoms;
use nanoml_hrtem::ctf::Ctf;
use nanoml_hrtem::multislice::Multislice;
use nanoml_hrtem::potential::{Grid, Parametrization, potential_slices};
use ndarray::Array2;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    numbers: Vec<u8>,
    positions: Vec<[f64; 3]>,
    cell: [f64; 3],
    gpts: [usize; 2],
    sampling: [f64; 2],
    slice_thicknesses: Vec<f64>,
    energy: f64,
    lens: Lens,
    lens2: Lens2,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Lens2 {
    defocus: f64,
    Cs: f64,
    C50: f64,
    astigmatism: f64,
    astigmatism_angle: f64,
    focal_spread: f64,
    angular_spread: f64,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Lens {
    defocus: f64,
    Cs: f64,
    focal_spread: f64,
}

fn pearson(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().map(|&v| f64::from(v)).sum::<f64>() / n, b.iter().map(|&v| f64::from(v)).sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt()
}

#[test]
fn exit_waves_and_images_correlate_with_abtem() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/abtem");
    for name in ["particle_001", "particle_011", "crystal_001"] {
        let case: Case = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{name}.json")).unwrap()).unwrap();
        let atoms = Atoms { numbers: case.numbers, positions: case.positions, cell: case.cell };
        let grid = Grid { gpts: (case.gpts[0], case.gpts[1]), sampling: (case.sampling[0], case.sampling[1]) };
        let (slices, thicknesses) = potential_slices(&atoms, &grid, 1.0, Parametrization::Lobato).unwrap();
        assert_eq!(thicknesses.len(), case.slice_thicknesses.len(), "{name}: slices");
        for (a, b) in thicknesses.iter().zip(&case.slice_thicknesses) {
            assert!((a - b).abs() < 1e-9, "{name}: thickness {a} vs {b}");
        }
        let exit = Multislice::new(grid, case.energy).unwrap().run(&slices, &thicknesses).unwrap();
        let intensity = exit.psi.mapv(|v| v.norm_sqr());
        let want_exit: Array2<f32> = npy::read(format!("{dir}/{name}_exit.npy")).unwrap();
        let lens = Ctf {
            defocus: case.lens.defocus,
            cs: case.lens.Cs,
            focal_spread: case.lens.focal_spread,
            ..Ctf::default()
        };
        let image = lens.image(&exit).unwrap();
        let want_image: Array2<f32> = npy::read(format!("{dir}/{name}_image.npy")).unwrap();
        let (r_exit, r_image) = (pearson(&intensity, &want_exit), pearson(&image, &want_image));
        let worst = |a: &Array2<f32>, b: &Array2<f32>| {
            let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max) / scale
        };
        let (d_exit, d_image) = (worst(&intensity, &want_exit), worst(&image, &want_image));
        eprintln!(
            "{name}: Pearson 1 − r = {:.1e} (exit-wave intensity), {:.1e} (image); largest difference {d_exit:.1e}, {d_image:.1e} of the peak",
            1.0 - r_exit,
            1.0 - r_image
        );
        // The acceptance is r ≥ 0.99; the same algorithm in float32 gives far more.
        assert!(r_exit >= 0.9999 && r_image >= 0.9999, "{name}: {r_exit} {r_image}");
        if name == "particle_011" {
            let l = &case.lens2;
            let lens2 = Ctf {
                defocus: l.defocus,
                cs: l.Cs,
                c50: l.C50,
                astigmatism: l.astigmatism,
                astigmatism_angle: l.astigmatism_angle,
                focal_spread: l.focal_spread,
                angular_spread: l.angular_spread,
                semiangle_cutoff: None,
            };
            let want: Array2<f32> = npy::read(format!("{dir}/{name}_image_lens2.npy")).unwrap();
            let got = lens2.image(&exit).unwrap();
            let r = pearson(&got, &want);
            eprintln!(
                "{name}, lens with astigmatism, C50 and angular spread: 1 − r = {:.1e}, largest difference {:.1e} of the peak",
                1.0 - r,
                worst(&got, &want)
            );
            assert!(r >= 0.9999, "{r}");
        }
    }
}
