//! Histograms of the 16 configurations of 2×2 pixel windows ("bit quads", Gray 1971).
//!
//! Window codes follow scikit-image's `euler_number` and `perimeter_crofton`: for a window
//! with top-left TL, top-right TR, bottom-left BL and bottom-right BR pixels,
//! `code = 1·BR + 2·TR + 4·BL + 8·TL`. The padded histogram counts every window of the
//! image padded with one row/column of background on each side ((rows + 1)·(cols + 1)
//! windows); the periodic histogram counts the rows·cols windows of the torus.

use crate::bits::{BitImage, shl1};
use ndarray::{ArrayBase, Data, Ix2};

/// Counts of the 16 window configurations, indexed by code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QuadHistogram(pub [u64; 16]);

const BR: usize = 1;
const TR: usize = 2;
const BL: usize = 4;
const TL: usize = 8;

impl QuadHistogram {
    /// Histogram of the zero-padded image.
    pub fn padded<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>) -> Self {
        let bits = BitImage::from_mask(mask);
        let mut h = [0u64; 16];
        let zeros = vec![0u64; bits.words_per_row];
        for r in 0..=bits.rows {
            let prev = if r == 0 { &zeros[..] } else { bits.row(r - 1) };
            let cur = if r == bits.rows { &zeros[..] } else { bits.row(r) };
            for k in 0..bits.words_per_row {
                let (d, b) = (cur[k], prev[k]);
                let (c, a) = (shl1(cur, k), shl1(prev, k));
                let low = [!d & !b, d & !b, !d & b, d & b];
                let high = [!c & !a, c & !a, !c & a, c & a];
                for (hi, &hm) in high.iter().enumerate() {
                    for (lo, &lm) in low.iter().enumerate() {
                        h[hi * 4 + lo] += u64::from((lm & hm).count_ones());
                    }
                }
            }
        }
        // Bits past the last column are zero windows; fix the count of code 0 to the number
        // of real windows.
        let windows = (bits.rows as u64 + 1) * (bits.cols as u64 + 1);
        h[0] = windows - h[1..].iter().sum::<u64>();
        QuadHistogram(h)
    }

    /// Histogram of the image on a torus (rows and columns wrap around).
    pub fn periodic<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>) -> Self {
        let (rows, cols) = mask.dim();
        let mut h = [0u64; 16];
        for r in 0..rows {
            let pr = (r + rows - 1) % rows;
            for c in 0..cols {
                let pc = (c + cols - 1) % cols;
                let code = usize::from(mask[[r, c]]) * BR
                    + usize::from(mask[[pr, c]]) * TR
                    + usize::from(mask[[r, pc]]) * BL
                    + usize::from(mask[[pr, pc]]) * TL;
                h[code] += 1;
            }
        }
        QuadHistogram(h)
    }

    fn sum(&self, pred: impl Fn(usize) -> bool) -> i64 {
        (0..16).filter(|&c| pred(c)).map(|c| self.0[c] as i64).sum()
    }

    /// Windows with exactly one foreground pixel (Gray's Q1).
    pub fn q1(&self) -> i64 {
        self.sum(|c| c.count_ones() == 1)
    }

    /// Windows with exactly three foreground pixels (Gray's Q3).
    pub fn q3(&self) -> i64 {
        self.sum(|c| c.count_ones() == 3)
    }

    /// Windows with two diagonally opposite foreground pixels (Gray's QD).
    pub fn qd(&self) -> i64 {
        self.sum(|c| c == TR + BL || c == TL + BR)
    }

    /// Foreground pixels (each is the bottom-right pixel of exactly one window).
    pub fn pixels(&self) -> i64 {
        self.sum(|c| c & BR != 0)
    }

    /// Chord counts `N_k = #pixels − #foreground pairs along direction k` for the four
    /// directions: horizontal, vertical, diagonal (↘), anti-diagonal (↙).
    pub fn chords(&self) -> [i64; 4] {
        let n = self.pixels();
        [
            n - self.sum(|c| c & (BL | BR) == BL | BR),
            n - self.sum(|c| c & (TR | BR) == TR | BR),
            n - self.sum(|c| c & (TL | BR) == TL | BR),
            n - self.sum(|c| c & (TR | BL) == TR | BL),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use proptest::prelude::*;

    /// The obvious reference: pad with zeros and visit every window.
    fn naive_padded(mask: &Array2<bool>) -> [u64; 16] {
        let (r, c) = mask.dim();
        let get = |i: isize, j: isize| {
            i >= 0 && j >= 0 && (i as usize) < r && (j as usize) < c && mask[[i as usize, j as usize]]
        };
        let mut h = [0u64; 16];
        for i in 0..=r as isize {
            for j in 0..=c as isize {
                let code = usize::from(get(i, j))
                    + 2 * usize::from(get(i - 1, j))
                    + 4 * usize::from(get(i, j - 1))
                    + 8 * usize::from(get(i - 1, j - 1));
                h[code] += 1;
            }
        }
        h
    }

    proptest! {
        #[test]
        fn bit_packed_histogram_equals_naive(r in 0usize..9, c in 0usize..140, p in 0.0f64..1.0, seed in any::<u64>()) {
            let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mask = Array2::from_shape_fn((r, c), |_| rng.bernoulli(p));
            prop_assert_eq!(QuadHistogram::padded(&mask).0, naive_padded(&mask));
        }
    }
}
