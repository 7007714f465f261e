//! Affine warps of images: rotation, scale, shear and translation with bilinear sampling.
//!
//! # Conventions
//! Coordinates are `(x, y) = (col, row)` in pixels, with pixel centres at integer
//! positions and `y` pointing **down** (row 0 at the top, as the image is displayed).
//! An [`Affine2`] maps *input* coordinates to *output* coordinates; [`warp_affine`] inverts it
//! and samples the input at the pre-image of every output pixel centre. Rotation angles are
//! in radians, positive = counter-clockwise as seen on screen.
//!
//! ```
//! use ndarray::Array2;
//! use nanoml_core::warp::{warp_affine, Affine2, Padding};
//! let img = Array2::from_shape_fn((5, 5), |(r, c)| (r * 5 + c) as f32);
//! // A quarter turn about the image centre equals ndarray's rot90 (counter-clockwise).
//! let turn = Affine2::rotation(std::f64::consts::FRAC_PI_2).about(2.0, 2.0);
//! let out = warp_affine(img.view(), &turn, (5, 5), Padding::Zero)?;
//! assert!((out[[0, 0]] - img[[0, 4]]).abs() < 1e-4);
//! # Ok::<(), nanoml_core::Error>(())
//! ```

use crate::{Error, Result};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// A 2-D affine map `p' = A·p + t` on `(x, y) = (col, row)` coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine2 {
    /// Row-major `[[a, b, tx], [c, d, ty]]`: `x' = a·x + b·y + tx`, `y' = c·x + d·y + ty`.
    pub matrix: [[f64; 3]; 2],
}

impl Default for Affine2 {
    fn default() -> Self {
        Self::identity()
    }
}

impl Affine2 {
    /// The identity map.
    pub fn identity() -> Self {
        Affine2 { matrix: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]] }
    }

    /// Shift by `tx` columns and `ty` rows.
    pub fn translation(tx: f64, ty: f64) -> Self {
        Affine2 { matrix: [[1.0, 0.0, tx], [0.0, 1.0, ty]] }
    }

    /// Rotation about the origin by `angle` radians, counter-clockwise on screen.
    pub fn rotation(angle: f64) -> Self {
        let (s, c) = angle.sin_cos();
        Affine2 { matrix: [[c, s, 0.0], [-s, c, 0.0]] }
    }

    /// Scaling by `sx` along x (columns) and `sy` along y (rows).
    pub fn scale(sx: f64, sy: f64) -> Self {
        Affine2 { matrix: [[sx, 0.0, 0.0], [0.0, sy, 0.0]] }
    }

    /// Shear: `x' = x + kx·y`, `y' = y + ky·x`.
    pub fn shear(kx: f64, ky: f64) -> Self {
        Affine2 { matrix: [[1.0, kx, 0.0], [ky, 1.0, 0.0]] }
    }

    /// `other ∘ self`: first `self`, then `other`.
    pub fn then(self, other: Affine2) -> Self {
        let [[a, b, tx], [c, d, ty]] = self.matrix;
        let [[e, f, ux], [g, h, uy]] = other.matrix;
        Affine2 {
            matrix: [
                [e * a + f * c, e * b + f * d, e * tx + f * ty + ux],
                [g * a + h * c, g * b + h * d, g * tx + h * ty + uy],
            ],
        }
    }

    /// The same map performed about the point `(cx, cy)` instead of the origin.
    pub fn about(self, cx: f64, cy: f64) -> Self {
        Affine2::translation(-cx, -cy).then(self).then(Affine2::translation(cx, cy))
    }

    /// Applies the map to `(x, y)`.
    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let [[a, b, tx], [c, d, ty]] = self.matrix;
        (a * x + b * y + tx, c * x + d * y + ty)
    }

    /// The inverse map, or `None` when the linear part is singular (or not finite).
    pub fn inverse(&self) -> Option<Self> {
        let [[a, b, tx], [c, d, ty]] = self.matrix;
        let det = a * d - b * c;
        if !det.is_finite() || det.abs() < 1e-300 {
            return None;
        }
        let (ia, ib, ic, id) = (d / det, -b / det, -c / det, a / det);
        Some(Affine2 { matrix: [[ia, ib, -(ia * tx + ib * ty)], [ic, id, -(ic * tx + id * ty)]] })
    }
}

/// What the input looks like outside its borders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Zero outside the image.
    #[default]
    Zero,
    /// The image repeats periodically (simulation lattices, circular shifts).
    Periodic,
    /// The nearest edge pixel.
    Edge,
}

#[inline]
fn fetch(image: &ArrayView2<'_, f32>, r: isize, c: isize, padding: Padding) -> f32 {
    let (h, w) = (image.nrows() as isize, image.ncols() as isize);
    match padding {
        Padding::Zero => {
            if r < 0 || c < 0 || r >= h || c >= w {
                0.0
            } else {
                image[[r as usize, c as usize]]
            }
        }
        Padding::Periodic => image[[r.rem_euclid(h) as usize, c.rem_euclid(w) as usize]],
        Padding::Edge => image[[r.clamp(0, h - 1) as usize, c.clamp(0, w - 1) as usize]],
    }
}

/// Samples `image` at the real position `(x, y)` bilinearly.
#[inline]
pub fn sample_bilinear(image: ArrayView2<'_, f32>, x: f64, y: f64, padding: Padding) -> f32 {
    if !(x.is_finite() && y.is_finite()) {
        return 0.0;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
    // Far outside: avoid overflow of the integer cast; zero and edge padding are decided by
    // the nearest in-range position anyway.
    let lim = 4.0 * (image.nrows() + image.ncols()) as f64 + 4.0;
    let (c0, r0) = match padding {
        Padding::Periodic => {
            (x0.rem_euclid(image.ncols() as f64) as isize, y0.rem_euclid(image.nrows() as f64) as isize)
        }
        _ => (x0.clamp(-lim, lim) as isize, y0.clamp(-lim, lim) as isize),
    };
    let p00 = fetch(&image, r0, c0, padding);
    let p01 = fetch(&image, r0, c0 + 1, padding);
    let p10 = fetch(&image, r0 + 1, c0, padding);
    let p11 = fetch(&image, r0 + 1, c0 + 1, padding);
    let top = p00 + (p01 - p00) * fx;
    let bottom = p10 + (p11 - p10) * fx;
    top + (bottom - top) * fy
}

/// Warps `image` by the forward map `transform` into an output of `shape` `(rows, cols)`.
///
/// Output pixel `(r, c)` takes the bilinear sample of the input at
/// `transform.inverse().apply(c, r)`. Rows are computed in parallel; the result does not
/// depend on the number of threads.
///
/// # Errors
/// [`Error::EmptyInput`] for an empty image, [`Error::InvalidParameter`] for a zero-sized
/// `shape` or a singular `transform`.
pub fn warp_affine(
    image: ArrayView2<'_, f32>,
    transform: &Affine2,
    shape: (usize, usize),
    padding: Padding,
) -> Result<Array2<f32>> {
    if image.is_empty() {
        return Err(Error::EmptyInput { op: "warp_affine", name: "image" });
    }
    if shape.0 == 0 || shape.1 == 0 {
        return Err(Error::invalid("shape", format!("{shape:?}"), "both sides >= 1"));
    }
    let inv = transform.inverse().ok_or_else(|| {
        Error::invalid("transform", format!("{:?}", transform.matrix), "an invertible, finite affine map")
    })?;
    let mut out = vec![0.0f32; shape.0 * shape.1];
    out.par_chunks_mut(shape.1).enumerate().for_each(|(r, row)| {
        for (c, o) in row.iter_mut().enumerate() {
            let (x, y) = inv.apply(c as f64, r as f64);
            *o = sample_bilinear(image, x, y, padding);
        }
    });
    Array2::from_shape_vec(shape, out).map_err(|e| Error::format("array", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::f64::consts::FRAC_PI_2;

    fn random(r: usize, c: usize, seed: u64) -> Array2<f32> {
        let mut rng = crate::rng::Xoshiro256PlusPlus::seed_from_u64(seed);
        Array2::from_shape_fn((r, c), |_| rng.uniform_f32())
    }

    #[test]
    fn identity_is_exact() {
        let a = random(9, 7, 1);
        assert_eq!(warp_affine(a.view(), &Affine2::identity(), (9, 7), Padding::Zero).unwrap(), a);
    }

    #[test]
    fn integer_translation_with_periodic_padding_is_a_roll() {
        let a = random(6, 8, 2);
        let out = warp_affine(a.view(), &Affine2::translation(3.0, -2.0), (6, 8), Padding::Periodic).unwrap();
        for ((r, c), v) in out.indexed_iter() {
            assert_eq!(*v, a[[(r + 2) % 6, (c + 8 - 3) % 8]]);
        }
    }

    #[test]
    fn quarter_turns_match_rot90_for_even_and_odd_sizes() {
        for n in [4usize, 5] {
            let a = random(n, n, n as u64);
            let centre = (n as f64 - 1.0) / 2.0;
            let out = warp_affine(a.view(), &Affine2::rotation(FRAC_PI_2).about(centre, centre), (n, n), Padding::Zero)
                .unwrap();
            // Counter-clockwise quarter turn: out[r][c] = in[c][n-1-r].
            for ((r, c), v) in out.indexed_iter() {
                assert!((v - a[[c, n - 1 - r]]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn zero_padding_fills_outside_and_singular_maps_are_rejected() {
        let a = Array2::from_elem((4, 4), 1.0f32);
        let out = warp_affine(a.view(), &Affine2::translation(10.0, 0.0), (4, 4), Padding::Zero).unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
        let edge = warp_affine(a.view(), &Affine2::translation(10.0, 0.0), (4, 4), Padding::Edge).unwrap();
        assert!(edge.iter().all(|&v| v == 1.0));
        assert!(warp_affine(a.view(), &Affine2::scale(0.0, 1.0), (4, 4), Padding::Zero).is_err());
        assert!(warp_affine(a.view(), &Affine2::scale(f64::NAN, 1.0), (4, 4), Padding::Zero).is_err());
    }

    proptest! {
        #[test]
        fn composition_with_inverse_is_identity(angle in -3.2f64..3.2, sx in 0.2f64..5.0, sy in 0.2f64..5.0, kx in -1.0f64..1.0, tx in -10.0f64..10.0, ty in -10.0f64..10.0) {
            let t = Affine2::rotation(angle).then(Affine2::scale(sx, sy)).then(Affine2::shear(kx, 0.0)).then(Affine2::translation(tx, ty));
            let round = t.then(t.inverse().unwrap());
            for (x, y) in [(0.0, 0.0), (3.0, -7.0), (100.0, 50.0)] {
                let (u, v) = round.apply(x, y);
                prop_assert!((u - x).abs() < 1e-7 && (v - y).abs() < 1e-7);
            }
        }

        #[test]
        fn periodic_warp_of_constant_image_is_constant(angle in -3.2f64..3.2, s in 0.3f64..3.0) {
            let a = Array2::from_elem((7, 9), 2.5f32);
            let out = warp_affine(a.view(), &Affine2::rotation(angle).then(Affine2::scale(s, s)), (5, 6), Padding::Periodic).unwrap();
            prop_assert!(out.iter().all(|&v| (v - 2.5).abs() < 1e-5));
        }
    }
}
