//! Row alignment: the methods of Gwyddion's "Align rows" (2.62: libprocess's row shifts
//! and the module's modus and row polynomials, as ../shared/notes/spm-preprocessing.md
//! §1.1 documents them).
//!
//! Rows are the fast scan lines (`image[[i, ..]]`, row 0 at the top). To align columns
//! instead, pass the transposed view (`image.t()`) and transpose the result back.
//!
//! Medians are Gwyddion's: the element of rank `n/2`, the upper median for even `n`.
//! Selection follows [`Ranks`]: exact by default; [`Ranks::Gwyddion262`] reproduces
//! libgwyddion 2.62's selection slip and with it the library's row shifts bit for bit
//! (median, median of differences, trimmed means and their differences equal
//! libgwyprocess 2.62 to 1e-12 relative on the test scans, `tests/gwyddion_level.rs`;
//! modus and row polynomials follow the module code, which is not in the library).

use crate::level::{check_finite, index_moments};
use crate::lsq::solve_spd;
use crate::rank::Ranks;
use crate::{Error, Result};
use ndarray::{Array2, ArrayBase, Data, Ix2};

/// Largest degree of [`RowAlignment::Polynomial`] (Gwyddion's limit).
pub const MAX_ROW_DEGREE: usize = 5;

/// Row-alignment methods of Gwyddion's "Align rows".
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowAlignment {
    /// Subtract each row's median, keeping the mean of the medians (Gwyddion's default).
    Median,
    /// Shift each row by the median of its differences to the row above; the cumulative
    /// shifts are line-levelled, so a genuine slope down the image stays.
    MedianOfDifferences,
    /// Like `Median` with the mean of the values left after trimming this fraction from
    /// each end (0 ..= 0.5; Gwyddion's default is 0.05; 0 is the plain mean).
    TrimmedMean(f64),
    /// Like `MedianOfDifferences` with trimmed means of the differences.
    TrimmedMeanOfDifferences(f64),
    /// Subtract each row's modus: the middle third of the shortest run of `√n` sorted
    /// values (the median for rows shorter than 9), keeping the mean of the modi.
    Modus,
    /// Subtract a least-squares polynomial of this degree (0 ..= 5) from each row, in
    /// pixel units about the row centre, keeping the global mean. Degree 0 is the mean.
    Polynomial(usize),
}

/// Aligns rows with exact rank statistics (see [`align_rows_with`]).
///
/// # Errors
/// As [`align_rows_with`].
pub fn align_rows<S: Data<Elem = f64>>(
    image: &ArrayBase<S, Ix2>,
    method: RowAlignment,
) -> Result<(Array2<f64>, Vec<f64>)> {
    align_rows_with(image, method, Ranks::Exact)
}

/// Aligns rows (see [`RowAlignment`]) and returns the aligned image and each row's
/// shift: the value subtracted from the row, or for polynomials the constant term
/// (at the row centre) minus the global mean. Shifts are in the image's height unit.
///
/// # Errors
/// Empty or non-finite images; a trim fraction outside [0, 0.5]; a polynomial degree
/// above [`MAX_ROW_DEGREE`] or not below the row length.
pub fn align_rows_with<S: Data<Elem = f64>>(
    image: &ArrayBase<S, Ix2>,
    method: RowAlignment,
    ranks: Ranks,
) -> Result<(Array2<f64>, Vec<f64>)> {
    check_finite(image)?;
    let mut out = image.as_standard_layout().into_owned();
    let cols = out.ncols();
    let shifts = match method {
        RowAlignment::Median => row_locations(&mut out, 0.5, ranks),
        RowAlignment::MedianOfDifferences => difference_locations(&out, 0.5, ranks),
        RowAlignment::TrimmedMean(p) => row_locations(&mut out, checked_trim(p)?, ranks),
        RowAlignment::TrimmedMeanOfDifferences(p) => difference_locations(&out, checked_trim(p)?, ranks),
        RowAlignment::Modus => modi(&mut out, ranks),
        RowAlignment::Polynomial(0) => row_locations(&mut out, 0.0, ranks),
        RowAlignment::Polynomial(degree) => {
            if degree > MAX_ROW_DEGREE || degree >= cols {
                return Err(Error::invalid(
                    "row polynomial degree",
                    degree,
                    format!("at most {MAX_ROW_DEGREE} and below the row length {cols}"),
                ));
            }
            return Ok(row_polynomials(out, degree));
        }
    };
    for (mut row, s) in out.outer_iter_mut().zip(&shifts) {
        row.iter_mut().for_each(|z| *z -= s);
    }
    Ok((out, shifts))
}

fn checked_trim(p: f64) -> Result<f64> {
    if (0.0..=0.5).contains(&p) { Ok(p) } else { Err(Error::invalid("trim fraction", p, "a fraction in [0, 0.5]")) }
}

/// Gwyddion's rounding, `⌊x + 0.5⌋`.
fn gwy_round(x: f64) -> usize {
    (x + 0.5).floor().max(0.0) as usize
}

/// Gwyddion's per-row location: the mean of the ranks `[round(p·n), n − round(p·n))`, or
/// the median when that leaves at most one value.
fn trimmed_mean_or_median(v: &mut [f64], p: f64, ranks: Ranks) -> f64 {
    let n = v.len();
    let cut = gwy_round(p * n as f64);
    if 2 * cut + 1 >= n { ranks.median(v) } else { ranks.trimmed(v, cut, cut) }
}

/// Subtracts the mean so that the shifts keep the image's mean level.
fn zero_level(shifts: &mut [f64]) {
    let mean = shifts.iter().sum::<f64>() / shifts.len() as f64;
    shifts.iter_mut().for_each(|s| *s -= mean);
}

/// Per-row trimmed means or medians, zero-levelled. `image` is a standard-layout copy
/// whose rows serve as scratch (they are restored).
fn row_locations(image: &mut Array2<f64>, p: f64, ranks: Ranks) -> Vec<f64> {
    let mut buf = vec![0.0; image.ncols()];
    let mut shifts: Vec<f64> = image
        .outer_iter()
        .map(|row| {
            buf.iter_mut().zip(row).for_each(|(b, &z)| *b = z);
            trimmed_mean_or_median(&mut buf, p, ranks)
        })
        .collect();
    zero_level(&mut shifts);
    shifts
}

/// Cumulative trimmed means (or medians) of the differences between neighbouring rows,
/// line-levelled (`gwy_data_line_get_line_coeffs` with its closed-form averages).
fn difference_locations(image: &Array2<f64>, p: f64, ranks: Ranks) -> Vec<f64> {
    let rows = image.nrows();
    let mut buf = vec![0.0; image.ncols()];
    let mut shifts = vec![0.0; rows];
    for i in 1..rows {
        let (above, below) = (image.row(i - 1), image.row(i));
        buf.iter_mut().zip(below.iter().zip(above)).for_each(|(d, (b, a))| *d = b - a);
        shifts[i] = shifts[i - 1] + trimmed_mean_or_median(&mut buf, p, ranks);
    }
    let n = rows as f64;
    let (xb, x2b) = index_moments(rows);
    let mean = shifts.iter().sum::<f64>() / n;
    let mean_k = shifts.iter().enumerate().map(|(k, s)| s * k as f64).sum::<f64>() / n;
    let det = x2b - xb * xb;
    // One row: det = 0 and the single shift is 0 already.
    let (a, b) = if rows > 1 { ((mean * x2b - xb * mean_k) / det, (mean_k - mean * xb) / det) } else { (0.0, 0.0) };
    for (k, s) in shifts.iter_mut().enumerate() {
        *s -= a + b * k as f64;
    }
    shifts
}

/// Per-row modus (Gwyddion's "Modus"), zero-levelled.
fn modi(image: &mut Array2<f64>, ranks: Ranks) -> Vec<f64> {
    let n = image.ncols();
    let mut buf = vec![0.0; n];
    let mut shifts: Vec<f64> = image
        .outer_iter()
        .map(|row| {
            buf.iter_mut().zip(row).for_each(|(b, &z)| *b = z);
            if n < 9 {
                return ranks.median(&mut buf);
            }
            buf.sort_unstable_by(f64::total_cmp);
            let seg = gwy_round((n as f64).sqrt());
            // The first of the narrowest windows of `seg` sorted values.
            let mut best = (f64::MAX, 0);
            for (j, w) in buf.windows(seg).enumerate() {
                let width = w[seg - 1] - w[0];
                if width < best.0 {
                    best = (width, j);
                }
            }
            let core = &buf[best.1 + seg / 3..best.1 + seg - seg / 3];
            core.iter().sum::<f64>() / core.len() as f64
        })
        .collect();
    zero_level(&mut shifts);
    shifts
}

/// Subtracts a polynomial of `degree` in `x = j − (n − 1)/2` from each row, fitted by the
/// normal equations (Cholesky on the packed lower triangle), keeping the global mean.
fn row_polynomials(mut image: Array2<f64>, degree: usize) -> (Array2<f64>, Vec<f64>) {
    let cols = image.ncols();
    let xc = 0.5 * (cols as f64 - 1.0);
    let avg = image.iter().sum::<f64>() / image.len() as f64;
    let terms = degree + 1;
    let mut moments = vec![0.0; 2 * degree + 1];
    let mut matrix = vec![0.0; terms * (terms + 1) / 2];
    let mut coeffs = vec![0.0; terms];
    let mut shifts = Vec::with_capacity(image.nrows());
    for mut row in image.outer_iter_mut() {
        moments.iter_mut().for_each(|m| *m = 0.0);
        coeffs.iter_mut().for_each(|c| *c = 0.0);
        for (j, &z) in row.iter().enumerate() {
            let x = j as f64 - xc;
            let mut p = 1.0;
            for (k, m) in moments.iter_mut().enumerate() {
                *m += p;
                if k < terms {
                    coeffs[k] += p * z;
                }
                p *= x;
            }
        }
        for r in 0..terms {
            for c in 0..=r {
                matrix[r * (r + 1) / 2 + c] = moments[r + c];
            }
        }
        // `degree < cols` keeps the matrix positive definite.
        if !solve_spd(&mut matrix, &mut coeffs, terms) {
            coeffs.iter_mut().for_each(|c| *c = 0.0);
        }
        coeffs[0] -= avg;
        shifts.push(coeffs[0]);
        for (j, z) in row.iter_mut().enumerate() {
            let x = j as f64 - xc;
            let (mut p, mut fit) = (1.0, 0.0);
            for c in &coeffs {
                fit += p * c;
                p *= x;
            }
            *z -= fit;
        }
    }
    (image, shifts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn medians_are_upper_medians() {
        let img = array![[1.0, 2.0, 3.0, 4.0], [11.0, 12.0, 13.0, 14.0]];
        let (aligned, shifts) = align_rows(&img, RowAlignment::Median).unwrap();
        assert_eq!(shifts, vec![-5.0, 5.0]);
        assert_eq!(aligned.row(0), aligned.row(1));
        assert!(align_rows(&img, RowAlignment::TrimmedMean(0.7)).is_err());
        assert!(align_rows(&img, RowAlignment::Polynomial(4)).is_err());
        assert!(align_rows(&img, RowAlignment::Polynomial(6)).is_err());
    }

    #[test]
    fn row_polynomials_remove_row_parabolas_and_keep_the_mean() {
        let img = Array2::from_shape_fn((6, 11), |(i, j)| {
            let x = j as f64;
            i as f64 * 0.5 + 0.1 * x - 0.02 * (i as f64 + 1.0) * x * x
        });
        let (aligned, shifts) = align_rows(&img, RowAlignment::Polynomial(2)).unwrap();
        let mean = img.mean().unwrap();
        assert!(aligned.iter().all(|z| (z - mean).abs() < 1e-9), "{aligned}");
        assert_eq!(shifts.len(), 6);
    }

    #[test]
    fn modus_finds_the_dominant_level() {
        // Rows at level i with a few spikes: the modus ignores the spikes.
        let img = Array2::from_shape_fn((4, 25), |(i, j)| i as f64 + if j % 7 == 0 { 50.0 } else { 0.0 });
        let (aligned, shifts) = align_rows(&img, RowAlignment::Modus).unwrap();
        assert!(shifts.iter().zip([-1.5, -0.5, 0.5, 1.5]).all(|(a, b)| (a - b).abs() < 1e-12), "{shifts:?}");
        assert_eq!(aligned.row(0), aligned.row(3));
    }
}
