//! The objective lens: the contrast transfer function with partial coherence, and the
//! image intensity of an exit wave (../shared/notes/hrtem.md §3.4–3.5).
//!
//! `χ(α, φ) = (2π/λ)·[½α²(C10 + C12 cos 2(φ − φ12)) + ¼α⁴ C30 + ⅙α⁶ C50]` with `α = λ|k|`
//! (small-angle, as abTEM and QSTEM), `φ = atan2(ky, kx)`; `CTF = exp(−iχ)·A(α)·E_t(α)`
//! with the temporal envelope `E_t = exp(−(½πΔα²/λ)²)` (Δ the focal spread, 1/e width),
//! the spatial envelope `E_s = exp(−(β/2)²·((∂χ/∂α)² + (∂χ/∂φ)²))` as abTEM writes it
//! (`∂χ/∂α = (2π/λ)[(C10 + C12 cos 2(φ−φ12))α + C30α³ + C50α⁵]`,
//! `∂χ/∂φ = −(2π/λ)·C12 sin 2(φ−φ12)·α`, β the angular spread) and an optional hard
//! objective aperture. Lengths in Å, angles in rad except the
//! aperture (mrad).
//!
//! Sign conventions: abTEM's `defocus` is `−C10` (positive = underfocus, the Scherzer
//! side for positive Cs); QSTEM's `defocus` is `C10`. [`Ctf::defocus`] follows abTEM;
//! [`Ctf::from_qstem_defocus`] converts.

use crate::fft::{Fft2, Kernel, Symmetry};
use crate::multislice::{C32, ExitWave};
use crate::physics::wavelength;
use crate::potential::{Grid, frequencies};
use crate::{Error, Result};
use ndarray::Array2;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Lens parameters (abTEM's names and sign of defocus).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Ctf {
    /// Defocus, Å, abTEM's sign: `C10 = −defocus`.
    pub defocus: f64,
    /// Two-fold astigmatism C12, Å.
    pub astigmatism: f64,
    /// Its angle φ12, rad.
    pub astigmatism_angle: f64,
    /// Spherical aberration C30, Å.
    pub cs: f64,
    /// Fifth-order spherical aberration C50, Å.
    pub c50: f64,
    /// Focal spread Δ (1/e width), Å; 0 = none.
    pub focal_spread: f64,
    /// Angular spread β (partial spatial coherence), mrad; 0 = none (Ragone, Madsen).
    pub angular_spread: f64,
    /// Objective aperture semi-angle, mrad; `None` = no aperture (Ragone, Madsen).
    pub semiangle_cutoff: Option<f64>,
}

impl Ctf {
    /// A lens given QSTEM's defocus (`C10`) and the other parameters as `self`.
    pub fn from_qstem_defocus(self, c10: f64) -> Ctf {
        Ctf { defocus: -c10, ..self }
    }

    /// Scherzer defocus (abTEM sign) for a spherical aberration `cs` Å at `energy` eV:
    /// `sign(Cs)·√(1.5|Cs|λ)`.
    ///
    /// # Errors
    /// A bad energy.
    pub fn scherzer_defocus(cs: f64, energy: f64) -> Result<f64> {
        Ok(cs.signum() * (1.5 * cs.abs() * wavelength(energy)?).sqrt())
    }

    fn check(&self) -> Result<()> {
        for (name, v) in [
            ("defocus", self.defocus),
            ("astigmatism", self.astigmatism),
            ("astigmatism_angle", self.astigmatism_angle),
            ("cs", self.cs),
            ("c50", self.c50),
        ] {
            if !v.is_finite() {
                return Err(Error::invalid(name, v, "a finite value"));
            }
        }
        if !(self.focal_spread.is_finite() && self.focal_spread >= 0.0) {
            return Err(Error::invalid("focal_spread", self.focal_spread, "a finite width ≥ 0 Å"));
        }
        if !(self.angular_spread.is_finite() && self.angular_spread >= 0.0) {
            return Err(Error::invalid("angular_spread", self.angular_spread, "a finite angle ≥ 0 mrad"));
        }
        if let Some(c) = self.semiangle_cutoff
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::invalid("semiangle_cutoff", c, "a positive angle in mrad"));
        }
        Ok(())
    }

    /// The phase error χ(α, φ), rad.
    pub fn chi(&self, alpha: f64, phi: f64, lambda: f64) -> f64 {
        let c10 = -self.defocus;
        let a2 = alpha * alpha;
        2.0 * PI / lambda
            * (0.5 * a2 * (c10 + self.astigmatism * (2.0 * (phi - self.astigmatism_angle)).cos())
                + 0.25 * a2 * a2 * self.cs
                + a2 * a2 * a2 * self.c50 / 6.0)
    }

    /// The transfer function on `grid` at `energy` eV (FFT order).
    ///
    /// # Errors
    /// Non-finite parameters, a negative focal spread, a non-positive aperture or one
    /// beyond the grid's antialias band limit, a bad grid or energy.
    pub fn transfer(&self, grid: &Grid, energy: f64) -> Result<Array2<C32>> {
        let t = self.transfer_fn(grid, energy)?;
        Ok(Array2::from_shape_fn(grid.gpts, |(i, j)| t(i, j)))
    }

    /// The transfer function as a function of the frequency indices `(i, j)`. The
    /// angular terms come from `kx`, `ky` directly (`cos 2φ = (kx² − ky²)/k²`,
    /// `sin 2φ = 2kxky/k²`): one `sin_cos` and one `exp` per pixel.
    fn transfer_fn(&self, grid: &Grid, energy: f64) -> Result<impl Fn(usize, usize) -> C32 + Sync + use<>> {
        self.check()?;
        grid.check()?;
        let lambda = wavelength(energy)?;
        // The antialias band limit of the multislice, as an angle.
        let band_limit = lambda * (2.0 / 3.0) / (2.0 * grid.sampling.0.max(grid.sampling.1)) * 1e3;
        if let Some(c) = self.semiangle_cutoff
            && c > band_limit
        {
            return Err(Error::invalid(
                "semiangle_cutoff",
                c,
                format!("at most the grid's band limit of {band_limit:.1} mrad (finer sampling allows more)"),
            ));
        }
        let (nx, ny) = grid.gpts;
        let (kx, ky) = (frequencies(nx, grid.sampling.0), frequencies(ny, grid.sampling.1));
        let cutoff2 = self.semiangle_cutoff.map(|c| (c / 1e3 / lambda).powi(2));
        let (c2, s2) = ((2.0 * self.astigmatism_angle).cos(), (2.0 * self.astigmatism_angle).sin());
        let c10 = -self.defocus;
        let scale = 2.0 * PI / lambda;
        let envelope = 0.5 * PI / lambda * self.focal_spread;
        let half_beta2 = (self.angular_spread / 1e3 / 2.0).powi(2);
        let lens = *self;
        Ok(move |i: usize, j: usize| {
            let (kx, ky) = (kx[i], ky[j]);
            let k2 = kx * kx + ky * ky;
            if cutoff2.is_some_and(|c| k2 >= c) {
                return C32::new(0.0, 0.0);
            }
            let a2 = lambda * lambda * k2;
            // cos 2(φ − φ12) and sin 2(φ − φ12) from cos 2φ and sin 2φ.
            let (astig, astig_sin) = if k2 > 0.0 {
                let (cos2, sin2) = ((kx * kx - ky * ky) / k2, 2.0 * kx * ky / k2);
                (cos2 * c2 + sin2 * s2, sin2 * c2 - cos2 * s2)
            } else {
                (1.0, 0.0)
            };
            let chi = scale
                * (0.5 * a2 * (c10 + lens.astigmatism * astig)
                    + 0.25 * a2 * a2 * lens.cs
                    + a2 * a2 * a2 * lens.c50 / 6.0);
            let mut e = (-(envelope * a2).powi(2)).exp();
            if half_beta2 > 0.0 {
                let alpha = a2.sqrt();
                let dk = scale
                    * ((lens.astigmatism * astig + c10) * alpha + lens.cs * alpha * a2 + lens.c50 * alpha * a2 * a2);
                let dphi = -scale * lens.astigmatism * astig_sin * alpha;
                e *= (-half_beta2 * (dk * dk + dphi * dphi)).exp();
            }
            let (s, c) = chi.sin_cos();
            C32::new((c * e) as f32, (-s * e) as f32)
        })
    }

    /// The image intensity `|IFFT(FFT(ψ)·CTF)|²` of an exit wave.
    ///
    /// # Errors
    /// As [`Ctf::transfer`].
    pub fn image(&self, exit: &ExitWave) -> Result<Array2<f32>> {
        let (nx, ny) = exit.grid.gpts;
        if exit.psi.dim() != (nx, ny) {
            return Err(Error::invalid(
                "exit wave",
                format!("shape {:?}", exit.psi.dim()),
                format!("its grid {:?}", (nx, ny)),
            ));
        }
        let transfer = Kernel::new(nx, ny, Symmetry::Point, self.transfer_fn(&exit.grid, exit.energy)?);
        let psi = exit.psi.as_standard_layout();
        let values = psi.as_slice().unwrap_or_default();
        let mut wave = vec![C32::new(0.0, 0.0); nx * ny];
        let load = |offset: usize, rows: &mut [C32]| rows.copy_from_slice(&values[offset..offset + rows.len()]);
        let intensity = |_: usize, rows: &mut [C32]| rows.iter_mut().for_each(|v| *v = C32::new(v.norm_sqr(), 0.0));
        Fft2::cached(nx, ny).filter(&mut wave, &transfer, load, intensity);
        Ok(Array2::from_shape_vec((nx, ny), wave.par_iter().map(|v| v.re).collect())
            .unwrap_or_else(|_| Array2::zeros((nx, ny))))
    }
}
