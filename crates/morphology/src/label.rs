//! Connected-component labelling of binary images.
//!
//! Labels are numbered `1..=count` in raster order of each component's first pixel, and
//! background is 0 — the numbering of `skimage.measure.label(mask, connectivity=…)`.
//!
//! [`label`] and [`count_components`] run a union–find over the runs of two-row bands
//! (see the private `bands` module); [`label_periodic`] and the hole counts behind the
//! Euler rules use the union–find over row runs defined here, which also handles the
//! seams of a torus. Both are parallel over strips of rows and give the same result for
//! any number of threads.

use crate::bands::BandComponents;
use crate::bits::{BitImage, shl1, shr1};
use crate::unionfind::{find, offsets_and_strips, resolve_labels, split_for_strips, union};
use crate::{Error, Result};
use ndarray::{Array2, ArrayBase, Data, Ix2};
use rayon::prelude::*;

/// Which pixels touch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Connectivity {
    /// Edge neighbours only (4-connectivity; scikit-image's `connectivity=1`).
    Four,
    /// Edge and corner neighbours (8-connectivity; scikit-image's `connectivity=2`, its
    /// default in 2-D).
    #[default]
    Eight,
}

impl Connectivity {
    /// The complementary connectivity, the one the background uses in a digital topology
    /// where Euler numbers are well defined (4 ↔ 8).
    pub fn complement(self) -> Self {
        match self {
            Connectivity::Four => Connectivity::Eight,
            Connectivity::Eight => Connectivity::Four,
        }
    }

    /// scikit-image's number for it (1 or 2).
    pub fn skimage(self) -> u8 {
        match self {
            Connectivity::Four => 1,
            Connectivity::Eight => 2,
        }
    }
}

/// A label image and its number of components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels {
    /// Label of each pixel: 0 for background, `1..=count` for the components.
    pub image: Array2<u32>,
    /// Number of components.
    pub count: usize,
}

fn check_size((rows, cols): (usize, usize)) -> Result<()> {
    if rows.checked_mul(cols).is_none_or(|n| n >= u32::MAX as usize) {
        return Err(Error::invalid("mask", format!("{rows}x{cols}"), "fewer than 2^32 - 1 pixels"));
    }
    Ok(())
}

/// Runs of one image (struct of arrays) and the union–find that joins them.
///
/// Run `i` covers columns `start[i]..end[i]` of its row; the runs of row `r` are
/// `row_start[r]..row_start[r + 1]`, in column order. `parent[i] <= i` always holds: the
/// root of a component is its earliest run in raster order.
pub(crate) struct RunComponents {
    rows: usize,
    cols: usize,
    start: Vec<u32>,
    end: Vec<u32>,
    row_start: Vec<usize>,
    parent: Vec<u32>,
    flattened: bool,
}

/// Joins the runs `below` of a row with the runs `above` of the row over it. `reach` is 0
/// for 4-connectivity (columns must overlap) and 1 for 8-connectivity (corners touch).
fn join_rows(
    parent: &mut [u32],
    start: &[u32],
    end: &[u32],
    above: std::ops::Range<usize>,
    below: std::ops::Range<usize>,
    reach: u32,
) {
    let mut j = above.start;
    for i in below {
        let (s, e) = (start[i], end[i]);
        while j < above.end && end[j] + reach <= s {
            j += 1;
        }
        // Runs j, j+1, … of the row above touch this run while they start before its end
        // (plus the corner reach). The last of them may touch the next run too, so `j`
        // stays on it.
        let mut k = j;
        let mut root = find(parent, i as u32);
        while k < above.end && start[k] < e + reach {
            let other = find(parent, k as u32);
            if other < root {
                parent[root as usize] = other;
                root = other;
            } else if other > root {
                parent[other as usize] = root;
            }
            k += 1;
        }
    }
}

/// The pixels equal to `value` in row `r`, as words (spare bits after the last column
/// cleared).
fn load_row(bits: &BitImage, value: bool, r: usize, out: &mut [u64]) {
    let cols = bits.cols;
    for (k, w) in out.iter_mut().enumerate() {
        let b = bits.row(r)[k];
        let first = 64 * k;
        let valid = if first + 64 <= cols {
            u64::MAX
        } else if first >= cols {
            0
        } else {
            (1u64 << (cols - first)) - 1
        };
        *w = if value { b } else { !b & valid };
    }
}

/// Number of runs in row `r`.
fn count_runs(bits: &BitImage, value: bool, r: usize, scratch: &mut [u64]) -> usize {
    load_row(bits, value, r, scratch);
    (0..scratch.len()).map(|k| (scratch[k] & !shl1(scratch, k)).count_ones() as usize).sum()
}

/// Extracts the runs of rows `rows` into `start`/`end` (exactly sized for them) and joins
/// them row to row. `parent` receives indices local to these slices.
fn fill_strip(
    bits: &BitImage,
    value: bool,
    rows: std::ops::Range<usize>,
    reach: u32,
    local_row_start: &[usize],
    (start, end, parent): (&mut [u32], &mut [u32], &mut [u32]),
) {
    let mut row_bits = vec![0u64; bits.words_per_row];
    let (mut ns, mut ne) = (0, 0);
    for r in rows.clone() {
        load_row(bits, value, r, &mut row_bits);
        // A run starts where a pixel is set and its left neighbour is not, and ends
        // (exclusively) after a set pixel whose right neighbour is not.
        for k in 0..row_bits.len() {
            let mut starts = row_bits[k] & !shl1(&row_bits, k);
            while starts != 0 {
                start[ns] = (64 * k) as u32 + starts.trailing_zeros();
                ns += 1;
                starts &= starts - 1;
            }
            let mut ends = row_bits[k] & !shr1(&row_bits, k);
            while ends != 0 {
                end[ne] = (64 * k) as u32 + ends.trailing_zeros() + 1;
                ne += 1;
                ends &= ends - 1;
            }
        }
    }
    for (i, p) in parent.iter_mut().enumerate() {
        *p = i as u32;
    }
    for r in 1..rows.len() {
        let above = local_row_start[r - 1]..local_row_start[r];
        let below = local_row_start[r]..local_row_start[r + 1];
        join_rows(parent, start, end, above, below, reach);
    }
}

impl RunComponents {
    /// Runs of the pixels where `mask == value`, joined with `connectivity`; with `periodic`
    /// the image is a torus.
    pub(crate) fn new<S: Data<Elem = bool>>(
        mask: &ArrayBase<S, Ix2>,
        value: bool,
        connectivity: Connectivity,
        periodic: bool,
    ) -> Result<Self> {
        // Strips of at least 64 rows, about four per thread, are labelled in parallel.
        let strips = (mask.nrows() / 64).clamp(1, 4 * rayon::current_num_threads());
        Self::with_strips(mask, value, connectivity, periodic, strips)
    }

    fn with_strips<S: Data<Elem = bool>>(
        mask: &ArrayBase<S, Ix2>,
        value: bool,
        connectivity: Connectivity,
        periodic: bool,
        strips: usize,
    ) -> Result<Self> {
        let (rows, cols) = mask.dim();
        check_size((rows, cols))?;
        let bits = BitImage::from_mask(mask);
        let reach = u32::from(connectivity == Connectivity::Eight);
        // Pass 1: runs per row, so that every array is allocated once at its final size
        // and each strip writes straight into its own part of it.
        let per_row: Vec<usize> = (0..rows)
            .into_par_iter()
            .map_init(|| vec![0u64; bits.words_per_row], |scratch, r| count_runs(&bits, value, r, scratch))
            .collect();
        let (row_start, bounds) = offsets_and_strips(&per_row, strips);
        let total = row_start[rows];
        let (mut start, mut end, mut parent) = (vec![0u32; total], vec![0u32; total], vec![0u32; total]);
        // Pass 2: strips in parallel on disjoint slices.
        let jobs = split_for_strips(&bounds, &row_start, &mut start, &mut end, &mut parent);
        jobs.into_par_iter().for_each(|(b, s, e, p)| {
            let offset = row_start[b.start];
            let local: Vec<usize> = row_start[b.start..=b.end].iter().map(|&o| o - offset).collect();
            fill_strip(&bits, value, b, reach, &local, (s, e, &mut *p));
            for v in p.iter_mut() {
                *v += offset as u32;
            }
        });
        let mut comps = RunComponents { rows, cols, start, end, row_start, parent, flattened: false };
        // Seams between strips.
        for b in bounds.iter().skip(1).filter(|b| b.start > 0 && b.start < rows) {
            comps.join(b.start - 1, b.start, reach);
        }
        if periodic && rows > 0 && cols > 0 {
            comps.join_periodic(connectivity, reach);
        }
        Ok(comps)
    }

    fn row_runs(&self, r: usize) -> std::ops::Range<usize> {
        self.row_start[r]..self.row_start[r + 1]
    }

    fn join(&mut self, above: usize, below: usize, reach: u32) {
        let (a, b) = (self.row_runs(above), self.row_runs(below));
        join_rows(&mut self.parent, &self.start, &self.end, a, b, reach);
    }

    fn join_periodic(&mut self, connectivity: Connectivity, reach: u32) {
        let (rows, cols) = (self.rows, self.cols as u32);
        // Top and bottom rows touch.
        self.join(rows - 1, 0, reach);
        for r in 0..rows {
            let this = self.row_runs(r);
            let first = this.clone().next().filter(|&i| self.start[i] == 0);
            let last = this.clone().last().filter(|&i| self.end[i] == cols);
            // A row's first and last columns touch.
            if let (Some(f), Some(l)) = (first, last) {
                union(&mut self.parent, f as u32, l as u32);
            }
            // With 8-connectivity, corners touch across the column seam between vertically
            // adjacent rows.
            if connectivity == Connectivity::Eight {
                let next = self.row_runs((r + 1) % rows);
                let next_first = next.clone().next().filter(|&i| self.start[i] == 0);
                let next_last = next.clone().last().filter(|&i| self.end[i] == cols);
                if let (Some(a), Some(b)) = (last, next_first) {
                    union(&mut self.parent, a as u32, b as u32);
                }
                if let (Some(a), Some(b)) = (first, next_last) {
                    union(&mut self.parent, a as u32, b as u32);
                }
            }
        }
    }

    /// Points every run straight at its root. One ascending pass suffices because
    /// `parent[i] <= i`: the parent's entry is final by the time `i` is reached.
    fn flatten(&mut self) {
        if !self.flattened {
            for i in 0..self.parent.len() {
                let p = self.parent[i] as usize;
                self.parent[i] = self.parent[p];
            }
            self.flattened = true;
        }
    }

    /// Final label (1-based, raster order of first pixel) of every run, and the count.
    /// Consumes the union–find (`parent` is taken).
    pub(crate) fn run_labels(&mut self) -> (Vec<u32>, usize) {
        resolve_labels(&mut std::mem::take(&mut self.parent))
    }

    /// Number of components none of whose pixels lies on the image border.
    pub(crate) fn count_not_touching_border(&mut self) -> usize {
        self.flatten();
        let mut touches = vec![false; self.parent.len()];
        for r in 0..self.rows {
            for i in self.row_runs(r) {
                if r == 0 || r + 1 == self.rows || self.start[i] == 0 || self.end[i] as usize == self.cols {
                    touches[self.parent[i] as usize] = true;
                }
            }
        }
        (0..self.parent.len()).filter(|&i| self.parent[i] == i as u32 && !touches[i]).count()
    }

    /// The label image (row-major), filled in parallel over strips of rows.
    pub(crate) fn label_image(&mut self) -> (Vec<u32>, usize) {
        let (labels, count) = self.run_labels();
        let (rows, cols) = (self.rows, self.cols);
        let mut flat = vec![0u32; rows * cols];
        if cols == 0 {
            return (flat, count);
        }
        let chunk_rows = 64;
        flat.par_chunks_mut(chunk_rows * cols).enumerate().for_each(|(chunk, out)| {
            let r0 = chunk * chunk_rows;
            for (dr, row) in out.chunks_mut(cols).enumerate() {
                for i in self.row_runs(r0 + dr) {
                    let l = labels[i];
                    // Runs are short on noisy masks: a plain loop beats a `fill` call each.
                    for v in &mut row[self.start[i] as usize..self.end[i] as usize] {
                        *v = l;
                    }
                }
            }
        });
        (flat, count)
    }
}

/// Labels the connected components of the foreground.
///
/// ```
/// use ndarray::array;
/// use nanoml_morphology::{label, Connectivity};
/// let mask = array![[true, false, true], [false, true, false]];
/// assert_eq!(label(&mask, Connectivity::Eight)?.count, 1);
/// assert_eq!(label(&mask, Connectivity::Four)?.count, 3);
/// # Ok::<(), nanoml_morphology::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidParameter`] for images of 2³² − 1 pixels or more.
pub fn label<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, connectivity: Connectivity) -> Result<Labels> {
    label_impl(mask, connectivity, false)
}

/// Labels the connected components of the foreground on a torus: the first and last rows
/// touch, and so do the first and last columns (simulation lattices with periodic
/// boundaries).
///
/// # Errors
/// As [`label()`].
pub fn label_periodic<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, connectivity: Connectivity) -> Result<Labels> {
    label_impl(mask, connectivity, true)
}

fn label_impl<S: Data<Elem = bool>>(
    mask: &ArrayBase<S, Ix2>,
    connectivity: Connectivity,
    periodic: bool,
) -> Result<Labels> {
    let (flat, count) = if !periodic {
        check_size(mask.dim())?;
        BandComponents::new(BitImage::from_mask_parallel(mask.view()), connectivity, true)
            .label_image(mask.as_slice().map(bytemuck::cast_slice::<bool, u8>))
    } else {
        RunComponents::new(mask, true, connectivity, periodic)?.label_image()
    };
    let image = Array2::from_shape_vec(mask.dim(), flat).map_err(|e| Error::invalid("mask", e, "a 2-D shape"))?;
    Ok(Labels { image, count })
}

/// Number of connected components of the foreground, without building a label image.
///
/// # Errors
/// As [`label()`].
pub fn count_components<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, connectivity: Connectivity) -> Result<usize> {
    check_size(mask.dim())?;
    Ok(BandComponents::new(BitImage::from_mask_parallel(mask.view()), connectivity, false).count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    /// Reference: flood fill from every unlabelled foreground pixel in raster order.
    fn naive(mask: &Array2<bool>, conn: Connectivity, periodic: bool) -> Array2<u32> {
        let (h, w) = mask.dim();
        let mut out = Array2::<u32>::zeros((h, w));
        let mut next = 0;
        let offsets: &[(isize, isize)] = match conn {
            Connectivity::Four => &[(-1, 0), (1, 0), (0, -1), (0, 1)],
            Connectivity::Eight => &[(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)],
        };
        for r0 in 0..h {
            for c0 in 0..w {
                if !mask[[r0, c0]] || out[[r0, c0]] != 0 {
                    continue;
                }
                next += 1;
                let mut stack = vec![(r0, c0)];
                out[[r0, c0]] = next;
                while let Some((r, c)) = stack.pop() {
                    for &(dr, dc) in offsets {
                        let (mut rr, mut cc) = (r as isize + dr, c as isize + dc);
                        if periodic {
                            rr = rr.rem_euclid(h as isize);
                            cc = cc.rem_euclid(w as isize);
                        } else if rr < 0 || cc < 0 || rr >= h as isize || cc >= w as isize {
                            continue;
                        }
                        let (rr, cc) = (rr as usize, cc as usize);
                        if mask[[rr, cc]] && out[[rr, cc]] == 0 {
                            out[[rr, cc]] = next;
                            stack.push((rr, cc));
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn diagonal_pair_is_one_or_two_components() {
        let m = array![[true, false], [false, true]];
        assert_eq!(label(&m, Connectivity::Eight).unwrap().count, 1);
        assert_eq!(label(&m, Connectivity::Four).unwrap().count, 2);
    }

    #[test]
    fn periodic_labelling_joins_across_the_seams() {
        let m = array![[true, false, false, true], [false, false, false, false], [true, false, false, false]];
        assert_eq!(label(&m, Connectivity::Four).unwrap().count, 3);
        assert_eq!(label_periodic(&m, Connectivity::Four).unwrap().count, 1);
        let d = array![[false, false, true], [true, false, false]];
        assert_eq!(label_periodic(&d, Connectivity::Four).unwrap().count, 2);
        assert_eq!(label_periodic(&d, Connectivity::Eight).unwrap().count, 1);
    }

    #[test]
    fn labels_do_not_depend_on_the_number_of_strips() {
        let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(12);
        let mask = Array2::from_shape_fn((97, 70), |_| rng.bernoulli(0.55));
        for conn in [Connectivity::Four, Connectivity::Eight] {
            for periodic in [false, true] {
                let reference = RunComponents::with_strips(&mask, true, conn, periodic, 1).unwrap().label_image();
                for strips in [2, 3, 7, 97, 200] {
                    let got = RunComponents::with_strips(&mask, true, conn, periodic, strips).unwrap().label_image();
                    assert_eq!(got, reference, "{conn:?} periodic={periodic} strips={strips}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn band_labelling_equals_run_labelling(r in 0usize..40, c in 0usize..150, p in 0.0f64..1.0, seed in any::<u64>(), strips in 1usize..8, eight in any::<bool>()) {
            let conn = if eight { Connectivity::Eight } else { Connectivity::Four };
            let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mask = Array2::from_shape_fn((r, c), |_| rng.bernoulli(p));
            let runs = RunComponents::with_strips(&mask, true, conn, false, 1).unwrap().label_image();
            let bands = BandComponents::with_strips(BitImage::from_mask(&mask), conn, true, strips).label_image(None);
            let from_bytes = BandComponents::with_strips(BitImage::from_mask(&mask), conn, true, strips).label_image(mask.as_slice().map(bytemuck::cast_slice::<bool, u8>));
            let portable = BandComponents::with_strips_using(BitImage::from_mask(&mask), conn, true, strips, true).label_image(None);
            prop_assert_eq!(&from_bytes, &runs);
            prop_assert_eq!(&portable, &runs);
            prop_assert_eq!(bands, runs);
        }

        #[test]
        fn labels_equal_flood_fill(r in 1usize..12, c in 1usize..12, p in 0.0f64..1.0, seed in any::<u64>(), eight in any::<bool>(), periodic in any::<bool>()) {
            let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mask = Array2::from_shape_fn((r, c), |_| rng.bernoulli(p));
            let conn = if eight { Connectivity::Eight } else { Connectivity::Four };
            let got = label_impl(&mask, conn, periodic).unwrap();
            let want = naive(&mask, conn, periodic);
            prop_assert_eq!(&got.image, &want);
            prop_assert_eq!(got.count as u32, want.iter().copied().max().unwrap_or(0));
            if !periodic {
                prop_assert_eq!(count_components(&mask, conn).unwrap(), got.count);
            }
        }
    }
}
