//! Plane-wave multislice (../shared/notes/hrtem.md §3.2, abTEM's conventions): for each
//! slice, transmit through `t = exp(iσV)` band-limited by the antialias aperture, then
//! propagate by `P(k) = exp(−iπλΔz|k|²)·A(k)` in Fourier space. `A` is abTEM's
//! antialias aperture: 1 below 2/3 of the Nyquist frequency less a taper of 0.01/Δ, a
//! cosine edge across the taper, 0 beyond. FFT plans are made once per grid and reused;
//! waves are `Complex<f32>` as in abTEM.

use crate::fft::{Fft2, Kernel, Symmetry, nothing};
use crate::physics::{interaction_constant, wavelength};
use crate::potential::{Grid, frequencies};
use crate::{Error, Result};
use ndarray::Array2;
use num_complex::Complex;
use std::f64::consts::PI;
use std::sync::Arc;

/// `Complex<f32>`, the wave's element type.
pub type C32 = Complex<f32>;

/// An exit wave: the complex wave on the grid after the specimen, ready to be imaged
/// any number of times (see [`crate::ctf`]).
#[derive(Clone, Debug)]
pub struct ExitWave {
    /// The wave, `[i, j]` at `x = i·Δx`, `y = j·Δy`; a plane wave of amplitude 1 enters.
    pub psi: Array2<C32>,
    /// Its grid.
    pub grid: Grid,
    /// Beam energy, eV.
    pub energy: f64,
}

/// abTEM's antialias aperture on the grid (FFT order).
pub fn antialias_aperture(grid: &Grid) -> Array2<f32> {
    let a = aperture_fn(grid);
    Array2::from_shape_fn(grid.gpts, |(i, j)| a(i, j))
}

/// The antialias aperture at frequency indices `(i, j)`.
fn aperture_fn(grid: &Grid) -> impl Fn(usize, usize) -> f32 + Sync + use<> {
    let smax = grid.sampling.0.max(grid.sampling.1);
    let (cutoff, taper) = (0.666_666_6 / smax / 2.0, 0.01 / smax);
    let (kx, ky) = (frequencies(grid.gpts.0, grid.sampling.0), frequencies(grid.gpts.1, grid.sampling.1));
    move |i, j| {
        let r = (kx[i] * kx[i] + ky[j] * ky[j]).sqrt();
        if r > cutoff {
            0.0
        } else if r > cutoff - taper {
            (0.5 * (1.0 + (PI * (r - cutoff + taper) / taper).cos())) as f32
        } else {
            1.0
        }
    }
}

/// The Fresnel propagator for `dz` Å times the antialias aperture at frequency indices
/// `(i, j)`.
fn propagator_fn(grid: &Grid, lambda: f64, dz: f64) -> impl Fn(usize, usize) -> C32 + Sync + use<> {
    let aperture = aperture_fn(grid);
    let (kx, ky) = (frequencies(grid.gpts.0, grid.sampling.0), frequencies(grid.gpts.1, grid.sampling.1));
    move |i, j| {
        let a = aperture(i, j);
        if a == 0.0 {
            return C32::new(0.0, 0.0);
        }
        let (s, c) = (-PI * lambda * dz * (kx[i] * kx[i] + ky[j] * ky[j])).sin_cos();
        C32::new(c as f32, s as f32) * a
    }
}

/// The multislice machinery for one grid and energy: FFT plans, the antialias aperture
/// and propagators (cached per slice thickness).
pub struct Multislice {
    grid: Grid,
    energy: f64,
    sigma: f64,
    /// The aperture as a filter kernel.
    aperture: Kernel<f32>,
    fft: Arc<Fft2>,
    /// Propagators per thickness, as filter kernels.
    propagators: Vec<(u64, Kernel<C32>)>,
    /// Scratch: the transmission function of the current slice.
    work: Vec<C32>,
}

impl Multislice {
    /// Plans for `grid` at `energy` eV.
    ///
    /// # Errors
    /// A bad grid or energy.
    pub fn new(grid: Grid, energy: f64) -> Result<Self> {
        grid.check()?;
        let sigma = interaction_constant(energy)?;
        let n = grid.gpts.0 * grid.gpts.1;
        Ok(Multislice {
            grid,
            energy,
            sigma,
            aperture: Kernel::new(grid.gpts.0, grid.gpts.1, Symmetry::Axes, aperture_fn(&grid)),
            fft: Fft2::cached(grid.gpts.0, grid.gpts.1),
            propagators: Vec::new(),
            work: vec![C32::new(0.0, 0.0); n],
        })
    }

    /// The Fresnel propagator for `dz` Å times the antialias aperture (FFT order).
    ///
    /// # Errors
    /// A non-finite thickness.
    pub fn propagator(&self, dz: f64) -> Result<Array2<C32>> {
        if !dz.is_finite() {
            return Err(Error::invalid("slice thickness", dz, "a finite thickness in Å"));
        }
        let p = propagator_fn(&self.grid, wavelength(self.energy)?, dz);
        Ok(Array2::from_shape_fn(self.grid.gpts, |(i, j)| p(i, j)))
    }

    fn propagator_index(&mut self, dz: f64) -> Result<usize> {
        if !dz.is_finite() {
            return Err(Error::invalid("slice thickness", dz, "a finite thickness in Å"));
        }
        let key = dz.to_bits();
        if let Some(i) = self.propagators.iter().position(|(k, _)| *k == key) {
            return Ok(i);
        }
        let (nx, ny) = self.grid.gpts;
        let kernel = Kernel::new(nx, ny, Symmetry::Axes, propagator_fn(&self.grid, wavelength(self.energy)?, dz));
        self.propagators.push((key, kernel));
        Ok(self.propagators.len() - 1)
    }

    /// Propagates `psi` by `dz` Å through vacuum (with the antialias aperture).
    ///
    /// # Errors
    /// A wave of another shape, a non-finite `dz`.
    pub fn propagate(&mut self, psi: &mut Array2<C32>, dz: f64) -> Result<()> {
        self.check_grid("wave", psi.dim())?;
        let p = self.propagator_index(dz)?;
        if psi.as_slice().is_none() {
            *psi = psi.as_standard_layout().into_owned();
        }
        if let Some(wave) = psi.as_slice_mut() {
            self.fft.filter(wave, &self.propagators[p].1, nothing, nothing);
        }
        Ok(())
    }

    /// An error unless an array of `shape` (a wave or a slice, `what`) fits the grid.
    fn check_grid(&self, what: &'static str, shape: (usize, usize)) -> Result<()> {
        if shape != self.grid.gpts {
            return Err(Error::invalid(what, format!("shape {shape:?}"), format!("the grid {:?}", self.grid.gpts)));
        }
        Ok(())
    }

    /// The band-limited transmission function `exp(iσV)` of a slice of projected
    /// potential (V·Å).
    ///
    /// # Errors
    /// A slice of another shape than the grid.
    pub fn transmission(&self, slice: &Array2<f32>) -> Result<Array2<C32>> {
        self.check_grid("slice", slice.dim())?;
        let n = slice.len();
        let mut t = vec![C32::new(0.0, 0.0); n];
        self.transmission_into(slice, &mut t);
        Ok(Array2::from_shape_vec(slice.dim(), t).unwrap_or_else(|_| Array2::zeros(slice.dim())))
    }

    /// `exp(iσV)` of `slice` into `out`, band-limited by the aperture.
    fn transmission_into(&self, slice: &Array2<f32>, out: &mut [C32]) {
        self.transmission_started(slice, out);
        self.fft.rows_inverse(out, nothing);
    }

    /// The first two passes of the band-limited `exp(iσV)` (the last is left to
    /// [`Fft2::rows_combine`]).
    fn transmission_started(&self, slice: &Array2<f32>, out: &mut [C32]) {
        let sigma = self.sigma as f32;
        let values = slice.as_standard_layout();
        let values = values.as_slice().unwrap_or_default();
        let phase = |offset: usize, rows: &mut [C32]| exp_i(&values[offset..offset + rows.len()], sigma, rows);
        self.fft.rows_forward(out, phase);
        self.fft.columns(out, &self.aperture);
    }

    /// The exit wave of a plane wave (amplitude 1) through the slices: transmit, then
    /// propagate by each slice's thickness.
    ///
    /// # Errors
    /// Slices of another shape, or different numbers of slices and thicknesses.
    pub fn run(&mut self, slices: &[Array2<f32>], thicknesses: &[f64]) -> Result<ExitWave> {
        if slices.len() != thicknesses.len() {
            return Err(Error::invalid(
                "thicknesses",
                format!("{} for {} slices", thicknesses.len(), slices.len()),
                "one thickness per slice",
            ));
        }
        for slice in slices {
            self.check_grid("slice", slice.dim())?;
        }
        let propagators: Vec<usize> = thicknesses.iter().map(|&dz| self.propagator_index(dz)).collect::<Result<_>>()?;
        let mut psi = vec![C32::new(1.0, 0.0); self.grid.gpts.0 * self.grid.gpts.1];
        let mut t = std::mem::take(&mut self.work);
        // Per slice, three sweeps of the transmission function and two of the wave: the
        // wave's inverse row transforms (end of the last propagation), the transmission's
        // (end of its band limit), the product and the next forward row transforms are
        // one sweep.
        for (s, (slice, &p)) in slices.iter().zip(&propagators).enumerate() {
            self.transmission_started(slice, &mut t);
            if s == 0 {
                // The plane wave of amplitude 1 times t is t.
                self.fft.rows_combine(&mut psi, false, &t, |w, t| w.copy_from_slice(t));
            } else {
                self.fft.rows_combine(&mut psi, true, &t, |w, t| w.iter_mut().zip(t).for_each(|(w, t)| *w *= t));
            }
            self.fft.columns(&mut psi, &self.propagators[p].1);
        }
        if !slices.is_empty() {
            self.fft.rows_inverse(&mut psi, nothing);
        }
        self.work = t;
        let psi =
            Array2::from_shape_vec(self.grid.gpts, psi).map_err(|e| Error::invalid("wave", e, "the grid's shape"))?;
        Ok(ExitWave { psi, grid: self.grid, energy: self.energy })
    }
}

/// Phases beyond which [`exp_i`] leaves the polynomial for `sin_cos` (the three-part
/// reduction by π/2 keeps its error below 2·10⁻⁷ up to here).
const FAST_PHASE_LIMIT: f32 = 4096.0;

/// `out[k] = exp(iσ·v[k])`: Cody–Waite reduction by π/2 and Cephes' single-precision
/// polynomials on [−π/4, π/4], without branches so that the loop vectorises (glibc's
/// `sincosf` is one call per value). Runs with a phase beyond [`FAST_PHASE_LIMIT`] or
/// not finite go through `sin_cos`.
fn exp_i(values: &[f32], sigma: f32, out: &mut [C32]) {
    // Non-short-circuit `|` so that the check vectorises too.
    let beyond = values.iter().fold(false, |b, &v| {
        let x = sigma * v;
        b | (x.abs() >= FAST_PHASE_LIMIT) | x.is_nan()
    });
    if beyond {
        out.iter_mut().zip(values).for_each(|(w, &v)| {
            let (s, c) = (sigma * v).sin_cos();
            *w = C32::new(c, s);
        });
        return;
    }
    // π/2 in three parts whose products with q (|q| < 2¹²) are exact in f32.
    const P1: f32 = 1.570_312_5;
    const P2: f32 = 4.837_513e-4;
    const P3: f32 = 7.549_79e-8;
    // Adding 1.5·2²³ rounds to the nearest integer n, which then sits in the low bits of
    // the sum (as n mod 4 in the last two: 1.5·2²³ is a multiple of 4 in units of the
    // last place), so the quadrant needs no conversion to an integer.
    const ROUND: f32 = 12_582_912.0;
    out.iter_mut().zip(values).for_each(|(w, &v)| {
        let x = sigma * v;
        let t = x * std::f32::consts::FRAC_2_PI + ROUND;
        let n = t.to_bits();
        let q = t - ROUND;
        let r = ((x - q * P1) - q * P2) - q * P3;
        let z = r * r;
        let sin = r + r * z * (-1.666_665_5e-1 + z * (8.332_161e-3 + z * -1.951_529_6e-4));
        let cos = 1.0 - 0.5 * z + z * z * (4.166_664_6e-2 + z * (-1.388_731_6e-3 + z * 2.443_315_7e-5));
        // Quadrant n: (sin, cos) of x are (s, c), (c, −s), (−s, −c), (−c, s).
        let odd = 0u32.wrapping_sub(n & 1);
        let (s, c) = (sin.to_bits(), cos.to_bits());
        let s_out = ((s & !odd) | (c & odd)) ^ ((n & 2) << 30);
        let c_out = ((c & !odd) | (s & odd)) ^ ((n.wrapping_add(1) & 2) << 30);
        *w = C32::new(f32::from_bits(c_out), f32::from_bits(s_out));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_phase_factor_is_within_2e7_of_sin_and_cos() {
        let sigma = 7.0e-4f32;
        let values: Vec<f32> = (0..200_001).map(|k| (k as f32 - 100_000.0) * 0.0571).collect();
        let mut out = vec![C32::new(0.0, 0.0); values.len()];
        exp_i(&values, sigma, &mut out);
        let mut worst = 0.0f64;
        for (w, &v) in out.iter().zip(&values) {
            let x = f64::from(sigma * v);
            worst = worst.max((f64::from(w.re) - x.cos()).abs()).max((f64::from(w.im) - x.sin()).abs());
        }
        assert!(worst < 2e-7, "{worst}");
        // Large phases and NaN take the exact path.
        let mut out = vec![C32::new(0.0, 0.0); 3];
        exp_i(&[1e8, 2.0, f32::NAN], 1.0, &mut out);
        assert_eq!(out[1], C32::new(2f32.cos(), 2f32.sin()));
        assert!(out[2].re.is_nan());
        // Phases across the quadrant boundaries and up to the limit.
        let values: Vec<f32> = (0..100_000).map(|k| (k as f32 - 50_000.0) * 0.08191).collect();
        let mut out = vec![C32::new(0.0, 0.0); values.len()];
        exp_i(&values, 1.0, &mut out);
        for (w, &v) in out.iter().zip(&values) {
            let x = f64::from(v);
            assert!((f64::from(w.re) - x.cos()).abs() < 6e-7 && (f64::from(w.im) - x.sin()).abs() < 6e-7, "{v}: {w}");
        }
    }
}
