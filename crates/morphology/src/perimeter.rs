//! Area and perimeter estimators of binary images.
//!
//! * [`perimeter()`] is identical to `skimage.measure.perimeter`: the border pixels (pixels
//!   of the mask removed by an erosion with the 4- or 8-neighbourhood, the image edge
//!   counting as background) are classified by their border neighbours, and each class
//!   contributes 1, √2 or (1 + √2)/2 (Benkrid & Crookes).
//! * [`perimeter_crofton`] is identical to `skimage.measure.perimeter_crofton`: the
//!   Cauchy–Crofton formula discretised over 2 or 4 line directions (Legland et al. 2007),
//!   `P₄ = π/4·(N₁ + N₂ + (N₃ + N₄)/√2)` and `P₂ = π/2·(N₁ + N₂)`, with `N_k` the number of
//!   chords of the foreground along direction `k` in the zero-padded image.
//!
//! Lengths are in pixels (unit pixel spacing).

use crate::bits::{BitImage, shl1, shr1};
use crate::quad::QuadHistogram;
use crate::{Error, Result};
use ndarray::{ArrayBase, Data, Ix2};
use std::f64::consts::{PI, SQRT_2};

/// The neighbourhood of the erosion that finds border pixels in [`perimeter()`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Neighbourhood {
    /// Cross-shaped erosion (scikit-image's default, `neighborhood=4`).
    #[default]
    Four,
    /// 3×3 square erosion (`neighborhood=8`): a wider border.
    Eight,
}

/// Number of line directions in [`perimeter_crofton`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CroftonDirections {
    /// Horizontal and vertical lines.
    Two,
    /// Horizontal, vertical and both diagonals (scikit-image's default).
    #[default]
    Four,
}

impl CroftonDirections {
    /// From scikit-image's `directions` argument.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `n` is 2 or 4.
    pub fn from_count(n: usize) -> Result<Self> {
        match n {
            2 => Ok(Self::Two),
            4 => Ok(Self::Four),
            _ => Err(Error::invalid("directions", n, "2 or 4")),
        }
    }
}

/// Number of foreground pixels.
pub fn area<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>) -> u64 {
    match mask.as_slice_memory_order() {
        Some(s) => bytemuck::cast_slice::<bool, u8>(s).iter().map(|&b| u64::from(b)).sum(),
        None => mask.iter().filter(|&&v| v).count() as u64,
    }
}

/// Bit-sliced sum of four one-bit planes: returns the (1, 2, 4) bit planes of the count.
#[inline]
fn count4(x: [u64; 4]) -> (u64, u64, u64) {
    let (ones, twos) = (x[0] ^ x[1], x[0] & x[1]);
    let (ones, carry) = (ones ^ x[2], ones & x[2]);
    let twos = twos | carry;
    let (ones, carry) = (ones ^ x[3], ones & x[3]);
    (ones, twos ^ carry, twos & carry)
}

/// Total perimeter of the foreground, identical to `skimage.measure.perimeter(mask,
/// neighborhood)`.
///
/// ```
/// use ndarray::Array2;
/// use nanoml_morphology::{perimeter, Neighbourhood};
/// let mut square = Array2::from_elem((9, 9), false);
/// square.slice_mut(ndarray::s![2..7, 2..7]).fill(true);
/// assert_eq!(perimeter(&square, Neighbourhood::Four), 16.0);
/// ```
pub fn perimeter<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, neighbourhood: Neighbourhood) -> f64 {
    let bits = BitImage::from_mask(mask);
    let (rows, wpr) = (bits.rows, bits.words_per_row);
    let zeros = vec![0u64; wpr];
    let row = |r: isize| -> &[u64] { if r < 0 || r as usize >= rows { &zeros } else { bits.row(r as usize) } };
    // Border pixels: foreground minus its erosion (pixels outside the image are background).
    let mut border = vec![0u64; rows * wpr];
    for r in 0..rows {
        let (up, cur, down) = (row(r as isize - 1), row(r as isize), row(r as isize + 1));
        for k in 0..wpr {
            let mut eroded = cur[k] & shl1(cur, k) & shr1(cur, k) & up[k] & down[k];
            if neighbourhood == Neighbourhood::Eight {
                eroded &= shl1(up, k) & shr1(up, k) & shl1(down, k) & shr1(down, k);
            }
            border[r * wpr + k] = cur[k] & !eroded;
        }
    }
    let brow = |r: isize| -> &[u64] {
        if r < 0 || r as usize >= rows { &zeros } else { &border[r as usize * wpr..(r as usize + 1) * wpr] }
    };
    // Each border pixel has code 1 + 2·n4 + 10·nd (n4 / nd border neighbours along edges /
    // corners); the weight depends on the class of (n4, nd).
    let (mut unit, mut diagonal, mut mixed) = (0u64, 0u64, 0u64);
    for r in 0..rows {
        let (up, cur, down) = (brow(r as isize - 1), brow(r as isize), brow(r as isize + 1));
        for k in 0..wpr {
            let b = cur[k];
            if b == 0 {
                continue;
            }
            let (l4, t4, f4) = count4([shl1(cur, k), shr1(cur, k), up[k], down[k]]);
            let (ld, td, fd) = count4([shl1(up, k), shr1(up, k), shl1(down, k), shr1(down, k)]);
            let n4_is_0 = !l4 & !t4 & !f4;
            let n4_is_1 = l4 & !t4;
            let n4_is_2_or_3 = t4 & !f4;
            let nd_at_most_2 = !fd & !(td & ld);
            let nd_is_2 = td & !ld;
            let nd_is_3 = td & ld;
            let nd_is_1_or_2 = ld ^ td;
            // codes 5, 7, 15, 17, 25, 27 → 1
            unit += u64::from((b & n4_is_2_or_3 & nd_at_most_2).count_ones());
            // codes 21, 33 → √2
            diagonal += u64::from((b & ((n4_is_0 & nd_is_2) | (n4_is_1 & nd_is_3))).count_ones());
            // codes 13, 23 → (1 + √2)/2
            mixed += u64::from((b & n4_is_1 & nd_is_1_or_2).count_ones());
        }
    }
    unit as f64 + diagonal as f64 * SQRT_2 + mixed as f64 * ((1.0 + SQRT_2) / 2.0)
}

/// Crofton perimeter of the foreground, identical to `skimage.measure.perimeter_crofton(mask,
/// directions)`.
///
/// ```
/// use ndarray::array;
/// use nanoml_morphology::{perimeter_crofton, CroftonDirections};
/// let pixel = array![[true]];
/// assert!((perimeter_crofton(&pixel, CroftonDirections::Two) - std::f64::consts::PI).abs() < 1e-12);
/// ```
pub fn perimeter_crofton<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, directions: CroftonDirections) -> f64 {
    crofton_from_quads(&QuadHistogram::padded(mask), directions)
}

/// scikit-image's lookup tables over the 16 window codes.
fn crofton_lut(directions: CroftonDirections) -> [f64; 16] {
    match directions {
        CroftonDirections::Two => {
            let h = PI / 2.0;
            [0.0, h, 0.0, 0.0, 0.0, h, 0.0, 0.0, h, PI, 0.0, 0.0, h, PI, 0.0, 0.0]
        }
        CroftonDirections::Four => {
            let a = PI / 4.0 * (1.0 + 1.0 / SQRT_2);
            let b = PI / (4.0 * SQRT_2);
            let c = PI / (2.0 * SQRT_2);
            [0.0, a, b, c, 0.0, a, 0.0, b, PI / 4.0, PI / 2.0, b, b, PI / 4.0, PI / 2.0, 0.0, 0.0]
        }
    }
}

pub(crate) fn crofton_from_quads(h: &QuadHistogram, directions: CroftonDirections) -> f64 {
    h.0.iter().zip(crofton_lut(directions)).map(|(&n, w)| n as f64 * w).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};
    use proptest::prelude::*;

    /// scikit-image's algorithm transcribed literally: erosion, then the 3×3 code
    /// convolution, then the weight table.
    fn naive_perimeter(mask: &Array2<bool>, neighbourhood: Neighbourhood) -> f64 {
        let (h, w) = mask.dim();
        let get = |m: &Array2<bool>, r: isize, c: isize| {
            r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w && m[[r as usize, c as usize]]
        };
        let cross: &[(isize, isize)] = &[(-1, 0), (1, 0), (0, -1), (0, 1)];
        let square: &[(isize, isize)] = &[(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)];
        let strel = if neighbourhood == Neighbourhood::Four { cross } else { square };
        let border = Array2::from_shape_fn((h, w), |(r, c)| {
            mask[[r, c]] && !strel.iter().all(|&(dr, dc)| get(mask, r as isize + dr, c as isize + dc))
        });
        let mut weights = [0.0; 50];
        for c in [5, 7, 15, 17, 25, 27] {
            weights[c] = 1.0;
        }
        weights[21] = SQRT_2;
        weights[33] = SQRT_2;
        weights[13] = (1.0 + SQRT_2) / 2.0;
        weights[23] = (1.0 + SQRT_2) / 2.0;
        let mut total = 0.0;
        for r in 0..h as isize {
            for c in 0..w as isize {
                let mut code = usize::from(get(&border, r, c));
                for &(dr, dc) in square {
                    let k = if dr == 0 || dc == 0 { 2 } else { 10 };
                    code += k * usize::from(get(&border, r + dr, c + dc));
                }
                total += weights[code];
            }
        }
        total
    }

    #[test]
    fn reference_values_from_the_notes() {
        let mut sq = Array2::from_elem((7, 7), false);
        sq.slice_mut(ndarray::s![1..6, 1..6]).fill(true);
        assert_eq!(perimeter(&sq, Neighbourhood::Four), 16.0);
        sq[[3, 3]] = false;
        assert_eq!(perimeter(&sq, Neighbourhood::Four), 16.0);
        assert_eq!(perimeter(&array![[true]], Neighbourhood::Four), 0.0);
        assert_eq!(perimeter(&array![[true, false], [false, true]], Neighbourhood::Four), 0.0);
        assert!((perimeter_crofton(&array![[true]], CroftonDirections::Four) - 2.6815).abs() < 1e-4);
    }

    #[test]
    fn crofton_lut_equals_chord_formula() {
        let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(8);
        for _ in 0..30 {
            let m = Array2::from_shape_fn((11, 23), |_| rng.bernoulli(0.4));
            let q = QuadHistogram::padded(&m);
            let [n1, n2, n3, n4] = q.chords().map(|n| n as f64);
            let p4 = PI / 4.0 * (n1 + n2 + (n3 + n4) / SQRT_2);
            let p2 = PI / 2.0 * (n1 + n2);
            assert!((perimeter_crofton(&m, CroftonDirections::Four) - p4).abs() < 1e-9);
            assert!((perimeter_crofton(&m, CroftonDirections::Two) - p2).abs() < 1e-9);
        }
    }

    proptest! {
        #[test]
        fn bit_sliced_perimeter_equals_literal_algorithm(r in 1usize..10, c in 1usize..140, p in 0.0f64..1.0, seed in any::<u64>(), eight in any::<bool>()) {
            let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mask = Array2::from_shape_fn((r, c), |_| rng.bernoulli(p));
            let nb = if eight { Neighbourhood::Eight } else { Neighbourhood::Four };
            prop_assert!((perimeter(&mask, nb) - naive_perimeter(&mask, nb)).abs() < 1e-9);
            prop_assert_eq!(area(&mask), mask.iter().filter(|&&v| v).count() as u64);
        }
    }
}
