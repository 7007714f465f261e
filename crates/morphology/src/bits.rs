//! Bit-packed binary images: 64 pixels per word, one row after another.
//!
//! Every row has `words_per_row` words and at least one spare zero bit after the last
//! column, so that the 2×2 windows of the zero-padded image (which reach one column past
//! the right edge) can be counted without special cases.

use ndarray::{ArrayBase, Data, Ix2};

pub(crate) struct BitImage {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) words_per_row: usize,
    pub(crate) words: Vec<u64>,
}

/// Packs 8 bytes that are each 0 or 1 into 8 bits, byte `k` to bit `k`.
#[inline]
fn pack8(bytes: [u8; 8]) -> u64 {
    // Each byte k of the product's top byte receives byte k of the input at bit 56 + k; no
    // two partial products overlap below it, so no carry disturbs the result.
    u64::from_le_bytes(bytes).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Packs one row of a mask into `out` (zeroed, long enough for its columns).
fn pack_row(row: ndarray::ArrayView1<'_, bool>, out: &mut [u64]) {
    match row.as_slice() {
        Some(slice) => {
            let bytes: &[u8] = bytemuck::cast_slice(slice);
            for (w, chunk64) in out.iter_mut().zip(bytes.chunks(64)) {
                let mut word = 0u64;
                let mut eights = chunk64.chunks_exact(8);
                for (k, c8) in eights.by_ref().enumerate() {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c8);
                    word |= pack8(b) << (8 * k);
                }
                let done = chunk64.len() / 8 * 8;
                for (k, &v) in eights.remainder().iter().enumerate() {
                    word |= u64::from(v) << (done + k);
                }
                *w = word;
            }
        }
        None => {
            for (c, &v) in row.iter().enumerate() {
                out[c / 64] |= u64::from(v) << (c % 64);
            }
        }
    }
}

impl BitImage {
    /// An image of `rows × cols` unset pixels.
    fn zeroed((rows, cols): (usize, usize)) -> Self {
        let words_per_row = (cols + 1).div_ceil(64);
        BitImage { rows, cols, words_per_row, words: vec![0u64; rows * words_per_row] }
    }

    pub(crate) fn from_mask<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>) -> Self {
        let mut image = Self::zeroed(mask.dim());
        for (row, out) in mask.outer_iter().zip(image.words.chunks_mut(image.words_per_row)) {
            pack_row(row, out);
        }
        image
    }

    /// [`from_mask`](Self::from_mask), packing blocks of rows in parallel (for the
    /// labelling, whose other steps are parallel too).
    pub(crate) fn from_mask_parallel(mask: ndarray::ArrayView2<'_, bool>) -> Self {
        use rayon::prelude::*;
        let mut image = Self::zeroed(mask.dim());
        let (block, words_per_row) = (64, image.words_per_row);
        image.words.par_chunks_mut(block * words_per_row).enumerate().for_each(|(b, out)| {
            for (r, out) in out.chunks_mut(words_per_row).enumerate() {
                pack_row(mask.row(b * block + r), out);
            }
        });
        image
    }

    #[inline]
    pub(crate) fn row(&self, r: usize) -> &[u64] {
        &self.words[r * self.words_per_row..(r + 1) * self.words_per_row]
    }

    #[cfg(test)]
    pub(crate) fn count_ones(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// Whether this x86-64 CPU has the bit-manipulation instructions (`popcnt`, `lzcnt`,
/// BMI1, BMI2; every x86-64 CPU since about 2013) that the labelling's fast path is
/// compiled for. The standard library detects them once and caches the answer.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_bit_instructions() -> bool {
    std::arch::is_x86_feature_detected!("popcnt")
        && std::arch::is_x86_feature_detected!("lzcnt")
        && std::arch::is_x86_feature_detected!("bmi1")
        && std::arch::is_x86_feature_detected!("bmi2")
}

/// Word `k` of a row shifted so that bit `j` holds the row's bit `j - 1` (the left
/// neighbour), zero entering at column 0.
#[inline]
pub(crate) fn shl1(row: &[u64], k: usize) -> u64 {
    let carry = if k == 0 { 0 } else { row[k - 1] >> 63 };
    (row[k] << 1) | carry
}

/// Word `k` of a row shifted so that bit `j` holds the row's bit `j + 1` (the right
/// neighbour); the spare zero bits after the last column enter at the right edge.
#[inline]
pub(crate) fn shr1(row: &[u64], k: usize) -> u64 {
    let carry = if k + 1 < row.len() { row[k + 1] << 63 } else { 0 };
    (row[k] >> 1) | carry
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn packing_matches_pixels_for_contiguous_and_strided_views() {
        let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(1);
        let mask = Array2::from_shape_fn((5, 131), |_| rng.bernoulli(0.5));
        for view in [mask.view(), mask.t().t(), mask.slice(ndarray::s![.., ..;1])] {
            let b = BitImage::from_mask(&view);
            for ((r, c), &v) in view.indexed_iter() {
                assert_eq!((b.row(r)[c / 64] >> (c % 64)) & 1 == 1, v);
            }
        }
        let t = mask.t();
        let b = BitImage::from_mask(&t);
        for ((r, c), &v) in t.indexed_iter() {
            assert_eq!((b.row(r)[c / 64] >> (c % 64)) & 1 == 1, v);
        }
        assert_eq!(b.count_ones(), mask.iter().filter(|&&v| v).count() as u64);
    }

    #[test]
    fn parallel_packing_equals_sequential_packing() {
        let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(2);
        let mask = Array2::from_shape_fn((150, 131), |_| rng.bernoulli(0.4));
        for view in [mask.view(), mask.t(), mask.slice(ndarray::s![..;2, 1..])] {
            let (a, b) = (BitImage::from_mask(&view), BitImage::from_mask_parallel(view));
            assert_eq!((a.rows, a.cols, a.words_per_row), (b.rows, b.cols, b.words_per_row));
            assert_eq!(a.words, b.words);
        }
    }
}
