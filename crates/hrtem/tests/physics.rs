//! Physics of the image simulation against analytic results: norm conservation in free
//! propagation, a Gaussian spreading as Fresnel's formula says, a weak phase object
//! imaged through the analytic CTF, and the projected potential's integral.

use nanoml_hrtem::ctf::Ctf;
use nanoml_hrtem::multislice::{C32, Multislice};
use nanoml_hrtem::physics::{interaction_constant, wavelength};
use nanoml_hrtem::potential::{Grid, Parametrization, ScatteringFactor, potential_slices};
use nanoml_hrtem::{Atoms, Element};
use ndarray::Array2;
use std::f64::consts::PI;

const E: f64 = 300e3;

#[test]
fn free_propagation_conserves_intensity_and_spreads_a_gaussian_as_fresnel_says() {
    let grid = Grid { gpts: (256, 256), sampling: (0.1, 0.1) };
    let mut ms = Multislice::new(grid, E).unwrap();
    let (w, z) = (1.0, 200.0); // 1 Å wide, 200 Å of vacuum
    let centre = 12.8;
    let gaussian = |i: usize, j: usize| {
        let r2 = (i as f64 * 0.1 - centre).powi(2) + (j as f64 * 0.1 - centre).powi(2);
        (-r2 / (2.0 * w * w)).exp()
    };
    let mut psi = Array2::from_shape_fn(grid.gpts, |(i, j)| C32::new(gaussian(i, j) as f32, 0.0));
    let before: f64 = psi.iter().map(|v| f64::from(v.norm_sqr())).sum();
    ms.propagate(&mut psi, z).unwrap();
    let after: f64 = psi.iter().map(|v| f64::from(v.norm_sqr())).sum();
    assert!((after / before - 1.0).abs() < 1e-5, "intensity {before} → {after}");
    // ψ(r, z) = (w²/q) exp(−r²/(2q)), q = w² + iλz/(2π).
    let lambda = wavelength(E).unwrap();
    let q = num_complex::Complex::new(w * w, lambda * z / (2.0 * PI));
    let mut worst = 0.0f64;
    for ((i, j), v) in psi.indexed_iter() {
        let r2 = (i as f64 * 0.1 - centre).powi(2) + (j as f64 * 0.1 - centre).powi(2);
        let want = (w * w) / q * (-r2 / (2.0 * q)).exp();
        worst = worst.max((num_complex::Complex::new(f64::from(v.re), f64::from(v.im)) - want).norm());
    }
    assert!(worst < 1e-5, "largest deviation from Fresnel's Gaussian {worst}");
}

#[test]
fn a_weak_phase_object_is_imaged_through_the_analytic_ctf() {
    let n = 128;
    let grid = Grid { gpts: (n, n), sampling: (0.1, 0.1) };
    let ms = Multislice::new(grid, E).unwrap();
    // V(x) = v cos(2π k0 x) with k0 = 8 / (n Δ): a weak phase grating.
    let (v, k0) = (0.01, 8.0 / (n as f64 * 0.1));
    let slice = Array2::from_shape_fn(grid.gpts, |(i, _)| (v * (2.0 * PI * k0 * i as f64 * 0.1).cos()) as f32);
    let t = ms.transmission(&slice).unwrap();
    assert!(ms.transmission(&Array2::zeros((n, n + 1))).is_err());
    let exit = nanoml_hrtem::multislice::ExitWave { psi: t, grid, energy: E };
    let ctf = Ctf { defocus: 300.0, cs: 1e5, ..Ctf::default() };
    let image = ctf.image(&exit).unwrap();
    let lambda = wavelength(E).unwrap();
    let chi = ctf.chi(lambda * k0, 0.0, lambda);
    let sigma = interaction_constant(E).unwrap();
    // I ≈ 1 + 2σv sin χ(k0) cos(2π k0 x).
    let amplitude = 2.0 * sigma * v * chi.sin();
    for i in 0..n {
        let want = 1.0 + amplitude * (2.0 * PI * k0 * i as f64 * 0.1).cos();
        assert!((f64::from(image[[i, 7]]) - want).abs() < 1e-4 * amplitude.abs().max(1e-3) + 1e-6, "x = {i}");
    }
    assert!(amplitude.abs() > 1e-6);
}

#[test]
fn the_projected_potential_integrates_to_its_zero_frequency_factor() {
    // One gold atom in a 20 Å box: Σ V ΔxΔy equals f_proj(0).
    let atoms = Atoms { numbers: vec![79], positions: vec![[10.0, 10.0, 5.0]], cell: [20.0, 20.0, 10.0] };
    let grid = Grid { gpts: (200, 200), sampling: (0.1, 0.1) };
    for p in [Parametrization::Lobato, Parametrization::Kirkland] {
        let (slices, thick) = potential_slices(&atoms, &grid, 2.0, p).unwrap();
        assert_eq!(slices.len(), 5);
        assert_eq!(thick, vec![2.0; 5]);
        let total: f64 = slices.iter().map(|s| s.iter().map(|&v| f64::from(v)).sum::<f64>()).sum::<f64>() * 0.01;
        let f0 = ScatteringFactor::new(79, p).unwrap().projected(0.0);
        assert!((total / f0 - 1.0).abs() < 1e-4, "{p:?}: {total} vs {f0}");
        // The potential sits in the slice holding the atom, peaked at the atom.
        let peak = slices[2].indexed_iter().fold(((0, 0), f32::MIN), |b, (ix, &v)| if v > b.1 { (ix, v) } else { b });
        assert_eq!(peak.0, (100, 100));
    }
    assert!(ScatteringFactor::new(1, Parametrization::Lobato).is_err());
    let outside = Atoms { positions: vec![[25.0, 1.0, 1.0]], ..atoms.clone() };
    assert!(potential_slices(&outside, &grid, 2.0, Parametrization::Lobato).is_err());
    let no_box = Atoms { cell: [0.0; 3], ..atoms.clone() };
    assert!(potential_slices(&no_box, &grid, 2.0, Parametrization::Lobato).is_err());
    assert!(potential_slices(&atoms, &grid, 0.0, Parametrization::Lobato).is_err());
    let _ = Element::AU;
}

#[test]
fn the_transfer_function_is_exp_minus_i_chi_with_envelope_and_aperture() {
    let grid = Grid { gpts: (64, 48), sampling: (0.15, 0.2) };
    let lens = Ctf {
        defocus: -120.0,
        astigmatism: 30.0,
        astigmatism_angle: 0.7,
        cs: 3e5,
        c50: 1e7,
        focal_spread: 25.0,
        angular_spread: 0.0,
        semiangle_cutoff: Some(25.0),
    };
    let t = lens.transfer(&grid, E).unwrap();
    let lambda = wavelength(E).unwrap();
    let kx = nanoml_hrtem::potential::frequencies(64, 0.15);
    let ky = nanoml_hrtem::potential::frequencies(48, 0.2);
    for (i, j) in [(1, 0), (0, 3), (5, 7), (60, 40), (20, 20)] {
        let alpha = lambda * (kx[i] * kx[i] + ky[j] * ky[j]).sqrt();
        let want = if alpha >= 0.025 {
            num_complex::Complex::new(0.0, 0.0)
        } else {
            let chi = lens.chi(alpha, ky[j].atan2(kx[i]), lambda);
            let e = (-(0.5 * PI / lambda * 25.0 * alpha * alpha).powi(2)).exp();
            num_complex::Complex::new(chi.cos() * e, -chi.sin() * e)
        };
        let got = t[[i, j]];
        assert!(
            (f64::from(got.re) - want.re).abs() < 1e-6 && (f64::from(got.im) - want.im).abs() < 1e-6,
            "({i}, {j}): {got} vs {want}"
        );
    }
    assert!(Ctf { focal_spread: -1.0, ..lens }.transfer(&grid, E).is_err());
    assert!(Ctf { semiangle_cutoff: Some(0.0), ..lens }.transfer(&grid, E).is_err());
    assert!((Ctf::scherzer_defocus(2e5, E).unwrap() - (1.5 * 2e5 * lambda).sqrt()).abs() < 1e-12);
}

#[test]
fn bad_input_gives_typed_errors() {
    use nanoml_hrtem::Error;
    let grid = Grid { gpts: (64, 64), sampling: (0.2, 0.2) };
    // The band limit at 0.2 Å and 300 keV is 32.8 mrad.
    let wide = Ctf { semiangle_cutoff: Some(40.0), ..Ctf::default() };
    assert!(matches!(wide.transfer(&grid, E), Err(Error::InvalidParameter { .. })));
    assert!(Ctf { semiangle_cutoff: Some(30.0), ..Ctf::default() }.transfer(&grid, E).is_ok());
    assert!(Multislice::new(Grid { gpts: (64, 64), sampling: (0.0, 0.2) }, E).is_err());
    assert!(Multislice::new(Grid { gpts: (0, 64), sampling: (0.2, 0.2) }, E).is_err());
    assert!(Grid::covering((10.0, -1.0), 0.2).is_err());
    let empty = Atoms { cell: [10.0; 3], ..Atoms::default() };
    assert!(potential_slices(&empty, &grid, 1.0, Parametrization::Lobato).is_err());
    let unknown = Atoms { numbers: vec![92], positions: vec![[1.0, 1.0, 1.0]], cell: [10.0; 3] };
    assert!(potential_slices(&unknown, &grid, 1.0, Parametrization::Lobato).is_err());
    assert!(Element::from_symbol("U").is_err());
    let mut ms = Multislice::new(grid, E).unwrap();
    assert!(ms.run(&[Array2::zeros((32, 32))], &[1.0]).is_err());
    assert!(ms.run(&[Array2::zeros((64, 64))], &[]).is_err());
}
