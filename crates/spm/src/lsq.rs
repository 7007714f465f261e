//! Least squares for the levelling fits: symmetric positive definite normal equations
//! (packed lower triangle, as Gwyddion stores them) and, for the screening code's 1-D
//! fits, overdetermined systems.
//!
//! Pure Rust by default (Cholesky on the packed triangle, Gwyddion's loop order). With
//! the `lapack` feature the same systems go to LAPACK through `ndarray-linalg` on the
//! system's OpenBLAS (`dpotrf`/`dpotrs` for the normal equations, `dgelsd` — what
//! numpy's `lstsq` calls — for the overdetermined ones); the results agree to rounding
//! (`tests/gwyddion_level.rs` and `tests/pyrabani_screening.rs` hold either way).

/// Solves `A x = b` for symmetric positive definite `A` given as its packed lower
/// triangle (`a[i(i+1)/2 + j]`, `j ≤ i`); `b` becomes `x`. `false` (and `b` unspecified)
/// when `A` is not positive definite. `a` is overwritten.
pub(crate) fn solve_spd(a: &mut [f64], b: &mut [f64], n: usize) -> bool {
    #[cfg(feature = "lapack")]
    {
        lapack::solve_spd(a, b, n)
    }
    #[cfg(not(feature = "lapack"))]
    {
        if !cholesky(a, n) {
            return false;
        }
        cholesky_solve(a, b, n);
        true
    }
}

#[cfg_attr(feature = "lapack", allow(dead_code))]
/// Cholesky factorisation of a symmetric matrix stored as its packed lower triangle
/// (`a[i(i+1)/2 + j]`, `j ≤ i`), in place; `false` when a pivot is not positive.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    let at = |i: usize, j: usize| i * (i + 1) / 2 + j;
    for k in 0..n {
        let mut s = a[at(k, k)];
        for i in 0..k {
            s -= a[at(k, i)] * a[at(k, i)];
        }
        if s <= 0.0 {
            return false;
        }
        let s = s.sqrt();
        a[at(k, k)] = s;
        for j in k + 1..n {
            let mut r = a[at(j, k)];
            for i in 0..k {
                r -= a[at(k, i)] * a[at(j, i)];
            }
            a[at(j, k)] = r / s;
        }
    }
    true
}

#[cfg_attr(feature = "lapack", allow(dead_code))]
/// Solves `L Lᵀ x = b` in place of `b` with the factor from [`cholesky`].
fn cholesky_solve(l: &[f64], b: &mut [f64], n: usize) {
    let at = |i: usize, j: usize| i * (i + 1) / 2 + j;
    for i in 0..n {
        let mut s = b[i];
        for j in 0..i {
            s -= l[at(i, j)] * b[j];
        }
        b[i] = s / l[at(i, i)];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for j in i + 1..n {
            s -= l[at(j, i)] * b[j];
        }
        b[i] = s / l[at(i, i)];
    }
}

/// Values of the least-squares fit `design · c ≈ y` at the design's rows, or `None` when
/// LAPACK fails (only with the `lapack` feature; the pure-Rust fits do not use this).
#[cfg(feature = "lapack")]
pub(crate) fn fitted_values(design: &ndarray::Array2<f64>, y: &ndarray::Array1<f64>) -> Option<ndarray::Array1<f64>> {
    use ndarray_linalg::LeastSquaresSvd;
    let fit = design.least_squares(y).ok()?;
    Some(design.dot(&fit.solution))
}

#[cfg(feature = "lapack")]
mod lapack {
    use ndarray::{Array1, Array2};
    use ndarray_linalg::SolveC;

    pub(super) fn solve_spd(a: &mut [f64], b: &mut [f64], n: usize) -> bool {
        let full = Array2::from_shape_fn((n, n), |(i, j)| {
            let (r, c) = if i >= j { (i, j) } else { (j, i) };
            a[r * (r + 1) / 2 + c]
        });
        let rhs = Array1::from(b.to_vec());
        match full.solvec(&rhs) {
            Ok(x) if x.iter().all(|v| v.is_finite()) => {
                b.copy_from_slice(x.as_slice().unwrap_or(&[]));
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_and_refuses_indefinite_systems() {
        // [[4, 2], [2, 3]] x = [2, 1] → x = [0.5, 0].
        let (mut a, mut b) = (vec![4.0, 2.0, 3.0], vec![2.0, 1.0]);
        assert!(solve_spd(&mut a, &mut b, 2));
        assert!((b[0] - 0.5).abs() < 1e-15 && b[1].abs() < 1e-15, "{b:?}");
        let (mut a, mut b) = (vec![1.0, 2.0, 1.0], vec![1.0, 1.0]);
        assert!(!solve_spd(&mut a, &mut b, 2));
    }
}
