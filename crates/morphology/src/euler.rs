//! Euler numbers (Euler characteristics) of binary images.
//!
//! * [`euler_number`] is identical to `skimage.measure.euler_number` (scikit-image ≥ 0.18):
//!   the Euler characteristic of the foreground under the chosen connectivity, the
//!   background taking the complementary one, computed from the 2×2 configuration
//!   histogram of the zero-padded image (Gray 1971; Ohser et al. 2002). It equals
//!   `#components − #holes`.
//! * [`euler_number_legacy`] is the rule of `regionprops(...).euler_number` in
//!   scikit-image ≤ 0.17, with which the Rabani training labels of Gordon et al. (2020) were
//!   made: crop the mask to its bounding box and return `1 − #holes`, a hole being an
//!   8-connected background component that does not touch the bounding box. The number of
//!   foreground components is ignored.
//! * [`euler_number_periodic`] treats the image as a torus (simulation lattices with
//!   periodic boundaries). It is the Euler characteristic `V − E + F` of the foreground
//!   as a cell complex on the torus: an island counts 1, a stripe that wraps around
//!   counts 0, the full lattice counts 0.

use crate::Result;
use crate::label::{Connectivity, RunComponents};
use crate::quad::QuadHistogram;
use ndarray::{ArrayBase, Data, Ix2, s};

/// Gray's formula: χ4 = (Q1 − Q3 + 2·QD)/4, χ8 = (Q1 − Q3 − 2·QD)/4.
pub(crate) fn euler_from_quads(h: &QuadHistogram, connectivity: Connectivity) -> i64 {
    let sign = match connectivity {
        Connectivity::Four => 2,
        Connectivity::Eight => -2,
    };
    (h.q1() - h.q3() + sign * h.qd()) / 4
}

/// Euler number of the foreground, identical to `skimage.measure.euler_number(mask,
/// connectivity)` with `Connectivity::Four` ↔ 1 and `Connectivity::Eight` ↔ 2.
///
/// ```
/// use ndarray::array;
/// use nanoml_morphology::{euler_number, Connectivity};
/// let ring = array![[true, true, true], [true, false, true], [true, true, true]];
/// assert_eq!(euler_number(&ring, Connectivity::Eight), 0); // one object, one hole
/// let diagonal = array![[true, false], [false, true]];
/// assert_eq!(euler_number(&diagonal, Connectivity::Four), 2);
/// assert_eq!(euler_number(&diagonal, Connectivity::Eight), 1);
/// ```
pub fn euler_number<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, connectivity: Connectivity) -> i64 {
    euler_from_quads(&QuadHistogram::padded(mask), connectivity)
}

/// Euler number of the foreground on a torus (see the [module docs](self)).
///
/// ```
/// use ndarray::Array2;
/// use nanoml_morphology::{euler_number_periodic, Connectivity};
/// let stripes = Array2::from_shape_fn((8, 8), |(r, _)| r % 4 < 2);
/// assert_eq!(euler_number_periodic(&stripes, Connectivity::Eight), 0);
/// ```
pub fn euler_number_periodic<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, connectivity: Connectivity) -> i64 {
    euler_from_quads(&QuadHistogram::periodic(mask), connectivity)
}

/// Euler number by the rule of scikit-image ≤ 0.17's `regionprops(...).euler_number`:
/// `1 − #holes` of the mask cropped to its bounding box (see the [module docs](self)).
/// An empty mask has no region and gives 0.
///
/// ```
/// use ndarray::array;
/// use nanoml_morphology::euler_number_legacy;
/// // Two separate pixels: the modern rule says 2, the legacy rule 1 (no hole).
/// let two = array![[true, false, true]];
/// assert_eq!(euler_number_legacy(&two)?, 1);
/// # Ok::<(), nanoml_morphology::Error>(())
/// ```
///
/// # Errors
/// Only for images of 2³² − 1 pixels or more.
pub fn euler_number_legacy<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>) -> Result<i64> {
    let Some((r0, r1, c0, c1)) = bounding_box(mask) else { return Ok(0) };
    let crop = mask.slice(s![r0..r1, c0..c1]);
    let mut background = RunComponents::new(&crop, false, Connectivity::Eight, false)?;
    Ok(1 - background.count_not_touching_border() as i64)
}

/// Number of holes: background components (with the connectivity complementary to
/// `connectivity`) that do not touch the image border.
///
/// # Errors
/// Only for images of 2³² − 1 pixels or more.
pub fn count_holes<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, connectivity: Connectivity) -> Result<usize> {
    let mut background = RunComponents::new(mask, false, connectivity.complement(), false)?;
    Ok(background.count_not_touching_border())
}

/// Half-open bounding box `(row_start, row_end, col_start, col_end)` of the foreground.
pub fn bounding_box<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>) -> Option<(usize, usize, usize, usize)> {
    let mut bb: Option<(usize, usize, usize, usize)> = None;
    for (r, row) in mask.outer_iter().enumerate() {
        let first = row.iter().position(|&v| v);
        if let Some(f) = first {
            let last = row.iter().rposition(|&v| v).unwrap_or(f);
            bb = Some(match bb {
                None => (r, r + 1, f, last + 1),
                Some((a, _, c, d)) => (a, r + 1, c.min(f), d.max(last + 1)),
            });
        }
    }
    bb
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::label::count_components;
    use ndarray::{Array2, array};
    use proptest::prelude::*;

    #[test]
    fn skimage_shortcut_formulas_agree_with_gray() {
        // scikit-image evaluates χ4 = h1 − h7 + h9 and χ8 = h8 − h6 − h14 on the padded
        // histogram; Gray's symmetric formula must give the same.
        let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(4);
        for _ in 0..50 {
            let m = Array2::from_shape_fn((13, 17), |_| rng.bernoulli(0.5));
            let h = QuadHistogram::padded(&m).0;
            let (h1, h6, h7, h8, h9, h14) =
                (h[1] as i64, h[6] as i64, h[7] as i64, h[8] as i64, h[9] as i64, h[14] as i64);
            assert_eq!(euler_number(&m, Connectivity::Four), h1 - h7 + h9);
            assert_eq!(euler_number(&m, Connectivity::Eight), h8 - h6 - h14);
        }
    }

    #[test]
    fn legacy_rule_ignores_components_and_border_holes() {
        let m = array![[true, false, true], [false, false, false], [true, false, true]];
        assert_eq!(euler_number_legacy(&m).unwrap(), 1);
        let ring = array![[true, true, true], [true, false, true], [true, true, true]];
        assert_eq!(euler_number_legacy(&ring).unwrap(), 0);
        assert_eq!(euler_number_legacy(&Array2::<bool>::from_elem((3, 3), false)).unwrap(), 0);
        // The hole is 4-connected to the outside only through a corner: 8-connected
        // background flood fill reaches it, so it is not a hole under the legacy rule.
        let notch = array![
            [true, true, true, false],
            [true, false, true, true],
            [true, true, false, true],
            [true, true, true, true]
        ];
        assert_eq!(euler_number_legacy(&notch).unwrap(), 0);
    }

    #[test]
    fn torus_values() {
        let full = Array2::from_elem((5, 6), true);
        assert_eq!(euler_number_periodic(&full, Connectivity::Four), 0);
        assert_eq!(euler_number_periodic(&full, Connectivity::Eight), 0);
        let mut one = Array2::from_elem((5, 6), false);
        one[[0, 0]] = true;
        assert_eq!(euler_number_periodic(&one, Connectivity::Eight), 1);
        // Everything but one pixel: a torus with a puncture has χ = −1.
        let punctured = one.mapv(|v| !v);
        assert_eq!(euler_number_periodic(&punctured, Connectivity::Eight), -1);
    }

    proptest! {
        #[test]
        fn euler_is_components_minus_holes(r in 1usize..16, c in 1usize..16, p in 0.0f64..1.0, seed in any::<u64>(), eight in any::<bool>()) {
            let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mask = Array2::from_shape_fn((r, c), |_| rng.bernoulli(p));
            let conn = if eight { Connectivity::Eight } else { Connectivity::Four };
            let objects = count_components(&mask, conn).unwrap() as i64;
            let holes = count_holes(&mask, conn).unwrap() as i64;
            prop_assert_eq!(euler_number(&mask, conn), objects - holes);
        }

        #[test]
        fn periodic_equals_padded_for_masks_away_from_the_seams(r in 1usize..10, c in 1usize..10, p in 0.0f64..1.0, seed in any::<u64>(), eight in any::<bool>()) {
            let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut mask = Array2::from_elem((r + 2, c + 2), false);
            mask.slice_mut(s![1..=r, 1..=c]).mapv_inplace(|_| rng.bernoulli(p));
            let conn = if eight { Connectivity::Eight } else { Connectivity::Four };
            prop_assert_eq!(euler_number_periodic(&mask, conn), euler_number(&mask, conn));
        }
    }
}
