//! Otsu and multi-Otsu thresholds, equal to scikit-image's `threshold_otsu` and
//! `threshold_multiotsu` (0.26) bit for bit, histogram included.
//!
//! **Histogram** (`skimage.exposure.histogram(source_range='image')`):
//! * integer images: one bin per integer from the minimum to the maximum (`nbins` is
//!   ignored), centres at the integers;
//! * float images: `nbins` equal bins from the minimum to the maximum (±0.5 when they are
//!   equal) as `np.histogram` makes them, in the image's own precision: edges by
//!   `linspace` (`start + i·step`, the last edge exactly the maximum), the bin of `x` by
//!   `⌊(x − min)/(max − min)·nbins⌋` corrected by comparison with the edges, the last bin
//!   closed; centres are the midpoints of the edges.
//!
//! **Multi-Otsu** (Liao, Chen & Chung 2001) maximises the between-class variance
//! `Σ S_c²/P_c` over `classes − 1` thresholds by exhaustive search over a look-up table
//! of class terms, in float32 arithmetic with scikit-image's summation order and its two
//! quirks (the first moment of bin 0 weighs it by 1; the class term of the single bin 0
//! is 0), the first maximum in lexicographic order winning. Thresholds are bin centres;
//! a pixel equal to a threshold belongs to the upper class ([`digitize`]). The search
//! costs `O(bins^(classes−1))`, like scikit-image's; the first threshold's range is
//! split across threads (rayon), which does not change the result.
//!
//! **Otsu** (two classes) follows `threshold_otsu`'s own formula (cumulative weights in
//! float32, class means in the centres' precision), which can differ from multi-Otsu with
//! two classes.

use crate::{Error, Result};
use ndarray::{Array2, ArrayBase, Data, Ix2};
use rayon::prelude::*;

/// Pixel types with scikit-image's histogram semantics.
pub trait Pixel: Copy + PartialOrd + Send + Sync + 'static {
    /// Integer images get one bin per integer value.
    const INTEGER: bool;
    /// Float32 images are binned in float32 arithmetic, the others in float64.
    const SINGLE: bool;
    /// The value as `f64` (exact for every implementing type).
    fn to_f64(self) -> f64;
    /// The value as `f32` (used only for float32 images).
    fn to_f32(self) -> f32 {
        self.to_f64() as f32
    }
    /// The pixels themselves when they are `f64` (read without a copy).
    fn as_f64_slice(_pixels: &[Self]) -> Option<&[f64]> {
        None
    }
    /// The pixels themselves when they are `f32`.
    fn as_f32_slice(_pixels: &[Self]) -> Option<&[f32]> {
        None
    }
}

macro_rules! integer_pixel {
    ($($t:ty),*) => {$(
        impl Pixel for $t {
            const INTEGER: bool = true;
            const SINGLE: bool = false;
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
integer_pixel!(u8, u16, u32, i8, i16, i32);

impl Pixel for f32 {
    const INTEGER: bool = false;
    const SINGLE: bool = true;
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn as_f32_slice(pixels: &[Self]) -> Option<&[f32]> {
        Some(pixels)
    }
}

impl Pixel for f64 {
    const INTEGER: bool = false;
    const SINGLE: bool = false;
    fn to_f64(self) -> f64 {
        self
    }
    fn as_f64_slice(pixels: &[Self]) -> Option<&[f64]> {
        Some(pixels)
    }
}

/// A histogram: pixel counts per bin and the bins' centres.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Pixels per bin.
    pub counts: Vec<u64>,
    /// Bin centres, in the image's units.
    pub centres: Vec<f64>,
}

/// Float arithmetic in the image's precision.
pub(crate) trait Real: Copy + PartialOrd + std::ops::Sub<Output = Self> + std::ops::Add<Output = Self> {
    fn from_usize(v: usize) -> Self;
    fn from_i64(v: i64) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    fn half(self) -> Self;
    fn trunc_i64(self) -> i64;
    /// The nearest integer to `self` (ties to even) as `i32` and in precision `Self`, by
    /// the round-to-nearest of an added `1.5·2^p` (`p` the mantissa width), which
    /// vectorises on baseline x86-64 where conversions do not. Valid for
    /// `|self| < GUESS_LIMIT`.
    fn round_guess(self) -> (i32, Self);
    const GUESS_LIMIT: usize;
    fn f64(self) -> f64;
    fn is_finite(self) -> bool;
    fn abs(self) -> Self;
    const EPS: Self;
}

macro_rules! real {
    ($t:ty, $limit:expr) => {
        impl Real for $t {
            fn from_usize(v: usize) -> Self {
                v as $t
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn div(self, o: Self) -> Self {
                self / o
            }
            fn half(self) -> Self {
                self / 2.0
            }
            fn trunc_i64(self) -> i64 {
                self as i64
            }
            fn round_guess(self) -> (i32, Self) {
                // 1.5·2^p: adding it rounds to an integer, stored in the low mantissa bits.
                const MAGIC: $t = 1.5 * (1u64 << (<$t>::MANTISSA_DIGITS - 1)) as $t;
                let y = self + MAGIC;
                (y.to_bits().wrapping_sub(MAGIC.to_bits()) as i32, y - MAGIC)
            }
            const GUESS_LIMIT: usize = $limit;
            fn f64(self) -> f64 {
                self as f64
            }
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            const EPS: Self = <$t>::EPSILON;
        }
    };
}
real!(f32, 1 << 20);
real!(f64, 1 << 30);

/// Smallest and largest value, or a non-finite value found.
#[allow(clippy::eq_op)] // `v − v` is the finiteness test
pub(crate) fn range_of<R: Real + Send + Sync>(values: &[R]) -> std::result::Result<(R, R), R> {
    let zero = R::from_usize(0);
    values
        .par_chunks(1 << 15)
        .map(|chunk| {
            // Four independent lanes the compiler can vectorise; `v − v` is 0 for finite
            // values and NaN for NaN and ±inf, so `bad` stays 0 only on finite data.
            let (mut lo, mut hi, mut bad) = ([chunk[0]; 4], [chunk[0]; 4], [zero; 4]);
            let mut quads = chunk.chunks_exact(4);
            for q in quads.by_ref() {
                for j in 0..4 {
                    lo[j] = if q[j] < lo[j] { q[j] } else { lo[j] };
                    hi[j] = if q[j] > hi[j] { q[j] } else { hi[j] };
                    bad[j] = bad[j] + (q[j] - q[j]);
                }
            }
            for &v in quads.remainder() {
                lo[0] = if v < lo[0] { v } else { lo[0] };
                hi[0] = if v > hi[0] { v } else { hi[0] };
                bad[0] = bad[0] + (v - v);
            }
            if bad.iter().all(|&b| b == zero) {
                let lo = lo.into_iter().fold(lo[0], |a, b| if b < a { b } else { a });
                let hi = hi.into_iter().fold(hi[0], |a, b| if b > a { b } else { a });
                Ok((lo, hi))
            } else {
                Err(chunk.iter().copied().find(|v| !v.is_finite()).unwrap_or(lo[0]))
            }
        })
        .reduce_with(|a, b| match (a, b) {
            (Ok((l1, h1)), Ok((l2, h2))) => Ok((if l2 < l1 { l2 } else { l1 }, if h2 > h1 { h2 } else { h1 })),
            (Err(e), _) | (_, Err(e)) => Err(e),
        })
        .unwrap_or(Err(values[0]))
}

/// `np.histogram(values, nbins)` over the range of the data, in precision `R`; the values
/// must be finite and non-empty.
fn float_histogram<R: Real + Send + Sync>(values: &[R], (mut first, mut last): (R, R), nbins: usize) -> Histogram {
    if first == last {
        let half = R::from_usize(1).half();
        (first, last) = (first - half, last + half);
    }
    // np.linspace(first, last, nbins + 1) in precision R.
    let step = (last - first).div(R::from_usize(nbins));
    let mut edges: Vec<R> = (0..=nbins).map(|i| R::from_usize(i).mul(step) + first).collect();
    edges[nbins] = last;
    // numpy guesses the bin as ⌊(x − first)/(last − first)·nbins⌋ and corrects it by one
    // against the edges; a guess by multiplication with the reciprocal differs from
    // numpy's by at most one near a bin boundary, which the same correction removes, so
    // the bins are numpy's.
    let scale = R::from_usize(nbins).div(last - first);
    let edges = &edges[..=nbins];
    // How far (in bins) the computed edges and guesses can stray from the exact ones: a
    // few rounding errors of the largest value and of the guess, with a wide safety
    // factor. A guess whose fractional part is farther than this from 0 and 1 is the
    // edge-consistent bin already; with a margin of a quarter bin or more (ranges of a few
    // ulps) every pixel is checked against the edges.
    let (one, mag) = (R::from_usize(1), if first.abs() > last.abs() { first.abs() } else { last.abs() });
    let sixteen = R::from_usize(16);
    let mut margin = sixteen.mul(R::EPS).mul(mag.mul(scale) + R::from_usize(nbins));
    let usable = margin < one.div(R::from_usize(4)); // false for NaN too
    if !usable {
        margin = one; // never "far from a boundary"
    }
    // Bins for blocks of pixels first (a loop the compiler vectorises: the guess, its
    // fractional part and whether any pixel lies near a boundary), the edge check only for
    // blocks that need it, then the counting.
    let small = nbins < R::GUESS_LIMIT;
    let counts = values
        .par_chunks(1 << 16)
        // `move`: the loop's constants become locals the stores cannot alias.
        .map(move |chunk| {
            // Four sets of counters, used in turn: runs of equal bins (smooth images)
            // would otherwise wait on the previous increment of the same counter.
            let mut counts = vec![0u32; 4 * nbins];
            let mut ks = [0u32; 256];
            let edge_check = |x: R, k: &mut usize| {
                if x < edges[*k] {
                    *k -= 1;
                } else if *k != nbins - 1 && x >= edges[*k + 1] {
                    *k += 1;
                }
            };
            if small {
                // f − ½ = x·scale − (first·scale + ½): the guess is the nearest integer of
                // it and d = f − ½ − guess = frac − ½, so "near a boundary" is
                // |d| ≥ ½ − margin. Rounding x·scale and first·scale separately moves f
                // by a few ulps of |x|·scale, well inside the margin.
                let offset = first.mul(scale) + one.half();
                let limit = one.half() - margin;
                for block in chunk.chunks(256) {
                    let ks = &mut ks[..block.len()];
                    let mut near = false;
                    for (k, &x) in ks.iter_mut().zip(block) {
                        let g = x.mul(scale) - offset;
                        let (whole, whole_r) = g.round_guess();
                        near |= (g - whole_r).abs() >= limit;
                        // The guess lies in −1 ..= nbins; −1 (x = first, rounded down)
                        // and `nbins` (x = last) are near a boundary and clamped below.
                        *k = whole as u32;
                    }
                    if near {
                        for (k, &x) in ks.iter_mut().zip(block) {
                            let mut kk = (*k as i32).clamp(0, nbins as i32 - 1) as usize;
                            edge_check(x, &mut kk);
                            *k = kk as u32;
                        }
                    }
                    let (c0, rest) = counts.split_at_mut(nbins);
                    let (c1, rest) = rest.split_at_mut(nbins);
                    let (c2, c3) = rest.split_at_mut(nbins);
                    let mut quads = ks.chunks_exact(4);
                    for q in quads.by_ref() {
                        c0[q[0] as usize] += 1;
                        c1[q[1] as usize] += 1;
                        c2[q[2] as usize] += 1;
                        c3[q[3] as usize] += 1;
                    }
                    for &k in quads.remainder() {
                        c0[k as usize] += 1;
                    }
                }
            } else {
                for (i, &x) in chunk.iter().enumerate() {
                    let f = (x - first).mul(scale);
                    // Truncation through an integer: `f.trunc()` is a libm call on
                    // baseline x86-64.
                    let whole = f.trunc_i64();
                    let frac = f - R::from_i64(whole);
                    let mut k = (whole.max(0) as usize).min(nbins - 1);
                    // Far from a bin boundary the guess is the bin; near one, check the edges.
                    if !(frac > margin && frac < one - margin) {
                        edge_check(x, &mut k);
                    }
                    counts[(i & 3) * nbins + k] += 1;
                }
            }
            let mut total = vec![0u64; nbins];
            for part in counts.chunks_exact(nbins) {
                total.iter_mut().zip(part).for_each(|(t, &c)| *t += u64::from(c));
            }
            total
        })
        .reduce(
            || vec![0u64; nbins],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let centres = edges.windows(2).map(|w| (w[0] + w[1]).half().f64()).collect();
    Histogram { counts, centres }
}

/// [`float_histogram`] of an image in precision `R`, without copying contiguous images.
fn image_histogram<R: Real + Send + Sync, T: Pixel, S: Data<Elem = T>>(
    image: &ArrayBase<S, Ix2>,
    convert: impl Fn(T) -> R,
    as_r: impl Fn(&[T]) -> Option<&[R]>,
    nbins: usize,
) -> Result<Histogram> {
    let owned: Vec<R>;
    let values: &[R] = match image.as_slice().and_then(&as_r) {
        Some(v) => v,
        None => {
            owned = image.iter().map(|&v| convert(v)).collect();
            &owned
        }
    };
    match range_of(values) {
        Ok(range) => Ok(float_histogram(values, range, nbins)),
        Err(bad) => Err(Error::invalid(
            "image",
            format!("a pixel of {}", bad.f64()),
            "finite pixels (NaN and ±inf have no bin)",
        )),
    }
}

/// The histogram scikit-image's thresholds use (`skimage.exposure.histogram` with
/// `source_range='image'`; see the module docs).
///
/// # Errors
/// An empty image, `nbins == 0`, or a non-finite pixel.
pub fn histogram<T: Pixel, S: Data<Elem = T>>(image: &ArrayBase<S, Ix2>, nbins: usize) -> Result<Histogram> {
    if image.is_empty() {
        return Err(Error::invalid("image", "an empty image", "at least one pixel"));
    }
    if T::INTEGER {
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for &v in image {
            let v = v.to_f64() as i64;
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let bins =
            usize::try_from(hi - lo + 1).map_err(|_| Error::invalid("image", "its range", "a range that fits"))?;
        let mut counts = vec![0u64; bins];
        for &v in image {
            counts[(v.to_f64() as i64 - lo) as usize] += 1;
        }
        let centres = (0..bins).map(|k| (lo + k as i64) as f64).collect();
        return Ok(Histogram { counts, centres });
    }
    if nbins == 0 {
        return Err(Error::invalid("nbins", 0, "at least 1 bin"));
    }
    if T::SINGLE {
        image_histogram(image, Pixel::to_f32, T::as_f32_slice, nbins)
    } else {
        image_histogram(image, Pixel::to_f64, T::as_f64_slice, nbins)
    }
}

/// Multi-Otsu thresholds of an image: `classes − 1` increasing bin centres (see the
/// module docs), as `skimage.filters.threshold_multiotsu(image, classes, nbins)`.
///
/// ```
/// use ndarray::Array2;
/// use nanoml_spm::threshold::threshold_multiotsu;
/// let ramp = Array2::from_shape_fn((4, 256), |(_, c)| c as u8);
/// assert_eq!(threshold_multiotsu(&ramp, 3, 256)?, vec![85.0, 170.0]);
/// # Ok::<(), nanoml_spm::Error>(())
/// ```
///
/// # Errors
/// `classes` outside 2..=32, an image [`histogram`] rejects, or fewer occupied bins than
/// classes ([`Error::Unsuitable`]).
pub fn threshold_multiotsu<T: Pixel, S: Data<Elem = T>>(
    image: &ArrayBase<S, Ix2>,
    classes: usize,
    nbins: usize,
) -> Result<Vec<f64>> {
    check_classes(classes)?;
    let h = histogram(image, nbins)?;
    let total: u64 = h.counts.iter().sum();
    let prob: Vec<f32> = h.counts.iter().map(|&c| (c as f64 / total as f64) as f32).collect();
    let idx = multiotsu_indices(&prob, classes)?;
    Ok(idx.iter().map(|&i| h.centres[i]).collect())
}

/// Multi-Otsu thresholds of a given histogram, as `threshold_multiotsu(hist=(counts,
/// centres))`: leading and trailing empty bins are trimmed and the counts are used as they
/// are (float32, not normalised). Without `centres`, bins are numbered from 0.
///
/// # Errors
/// As [`threshold_multiotsu`], and centres of another length than the counts.
pub fn threshold_multiotsu_histogram(counts: &[f64], centres: Option<&[f64]>, classes: usize) -> Result<Vec<f64>> {
    check_classes(classes)?;
    if let Some(c) = centres
        && c.len() != counts.len()
    {
        return Err(Error::invalid(
            "centres",
            format!("{} centres", c.len()),
            format!("{} (one per count)", counts.len()),
        ));
    }
    if let Some(bad) = counts.iter().find(|c| !(c.is_finite() && **c >= 0.0)) {
        return Err(Error::invalid("counts", bad, "finite counts ≥ 0"));
    }
    let (mut start, mut end) = (0, counts.len());
    if counts.first() == Some(&0.0) || counts.last() == Some(&0.0) {
        start = counts.iter().position(|&c| c > 0.0).unwrap_or(0);
        end = counts.iter().rposition(|&c| c > 0.0).map_or(start, |e| e + 1);
    }
    let prob: Vec<f32> = counts[start..end].iter().map(|&c| c as f32).collect();
    let idx = multiotsu_indices(&prob, classes)?;
    Ok(idx.iter().map(|&i| centres.map_or((start + i) as f64, |c| c[start + i])).collect())
}

fn check_classes(classes: usize) -> Result<()> {
    if !(2..=32).contains(&classes) {
        return Err(Error::invalid("classes", classes, "2 ..= 32"));
    }
    Ok(())
}

/// Largest look-up table (entries) before the search computes class terms on the fly,
/// as scikit-image does when allocating it fails.
const LUT_LIMIT: usize = 1 << 27;

/// Threshold bin indices maximising the between-class variance (module docs).
fn multiotsu_indices(prob: &[f32], classes: usize) -> Result<Vec<usize>> {
    let n = prob.len();
    let occupied = prob.iter().filter(|&&p| p != 0.0).count();
    if occupied < classes {
        return Err(Error::Unsuitable {
            what: "multi-Otsu thresholds",
            reason: format!(
                "after binning the image has only {occupied} different values, fewer than the {classes} classes asked for (more bins may help)"
            ),
        });
    }
    if occupied == classes {
        let mut idx: Vec<usize> = (0..n).filter(|&i| prob[i] != 0.0).collect();
        idx.pop();
        return Ok(idx);
    }
    // Cumulative zeroth and first moments, float32, bin 0 weighted by 1 (scikit-image).
    let (mut p, mut s) = (vec![0f32; n], vec![0f32; n]);
    p[0] = prob[0];
    s[0] = prob[0];
    for i in 1..n {
        p[i] = p[i - 1] + prob[i];
        s[i] = s[i - 1] + i as f32 * prob[i];
    }
    let m = classes - 1;
    // Class term h(i, j) = (S_j − S_{i−1})² / (P_j − P_{i−1}), 0 for an empty class. For
    // classes starting at bin 0 scikit-image's table (`lut`) leaves h(0, 0) at 0 and tests
    // P[j]; its fallback without a table tests P[0] and does give h(0, 0). The same
    // float32 operations give the same bits whether tabulated or computed when needed.
    let term = |i: usize, j: usize, lut: bool| -> f32 {
        if i == 0 {
            let occupied = if lut { j > 0 && p[j] > 0.0 } else { p[0] > 0.0 };
            if occupied { s[j] * s[j] / p[j] } else { 0.0 }
        } else {
            let pij = p[j] - p[i - 1];
            if pij > 0.0 {
                let sij = s[j] - s[i - 1];
                sij * sij / pij
            } else {
                0.0
            }
        }
    };
    let h = |i: usize, j: usize| term(i, j, true);
    let best = if m <= 2 {
        // Each inner term is used once: compute it when needed (the terms from bin 0
        // recur and are tabulated).
        let from_zero: Vec<f32> = (0..n).map(|j| h(0, j)).collect();
        // Rows without a branch per term, so that the divisions vectorise (the same
        // float32 operations, so the same bits; a class with P ≤ 0 gets 0).
        let fill = |i: usize, js: std::ops::Range<usize>, out: &mut Vec<f32>| {
            let (p0, s0) = (p[i - 1], s[i - 1]);
            out.extend(p[js.clone()].iter().zip(&s[js]).map(|(&pj, &sj)| {
                let (pij, sij) = (pj - p0, sj - s0);
                let v = sij * sij / pij;
                if pij > 0.0 { v } else { 0.0 }
            }));
        };
        search(n, m, |i, j| if i == 0 { from_zero[j] } else { h(i, j) }, fill)
    } else if n * (n + 1) / 2 <= LUT_LIMIT {
        // Row i holds h(i, j) for j = i..n (rows built in parallel).
        let rows: Vec<Vec<f32>> = (0..n).into_par_iter().map(|i| (i..n).map(|j| h(i, j)).collect()).collect();
        search(
            n,
            m,
            |i, j| rows[i][j - i],
            |i, js, out: &mut Vec<f32>| out.extend_from_slice(&rows[i][js.start - i..js.end - i]),
        )
    } else {
        // scikit-image's fallback without a table (see `term`).
        let fallback = |i: usize, j: usize| term(i, j, false);
        search(n, m, fallback, |i, js, out: &mut Vec<f32>| out.extend(js.map(|j| fallback(i, j))))
    };
    Ok(best.unwrap_or_else(|| (0..m).collect()))
}

/// The first maximum, in lexicographic order, of the between-class variance over
/// thresholds `t0 < t1 < … < t_{m−1} ≤ n − 2`, summed in float32 as scikit-image sums it
/// (`h(0, t0) + h(t_{m−1} + 1, n − 1) + Σ_k h(t_k + 1, t_{k+1})`); `None` if no
/// combination beats 0. `term(i, j)` is `h(i, j)`; `fill_row(i, js, out)` appends
/// `h(i, j)` for `j` in `js`. The first threshold's values are
/// spread over threads and the per-value bests merged in order, which keeps the first
/// maximum. For each prefix `t_0 … t_{m−2}` the terms that do not depend on the last
/// threshold are evaluated once, and the varying ones read from contiguous buffers.
fn search(
    n: usize,
    m: usize,
    term: impl Fn(usize, usize) -> f32 + Sync,
    fill_row: impl Fn(usize, std::ops::Range<usize>, &mut Vec<f32>) + Sync,
) -> Option<Vec<usize>> {
    let to_end: Vec<f32> = (0..n).map(|i| term(i, n - 1)).collect();
    (0..n - m)
        .into_par_iter()
        .map(|t0| {
            let mut t: Vec<usize> = (0..m).map(|k| t0 + k).collect();
            // The best so far: its prefix t[..m − 1] and its last threshold.
            let (mut best_sigma, mut best_prefix, mut best_last) = (0f32, vec![0; m - 1], None);
            let head = term(0, t0);
            let (mut sig, mut row) = (Vec::with_capacity(n), Vec::with_capacity(n));
            loop {
                // The best (σ, last threshold) of this prefix, if it beats the best so far.
                let mut found = None;
                if m == 1 {
                    let sigma = head + to_end[t0 + 1];
                    if sigma > best_sigma {
                        found = Some((sigma, t0));
                    }
                } else {
                    // h(t_k + 1, t_{k+1}) for k < m − 2, and h(b + 1, last) for every last.
                    let b = t[m - 2];
                    row.clear();
                    fill_row(b + 1, b + 1..n - 1, &mut row);
                    // σ for every last threshold, summed in scikit-image's order
                    // (head + tail, then the middle terms, then the last one), one pass
                    // per term so that each pass vectorises.
                    sig.clear();
                    sig.extend(to_end[b + 2..n].iter().map(|&tail| head + tail));
                    for k in 0..m - 2 {
                        let v = term(t[k] + 1, t[k + 1]);
                        sig.iter_mut().for_each(|x| *x += v);
                    }
                    sig.iter_mut().zip(&row).for_each(|(x, &last_term)| *x += last_term);
                    let (top, off) = argmax_f32(&sig);
                    if top > best_sigma {
                        found = Some((top, b + 1 + off));
                    }
                }
                if let Some((sigma, last)) = found {
                    best_sigma = sigma;
                    best_last = Some(last);
                    best_prefix.copy_from_slice(&t[..m - 1]);
                }
                // Next prefix: the last index before the final one that can still grow.
                let Some(k) = (1..m - 1).rev().find(|&k| t[k] < n - m + k - 1) else { break };
                t[k] += 1;
                for q in k + 1..m - 1 {
                    t[q] = t[q - 1] + 1;
                }
            }
            let best = best_last.map(|last| {
                best_prefix.push(last);
                best_prefix
            });
            (best_sigma, best)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold((0f32, None), |acc, (sigma, t)| if t.is_some() && sigma > acc.0 { (sigma, t) } else { acc })
        .1
}

/// The largest value of finite `v` and the index of its first occurrence
/// (`(f32::MIN, 0)` for an empty slice), in eight lanes the compiler vectorises: each
/// lane keeps its first maximum, and of equal lane maxima the smallest index wins.
fn argmax_f32(v: &[f32]) -> (f32, usize) {
    let mut lanes = [f32::MIN; 8];
    let mut at = [0u32; 8];
    let mut chunks = v.chunks_exact(8);
    let mut base = 0u32;
    for c in chunks.by_ref() {
        for j in 0..8 {
            let better = c[j] > lanes[j];
            lanes[j] = if better { c[j] } else { lanes[j] };
            at[j] = if better { base + j as u32 } else { at[j] };
        }
        base += 8;
    }
    let mut best = (f32::MIN, 0usize);
    for (off, &x) in chunks.remainder().iter().enumerate() {
        if x > best.0 {
            best = (x, base as usize + off);
        }
    }
    for j in 0..8 {
        let (x, i) = (lanes[j], at[j] as usize);
        if x > best.0 || (x == best.0 && i < best.1) {
            best = (x, i);
        }
    }
    best
}

/// Otsu's threshold, as `skimage.filters.threshold_otsu(image, nbins)`: a uniform image
/// returns its value.
///
/// # Errors
/// As [`histogram`].
pub fn threshold_otsu<T: Pixel, S: Data<Elem = T>>(image: &ArrayBase<S, Ix2>, nbins: usize) -> Result<f64> {
    let first =
        image.iter().next().copied().ok_or_else(|| Error::invalid("image", "an empty image", "at least one pixel"))?;
    if image.iter().all(|&v| v == first) {
        return Ok(first.to_f64());
    }
    let h = histogram(image, nbins)?;
    // Cumulative weights in float32 (the counts are cast to float32); moments in the
    // centres' precision: float32 for float32 images, float64 otherwise.
    let counts: Vec<f32> = h.counts.iter().map(|&c| c as f32).collect();
    let n = counts.len();
    let cumsum = |v: &mut dyn Iterator<Item = f32>| -> Vec<f32> {
        let mut acc = 0f32;
        v.map(|x| {
            acc += x;
            acc
        })
        .collect()
    };
    let w1 = cumsum(&mut counts.iter().copied());
    let mut w2 = cumsum(&mut counts.iter().rev().copied());
    w2.reverse();
    let idx = if T::SINGLE {
        let c: Vec<f32> = h.centres.iter().map(|&c| c as f32).collect();
        let mut m1 = cumsum(&mut counts.iter().zip(&c).map(|(a, b)| a * b));
        m1.iter_mut().zip(&w1).for_each(|(m, w)| *m /= w);
        let mut m2 = cumsum(&mut counts.iter().zip(&c).rev().map(|(a, b)| a * b));
        m2.iter_mut().zip(w2.iter().rev()).for_each(|(m, w)| *m /= w);
        m2.reverse();
        argmax((0..n - 1).map(|i| {
            let d = m1[i] - m2[i + 1];
            w1[i] * w2[i + 1] * (d * d)
        }))
    } else {
        let mut acc = 0f64;
        let m1: Vec<f64> = counts
            .iter()
            .zip(&h.centres)
            .zip(&w1)
            .map(|((&a, &b), &w)| {
                acc += f64::from(a) * b;
                acc / f64::from(w)
            })
            .collect();
        let mut acc = 0f64;
        let mut m2: Vec<f64> = counts
            .iter()
            .zip(&h.centres)
            .rev()
            .zip(w2.iter().rev())
            .map(|((&a, &b), &w)| {
                acc += f64::from(a) * b;
                acc / f64::from(w)
            })
            .collect();
        m2.reverse();
        argmax((0..n - 1).map(|i| {
            let d = m1[i] - m2[i + 1];
            f64::from(w1[i] * w2[i + 1]) * (d * d)
        }))
    };
    Ok(h.centres[idx])
}

/// Index of the first maximum (as `np.argmax`).
fn argmax<F: PartialOrd>(values: impl Iterator<Item = F>) -> usize {
    let mut best: Option<(usize, F)> = None;
    for (i, v) in values.enumerate() {
        if best.as_ref().is_none_or(|(_, b)| v > *b) {
            best = Some((i, v));
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// Class of every pixel: the number of thresholds at or below it (`np.digitize(image,
/// thresholds)`), so a pixel equal to a threshold goes up.
pub fn digitize<T: Pixel, S: Data<Elem = T>>(image: &ArrayBase<S, Ix2>, thresholds: &[f64]) -> Array2<u8> {
    image.map(|&v| {
        let x = v.to_f64();
        thresholds.iter().take_while(|&&t| t <= x).count() as u8
    })
}

/// Foreground where the pixel lies strictly above `threshold` (the screening code's
/// `image > t`).
pub fn binarize<T: Pixel, S: Data<Elem = T>>(image: &ArrayBase<S, Ix2>, threshold: f64) -> Array2<bool> {
    image.map(|&v| v.to_f64() > threshold)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The vectorised arg-max is the first maximum (ties included: small integers).
        #[test]
        fn argmax_is_the_first_maximum(v in prop::collection::vec(0u8..6, 0..60)) {
            let v: Vec<f32> = v.into_iter().map(f32::from).collect();
            let mut want = (f32::MIN, 0);
            for (i, &x) in v.iter().enumerate() {
                if x > want.0 {
                    want = (x, i);
                }
            }
            prop_assert_eq!(argmax_f32(&v), want);
        }

        /// Histograms of random data with few distinct values (every pixel on a bin
        /// boundary or near one) count every pixel once, in the bin the edges give.
        #[test]
        fn histogram_bins_follow_the_edges(v in prop::collection::vec(0u8..20, 1..3000), nbins in 1usize..40, scale in 0.001f64..1000.0) {
            let img = Array2::from_shape_vec((1, v.len()), v.iter().map(|&x| f64::from(x) * scale).collect()).unwrap();
            let h = histogram(&img, nbins).unwrap();
            prop_assert_eq!(h.counts.iter().sum::<u64>(), v.len() as u64);
            let (lo, hi) = img.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
            let step = (hi - lo) / nbins as f64;
            let edges: Vec<f64> = (0..=nbins).map(|i| if i == nbins { hi } else { i as f64 * step + lo }).collect();
            let mut want = vec![0u64; nbins];
            for &x in img.iter() {
                let k = edges[1..nbins].iter().take_while(|&&e| x >= e).count();
                want[k] += 1;
            }
            prop_assert_eq!(h.counts, want);
        }

        /// The same in single precision (edges and bins in float32, as numpy computes them
        /// for float32 images).
        #[test]
        fn float32_histogram_bins_follow_the_edges(v in prop::collection::vec(0u8..20, 1..3000), nbins in 1usize..40, scale in 0.001f32..1000.0) {
            let img = Array2::from_shape_vec((1, v.len()), v.iter().map(|&x| f32::from(x) * scale).collect()).unwrap();
            let h = histogram(&img, nbins).unwrap();
            let (lo, hi) = img.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            let (lo, hi) = if lo == hi { (lo - 0.5, hi + 0.5) } else { (lo, hi) };
            let step = (hi - lo) / nbins as f32;
            let edges: Vec<f32> = (0..=nbins).map(|i| if i == nbins { hi } else { i as f32 * step + lo }).collect();
            let mut want = vec![0u64; nbins];
            for &x in img.iter() {
                want[edges[1..nbins].iter().take_while(|&&e| x >= e).count()] += 1;
            }
            prop_assert_eq!(h.counts, want);
        }
    }
    use super::*;
    use ndarray::array;

    #[test]
    fn reference_check_values_from_the_notes() {
        let ramp = Array2::from_shape_fn((4, 256), |(_, c)| c as u8);
        assert_eq!(threshold_multiotsu(&ramp, 3, 256).unwrap(), vec![85.0, 170.0]);
        let lin = Array2::from_shape_fn((1, 1000), |(_, c)| c as f64 / 999.0);
        let t = threshold_multiotsu(&lin, 3, 256).unwrap();
        assert_eq!(t.iter().map(|&v| v as f32).collect::<Vec<_>>(), vec![0.330_078_12, 0.666_015_6]);
        assert_eq!(threshold_multiotsu(&array![[0u8, 0, 1, 1], [2, 2, 3, 3]], 3, 256).unwrap(), vec![1.0, 2.0]);
    }

    #[test]
    fn too_few_levels_and_bad_parameters_are_errors() {
        let two = array![[0u8, 1], [1, 0]];
        assert!(matches!(threshold_multiotsu(&two, 3, 256), Err(Error::Unsuitable { .. })));
        assert!(threshold_multiotsu(&two, 1, 256).is_err());
        assert!(threshold_multiotsu(&array![[0.0, f64::NAN]], 2, 256).is_err());
        assert!(threshold_multiotsu(&Array2::<f64>::zeros((0, 3)), 2, 256).is_err());
        assert!(threshold_multiotsu(&array![[0.0, 1.0]], 2, 0).is_err());
        assert!(threshold_multiotsu_histogram(&[1.0, 2.0], Some(&[0.0]), 2).is_err());
    }

    #[test]
    fn digitize_sends_ties_up() {
        let img = array![[0.0, 1.0, 1.5, 2.0, 3.0]];
        assert_eq!(digitize(&img, &[1.0, 2.0]), array![[0u8, 1, 1, 2, 2]]);
        assert_eq!(binarize(&img, 1.0), array![[false, false, true, true, true]]);
    }
}
