//! The detector chain of PyQSTEM's `detect()` as Ragone and Madsen used it
//! (../shared/notes/hrtem.md §3.6–3.7), a local normalisation, and a seeded sampler of
//! random microscopes with the ranges of Ragone et al.'s Table 1 (and of their 2021
//! code).
//!
//! Order: Gaussian blur (σ px, `skimage.filters.gaussian`: mode 'nearest', truncated at
//! 4σ) → dose: counts with mean `dose·Δx·Δy·N·I/ΣI` (electrons per Å², so the mean count
//! per pixel is `dose·Δ²`), Poisson-distributed → MTF: the spectrum times
//! `√MTF(k)`, `MTF(k) = (c0 − c1)/(1 + (k/(2c2))^|c3|) + c1` (k in Å⁻¹; c0 = MTF(0),
//! c1 = MTF(∞)), keeping `(re + im)/2` of the inverse transform as PyQSTEM does.

use crate::ctf::Ctf;
use crate::fft::{Fft2, Kernel, Symmetry, nothing};
use crate::potential::frequencies;
use crate::{Error, Result};
use nanoml_core::{Xoshiro256PlusPlus, derive_seed};
use ndarray::Array2;
use num_complex::Complex;
use rayon::prelude::*;

/// Gaussian blur with standard deviation `sigma` pixels (0 = none), nearest-edge
/// padding, kernel truncated at `⌊4σ + 0.5⌋` pixels (scipy's `gaussian_filter`).
///
/// # Errors
/// A negative or non-finite sigma.
pub fn gaussian_blur(image: &Array2<f32>, sigma: f64) -> Result<Array2<f32>> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::invalid("blur sigma", sigma, "a finite width ≥ 0 px"));
    }
    if sigma == 0.0 || image.is_empty() {
        return Ok(image.clone());
    }
    let radius = (4.0 * sigma + 0.5) as i64;
    let weights: Vec<f64> = (-radius..=radius).map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp()).collect();
    let total: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let weights: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    // Each pass filters the rows of a standard-layout array in parallel (padded with the
    // edge values), then transposes the result, so two passes filter both axes and
    // restore the orientation.
    let r = radius as usize;
    let pass = |src: &Array2<f32>| -> Array2<f32> {
        let (rows, cols) = src.dim();
        let src = src.as_standard_layout();
        let values = src.as_slice().unwrap_or_default();
        let mut filtered = vec![0.0f32; rows * cols];
        filtered.par_chunks_mut(cols).zip(values.par_chunks(cols)).for_each_init(
            || vec![0.0f32; cols + 2 * r],
            |padded, (line, row)| {
                let (first, last) = (row[0], row[cols - 1]);
                padded[..r].iter_mut().for_each(|v| *v = first);
                padded[r + cols..].iter_mut().for_each(|v| *v = last);
                padded[r..r + cols].copy_from_slice(row);
                for (t, &w) in weights.iter().enumerate() {
                    line.iter_mut().zip(&padded[t..t + cols]).for_each(|(l, &p)| *l += w * p);
                }
            },
        );
        let filtered = Array2::from_shape_vec((rows, cols), filtered).unwrap_or_else(|_| Array2::zeros((rows, cols)));
        filtered.t().as_standard_layout().into_owned()
    };
    Ok(pass(&pass(image)))
}

/// A Poisson draw of mean `lambda` (≥ 0): products of uniforms below 10, otherwise
/// Hörmann's transformed rejection (PTRS, valid from 10 on), exact for every mean.
pub fn poisson(rng: &mut Xoshiro256PlusPlus, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda < 10.0 {
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0u64, rng.uniform());
        while p > limit {
            k += 1;
            p *= rng.uniform();
        }
        return k;
    }
    let slam = lambda.sqrt();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.uniform() - 0.5;
        let v = rng.uniform();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        let log_fact = ln_gamma(k + 1.0);
        if (v * inv_alpha / (a / (us * us) + b)).ln() <= -lambda + k * lambda.ln() - log_fact {
            return k as u64;
        }
    }
}

/// ln Γ(x) for x ≥ 1 (Stirling's series with a shift; 1e-12 relative).
fn ln_gamma(x: f64) -> f64 {
    let (mut x, mut shift) = (x, 0.0);
    while x < 7.0 {
        shift -= x.ln();
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    shift + (x - 0.5) * x.ln() - x
        + 0.5 * (2.0 * std::f64::consts::PI).ln()
        + inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)))
}

/// Dose noise: expected counts `dose·Δx·Δy·N·I/ΣI` (negative intensities clipped to 0),
/// drawn from Poisson distributions. Blocks of [`NOISE_BLOCK`] pixels (row-major) are
/// drawn in parallel, each from its own generator seeded with
/// `derive_seed(seed, block)`, so the result depends on the seed only, never on the
/// number of threads.
///
/// # Errors
/// A negative or non-finite dose or sampling; an image with no positive intensity.
pub fn dose_noise(image: &Array2<f32>, dose: f64, sampling: (f64, f64), seed: u64) -> Result<Array2<f32>> {
    if !(dose.is_finite() && dose >= 0.0) {
        return Err(Error::invalid("dose", dose, "a finite dose ≥ 0 electrons/Å²"));
    }
    if !(sampling.0 > 0.0 && sampling.1 > 0.0 && sampling.0.is_finite() && sampling.1.is_finite()) {
        return Err(Error::invalid("sampling", format!("{sampling:?}"), "positive pixel sizes in Å"));
    }
    let total: f64 = image.iter().map(|&v| f64::from(v.max(0.0))).sum();
    if !(total > 0.0 && total.is_finite()) {
        return Err(Error::invalid("image", "no positive, finite intensity", "an image to expose"));
    }
    let scale = dose * sampling.0 * sampling.1 * image.len() as f64 / total;
    let mut counts = image.as_standard_layout().into_owned();
    if let Some(values) = counts.as_slice_mut() {
        values.par_chunks_mut(NOISE_BLOCK).enumerate().for_each(|(b, block)| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed(seed, b as u64));
            block.iter_mut().for_each(|v| *v = poisson(&mut rng, f64::from(v.max(0.0)) * scale) as f32);
        });
    }
    Ok(counts)
}

/// Pixels per independently seeded block of [`dose_noise`].
pub const NOISE_BLOCK: usize = 4096;

/// The detector's modulation transfer function at spatial frequency `k` Å⁻¹.
pub fn mtf(k: f64, c: [f64; 4]) -> f64 {
    (c[0] - c[1]) / (1.0 + (k / (2.0 * c[2])).powf(c[3].abs())) + c[1]
}

/// Applies √MTF to the image's spectrum and keeps `(re + im)/2` (PyQSTEM's `detect`).
///
/// # Errors
/// Bad sampling, or MTF parameters that are not finite (or c2 ≤ 0).
pub fn apply_mtf(image: &Array2<f32>, sampling: (f64, f64), c: [f64; 4]) -> Result<Array2<f32>> {
    if c.iter().any(|v| !v.is_finite()) || c[2] <= 0.0 {
        return Err(Error::invalid("MTF parameters", format!("{c:?}"), "finite values with c2 > 0"));
    }
    if !(sampling.0 > 0.0 && sampling.1 > 0.0) {
        return Err(Error::invalid("sampling", format!("{sampling:?}"), "positive pixel sizes in Å"));
    }
    let (nx, ny) = image.dim();
    let (kx, ky) = (frequencies(nx, sampling.0), frequencies(ny, sampling.1));
    let kernel = Kernel::new(nx, ny, Symmetry::Axes, |i, j| {
        mtf((kx[i] * kx[i] + ky[j] * ky[j]).sqrt(), c).max(0.0).sqrt() as f32
    });
    let image = image.as_standard_layout();
    let values = image.as_slice().unwrap_or_default();
    let mut a = vec![Complex::new(0.0, 0.0); nx * ny];
    let load = |offset: usize, rows: &mut [Complex<f32>]| {
        rows.iter_mut().zip(&values[offset..]).for_each(|(r, &v)| *r = Complex::new(v, 0.0));
    };
    Fft2::cached(nx, ny).filter(&mut a, &kernel, load, nothing);
    Ok(Array2::from_shape_vec((nx, ny), a.par_iter().map(|v| (v.re + v.im) / 2.0).collect())
        .unwrap_or_else(|_| Array2::zeros((nx, ny))))
}

/// Ragone's `local_normalize`: min–max to [0, 1], subtract a Gaussian blur of width
/// `sigma1` px, divide by the square root of a Gaussian blur (width `sigma2`) of the
/// square.
///
/// # Errors
/// Bad sigmas, or an image without contrast.
pub fn local_normalize(image: &Array2<f32>, sigma1: f64, sigma2: f64) -> Result<Array2<f32>> {
    let (lo, hi) = image.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return Err(Error::invalid("image", "a constant or non-finite image", "an image with contrast"));
    }
    let unit = image.mapv(|v| (v - lo) / (hi - lo));
    let centred = &unit - &gaussian_blur(&unit, sigma1)?;
    let spread = gaussian_blur(&centred.mapv(|v| v * v), sigma2)?;
    Ok(ndarray::Zip::from(&centred).and(&spread).map_collect(|&c, &s| c / s.sqrt().max(f32::MIN_POSITIVE)))
}

/// One microscope: lens, detector blur (px), dose (e/Å²) and MTF parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Microscope {
    /// The objective lens (abTEM's defocus sign).
    pub ctf: Ctf,
    /// Gaussian blur σ, pixels.
    pub blur: f64,
    /// Electron dose, e/Å².
    pub dose: f64,
    /// MTF parameters `[c0, c1, c2, c3]` (MTF(0), MTF(∞), half-width in Å⁻¹, exponent).
    pub mtf: [f64; 4],
}

/// Uniform ranges `(low, high)` of the random microscopes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MicroscopeRanges {
    /// Defocus, Å (abTEM sign: positive = underfocus).
    pub defocus: (f64, f64),
    /// Cs (C30), Å.
    pub cs: (f64, f64),
    /// Two-fold astigmatism C12, Å (its angle is uniform in [0, 2π)).
    pub astigmatism: (f64, f64),
    /// Focal spread, Å.
    pub focal_spread: (f64, f64),
    /// Blur σ, px.
    pub blur: (f64, f64),
    /// Dose, e/Å² (uniform, as in the code, not log-uniform).
    pub dose: (f64, f64),
    /// MTF c0 … c3.
    pub mtf: [(f64, f64); 4],
}

impl MicroscopeRanges {
    /// Ragone et al. 2020, Table 1 (the code's QSTEM defocus −250…−150 Å is abTEM's
    /// +150…+250). The code's MTF slip (c0 overwritten by c3 ∈ [2, 3]) is not copied:
    /// c0 ∈ [0.95, 1] as intended; it only rescales the image.
    pub fn ragone_2020() -> Self {
        MicroscopeRanges {
            defocus: (150.0, 250.0),
            cs: (-20e4, 20e4),
            astigmatism: (0.0, 50.0),
            focal_spread: (20.0, 40.0),
            blur: (0.0, 2.0),
            dose: (1e2, 1e6),
            mtf: [(0.95, 1.0), (0.0, 0.01), (0.5, 0.6), (2.0, 3.0)],
        }
    }

    /// The 2021 follow-up code's ranges (Cs ±15 µm, defocus 180–200 Å, blur ≤ 1 px,
    /// dose 1e2–1e3 e/Å²).
    pub fn ragone_2021() -> Self {
        MicroscopeRanges {
            defocus: (180.0, 200.0),
            cs: (-15e4, 15e4),
            blur: (0.0, 1.0),
            dose: (1e2, 1e3),
            ..Self::ragone_2020()
        }
    }

    /// A random microscope, seeded.
    pub fn sample(&self, seed: u64) -> Microscope {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut u = |(lo, hi): (f64, f64)| rng.uniform_in(lo, hi);
        let ctf = Ctf {
            defocus: u(self.defocus),
            cs: u(self.cs),
            astigmatism: u(self.astigmatism),
            astigmatism_angle: u((0.0, 2.0 * std::f64::consts::PI)),
            focal_spread: u(self.focal_spread),
            ..Ctf::default()
        };
        let (blur, dose) = (u(self.blur), u(self.dose));
        let mtf = [u(self.mtf[0]), u(self.mtf[1]), u(self.mtf[2]), u(self.mtf[3])];
        Microscope { ctf, blur, dose, mtf }
    }
}

impl Microscope {
    /// The recorded image of an exit wave: CTF, blur, dose noise (seeded), MTF.
    ///
    /// # Errors
    /// Bad lens or detector parameters.
    pub fn record(&self, exit: &crate::multislice::ExitWave, seed: u64) -> Result<Array2<f32>> {
        let image = self.ctf.image(exit)?;
        let blurred = gaussian_blur(&image, self.blur)?;
        let counts = dose_noise(&blurred, self.dose, exit.grid.sampling, seed)?;
        apply_mtf(&counts, exit.grid.sampling, self.mtf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_has_its_mean_and_variance() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        for lambda in [0.5, 7.0, 9.9, 10.0, 12.0, 45.0, 6.8e4] {
            let n = 20_000;
            let draws: Vec<f64> = (0..n).map(|_| poisson(&mut rng, lambda) as f64).collect();
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            // Standard errors: √(λ/n) for the mean, ≈ λ√(2/n) for the variance.
            assert!((mean - lambda).abs() < 5.0 * (lambda / n as f64).sqrt(), "λ {lambda}: mean {mean}");
            assert!((var - lambda).abs() < 6.0 * lambda * (2.0 / n as f64).sqrt() + 0.05, "λ {lambda}: var {var}");
        }
        assert!((ln_gamma(10.0) - 362_880f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn blur_mtf_and_normalisation() {
        let mut delta = Array2::<f32>::zeros((31, 31));
        delta[[15, 15]] = 1.0;
        let b = gaussian_blur(&delta, 1.5).unwrap();
        assert!((b.sum() - 1.0).abs() < 1e-5);
        let want = (1.0 / (2.0 * std::f64::consts::PI * 2.25)) as f32;
        assert!((b[[15, 15]] - want).abs() < 2e-3, "{}", b[[15, 15]]);
        // A flat image keeps MTF(0)^½ of its value, halved by PyQSTEM's (re + im)/2.
        let flat = Array2::<f32>::from_elem((16, 16), 4.0);
        let m = apply_mtf(&flat, (0.25, 0.25), [0.81, 0.0, 0.5, 2.0]).unwrap();
        assert!(m.iter().all(|&v| (v - 4.0 * 0.9 / 2.0).abs() < 1e-5));
        assert!(
            (mtf(0.0, [1.0, 0.01, 0.5, 2.5]) - 1.0).abs() < 1e-15
                && (mtf(1e9, [1.0, 0.01, 0.5, 2.5]) - 0.01).abs() < 1e-9
        );
        let ramp = Array2::from_shape_fn((40, 40), |(i, j)| ((i * 7 + j * 3) % 11) as f32);
        let n = local_normalize(&ramp, 5.0, 5.0).unwrap();
        assert!(n.iter().all(|v| v.is_finite()));
        assert!(local_normalize(&flat, 5.0, 5.0).is_err());
        assert!(gaussian_blur(&flat, -1.0).is_err());
        assert!(dose_noise(&flat, -1.0, (0.2, 0.2), 1).is_err());
    }

    #[test]
    fn sampled_microscopes_lie_in_their_ranges() {
        let r = MicroscopeRanges::ragone_2020();
        for seed in 0..200 {
            let m = r.sample(seed);
            assert!((150.0..=250.0).contains(&m.ctf.defocus) && m.ctf.cs.abs() <= 20e4);
            assert!((0.0..=2.0).contains(&m.blur) && (1e2..=1e6).contains(&m.dose));
            assert!((0.95..=1.0).contains(&m.mtf[0]) && (2.0..=3.0).contains(&m.mtf[3]));
        }
        assert_eq!(r.sample(5), r.sample(5));
        assert_ne!(r.sample(5), r.sample(6));
    }
}
