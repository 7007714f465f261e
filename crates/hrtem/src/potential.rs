//! Projected atomic potentials: the Lobato–Van Dyck and Kirkland parametrisations of the
//! electron scattering factors, and slices of projected potential on a grid, as abTEM's
//! "infinite" projection builds them (each atom's whole projected potential goes into
//! the slice that holds its centre; ../shared/notes/hrtem.md §3.2–3.3).
//!
//! Units: potentials in V·Å (projected), positions and sampling in Å, spatial
//! frequencies in Å⁻¹. Grids are indexed `[i, j]` at `x = i·Δx`, `y = j·Δy`.

use crate::atoms::Atoms;
use crate::fft::{Fft2, Kernel, Symmetry, nothing};
use crate::parametrization_data::COEFFICIENTS;
use crate::physics::KAPPA;
use crate::{Error, Result};
use ndarray::Array2;
use num_complex::Complex;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Which scattering-factor parametrisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Parametrization {
    /// Lobato & Van Dyck (2014), abTEM's default.
    #[default]
    Lobato,
    /// Kirkland (2010).
    Kirkland,
}

/// The scaled coefficients of one element: potential-unit amplitudes and ranges.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatteringFactor {
    parametrization: Parametrization,
    scaled: Vec<[f64; 4]>,
}

impl ScatteringFactor {
    /// The scattering factor of element `z` (atomic number).
    ///
    /// # Errors
    /// An element without coefficients here (the presets of [`crate::FCC_METALS`]).
    pub fn new(z: u8, parametrization: Parametrization) -> Result<Self> {
        let symbol = crate::FCC_METALS.iter().find(|e| e.z == z).map(|e| e.symbol);
        let row = symbol.and_then(|s| COEFFICIENTS.iter().find(|(sym, ..)| *sym == s)).ok_or_else(|| {
            let known: Vec<u8> = crate::FCC_METALS.iter().map(|e| e.z).collect();
            Error::invalid("element", z, format!("an atomic number with coefficients here, one of {known:?}"))
        })?;
        let scaled = match parametrization {
            Parametrization::Lobato => {
                let [a, b] = row.1;
                (0..5).map(|i| [PI * PI * a[i] / b[i].powf(1.5) / KAPPA, 2.0 * PI / b[i].sqrt(), 0.0, 0.0]).collect()
            }
            Parametrization::Kirkland => {
                let [a, b, c, d] = row.2;
                (0..3)
                    .map(|i| {
                        [
                            PI * a[i] / KAPPA,
                            2.0 * PI * b[i].sqrt(),
                            PI.powf(1.5) * c[i] / d[i].powf(1.5) / KAPPA,
                            PI * PI / d[i],
                        ]
                    })
                    .collect()
            }
        };
        Ok(ScatteringFactor { parametrization, scaled })
    }

    /// The 2-D Fourier transform of the projected potential at `k² ` (Å⁻²), V·Å³.
    pub fn projected(&self, k2: f64) -> f64 {
        match self.parametrization {
            Parametrization::Lobato => {
                let q = 4.0 * PI * PI * k2;
                8.0 * PI
                    * self
                        .scaled
                        .iter()
                        .map(|&[a, b, ..]| a / b / (q + b * b) + a * b / (q + b * b).powi(2))
                        .sum::<f64>()
            }
            Parametrization::Kirkland => self
                .scaled
                .iter()
                .map(|&[a, b, c, d]| {
                    4.0 * PI * a / (4.0 * PI * PI * k2 + b * b)
                        + (PI / d).sqrt() * c * PI / d * (-PI * PI * k2 / d).exp()
                })
                .sum(),
        }
    }
}

/// Spatial frequencies of an `n`-point grid of spacing `d` (numpy's `fftfreq`), Å⁻¹.
pub fn frequencies(n: usize, d: f64) -> Vec<f64> {
    (0..n).map(|i| if i < n.div_ceil(2) { i as f64 } else { i as f64 - n as f64 } / (n as f64 * d)).collect()
}

/// A simulation grid: points and sampling (Å per pixel) across the beam.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    /// Points along x and y.
    pub gpts: (usize, usize),
    /// Pixel size along x and y, Å.
    pub sampling: (f64, f64),
}

impl Grid {
    /// A grid covering a box of `extent` Å with pixels of about `sampling` Å (rounded up
    /// to whole points, sampling then adjusted to fit, as abTEM does).
    ///
    /// # Errors
    /// Non-positive or non-finite extent or sampling.
    pub fn covering(extent: (f64, f64), sampling: f64) -> Result<Grid> {
        for v in [extent.0, extent.1, sampling] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid("grid", v, "positive, finite extent and sampling in Å"));
            }
        }
        let n = |e: f64| (e / sampling).ceil().max(1.0) as usize;
        let gpts = (n(extent.0), n(extent.1));
        Ok(Grid { gpts, sampling: (extent.0 / gpts.0 as f64, extent.1 / gpts.1 as f64) })
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.gpts.0 == 0 || self.gpts.1 == 0 {
            return Err(Error::invalid("grid points", format!("{:?}", self.gpts), "at least one each way"));
        }
        for v in [self.sampling.0, self.sampling.1] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid("sampling", v, "a positive pixel size in Å"));
            }
        }
        Ok(())
    }

    /// `k²` on the grid (Å⁻²), `[i, j]` with the frequencies in numpy's FFT order.
    pub fn k2(&self) -> Array2<f64> {
        let (kx, ky) = (frequencies(self.gpts.0, self.sampling.0), frequencies(self.gpts.1, self.sampling.1));
        Array2::from_shape_fn(self.gpts, |(i, j)| kx[i] * kx[i] + ky[j] * ky[j])
    }
}

/// Slices of projected potential (V·Å) of atoms in a box: the box's z extent `c` cut
/// into `n = ⌈c/thickness⌉` equal slices of `c/n` Å (as abTEM does), each atom in the
/// slice holding its z. Returns the slices and their thicknesses.
///
/// # Errors
/// No atoms, no box (`cell` all zero), atoms outside the box, a bad grid or thickness,
/// or an element without coefficients.
pub fn potential_slices(
    atoms: &Atoms,
    grid: &Grid,
    thickness: f64,
    parametrization: Parametrization,
) -> Result<(Vec<Array2<f32>>, Vec<f64>)> {
    grid.check()?;
    if atoms.is_empty() {
        return Err(Error::invalid("atoms", "none", "at least one atom"));
    }
    if !(thickness.is_finite() && thickness > 0.0) {
        return Err(Error::invalid("slice thickness", thickness, "a positive thickness in Å"));
    }
    let cell = atoms.cell;
    if cell.iter().any(|&c| !(c.is_finite() && c > 0.0)) {
        return Err(Error::invalid("cell", format!("{cell:?}"), "a box with positive edges (Atoms::with_vacuum)"));
    }
    if let Some(p) = atoms.positions.iter().find(|p| (0..3).any(|i| !(p[i] >= 0.0 && p[i] <= cell[i]))) {
        return Err(Error::invalid("atom position", format!("{p:?}"), format!("inside the box {cell:?} Å")));
    }
    let n_slices = ((cell[2] / thickness).ceil() as usize).max(1);
    let dz = cell[2] / n_slices as f64;
    let thicknesses = vec![dz; n_slices];
    let (nx, ny) = grid.gpts;
    let (dx, dy) = grid.sampling;
    let (kx, ky) = (frequencies(nx, dx), frequencies(ny, dy));
    // abTEM's pixel correction: sin(q)/q·ΔxΔy with q = √((kxΔx)² + (kyΔy)²).
    let sinc = |i: usize, j: usize| {
        let q = ((kx[i] * dx).powi(2) + (ky[j] * dy).powi(2)).sqrt();
        if q == 0.0 { dx * dy } else { q.sin() / q * dx * dy }
    };
    let mut species: Vec<u8> = atoms.numbers.clone();
    species.sort_unstable();
    species.dedup();
    // Per element, the filter f_proj(k)/sinc(k).
    let factors: Vec<(u8, Kernel<f32>)> = species
        .iter()
        .map(|&z| {
            let f = ScatteringFactor::new(z, parametrization)?;
            let kernel = Kernel::new(nx, ny, Symmetry::Axes, |i, j| {
                (f.projected(kx[i] * kx[i] + ky[j] * ky[j]) / sinc(i, j)) as f32
            });
            Ok((z, kernel))
        })
        .collect::<Result<_>>()?;
    let mut deltas = vec![Complex::<f32>::new(0.0, 0.0); nx * ny];
    let fft = Fft2::cached(nx, ny);
    let slice_of = |z: f64| ((z / dz).floor() as usize).min(n_slices - 1);
    let mut nonzero = vec![false; nx];
    let mut slices = vec![Array2::<f32>::zeros((nx, ny)); n_slices];
    for (z, factor) in &factors {
        // The slices holding atoms of this element, two at a time: one as the real and one
        // as the imaginary part of a single FFT (the factor is real and even, so the
        // parts stay apart).
        let mut members: Vec<Vec<[f64; 3]>> = vec![Vec::new(); n_slices];
        for (p, _) in atoms.positions.iter().zip(&atoms.numbers).filter(|(_, n)| *n == z) {
            members[slice_of(p[2])].push(*p);
        }
        let occupied: Vec<usize> = (0..n_slices).filter(|&s| !members[s].is_empty()).collect();
        for pair in occupied.chunks(2) {
            deltas.par_iter_mut().for_each(|d| *d = Complex::new(0.0, 0.0));
            nonzero.iter_mut().for_each(|z| *z = false);
            for (part, &s) in pair.iter().enumerate() {
                for p in &members[s] {
                    // Bilinear deltas at the position in pixels, wrapped periodically.
                    let (u, v) = (p[0] / dx, p[1] / dy);
                    let (i0, j0) = (u.floor(), v.floor());
                    let (fx, fy) = (u - i0, v - j0);
                    let (i0, j0) = (i0 as i64, j0 as i64);
                    for (di, dj, w) in [
                        (0, 0, (1.0 - fx) * (1.0 - fy)),
                        (1, 0, fx * (1.0 - fy)),
                        (0, 1, (1.0 - fx) * fy),
                        (1, 1, fx * fy),
                    ] {
                        let (i, j) =
                            ((i0 + di).rem_euclid(nx as i64) as usize, (j0 + dj).rem_euclid(ny as i64) as usize);
                        nonzero[i] = true;
                        if part == 0 {
                            deltas[i * ny + j].re += w as f32;
                        } else {
                            deltas[i * ny + j].im += w as f32;
                        }
                    }
                }
            }
            // Few rows hold atoms: the others stay zero through the row transforms.
            fft.rows_forward_sparse(&mut deltas, &nonzero);
            fft.columns(&mut deltas, factor);
            fft.rows_inverse(&mut deltas, nothing);
            for (part, &s) in pair.iter().enumerate() {
                let Some(slice) = slices[s].as_slice_mut() else { continue };
                slice
                    .par_iter_mut()
                    .zip(deltas.par_iter())
                    .for_each(|(t, d)| *t += if part == 0 { d.re } else { d.im });
            }
        }
    }
    Ok((slices, thicknesses))
}
