//! The preprocessing and quality filters of the AFM screening code (Gordon et al., Nano
//! Lett. 2020; pyRabani's `Filters/screening.py`, ../shared/notes/spm-preprocessing.md §6),
//! exactly as coded there, plus the paper's textual noise rule as an option.
//!
//! The reference chain ([`preprocess_pyrabani`]): min–max normalisation → cumulative
//! median-of-differences row alignment on 1000 bins → noise-row test → separable degree-5
//! background (1-D polynomial fits to the column means and to the row means, both
//! subtracted) → min–max normalisation → binarisation above the lower of the two 3-class
//! multi-Otsu thresholds (1000 bins) → flat-binarisation test.

use crate::threshold::threshold_multiotsu;
use crate::{Error, Result};
use ndarray::{Array1, Array2, ArrayBase, ArrayView1, Data, Ix2};
use rayon::prelude::*;

/// Rescales to [0, 1] (`(z − min)/(max − min)`).
///
/// # Errors
/// An empty image, a non-finite pixel, or a constant image (nothing to rescale).
#[allow(clippy::eq_op)] // `v − v` is the finiteness test
pub fn normalize_min_max<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>) -> Result<Array2<f64>> {
    let mut out = image.as_standard_layout().into_owned();
    normalize_in_place(&mut out)?;
    Ok(out)
}

/// [`normalize_min_max`] on a standard-layout array, in place.
fn normalize_in_place(image: &mut Array2<f64>) -> Result<()> {
    let flat = standard(image)?;
    if flat.is_empty() {
        return Err(Error::invalid("image", "an empty image", "at least one pixel"));
    }
    let (lo, hi) = crate::threshold::range_of(flat)
        .map_err(|v| Error::invalid("image", format!("a pixel of {v}"), "finite pixels"))?;
    if lo == hi {
        return Err(Error::Unsuitable {
            what: "min–max normalisation",
            reason: format!("the image is flat (every pixel is {lo})"),
        });
    }
    // A division per pixel, as numpy does it (a reciprocal would change the last bit),
    // over blocks in parallel.
    let range = hi - lo;
    flat.par_chunks_mut(1 << 14).for_each(|chunk| chunk.iter_mut().for_each(|v| *v = (*v - lo) / range));
    Ok(())
}

/// The pixels of a standard-layout array.
fn standard(image: &mut Array2<f64>) -> Result<&mut [f64]> {
    image.as_slice_mut().ok_or_else(|| Error::invalid("image", "a non-contiguous array", "standard layout"))
}

/// pyRabani's `_median_align`: from the second row down, each row is shifted by the
/// median of its differences to the (already aligned) row above, the median taken on
/// 1000 bins: with `d = above − row`, `bins = linspace(min d, max d, 1000)`, each
/// difference gets the index of the first bin edge ≥ it (`np.digitize(d, bins,
/// right=True)`), and the row gains `bins[⌊median of the indices⌋]`.
///
/// # Errors
/// An empty image, a non-finite pixel, or `bins < 2`.
pub fn align_rows_median_of_differences_binned<S: Data<Elem = f64>>(
    image: &ArrayBase<S, Ix2>,
    bins: usize,
) -> Result<Array2<f64>> {
    if bins < 2 {
        return Err(Error::invalid("bins", bins, "at least 2 bin edges"));
    }
    crate::level::check_finite(image)?;
    let mut out = image.as_standard_layout().into_owned();
    align_in_place(&mut out, bins)?;
    Ok(out)
}

/// [`align_rows_median_of_differences_binned`] on a standard-layout array, in place.
fn align_in_place(out: &mut Array2<f64>, bins: usize) -> Result<()> {
    let (rows, cols) = out.dim();
    if cols == 0 {
        return Ok(());
    }
    let flat = standard(out)?;
    let mut diff = vec![0.0; cols];
    let mut counts = vec![0usize; bins + 1];
    // Each row's shift is added when that row next serves as the row above (one pass
    // over it instead of two); the last row's after the loop.
    let mut pending = 0.0;
    for i in 1..rows {
        let (above, row) = flat[(i - 1) * cols..(i + 1) * cols].split_at_mut(cols);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for ((d, a), &b) in diff.iter_mut().zip(above.iter_mut()).zip(row.iter()) {
            *a += pending;
            *d = *a - b;
            lo = if *d < lo { *d } else { lo };
            hi = if *d > hi { *d } else { hi };
        }
        // np.linspace(lo, hi, bins): edge k = k·step + lo, the last exactly hi.
        let div = (bins - 1) as f64;
        let (delta, step) = (hi - lo, (hi - lo) / div);
        let edge = |k: usize| {
            if k + 1 >= bins {
                hi
            } else if step == 0.0 {
                k as f64 / div * delta + lo
            } else {
                k as f64 * step + lo
            }
        };
        // The index of the first edge ≥ d (`np.digitize(d, edges, right=True)`): a guess
        // from the even spacing, settled against the edges near a boundary.
        let scale = if hi > lo { div / (hi - lo) } else { 0.0 };
        // Rounding of the edges and of the guess, in bins, with a wide safety factor: a
        // guess whose fractional part is farther than this from 0 and 1 needs no check.
        let margin = 16.0 * f64::EPSILON * ((lo.abs() + hi.abs()) * scale + bins as f64);
        let margin = if margin < 0.25 { margin } else { 1.0 };
        counts.iter_mut().for_each(|c| *c = 0);
        for &d in &diff {
            // ⌈·⌉ through an integer (`f64::ceil` is a libm call on baseline x86-64).
            let f = ((d - lo) * scale).max(0.0);
            let t = f as usize;
            let frac = f - t as f64;
            let mut k = (t + 1).min(bins - 1);
            if !(frac > margin && frac < 1.0 - margin) {
                k = (t + usize::from((t as f64) < f)).min(bins - 1);
                while k > 0 && edge(k - 1) >= d {
                    k -= 1;
                }
                while k < bins && edge(k) < d {
                    k += 1;
                }
            }
            counts[k] += 1;
        }
        // np.median of the indices (the mean of the middle two for even n), truncated.
        let n = diff.len();
        let (r_low, r_high) = if n % 2 == 1 { (n / 2, n / 2) } else { (n / 2 - 1, n / 2) };
        let (mut seen, mut low, mut high) = (0, None, None);
        for (k, &c) in counts.iter().enumerate() {
            seen += c;
            if low.is_none() && seen > r_low {
                low = Some(k);
            }
            if seen > r_high {
                high = Some(k);
                break;
            }
        }
        let median = (low.unwrap_or(0) + high.unwrap_or(0)) as f64 / 2.0;
        pending = edge((median as usize).min(bins - 1));
    }
    if rows > 1 {
        flat[(rows - 1) * cols..].iter_mut().for_each(|v| *v += pending);
    }
    Ok(())
}

/// Which noise-row rule [`noisy_rows`] applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NoiseRule {
    /// pyRabani as coded: a row is single-valued when its most frequent exact value fills
    /// at least 95 % of it, an outlier when its mean is ≤ 0.05× or ≥ 1.95× the image mean
    /// (needs data normalised to [0, 1]); the image fails when either kind makes up at
    /// least 5 % of the rows.
    PyRabani,
    /// The paper's text: single-valued when the most frequent value fills more than 95 %
    /// of the row, outlier when the row mean lies more than 2σ from the image mean, σ the
    /// standard deviation of the row means; fails when more than 5 % of rows are flagged.
    Textual,
}

/// What [`noisy_rows`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseReport {
    /// Rows judged single-valued.
    pub single_valued: Vec<usize>,
    /// Rows judged outliers.
    pub outliers: Vec<usize>,
    /// Whether the image fails the test.
    pub noisy: bool,
}

/// The noise-row test of the screening code (see [`NoiseRule`]). Fractions are of the
/// number of rows (pyRabani divides by the width; its images are square).
pub fn noisy_rows<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>, rule: NoiseRule) -> NoiseReport {
    let (rows, cols) = image.dim();
    let mut single_valued = Vec::new();
    let mut row_means = Vec::with_capacity(rows);
    for (i, row) in image.outer_iter().enumerate() {
        let flagged = match rule {
            NoiseRule::PyRabani => dominant_count(row) as f64 >= 0.95 * cols as f64,
            NoiseRule::Textual => dominant_count(row) as f64 > 0.95 * cols as f64,
        };
        if flagged {
            single_valued.push(i);
        }
        row_means.push(row.sum() / cols.max(1) as f64);
    }
    let mean = image.mean().unwrap_or(0.0);
    let outliers: Vec<usize> = match rule {
        NoiseRule::PyRabani => {
            (0..rows).filter(|&i| row_means[i] <= 0.05 * mean || row_means[i] >= 1.95 * mean).collect()
        }
        NoiseRule::Textual => {
            let m = row_means.iter().sum::<f64>() / rows.max(1) as f64;
            let sd = (row_means.iter().map(|r| (r - m).powi(2)).sum::<f64>() / rows.max(1) as f64).sqrt();
            (0..rows).filter(|&i| (row_means[i] - mean).abs() > 2.0 * sd).collect()
        }
    };
    let fraction = |n: usize| n as f64 / rows.max(1) as f64;
    let noisy = match rule {
        NoiseRule::PyRabani => fraction(single_valued.len()) >= 0.05 || fraction(outliers.len()) >= 0.05,
        NoiseRule::Textual => {
            let mut flagged: Vec<usize> = single_valued.iter().chain(&outliers).copied().collect();
            flagged.sort_unstable();
            flagged.dedup();
            fraction(flagged.len()) > 0.05
        }
    };
    NoiseReport { single_valued, outliers, noisy }
}

/// Count of the majority value of a row, or 0 when no value fills more than half of it.
/// For the 95 % thresholds of the noise rules this equals the mode's count
/// (`scipy.stats.mode(...).count`): only a majority can reach 95 %. One pass finds the
/// only possible majority (Boyer–Moore), a second counts it.
fn dominant_count(row: ArrayView1<'_, f64>) -> usize {
    let (mut candidate, mut votes) = (f64::NAN, 0usize);
    for &v in row {
        if votes == 0 {
            candidate = v;
            votes = 1;
        } else if v == candidate {
            votes += 1;
        } else {
            votes -= 1;
        }
    }
    let count = row.iter().filter(|&&v| v == candidate).count();
    if 2 * count > row.len() { count } else { 0 }
}

/// Values of the least-squares polynomial of `degree` through `(k, y_k)`, k = 0, 1, …
/// (what `np.polyval(np.polyfit(k, y, degree), k)` computes, in a well-conditioned basis:
/// the monomials of `t = 2k/(n−1) − 1`, orthonormalised twice by modified Gram–Schmidt,
/// and `y` projected on them; with the `lapack` feature, LAPACK's `dgelsd` on those
/// monomials).
///
/// # Errors
/// `degree + 1` larger than the number of points.
pub fn polynomial_fit_values(y: ArrayView1<'_, f64>, degree: usize) -> Result<Array1<f64>> {
    let n = y.len();
    if degree + 1 > n {
        return Err(Error::invalid("degree", degree, format!("at most {} for {n} points", n.saturating_sub(1))));
    }
    let t: Vec<f64> = (0..n).map(|k| if n > 1 { 2.0 * k as f64 / (n - 1) as f64 - 1.0 } else { 0.0 }).collect();
    #[cfg(feature = "lapack")]
    {
        // LAPACK's dgelsd on the monomials of t (numpy's polyfit calls the same routine).
        let design = ndarray::Array2::from_shape_fn((n, degree + 1), |(k, p)| t[k].powi(p as i32));
        if let Some(values) = crate::lsq::fitted_values(&design, &y.to_owned()) {
            return Ok(values);
        }
    }
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(degree + 1);
    for p in 0..=degree {
        let mut v: Vec<f64> = t.iter().map(|&x| x.powi(p as i32)).collect();
        for _ in 0..2 {
            for q in &basis {
                let dot: f64 = v.iter().zip(q).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        basis.push(v);
    }
    let mut fit = Array1::zeros(n);
    for q in &basis {
        let c: f64 = q.iter().zip(y.iter()).map(|(a, b)| a * b).sum();
        fit.iter_mut().zip(q).for_each(|(f, b)| *f += c * b);
    }
    Ok(fit)
}

/// pyRabani's `_poly_plane_flatten`: fits a polynomial of `degree` to the column means
/// (as a function of the column) and another to the row means (of the row) and subtracts
/// both. (Both fits include a constant, so the mean is removed twice; the screening code
/// min–max normalises afterwards.)
///
/// # Errors
/// An empty image, a non-finite pixel, or `degree` too large for the image's width or
/// height.
pub fn flatten_separable<S: Data<Elem = f64>>(image: &ArrayBase<S, Ix2>, degree: usize) -> Result<Array2<f64>> {
    crate::level::check_finite(image)?;
    let mut out = image.as_standard_layout().into_owned();
    flatten_in_place(&mut out, degree)?;
    Ok(out)
}

/// [`flatten_separable`] on a standard-layout array, in place.
fn flatten_in_place(image: &mut Array2<f64>, degree: usize) -> Result<()> {
    let (rows, cols) = image.dim();
    if rows == 0 || cols == 0 {
        return Err(Error::invalid("image", "an empty image", "at least one pixel"));
    }
    // Column sums accumulated row by row (numpy's order for axis 0, and cache-friendly,
    // unlike a walk down each column).
    let mut col_means = Array1::<f64>::zeros(cols);
    for row in image.outer_iter() {
        col_means.iter_mut().zip(row.iter()).for_each(|(m, &v)| *m += v);
    }
    col_means.mapv_inplace(|m| m / rows as f64);
    let row_means: Array1<f64> = image.outer_iter().map(|row| row.sum() / cols as f64).collect();
    let hx = polynomial_fit_values(col_means.view(), degree)?;
    let hy = polynomial_fit_values(row_means.view(), degree)?;
    // (z − hx) − hy, numpy's order, rows in parallel.
    let hy = hy.to_vec();
    standard(image)?.par_chunks_mut(cols).zip(hy.par_iter()).for_each(|(row, &y)| {
        row.iter_mut().zip(hx.iter()).for_each(|(v, &x)| *v = (*v - x) - y);
    });
    Ok(())
}

/// pyRabani's `_are_lines_properly_binarised`, negated: true when, along either axis, the
/// most repeated identical row (or column) occurs at least `fraction` × the side times
/// (0.8 in the reference).
pub fn binarization_is_flat<S: Data<Elem = bool>>(binary: &ArrayBase<S, Ix2>, fraction: f64) -> bool {
    // Lines packed 64 pixels to a word, sorted, and the longest run of equal lines found.
    let most_repeated = |lines: &mut Vec<Vec<u64>>| {
        lines.sort_unstable();
        let (mut best, mut run) = (0usize, 0usize);
        for k in 0..lines.len() {
            run = if k > 0 && lines[k] == lines[k - 1] { run + 1 } else { 1 };
            best = best.max(run);
        }
        best
    };
    let (rows, cols) = binary.dim();
    let (row_words, col_words) = (cols.div_ceil(64), rows.div_ceil(64));
    let mut by_row = vec![vec![0u64; row_words]; rows];
    for (packed, line) in by_row.iter_mut().zip(binary.outer_iter()) {
        for (c, &v) in line.iter().enumerate() {
            packed[c / 64] |= u64::from(v) << (c % 64);
        }
    }
    // Columns: transpose the packed rows 64×64 bits at a time.
    let mut by_col = vec![vec![0u64; col_words]; cols];
    let mut block = [0u64; 64];
    for rb in 0..col_words {
        for cb in 0..row_words {
            for (k, b) in block.iter_mut().enumerate() {
                *b = by_row.get(rb * 64 + k).map_or(0, |r| r[cb]);
            }
            transpose64(&mut block);
            for (k, &b) in block.iter().enumerate() {
                if let Some(col) = by_col.get_mut(cb * 64 + k) {
                    col[rb] = b;
                }
            }
        }
    }
    most_repeated(&mut by_row) as f64 >= fraction * rows as f64
        || most_repeated(&mut by_col) as f64 >= fraction * cols as f64
}

/// Transposes a 64×64 bit matrix (word `k` = row `k`, bit `j` = column `j`) in place, by
/// swapping ever smaller off-diagonal blocks.
fn transpose64(m: &mut [u64; 64]) {
    let mut width = 32;
    let mut mask: u64 = 0x0000_0000_FFFF_FFFF;
    while width != 0 {
        let mut k = 0;
        while k < 64 {
            // Rows k and k + width: swap the high `width` bits of row k with the low
            // `width` bits of row k + width.
            let t = ((m[k] >> width) ^ m[k + width]) & mask;
            m[k] ^= t << width;
            m[k + width] ^= t;
            k = (k + width + 1) & !width;
        }
        width >>= 1;
        mask ^= mask << width;
    }
}

/// Why [`preprocess_pyrabani`] rejected a scan (the reference's messages).
#[derive(Clone, Debug, PartialEq)]
pub enum Rejection {
    /// "Noisy image": too many single-valued or outlier rows.
    Noisy(NoiseReport),
    /// "Flat binarisation": one row or column pattern dominates the binary image.
    FlatBinarisation,
}

/// The output of the reference preprocessing chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocessed {
    /// The levelled image, normalised to [0, 1].
    pub levelled: Array2<f64>,
    /// The two 3-class multi-Otsu thresholds (1000 bins) of `levelled`.
    pub thresholds: Vec<f64>,
    /// `levelled > thresholds[0]`.
    pub binary: Array2<bool>,
}

/// The screening code's preprocessing chain (module docs): `Ok(Ok(..))` for a scan that
/// passes, `Ok(Err(rejection))` for one the reference would reject.
///
/// # Errors
/// Flat or non-finite images, images too small for the degree-5 fits, levelled images
/// with fewer than three grey levels.
pub fn preprocess_pyrabani<S: Data<Elem = f64>>(
    image: &ArrayBase<S, Ix2>,
) -> Result<std::result::Result<Preprocessed, Rejection>> {
    // One working copy, every step in place.
    let mut work = image.as_standard_layout().into_owned();
    normalize_in_place(&mut work)?;
    align_in_place(&mut work, 1000)?;
    let noise = noisy_rows(&work, NoiseRule::PyRabani);
    if noise.noisy {
        return Ok(Err(Rejection::Noisy(noise)));
    }
    flatten_in_place(&mut work, 5)?;
    normalize_in_place(&mut work)?;
    let levelled = work;
    let thresholds = threshold_multiotsu(&levelled, 3, 1000)?;
    let binary = levelled.mapv(|v| v > thresholds[0]);
    if binarization_is_flat(&binary, 0.8) {
        return Ok(Err(Rejection::FlatBinarisation));
    }
    Ok(Ok(Preprocessed { levelled, thresholds, binary }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn polynomial_fits_reproduce_polynomials() {
        let y = Array1::from_shape_fn(50, |k| {
            let x = k as f64;
            3.0 - 0.5 * x + 0.01 * x * x - 2e-4 * x.powi(3)
        });
        let fit = polynomial_fit_values(y.view(), 3).unwrap();
        for (a, b) in fit.iter().zip(&y) {
            assert!((a - b).abs() < 1e-9 * y.iter().fold(0.0f64, |m, v| m.max(v.abs())));
        }
        assert!(polynomial_fit_values(y.view(), 50).is_err());
    }

    #[test]
    fn alignment_removes_constant_row_offsets() {
        let base = Array2::from_shape_fn((6, 40), |(_, c)| (c as f64 * 0.3).sin());
        let mut shifted = base.clone();
        for (r, mut row) in shifted.outer_iter_mut().enumerate() {
            row.mapv_inplace(|v| v + r as f64 * 0.7);
        }
        let aligned = align_rows_median_of_differences_binned(&shifted, 1000).unwrap();
        for (a, b) in aligned.iter().zip(&base) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn bit_transpose_is_a_transpose() {
        let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(9);
        let mut m = [0u64; 64];
        m.iter_mut().for_each(|w| *w = rng.next_u64());
        let original = m;
        transpose64(&mut m);
        for (i, row) in m.iter().enumerate() {
            for (j, col) in original.iter().enumerate() {
                assert_eq!((row >> j) & 1, (col >> i) & 1);
            }
        }
        // Repeated columns are found through the transpose: 100 of 130 columns equal.
        let pattern: Vec<bool> = (0..70).map(|_| rng.bernoulli(0.5)).collect();
        let mut img = Array2::from_shape_fn((70, 130), |_| rng.bernoulli(0.5));
        for c in 0..100 {
            for r in 0..70 {
                img[[r, c]] = pattern[r];
            }
        }
        assert!(binarization_is_flat(&img, 0.75)); // 100 ≥ 0.75·130
        assert!(!binarization_is_flat(&img, 0.8)); // 100 < 0.8·130 = 104
    }

    #[test]
    fn flat_and_noisy_inputs_are_reported() {
        assert!(normalize_min_max(&Array2::<f64>::ones((3, 3))).is_err());
        assert!(normalize_min_max(&array![[0.0, f64::NAN]]).is_err());
        let mut img = Array2::from_shape_fn((20, 20), |(r, c)| ((r * 7 + c * 3) % 11) as f64 / 10.0);
        img.row_mut(4).fill(0.5);
        let report = noisy_rows(&img, NoiseRule::PyRabani);
        assert_eq!(report.single_valued, vec![4]);
        assert!(report.noisy); // 1 of 20 rows = 5 %
        let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(4);
        let speckle = Array2::from_shape_fn((10, 10), |_| rng.bernoulli(0.5));
        assert!(!binarization_is_flat(&speckle, 0.8));
        // Horizontal stripes: every column is the same pattern.
        assert!(binarization_is_flat(&Array2::from_shape_fn((10, 10), |(r, _)| r % 2 == 0), 0.8));
    }
}
