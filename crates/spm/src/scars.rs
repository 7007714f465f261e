//! Scars: short horizontal streaks where the feedback loop jumped for a few lines. Marked
//! as Gwyddion's "Remove scars" marks them (`gwy_data_field_mark_scars`, 2.62, with the
//! module's defaults) and removed by solving the Laplace equation inside the marked
//! areas (../shared/notes/spm-preprocessing.md §1.5).
//!
//! Heights and thresholds: a scar is a run of 1 to `max_width` rows that stands out from
//! the rows directly above and below it by at least `threshold_low` times the image's
//! "vertical RMS" `√(Σ (z[i][j] − z[i+1][j])² / (rows·cols))` (Gwyddion's normalisation,
//! with all pixels in the denominator), is joined along the row to values of at least
//! `threshold_high`, and is at least `min_len` pixels long. Thresholds are in units of
//! that RMS; lengths and widths in pixels.

use crate::level::check_finite;
use crate::{Error, Result};
use ndarray::{Array2, ArrayBase, Data, Ix2};

/// Which scars to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ScarKind {
    /// Streaks higher than their surroundings.
    Positive,
    /// Streaks lower than their surroundings.
    Negative,
    /// Both (Gwyddion's default).
    #[default]
    Both,
}

/// Parameters of scar marking; `Default` is Gwyddion's "Remove scars" defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScarParams {
    /// Hard threshold in vertical RMS units (0.666); raised to `threshold_low` if lower.
    pub threshold_high: f64,
    /// Soft threshold in vertical RMS units (0.25); 0 marks nothing.
    pub threshold_low: f64,
    /// Shortest scar kept, pixels (16).
    pub min_len: usize,
    /// Widest scar looked for, rows (4); limited to `rows − 2`.
    pub max_width: usize,
    /// Positive, negative or both.
    pub kind: ScarKind,
}

impl Default for ScarParams {
    fn default() -> Self {
        Self { threshold_high: 0.666, threshold_low: 0.25, min_len: 16, max_width: 4, kind: ScarKind::Both }
    }
}

impl ScarParams {
    fn validate(&self) -> Result<()> {
        for (name, v) in [("scar threshold_high", self.threshold_high), ("scar threshold_low", self.threshold_low)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(name, v, "a finite multiple of the vertical RMS, ≥ 0"));
            }
        }
        if self.min_len == 0 {
            return Err(Error::invalid("scar min_len", 0, "at least 1 pixel"));
        }
        if self.max_width == 0 {
            return Err(Error::invalid("scar max_width", 0, "at least 1 row"));
        }
        Ok(())
    }
}

/// Marks scars (`true` = scar pixel), exactly as libgwyprocess 2.62 does.
///
/// # Errors
/// Empty or non-finite images; thresholds negative or not finite; zero `min_len` or
/// `max_width`.
pub fn mark_scars<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>, params: &ScarParams) -> Result<Array2<bool>> {
    check_finite(image)?;
    params.validate()?;
    let (rows, cols) = image.dim();
    let z: Vec<f64> = image.iter().copied().collect();
    let marks = |negative| {
        let mut m = vec![0.0; rows * cols];
        mark_one_sign(&z, rows, cols, params, negative, &mut m);
        m
    };
    let m = match params.kind {
        ScarKind::Positive => marks(false),
        ScarKind::Negative => marks(true),
        ScarKind::Both => {
            let (mut p, n) = (marks(false), marks(true));
            p.iter_mut().zip(n).for_each(|(a, b)| *a = a.max(b));
            p
        }
    };
    Ok(Array2::from_shape_fn((rows, cols), |(i, j)| m[i * cols + j] > 0.0))
}

/// One sign of `gwy_data_field_mark_scars` into `m` (zeroed, `rows × cols`): candidate
/// strengths, hysteresis along rows, then runs shorter than `min_len` dropped; `m` ends
/// as 0/1.
fn mark_one_sign(z: &[f64], rows: usize, cols: usize, params: &ScarParams, negative: bool, m: &mut [f64]) {
    let low = params.threshold_low;
    let high = params.threshold_high.max(low);
    let max_width = params.max_width.min(rows.saturating_sub(2));
    if params.min_len > cols || max_width < 1 || low <= 0.0 {
        return;
    }
    let mut sum = 0.0;
    for i in 0..rows - 1 {
        for j in 0..cols {
            let d = z[i * cols + j] - z[(i + 1) * cols + j];
            sum += d * d;
        }
    }
    let rms = (sum / (rows * cols) as f64).sqrt();
    if rms == 0.0 {
        return;
    }
    // Negative scars are positive scars of −z (negation is exact, so the marks are the
    // same bits as Gwyddion's mirrored formulas give).
    let flipped: Vec<f64>;
    let z: &[f64] = if negative {
        flipped = z.iter().map(|v| -v).collect();
        &flipped
    } else {
        z
    };
    let row = |i: usize| &z[i * cols..(i + 1) * cols];
    // Per column of the current row i (the line above a candidate scar of rows
    // i+1 ..= i+k): the weakest scar value so far, and the first width that stands out
    // with the stronger of its two neighbours. Loops run along the row so they vectorise.
    let mut inner = vec![0.0; cols];
    let mut width = vec![0.0f64; cols]; // 0 = none yet (f64, so the loops stay in f64 lanes)
    let mut outer_at = vec![0.0; cols];
    let threshold = low * rms;
    for i in 0..rows.saturating_sub(max_width + 1) {
        let edge = row(i);
        inner.copy_from_slice(row(i + 1));
        width.iter_mut().for_each(|w| *w = 0.0);
        for k in 1..=max_width {
            let (v, next) = (row(i + k), row(i + k + 1));
            let kf = k as f64;
            let columns = inner.iter_mut().zip(width.iter_mut()).zip(outer_at.iter_mut());
            for (((inn, w), at), ((&e, &vv), &nx)) in columns.zip(edge.iter().zip(v).zip(next)) {
                let outer = if nx > e { nx } else { e };
                *inn = if vv < *inn { vv } else { *inn };
                let hit = (*w == 0.0) & (*inn - outer >= threshold);
                *w = if hit { kf } else { *w };
                *at = if hit { outer } else { *at };
            }
        }
        for kk in 1..=max_width {
            let v = row(i + kk);
            let kkf = kk as f64;
            let marks = &mut m[(i + kk) * cols..(i + kk + 1) * cols];
            for ((mark, &vv), (&at, &w)) in marks.iter_mut().zip(v).zip(outer_at.iter().zip(&width)) {
                let s = (vv - at) / rms;
                let grow = (kkf <= w) & (s > *mark);
                *mark = if grow { s } else { *mark };
            }
        }
    }
    // Hysteresis along each row (Gwyddion: soft values next to hard ones become hard,
    // left to right, then right to left) makes every run of values ≥ `low` that holds a
    // value ≥ `high` hard; then hard runs shorter than `min_len` are dropped. So: a run
    // of values ≥ `low` is a scar when it holds a hard value and is long enough.
    for row in m.chunks_exact_mut(cols) {
        let mut start = 0;
        let mut hard = false;
        for j in 0..=cols {
            let v = if j < cols { row[j] } else { f64::NEG_INFINITY };
            if v >= low {
                hard |= v >= high;
                continue;
            }
            let keep = if hard && j - start >= params.min_len { 1.0 } else { 0.0 };
            row[start..j].iter_mut().for_each(|x| *x = keep);
            if j < cols {
                row[j] = 0.0;
            }
            start = j + 1;
            hard = false;
        }
    }
}

/// Replaces the masked pixels by the solution of the discrete Laplace equation: each
/// masked pixel becomes the mean of its 4-neighbours inside the image (Neumann at the
/// image edges), with the unmasked pixels around each masked area fixed (Dirichlet).
/// Solved per 4-connected area by conjugate gradients to a residual of 1e-13 of the
/// image's height range, so the result is the exact discrete solution. Gwyddion's
/// multigrid `gwy_data_field_laplace_solve` documents a local error of order 1e-5 on
/// large areas; on the scars of the test scans both agree to 2.3e-14 of the height range
/// (`tests/gwyddion_level.rs`).
///
/// # Errors
/// Empty or non-finite images; a mask of another shape; a mask that covers the whole
/// image (nothing to interpolate from).
pub fn laplace_fill<S: Data<Elem = f64>, M: Data<Elem = bool>>(
    image: &ArrayBase<S, Ix2>,
    mask: &ArrayBase<M, Ix2>,
) -> Result<Array2<f64>> {
    check_finite(image)?;
    if mask.dim() != image.dim() {
        return Err(Error::invalid(
            "mask",
            format!("shape {:?}", mask.dim()),
            format!("the image's shape {:?}", image.dim()),
        ));
    }
    let (rows, cols) = image.dim();
    if mask.iter().all(|&m| m) {
        return Err(Error::invalid("mask", "every pixel masked", "at least one unmasked pixel to interpolate from"));
    }
    let mut out = image.as_standard_layout().into_owned();
    let range =
        image.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b)) - image.iter().fold(f64::INFINITY, |a, &b| a.min(b));
    let tol = 1e-13 * range.max(f64::MIN_POSITIVE);
    let masked = |i: usize, j: usize| mask[[i, j]];
    let mut seen = Array2::from_elem((rows, cols), false);
    let mut area = Vec::new();
    let mut index = Array2::from_elem((rows, cols), usize::MAX);
    for start in 0..rows * cols {
        let (si, sj) = (start / cols, start % cols);
        if !masked(si, sj) || seen[[si, sj]] {
            continue;
        }
        // Collect one 4-connected masked area.
        area.clear();
        area.push((si, sj));
        seen[[si, sj]] = true;
        let mut head = 0;
        while head < area.len() {
            let (i, j) = area[head];
            head += 1;
            for (ni, nj) in neighbours(i, j, rows, cols) {
                if masked(ni, nj) && !seen[[ni, nj]] {
                    seen[[ni, nj]] = true;
                    area.push((ni, nj));
                }
            }
        }
        for (k, &(i, j)) in area.iter().enumerate() {
            index[[i, j]] = k;
        }
        solve_area(&mut out, &area, &index, mask, tol);
    }
    Ok(out)
}

fn neighbours(i: usize, j: usize, rows: usize, cols: usize) -> impl Iterator<Item = (usize, usize)> {
    [(i.wrapping_sub(1), j), (i + 1, j), (i, j.wrapping_sub(1)), (i, j + 1)]
        .into_iter()
        .filter(move |&(a, b)| a < rows && b < cols)
}

/// Conjugate gradients on `A x = b` for one area, `A` the graph Laplacian restricted to
/// the area (degree on the diagonal, −1 per masked neighbour), `b` the sum of fixed
/// neighbours. `A` is symmetric and positive definite because the area touches at least
/// one unmasked pixel.
fn solve_area<M: Data<Elem = bool>>(
    out: &mut Array2<f64>,
    area: &[(usize, usize)],
    index: &Array2<usize>,
    mask: &ArrayBase<M, Ix2>,
    tol: f64,
) {
    let (rows, cols) = out.dim();
    let n = area.len();
    let mut diag = vec![0.0; n];
    let mut b = vec![0.0; n];
    let mut links: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, &(i, j)) in area.iter().enumerate() {
        for (ni, nj) in neighbours(i, j, rows, cols) {
            diag[k] += 1.0;
            if mask[[ni, nj]] {
                links[k].push(index[[ni, nj]]);
            } else {
                b[k] += out[[ni, nj]];
            }
        }
    }
    let apply = |x: &[f64], y: &mut [f64]| {
        for k in 0..n {
            y[k] = diag[k] * x[k] - links[k].iter().map(|&l| x[l]).sum::<f64>();
        }
    };
    // Start from the mean of the fixed boundary values.
    let boundary: f64 = b.iter().sum::<f64>() / diag.iter().zip(&links).map(|(d, l)| d - l.len() as f64).sum::<f64>();
    let mut x = vec![boundary; n];
    let mut r = vec![0.0; n];
    apply(&x, &mut r);
    r.iter_mut().zip(&b).for_each(|(r, b)| *r = b - *r);
    let mut p = r.clone();
    let mut ap = vec![0.0; n];
    let mut rr: f64 = r.iter().map(|v| v * v).sum();
    for _ in 0..10 * n + 100 {
        if rr.sqrt() <= tol {
            break;
        }
        apply(&p, &mut ap);
        let alpha = rr / p.iter().zip(&ap).map(|(a, b)| a * b).sum::<f64>();
        x.iter_mut().zip(&p).for_each(|(x, p)| *x += alpha * p);
        r.iter_mut().zip(&ap).for_each(|(r, a)| *r -= alpha * a);
        let next: f64 = r.iter().map(|v| v * v).sum();
        let beta = next / rr;
        rr = next;
        p.iter_mut().zip(&r).for_each(|(p, r)| *p = r + beta * *p);
    }
    for (&(i, j), v) in area.iter().zip(x) {
        out[[i, j]] = v;
    }
}

/// Marks scars with [`mark_scars`] and fills them with [`laplace_fill`] (Gwyddion's
/// "Remove scars"). Returns the cleaned image and the mask; an image without scars comes
/// back unchanged.
///
/// # Errors
/// As [`mark_scars`].
pub fn remove_scars<S: Data<Elem = f64>>(
    image: &ArrayBase<S, Ix2>,
    params: &ScarParams,
) -> Result<(Array2<f64>, Array2<bool>)> {
    let mask = mark_scars(image, params)?;
    if !mask.iter().any(|&m| m) {
        return Ok((image.to_owned(), mask));
    }
    Ok((laplace_fill(image, &mask)?, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scarred() -> (Array2<f64>, Array2<f64>) {
        let clean = Array2::from_shape_fn((20, 40), |(i, j)| ((i * 7 + j * 3) % 5) as f64 * 0.1);
        let mut s = clean.clone();
        for j in 5..30 {
            s[[8, j]] += 3.0;
        }
        for j in 10..35 {
            s[[14, j]] -= 2.0;
            s[[15, j]] -= 2.0;
        }
        (clean, s)
    }

    #[test]
    fn marks_positive_and_negative_scars() {
        let (_, s) = scarred();
        let m = mark_scars(&s, &ScarParams::default()).unwrap();
        for j in 0..40 {
            assert_eq!(m[[8, j]], (5..30).contains(&j), "row 8 col {j}");
            assert_eq!(m[[14, j]], (10..35).contains(&j));
            assert_eq!(m[[15, j]], (10..35).contains(&j));
        }
        assert_eq!(m.iter().filter(|&&v| v).count(), 25 + 50);
        let pos = mark_scars(&s, &ScarParams { kind: ScarKind::Positive, ..Default::default() }).unwrap();
        assert_eq!(pos.iter().filter(|&&v| v).count(), 25);
        assert!(mark_scars(&s, &ScarParams { min_len: 0, ..Default::default() }).is_err());
    }

    #[test]
    fn laplace_fill_interpolates_harmonic_functions_exactly() {
        // A linear function is harmonic: filling any hole reproduces it.
        let f = Array2::from_shape_fn((12, 15), |(i, j)| 0.5 * i as f64 - 0.25 * j as f64 + 3.0);
        let mask = Array2::from_shape_fn((12, 15), |(i, j)| (3..7).contains(&i) && (2..11).contains(&j));
        let mut holed = f.clone();
        mask.indexed_iter().filter(|(_, m)| **m).for_each(|(ix, _)| holed[ix] = 100.0);
        let filled = laplace_fill(&holed, &mask).unwrap();
        assert!(filled.iter().zip(&f).all(|(a, b)| (a - b).abs() < 1e-10));
        assert!(laplace_fill(&holed, &Array2::from_elem((12, 15), true)).is_err());
    }

    #[test]
    fn removal_restores_the_scarred_rows() {
        let (clean, s) = scarred();
        let (fixed, _) = remove_scars(&s, &ScarParams::default()).unwrap();
        let worst = fixed.iter().zip(&clean).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 0.5, "{worst}");
    }
}
