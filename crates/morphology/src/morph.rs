//! Binary dilation, erosion and closing with a square structuring element.
//!
//! Borders follow `skimage.morphology.dilation/erosion/closing` with their default
//! `mode="reflect"` (scipy.ndimage's half-sample symmetric extension): the image is
//! mirrored about its edges, so objects touching the edge are neither eroded nor grown by
//! the border. `closing(mask, 3)` is pyRabani's `closing(img, square(3))`.

use crate::{Error, Result};
use ndarray::{Array2, ArrayBase, Axis, Data, Ix2};

/// Index into an axis of length `n` after half-sample symmetric reflection.
fn reflect(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period);
    if m < n as isize { m as usize } else { (period - 1 - m) as usize }
}

fn check_size(size: usize) -> Result<isize> {
    if size == 0 || size.is_multiple_of(2) {
        return Err(Error::invalid("size", size, "an odd side length >= 1 (the square is centred on the pixel)"));
    }
    Ok((size / 2) as isize)
}

/// Sliding "any" (dilation) or "all" (erosion) of a 1-D line over `2·radius + 1` samples.
fn line_filter(line: &[bool], radius: isize, any: bool, out: &mut [bool]) {
    let n = line.len();
    let hits = |v: bool| v == any;
    let mut count: isize = (-radius..=radius).map(|d| isize::from(hits(line[reflect(d, n)]))).sum();
    for i in 0..n {
        out[i] = if any { count > 0 } else { count == 0 };
        let leaving = line[reflect(i as isize - radius, n)];
        let entering = line[reflect(i as isize + radius + 1, n)];
        count += isize::from(hits(entering)) - isize::from(hits(leaving));
    }
}

fn separable(mask: &ArrayBase<impl Data<Elem = bool>, Ix2>, size: usize, any: bool) -> Result<Array2<bool>> {
    let radius = check_size(size)?;
    let mut out = mask.to_owned();
    if out.is_empty() {
        return Ok(out);
    }
    for axis in [Axis(1), Axis(0)] {
        let mut buf = vec![false; out.len_of(axis)];
        for mut lane in out.lanes_mut(axis) {
            let line: Vec<bool> = lane.to_vec();
            line_filter(&line, radius, any, &mut buf);
            lane.iter_mut().zip(&buf).for_each(|(o, &v)| *o = v);
        }
    }
    Ok(out)
}

/// Dilation with a `size`×`size` square (odd `size`), mirrored borders.
///
/// # Errors
/// [`Error::InvalidParameter`] naming `size` when it is even or zero.
pub fn dilation_square<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, size: usize) -> Result<Array2<bool>> {
    separable(mask, size, true)
}

/// Erosion with a `size`×`size` square (odd `size`), mirrored borders.
///
/// # Errors
/// As [`dilation_square`].
pub fn erosion_square<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, size: usize) -> Result<Array2<bool>> {
    separable(mask, size, false)
}

/// Closing (dilation then erosion) with a `size`×`size` square, identical to
/// `skimage.morphology.closing(mask, np.ones((size, size)))`.
///
/// ```
/// use ndarray::array;
/// use nanoml_morphology::closing_square;
/// let gap = array![[true, false, true], [true, false, true], [true, false, true]];
/// assert!(closing_square(&gap, 3)?.iter().all(|&v| v));
/// # Ok::<(), nanoml_morphology::Error>(())
/// ```
///
/// # Errors
/// As [`dilation_square`].
pub fn closing_square<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, size: usize) -> Result<Array2<bool>> {
    erosion_square(&dilation_square(mask, size)?, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(mask: &Array2<bool>, size: usize, any: bool) -> Array2<bool> {
        let r = (size / 2) as isize;
        let (h, w) = mask.dim();
        Array2::from_shape_fn((h, w), |(i, j)| {
            let mut vals = (-r..=r)
                .flat_map(|di| (-r..=r).map(move |dj| (di, dj)))
                .map(|(di, dj)| mask[[reflect(i as isize + di, h), reflect(j as isize + dj, w)]]);
            if any { vals.any(|v| v) } else { vals.all(|v| v) }
        })
    }

    #[test]
    fn reflection_is_half_sample_symmetric() {
        let idx: Vec<usize> = (-4..8).map(|i| reflect(i, 3)).collect();
        assert_eq!(idx, vec![2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1]);
    }

    #[test]
    fn even_sizes_are_rejected() {
        let m = Array2::from_elem((3, 3), true);
        assert!(matches!(closing_square(&m, 2), Err(Error::InvalidParameter { name: "size", .. })));
        assert!(closing_square(&m, 0).is_err());
        assert_eq!(closing_square(&Array2::<bool>::from_elem((0, 3), true), 3).unwrap().dim(), (0, 3));
    }

    proptest! {
        #[test]
        fn separable_filters_equal_the_definition(r in 1usize..10, c in 1usize..10, p in 0.0f64..1.0, seed in any::<u64>(), size in prop::sample::select(vec![1usize, 3, 5, 7])) {
            let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mask = Array2::from_shape_fn((r, c), |_| rng.bernoulli(p));
            prop_assert_eq!(dilation_square(&mask, size).unwrap(), naive(&mask, size, true));
            prop_assert_eq!(erosion_square(&mask, size).unwrap(), naive(&mask, size, false));
        }
    }
}
