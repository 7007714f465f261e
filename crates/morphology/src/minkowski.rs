//! The three Minkowski functionals of a 2-D binary image: area, boundary length and Euler
//! characteristic.
//!
//! # Conventions
//! Estimators follow Legland, Kiêu & Devaux (2007, *Image Anal. Stereol.* 26:83), the
//! "local configuration" method on 2×2 windows:
//!
//! * pixels are points of a rectangular lattice with spacing `dy` between rows and `dx`
//!   between columns, each representing the area `a = dx·dy`;
//! * **area** `A = a·#pixels`;
//! * **boundary length** by the Crofton formula over four directions,
//!   `L = π·Σ_k c_k·(a/δ_k)·N_k`, where `N_k` counts the chords of the foreground along
//!   direction `k` (horizontal, vertical, ↘, ↙) with lattice steps
//!   `δ = (dx, dy, √(dx²+dy²), √(dx²+dy²))`, and `c_k` are the fractions of the half-circle
//!   of directions nearest to each lattice direction: `c = (α, π/2 − α, π/4, π/4)/π` with
//!   `α = atan2(dy, dx)` (all ¼ for square pixels, where `L` equals
//!   [`perimeter_crofton`](crate::perimeter_crofton) with four directions);
//! * **Euler characteristic** `χ` with the chosen connectivity ([`euler_number`](crate::euler_number())).
//!
//! In the padded variant the image border is the border of the structure (zero padding:
//! objects touching the edge are closed there). In the periodic variant the image is a
//! torus.
//!
//! The normalisations used in the literature differ; [`MinkowskiFunctionals`] converts:
//!
//! | convention | area | boundary | connectivity |
//! |---|---|---|---|
//! | raw ([`MinkowskiFunctionals`] fields) | A | L | χ |
//! | intrinsic volumes ([`intrinsic_volumes`](MinkowskiFunctionals::intrinsic_volumes)) | V₂ = A | V₁ = L/2 | V₀ = χ |
//! | Mecke, physics ([`mecke`](MinkowskiFunctionals::mecke)) | W₀ = A | W₁ = L/2 | W₂ = πχ |
//! | quantimpy ([`quantimpy`](MinkowskiFunctionals::quantimpy)) | M₀ = A | M₁ = L/(2π) | M₂ = χ/π |

use crate::euler::euler_from_quads;
use crate::label::Connectivity;
use crate::quad::QuadHistogram;
use crate::{Error, Result};
use ndarray::{ArrayBase, Data, Ix2};
use std::f64::consts::PI;

/// Pixel spacing, in whatever length unit the caller uses (nm, Å, px).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spacing {
    /// Distance between rows.
    pub dy: f64,
    /// Distance between columns.
    pub dx: f64,
}

impl Default for Spacing {
    /// Unit spacing: lengths in pixels.
    fn default() -> Self {
        Spacing { dy: 1.0, dx: 1.0 }
    }
}

impl Spacing {
    fn validate(&self) -> Result<()> {
        for (name, v) in [("spacing.dy", self.dy), ("spacing.dx", self.dx)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(name, v, "a finite length > 0"));
            }
        }
        Ok(())
    }
}

/// Area, boundary length and Euler characteristic of a binary image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinkowskiFunctionals {
    /// Area `A` (spacing units squared).
    pub area: f64,
    /// Boundary length `L` (spacing units).
    pub perimeter: f64,
    /// Euler characteristic `χ` (dimensionless).
    pub euler: i64,
}

impl MinkowskiFunctionals {
    /// Intrinsic volumes `[V₀, V₁, V₂] = [χ, L/2, A]`.
    pub fn intrinsic_volumes(&self) -> [f64; 3] {
        [self.euler as f64, self.perimeter / 2.0, self.area]
    }

    /// Mecke's normalisation `[W₀, W₁, W₂] = [A, L/2, πχ]`.
    pub fn mecke(&self) -> [f64; 3] {
        [self.area, self.perimeter / 2.0, PI * self.euler as f64]
    }

    /// quantimpy's normalisation `[M₀, M₁, M₂] = [A, L/(2π), χ/π]`.
    pub fn quantimpy(&self) -> [f64; 3] {
        [self.area, self.perimeter / (2.0 * PI), self.euler as f64 / PI]
    }

    /// Densities per unit of `window_area`: `[A/|W|, L/|W|, χ/|W|]`.
    pub fn densities(&self, window_area: f64) -> [f64; 3] {
        [self.area / window_area, self.perimeter / window_area, self.euler as f64 / window_area]
    }
}

fn functionals(h: &QuadHistogram, euler: i64, spacing: Spacing) -> MinkowskiFunctionals {
    let Spacing { dy, dx } = spacing;
    let a = dx * dy;
    let alpha = dy.atan2(dx);
    let weights = [alpha / PI, (PI / 2.0 - alpha) / PI, 0.25, 0.25];
    let diag = dx.hypot(dy);
    let steps = [dx, dy, diag, diag];
    let chords = h.chords();
    let perimeter = PI * (0..4).map(|k| weights[k] * (a / steps[k]) * chords[k] as f64).sum::<f64>();
    MinkowskiFunctionals { area: a * h.pixels() as f64, perimeter, euler }
}

/// Minkowski functionals of the zero-padded image (see the [module docs](self)).
///
/// ```
/// use ndarray::Array2;
/// use nanoml_morphology::{minkowski_functionals, Connectivity, Spacing};
/// let mut disk = Array2::from_elem((101, 101), false);
/// for ((r, c), v) in disk.indexed_iter_mut() {
///     *v = (r as f64 - 50.0).hypot(c as f64 - 50.0) <= 40.0;
/// }
/// let mf = minkowski_functionals(&disk, Connectivity::Eight, Spacing::default())?;
/// assert_eq!(mf.euler, 1);
/// assert!((mf.perimeter - 2.0 * std::f64::consts::PI * 40.0).abs() < 2.0);
/// # Ok::<(), nanoml_morphology::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidParameter`] for a spacing that is not finite and positive.
pub fn minkowski_functionals<S: Data<Elem = bool>>(
    mask: &ArrayBase<S, Ix2>,
    connectivity: Connectivity,
    spacing: Spacing,
) -> Result<MinkowskiFunctionals> {
    spacing.validate()?;
    // One histogram of 2×2 configurations gives all three functionals.
    let h = QuadHistogram::padded(mask);
    Ok(functionals(&h, euler_from_quads(&h, connectivity), spacing))
}

/// Minkowski functionals of the image on a torus (periodic simulation lattices).
///
/// # Errors
/// As [`minkowski_functionals`].
pub fn minkowski_functionals_periodic<S: Data<Elem = bool>>(
    mask: &ArrayBase<S, Ix2>,
    connectivity: Connectivity,
    spacing: Spacing,
) -> Result<MinkowskiFunctionals> {
    spacing.validate()?;
    let h = QuadHistogram::periodic(mask);
    Ok(functionals(&h, euler_from_quads(&h, connectivity), spacing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CroftonDirections, perimeter_crofton};
    use ndarray::{Array2, array};

    #[test]
    fn unit_spacing_perimeter_is_crofton_four() {
        let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(2);
        let m = Array2::from_shape_fn((20, 31), |_| rng.bernoulli(0.3));
        let mf = minkowski_functionals(&m, Connectivity::Eight, Spacing::default()).unwrap();
        assert!((mf.perimeter - perimeter_crofton(&m, CroftonDirections::Four)).abs() < 1e-9);
        assert_eq!(mf.area, m.iter().filter(|&&v| v).count() as f64);
    }

    #[test]
    fn anisotropic_spacing_scales_an_axis_aligned_rectangle() {
        // A 10 x 20 pixel block with dx = 2, dy = 0.5 is a 40 x 5 rectangle: chords only
        // horizontal and vertical, so L = π(c1·dy·N1 + c2·dx·N2) with N1 = 10 rows, N2 = 20.
        let mut m = Array2::from_elem((14, 24), false);
        m.slice_mut(ndarray::s![2..12, 2..22]).fill(true);
        let s = Spacing { dy: 0.5, dx: 2.0 };
        let mf = minkowski_functionals(&m, Connectivity::Eight, s).unwrap();
        assert!((mf.area - 200.0).abs() < 1e-12);
        let alpha = 0.5f64.atan2(2.0);
        let diag = 0.5 * 2.0 / 2.0f64.hypot(0.5) * 0.25;
        let expected =
            PI * (alpha / PI * 0.5 * 10.0 + (0.5 - alpha / PI) * 2.0 * 20.0 + 2.0 * diag * (10.0 + 20.0 - 1.0));
        assert!((mf.perimeter - expected).abs() < 1e-9, "{} vs {expected}", mf.perimeter);
    }

    #[test]
    fn conversions_and_bad_spacing() {
        let mf = minkowski_functionals(&array![[true]], Connectivity::Four, Spacing::default()).unwrap();
        assert_eq!(mf.mecke()[2], PI);
        assert_eq!(mf.intrinsic_volumes()[0], 1.0);
        assert!((mf.quantimpy()[2] - 1.0 / PI).abs() < 1e-15);
        let e = minkowski_functionals(&array![[true]], Connectivity::Four, Spacing { dy: 0.0, dx: 1.0 }).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { name: "spacing.dy", .. }));
        assert!(
            minkowski_functionals_periodic(&array![[true]], Connectivity::Four, Spacing { dy: 1.0, dx: f64::NAN })
                .is_err()
        );
    }
}
