//! Levelling and row alignment with Gwyddion's conventions (2.62; its `libprocess` and
//! the "Level", "Polynomial background" and "Align rows" modules, as
//! ../shared/notes/spm-preprocessing.md §0–1 documents them).
//!
//! Images are `[row, col]` with row 0 at the top; `j` is the column (fast scan axis) and
//! `i` the row, both in pixels.
//!
//! Parity: [`fit_plane`] and [`fit_poly`] equal libgwyprocess 2.62 to 1e-12 relative on
//! the twelve test scans (`tests/gwyddion_level.rs`). Row alignment is in
//! [`crate::align`].

use crate::lsq::solve_spd;
use crate::{Error, Result};
use ndarray::{Array2, ArrayBase, Data, Ix2};
use rayon::prelude::*;

/// A plane `z = a + bx·j + by·i` (pixel indices).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plane {
    /// Value at pixel (0, 0).
    pub a: f64,
    /// Slope along a row, per pixel.
    pub bx: f64,
    /// Slope down the columns, per pixel.
    pub by: f64,
}

pub(crate) fn check_finite<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>) -> Result<()> {
    if image.is_empty() {
        return Err(Error::invalid("image", "an empty image", "at least one pixel"));
    }
    ensure_finite(image)
}

/// An error naming the first non-finite pixel, if there is one.
pub(crate) fn ensure_finite<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>) -> Result<()> {
    // Fast path on contiguous data: the threshold module's vectorised range pass fails
    // only on NaN or ±inf; only then look for the pixel to name.
    if let Some(v) = image.as_slice_memory_order()
        && (v.is_empty() || crate::threshold::range_of(v).is_ok())
    {
        return Ok(());
    }
    match image.iter().find(|v| !v.is_finite()) {
        Some(bad) => Err(Error::invalid("image", format!("a pixel of {bad}"), "finite pixels")),
        None => Ok(()),
    }
}

/// Averages of the indices `0..len` and of their squares: `x̄ = (n − 1)/2` and
/// `x²̄ = (2n − 1)(n − 1)/6` (Gwyddion's closed-form line and plane fits use them).
pub(crate) fn index_moments(len: usize) -> (f64, f64) {
    let n = len as f64;
    ((n - 1.0) / 2.0, (2.0 * n - 1.0) * (n - 1.0) / 6.0)
}

/// Least-squares plane through all pixels (`gwy_data_field_fit_plane`: closed form with
/// the averages `x̄ = (n − 1)/2`, `x²̄ = (2n − 1)(n − 1)/6`).
///
/// # Errors
/// Empty or non-finite images.
pub fn fit_plane<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>) -> Result<Plane> {
    check_finite(image)?;
    let (rows, cols) = image.dim();
    let n = (rows * cols) as f64;
    // Row sums Σ z and Σ z·j in parallel, then Σ z·i from the row sums.
    let view = image.view();
    let per_row: Vec<(f64, f64)> = (0..rows)
        .into_par_iter()
        .map(|i| view.row(i).iter().enumerate().fold((0.0, 0.0), |(s, sj), (j, &z)| (s + z, sj + z * j as f64)))
        .collect();
    let (mut sum, mut sum_j, mut sum_i) = (0.0, 0.0, 0.0);
    for (i, &(s, sj)) in per_row.iter().enumerate() {
        sum += s;
        sum_j += sj;
        sum_i += s * i as f64;
    }
    let (mean, mean_j, mean_i) = (sum / n, sum_j / n, sum_i / n);
    let ((xb, x2b), (yb, y2b)) = (index_moments(cols), index_moments(rows));
    let bx = if cols > 1 { (mean_j - mean * xb) / (x2b - xb * xb) } else { 0.0 };
    let by = if rows > 1 { (mean_i - mean * yb) / (y2b - yb * yb) } else { 0.0 };
    Ok(Plane { a: mean - bx * xb - by * yb, bx, by })
}

/// Subtracts `plane` (all of it: `z −= a + bx·j + by·i`).
pub fn subtract_plane<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>, plane: Plane) -> Array2<f64> {
    let mut out = image.as_standard_layout().into_owned();
    let cols = out.ncols();
    if let Some(flat) = out.as_slice_mut()
        && cols > 0
    {
        flat.par_chunks_mut(cols).enumerate().for_each(|(i, row)| {
            let base = plane.a + plane.by * i as f64;
            row.iter_mut().enumerate().for_each(|(j, z)| *z -= base + plane.bx * j as f64);
        });
    }
    out
}

/// Gwyddion's "Plane level" module: fits the plane and subtracts its tilt about the image
/// centre, `z −= c + bx·j + by·i` with `c = −(bx·cols + by·rows)/2` (so the mean moves
/// by `(bx + by)/2`, as in Gwyddion).
///
/// # Errors
/// As [`fit_plane`].
pub fn level_plane<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>) -> Result<Array2<f64>> {
    let p = fit_plane(image)?;
    let (rows, cols) = image.dim();
    let c = -0.5 * (p.bx * cols as f64 + p.by * rows as f64);
    Ok(subtract_plane(image, Plane { a: c, ..p }))
}

/// The terms of a two-dimensional polynomial background.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolyTerms {
    /// `x^p y^q` for `p ≤ col_degree`, `q ≤ row_degree` ("independent degrees").
    Independent {
        /// Degree in x (along rows).
        col_degree: usize,
        /// Degree in y (down columns).
        row_degree: usize,
    },
    /// `x^p y^q` for `p + q ≤ max_degree` ("limited total degree").
    Limited {
        /// Largest total degree.
        max_degree: usize,
    },
}

impl PolyTerms {
    /// The powers `(p, q)` in Gwyddion's order (x power outer, y power inner).
    pub fn powers(self) -> Vec<(usize, usize)> {
        match self {
            PolyTerms::Independent { col_degree, row_degree } => {
                (0..=col_degree).flat_map(|p| (0..=row_degree).map(move |q| (p, q))).collect()
            }
            PolyTerms::Limited { max_degree } => {
                (0..=max_degree).flat_map(|p| (0..=max_degree - p).map(move |q| (p, q))).collect()
            }
        }
    }
}

/// Coordinates normalised to [−1, 1] along an axis of `len` pixels.
fn normalised(len: usize) -> Vec<f64> {
    (0..len).map(|k| 2.0 * k as f64 / (len as f64 - 1.0) - 1.0).collect()
}

/// Least-squares polynomial background (`gwy_data_field_fit_poly`): coefficients of
/// `x^p y^q` for the powers of `terms`, with `x` and `y` the column and row normalised to
/// [−1, 1]; all zero when the normal equations are singular.
///
/// # Errors
/// Non-finite images, or images with fewer than two rows or columns (the normalised
/// coordinates are undefined), or more terms than pixels.
pub fn fit_poly<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>, terms: PolyTerms) -> Result<Vec<f64>> {
    check_finite(image)?;
    let (rows, cols) = image.dim();
    if rows < 2 || cols < 2 {
        return Err(Error::invalid(
            "image",
            format!("{rows}×{cols}"),
            "at least 2×2 pixels for a polynomial background",
        ));
    }
    let powers = terms.powers();
    let k = powers.len();
    if k > rows * cols {
        return Err(Error::invalid(
            "terms",
            format!("{k} terms"),
            format!("at most {} (the number of pixels)", rows * cols),
        ));
    }
    let (xs, ys) = (normalised(cols), normalised(rows));
    // The normal equations separate: with x^p·y^q terms, Σ x^(p+p') y^(q+q') is the
    // product of a column sum and a row sum, and Σ z·x^p·y^q = Σ_i y_i^q Σ_j z_ij x_j^p.
    // That is O(pixels · (max p + 1)) work instead of O(pixels · terms²) (the same sums
    // as Gwyddion's, in another order: the coefficients agree to rounding).
    let px_max = powers.iter().map(|&(p, _)| p).max().unwrap_or(0);
    let py_max = powers.iter().map(|&(_, q)| q).max().unwrap_or(0);
    let moments = |coords: &[f64], top: usize| -> Vec<f64> {
        (0..=top).map(|e| coords.iter().map(|&c| c.powi(e as i32)).sum()).collect()
    };
    let (sx, sy) = (moments(&xs, 2 * px_max), moments(&ys, 2 * py_max));
    let xpow: Vec<f64> = xs.iter().flat_map(|&x| (0..=px_max).map(move |e| x.powi(e as i32))).collect();
    // Per row: Σ_j z_ij x_j^p for every p.
    let view = image.view();
    let row_moments: Vec<Vec<f64>> = (0..rows)
        .into_par_iter()
        .map(|i| {
            let mut acc = vec![0.0; px_max + 1];
            for (j, &z) in view.row(i).iter().enumerate() {
                let xp = &xpow[j * (px_max + 1)..(j + 1) * (px_max + 1)];
                acc.iter_mut().zip(xp).for_each(|(a, &x)| *a += z * x);
            }
            acc
        })
        .collect();
    let mut m = vec![0.0; k * (k + 1) / 2];
    let mut idx = 0;
    for a in 0..k {
        for b in 0..=a {
            m[idx] = sx[powers[a].0 + powers[b].0] * sy[powers[a].1 + powers[b].1];
            idx += 1;
        }
    }
    let mut rhs: Vec<f64> =
        powers.iter().map(|&(p, q)| row_moments.iter().zip(&ys).map(|(r, &y)| y.powi(q as i32) * r[p]).sum()).collect();
    if !solve_spd(&mut m, &mut rhs, k) {
        return Ok(vec![0.0; k]);
    }
    Ok(rhs)
}

/// The polynomial background itself, evaluated on the image's grid (`coefficients` in
/// the order of `terms.powers()`; missing ones count as 0).
pub fn poly_background(shape: (usize, usize), terms: PolyTerms, coefficients: &[f64]) -> Array2<f64> {
    let (rows, cols) = shape;
    let (xs, ys) = (normalised(cols), normalised(rows));
    let powers = terms.powers();
    let py_max = powers.iter().map(|&(_, q)| q).max().unwrap_or(0);
    // Separable evaluation: for each power q of y, the polynomial in x of the terms
    // x^p y^q, tabulated over the columns; then one sum over q per pixel.
    let mut in_x = vec![0.0; (py_max + 1) * cols];
    for (&(p, q), &c) in powers.iter().zip(coefficients) {
        for (v, &x) in in_x[q * cols..(q + 1) * cols].iter_mut().zip(&xs) {
            *v += c * x.powi(p as i32);
        }
    }
    let mut out = vec![0.0; rows * cols];
    if cols > 0 {
        out.par_chunks_mut(cols).enumerate().for_each(|(i, row)| {
            for q in 0..=py_max {
                let yq = ys[i].powi(q as i32);
                let table = &in_x[q * cols..(q + 1) * cols];
                row.iter_mut().zip(table).for_each(|(v, &t)| *v += yq * t);
            }
        });
    }
    Array2::from_shape_vec(shape, out).unwrap_or_else(|_| Array2::zeros(shape))
}

/// Fits and subtracts a polynomial background (Gwyddion's "Polynomial background";
/// degree 5 in x and y independently is the screening pipeline's).
///
/// # Errors
/// As [`fit_poly`].
pub fn level_poly<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>, terms: PolyTerms) -> Result<Array2<f64>> {
    let c = fit_poly(image, terms)?;
    Ok(image.to_owned() - poly_background(image.dim(), terms, &c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn plane_fit_recovers_a_plane() {
        let img = Array2::from_shape_fn((7, 9), |(i, j)| 1.5 + 0.25 * j as f64 - 0.75 * i as f64);
        let p = fit_plane(&img).unwrap();
        assert!((p.a - 1.5).abs() < 1e-12 && (p.bx - 0.25).abs() < 1e-12 && (p.by + 0.75).abs() < 1e-12);
        let flat = subtract_plane(&img, p);
        assert!(flat.iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn polynomial_background_recovers_a_polynomial() {
        let terms = PolyTerms::Independent { col_degree: 2, row_degree: 1 };
        let img = poly_background((12, 15), terms, &[1.0, 0.5, -2.0, 0.3, 0.7, 0.0]);
        let c = fit_poly(&img, terms).unwrap();
        for (a, b) in c.iter().zip([1.0, 0.5, -2.0, 0.3, 0.7, 0.0]) {
            assert!((a - b).abs() < 1e-10, "{c:?}");
        }
        assert_eq!(PolyTerms::Limited { max_degree: 2 }.powers(), vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]);
        assert!(fit_poly(&array![[1.0, 2.0]], terms).is_err());
    }
}
