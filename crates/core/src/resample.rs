//! Resampling of images to a new shape: nearest neighbour and bilinear.
//!
//! # Conventions
//! Pixel `i` of an axis of length `n` covers `[i, i + 1)` and has its centre at `i + 0.5`;
//! output pixel centres are mapped onto the input by the ratio of lengths, so the image
//! edges stay aligned (the convention of `skimage.transform.resize` and of OpenCV's
//! `INTER_LINEAR`). Bilinear sampling clamps at the edges, which equals
//! `skimage.transform.resize(order=1, anti_aliasing=False)` in its `edge`, `reflect` and
//! `symmetric` modes. Nearest neighbour takes input pixel `⌊(i + 0.5)·n_in/n_out⌋`: an
//! integer up-scaling factor therefore replicates every pixel into an exact block.
//! No anti-aliasing filter is applied when shrinking.

use crate::{Error, Result};
use ndarray::{Array2, ArrayView2};
use num_traits::Float;
use rayon::prelude::*;

/// How to interpolate between pixel centres.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Interpolation {
    /// The nearest input pixel (labels, masks, lattice states).
    Nearest,
    /// Bilinear interpolation of the four nearest pixel centres.
    #[default]
    Bilinear,
}

fn check(op: &'static str, input: (usize, usize), output: (usize, usize)) -> Result<()> {
    if input.0 == 0 || input.1 == 0 {
        return Err(Error::EmptyInput { op, name: "image" });
    }
    if output.0 == 0 || output.1 == 0 {
        return Err(Error::invalid("shape", format!("{output:?}"), "both sides >= 1"));
    }
    Ok(())
}

/// Source index of each output index for nearest-neighbour resampling along one axis.
fn nearest_indices(n_in: usize, n_out: usize) -> Vec<usize> {
    (0..n_out)
        .map(|i| {
            // Exact integer arithmetic: floor((2i + 1)·n_in / (2·n_out)).
            let num = (2 * i as u128 + 1) * n_in as u128;
            ((num / (2 * n_out as u128)) as usize).min(n_in - 1)
        })
        .collect()
}

/// Resizes with the nearest input pixel; works for any element type.
///
/// ```
/// use ndarray::array;
/// use nanoml_core::resample::resize_nearest;
/// let a = array![[1u8, 2], [3, 4]];
/// let b = resize_nearest(a.view(), (4, 4))?;
/// assert_eq!(b, array![[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]);
/// # Ok::<(), nanoml_core::Error>(())
/// ```
///
/// # Errors
/// [`Error::EmptyInput`] for an empty image, [`Error::InvalidParameter`] for a zero-sized
/// `shape`.
pub fn resize_nearest<T: Clone>(image: ArrayView2<'_, T>, shape: (usize, usize)) -> Result<Array2<T>> {
    check("resize_nearest", image.dim(), shape)?;
    let rows = nearest_indices(image.nrows(), shape.0);
    let cols = nearest_indices(image.ncols(), shape.1);
    Ok(Array2::from_shape_fn(shape, |(r, c)| image[[rows[r], cols[c]]].clone()))
}

/// Interpolation weights along one axis: for each output index, the two input indices and
/// the weight of the second.
fn linear_taps<F: Float>(n_in: usize, n_out: usize) -> Vec<(usize, usize, F)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|i| {
            let x = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_in - 1) as f64);
            let i0 = x.floor() as usize;
            let i1 = (i0 + 1).min(n_in - 1);
            (i0, i1, F::from(x - i0 as f64).unwrap_or_else(F::zero))
        })
        .collect()
}

/// Resizes by bilinear interpolation (rows in parallel; the result does not depend on the
/// number of threads).
///
/// ```
/// use ndarray::array;
/// use nanoml_core::resample::resize_bilinear;
/// let a = array![[0.0f32, 1.0], [2.0, 3.0]];
/// let b = resize_bilinear(a.view(), (4, 4))?;
/// assert_eq!(b[[0, 0]], 0.0);
/// assert_eq!(b[[0, 1]], 0.25);
/// assert_eq!(b[[3, 3]], 3.0);
/// # Ok::<(), nanoml_core::Error>(())
/// ```
///
/// # Errors
/// As [`resize_nearest`].
pub fn resize_bilinear<F: Float + Send + Sync>(image: ArrayView2<'_, F>, shape: (usize, usize)) -> Result<Array2<F>> {
    check("resize_bilinear", image.dim(), shape)?;
    let rt = linear_taps::<F>(image.nrows(), shape.0);
    let ct = linear_taps::<F>(image.ncols(), shape.1);
    let mut out = vec![F::zero(); shape.0 * shape.1];
    out.par_chunks_mut(shape.1).zip(rt.par_iter()).for_each(|(row, &(r0, r1, wr))| {
        for (o, &(c0, c1, wc)) in row.iter_mut().zip(&ct) {
            let top = image[[r0, c0]] + (image[[r0, c1]] - image[[r0, c0]]) * wc;
            let bottom = image[[r1, c0]] + (image[[r1, c1]] - image[[r1, c0]]) * wc;
            *o = top + (bottom - top) * wr;
        }
    });
    Array2::from_shape_vec(shape, out).map_err(|e| Error::format("array", e.to_string()))
}

/// Resizes a float image with the chosen [`Interpolation`].
///
/// # Errors
/// As [`resize_nearest`].
pub fn resize<F: Float + Send + Sync>(
    image: ArrayView2<'_, F>,
    shape: (usize, usize),
    interpolation: Interpolation,
) -> Result<Array2<F>> {
    match interpolation {
        Interpolation::Nearest => resize_nearest(image, shape),
        Interpolation::Bilinear => resize_bilinear(image, shape),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn nearest_integer_upscale_replicates_blocks() {
        let a = Array2::from_shape_fn((5, 3), |(r, c)| r * 3 + c);
        let b = resize_nearest(a.view(), (20, 12)).unwrap();
        for ((r, c), v) in b.indexed_iter() {
            assert_eq!(*v, a[[r / 4, c / 4]]);
        }
    }

    #[test]
    fn bilinear_reproduces_linear_ramps_inside() {
        let a = Array2::from_shape_fn((8, 8), |(r, c)| (2.0 * r as f64) + c as f64);
        let b = resize_bilinear(a.view(), (16, 16)).unwrap();
        // Output centre (i + 0.5)/2 - 0.5 in input coordinates, away from the clamped edge.
        for r in 1..15 {
            for c in 1..15 {
                let (y, x) = ((r as f64 + 0.5) / 2.0 - 0.5, (c as f64 + 0.5) / 2.0 - 0.5);
                assert!((b[[r, c]] - (2.0 * y + x)).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let a = array![[1.0f32]];
        assert!(matches!(resize_bilinear(a.view(), (0, 3)), Err(Error::InvalidParameter { name: "shape", .. })));
        let e = Array2::<f32>::zeros((0, 4));
        assert!(matches!(resize_nearest(e.view(), (2, 2)), Err(Error::EmptyInput { .. })));
    }

    proptest! {
        #[test]
        fn same_shape_is_identity(r in 1usize..20, c in 1usize..20, seed in any::<u64>()) {
            let mut rng = crate::rng::Xoshiro256PlusPlus::seed_from_u64(seed);
            let a = Array2::from_shape_fn((r, c), |_| rng.uniform_f32());
            prop_assert_eq!(resize_bilinear(a.view(), (r, c)).unwrap(), a.clone());
            prop_assert_eq!(resize_nearest(a.view(), (r, c)).unwrap(), a);
        }

        #[test]
        fn bilinear_stays_within_input_range(r in 1usize..12, c in 1usize..12, or in 1usize..30, oc in 1usize..30, seed in any::<u64>()) {
            let mut rng = crate::rng::Xoshiro256PlusPlus::seed_from_u64(seed);
            let a = Array2::from_shape_fn((r, c), |_| rng.uniform());
            let b = resize_bilinear(a.view(), (or, oc)).unwrap();
            let (lo, hi) = a.iter().fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            prop_assert!(b.iter().all(|&v| v >= lo - 1e-12 && v <= hi + 1e-12));
        }
    }
}
