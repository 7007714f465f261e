//! Connected-component labelling of binary images.
//!
//! The labelling works on runs (maximal horizontal segments of foreground) with a
//! union–find over runs, which touches each pixel once and each run a few times. Labels are
//! numbered `1..=count` in raster order of each component's first pixel, and background is
//! 0 — the numbering of `skimage.measure.label(mask, connectivity=…)`.

use crate::{Error, Result};
use ndarray::{Array2, ArrayBase, Data, Ix2};

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

#[derive(Clone, Copy, Debug)]
struct Run {
    row: u32,
    start: u32,
    /// One past the last column.
    end: u32,
}

/// Runs of one image and the union–find that joins them into components.
pub(crate) struct RunComponents {
    runs: Vec<Run>,
    parent: Vec<u32>,
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let p = parent[i as usize];
        parent[i as usize] = parent[p as usize];
        i = p;
    }
    i
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    // The smaller index (earlier run in raster order) becomes the root.
    if ra < rb {
        parent[rb as usize] = ra;
    } else if rb < ra {
        parent[ra as usize] = rb;
    }
}

impl RunComponents {
    /// Runs of the pixels where `mask == value`, joined with `connectivity`; with `periodic`
    /// the image is a torus.
    pub(crate) fn new<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, value: bool, connectivity: Connectivity, periodic: bool) -> Result<Self> {
        let (rows, cols) = mask.dim();
        if rows.checked_mul(cols).is_none_or(|n| n >= u32::MAX as usize) {
            return Err(Error::invalid("mask", format!("{rows}x{cols}"), "fewer than 2^32 - 1 pixels"));
        }
        let mut runs = Vec::new();
        let mut row_start = Vec::with_capacity(rows + 1);
        for (r, row) in mask.outer_iter().enumerate() {
            row_start.push(runs.len());
            let mut push_runs = |it: &mut dyn Iterator<Item = bool>| {
                let mut start = None;
                for (c, v) in it.enumerate() {
                    match (v == value, start) {
                        (true, None) => start = Some(c),
                        (false, Some(s)) => {
                            runs.push(Run { row: r as u32, start: s as u32, end: c as u32 });
                            start = None;
                        }
                        _ => {}
                    }
                }
                if let Some(s) = start {
                    runs.push(Run { row: r as u32, start: s as u32, end: cols as u32 });
                }
            };
            match row.as_slice() {
                Some(s) => push_runs(&mut s.iter().copied()),
                None => push_runs(&mut row.iter().copied()),
            }
        }
        row_start.push(runs.len());
        let mut parent: Vec<u32> = (0..runs.len() as u32).collect();
        // Reach of a run into the next row: 4-connectivity needs column overlap, 8 also
        // accepts touching corners.
        let reach = u32::from(connectivity == Connectivity::Eight);
        let join_rows = |parent: &mut Vec<u32>, above: std::ops::Range<usize>, below: std::ops::Range<usize>| {
            let mut j = above.start;
            for i in below {
                let cur = runs[i];
                while j < above.end && runs[j].end + reach <= cur.start {
                    j += 1;
                }
                let mut k = j;
                while k < above.end && runs[k].start < cur.end + reach {
                    union(parent, i as u32, k as u32);
                    k += 1;
                }
            }
        };
        for r in 1..rows {
            join_rows(&mut parent, row_start[r - 1]..row_start[r], row_start[r]..row_start[r + 1]);
        }
        if periodic && rows > 0 && cols > 0 {
            let row_runs = |r: usize| row_start[r]..row_start[r + 1];
            // Top and bottom rows touch.
            join_rows(&mut parent, row_runs(rows - 1), row_runs(0));
            for r in 0..rows {
                let this = row_runs(r);
                // A row's first and last columns touch.
                if let (Some(first), Some(last)) = (this.clone().next(), this.clone().last()) {
                    if runs[first].start == 0 && runs[last].end == cols as u32 {
                        union(&mut parent, first as u32, last as u32);
                    }
                }
                // With 8-connectivity, corners touch across the column seam between
                // vertically adjacent rows.
                if connectivity == Connectivity::Eight {
                    let next = row_runs((r + 1) % rows);
                    let touches_left = |range: std::ops::Range<usize>| range.clone().next().filter(|&i| runs[i].start == 0);
                    let touches_right = |range: std::ops::Range<usize>| range.clone().last().filter(|&i| runs[i].end == cols as u32);
                    if let (Some(a), Some(b)) = (touches_right(this.clone()), touches_left(next.clone())) {
                        union(&mut parent, a as u32, b as u32);
                    }
                    if let (Some(a), Some(b)) = (touches_left(this), touches_right(next)) {
                        union(&mut parent, a as u32, b as u32);
                    }
                }
            }
        }
        Ok(RunComponents { runs, parent })
    }

    /// Final label (1-based, raster order of first pixel) of every run, and the count.
    pub(crate) fn run_labels(&mut self) -> (Vec<u32>, usize) {
        let mut label_of_root = vec![0u32; self.runs.len()];
        let mut labels = Vec::with_capacity(self.runs.len());
        let mut next = 0u32;
        for i in 0..self.runs.len() {
            let root = find(&mut self.parent, i as u32) as usize;
            if label_of_root[root] == 0 {
                next += 1;
                label_of_root[root] = next;
            }
            labels.push(label_of_root[root]);
        }
        (labels, next as usize)
    }

    /// Number of components.
    pub(crate) fn count(&self) -> usize {
        self.parent.iter().enumerate().filter(|&(i, &p)| i as u32 == p).count()
    }

    /// Number of components none of whose pixels lies on the image border.
    pub(crate) fn count_not_touching_border(&mut self, rows: usize, cols: usize) -> usize {
        let mut touches = vec![false; self.runs.len()];
        for i in 0..self.runs.len() {
            let run = self.runs[i];
            if run.row == 0 || run.row as usize + 1 == rows || run.start == 0 || run.end as usize == cols {
                let root = find(&mut self.parent, i as u32) as usize;
                touches[root] = true;
            }
        }
        (0..self.runs.len()).filter(|&i| self.parent[i] == i as u32 && !touches[i]).count()
    }

    pub(crate) fn runs_with_labels(&mut self) -> impl Iterator<Item = (usize, usize, usize, u32)> + '_ {
        let (labels, _) = self.run_labels();
        self.runs.iter().zip(labels).map(|(r, l)| (r.row as usize, r.start as usize, r.end as usize, l))
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
/// As [`label`].
pub fn label_periodic<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, connectivity: Connectivity) -> Result<Labels> {
    label_impl(mask, connectivity, true)
}

fn label_impl<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, connectivity: Connectivity, periodic: bool) -> Result<Labels> {
    let mut comps = RunComponents::new(mask, true, connectivity, periodic)?;
    let mut image = Array2::<u32>::zeros(mask.dim());
    let mut count = 0;
    for (r, start, end, l) in comps.runs_with_labels() {
        image.row_mut(r).slice_mut(ndarray::s![start..end]).fill(l);
        count = count.max(l as usize);
    }
    Ok(Labels { image, count })
}

/// Number of connected components of the foreground, without building a label image.
///
/// # Errors
/// As [`label`].
pub fn count_components<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>, connectivity: Connectivity) -> Result<usize> {
    Ok(RunComponents::new(mask, true, connectivity, false)?.count())
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

    proptest! {
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
