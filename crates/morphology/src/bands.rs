//! 8-connected labelling on bands of two rows.
//!
//! With 8-connectivity, the foreground pixels of two adjacent rows that fall in one run of
//! the rows' union (their bitwise OR) are all connected: neighbouring columns of a run lie
//! within a 2×2 block. So the union–find can work on the runs of row *pairs* ("band
//! runs"), about a third as many as row runs on noisy masks, and bands need joining only
//! across every second row boundary. Two band runs `P` (band above) and `Q` touch iff a
//! pixel of the upper band's bottom row in `P` is 8-adjacent to a pixel of the lower band's
//! top row in `Q`. Those contacts are found with bit operations: the lower top row masked
//! by the dilated upper bottom row gives contact runs; each lies in one `Q`, and touches
//! the consecutive band runs `P` between its first and last contacting pixels above.

use crate::bits::{BitImage, shl1, shr1};
use crate::unionfind::{number_components, split_for_strips, union};
use rayon::prelude::*;

/// A band's union row with its run starts and the number of starts before each word.
struct BandRow {
    union: Vec<u64>,
    starts: Vec<u64>,
    starts_before: Vec<u32>,
    base: u32,
}

impl BandRow {
    fn new(bits: &BitImage, band: usize, base: u32) -> Self {
        let top = bits.row(2 * band);
        let union: Vec<u64> = if 2 * band + 1 < bits.rows {
            top.iter().zip(bits.row(2 * band + 1)).map(|(a, b)| a | b).collect()
        } else {
            top.to_vec()
        };
        let mut starts = vec![0u64; union.len()];
        let mut starts_before = vec![0u32; union.len()];
        let mut before = 0;
        for k in 0..union.len() {
            starts[k] = union[k] & !shl1(&union, k);
            starts_before[k] = before;
            before += starts[k].count_ones();
        }
        BandRow { union, starts, starts_before, base }
    }

    /// Index of the band run covering column `x` (which must be set in the union).
    #[inline]
    fn run_at(&self, x: usize) -> u32 {
        let (k, b) = (x / 64, x % 64);
        self.base + self.starts_before[k] + (self.starts[k] & (u64::MAX >> (63 - b))).count_ones() - 1
    }
}

#[inline]
fn bit(row: &[u64], x: isize) -> bool {
    x >= 0 && (row[x as usize / 64] >> (x as usize % 64)) & 1 == 1
}

/// Joins band `b` (`cur`) with band `b − 1` (`prev`); `offset` is subtracted from band-run
/// indices to index `parent`.
fn join_bands(
    parent: &mut [u32],
    offset: u32,
    bits: &BitImage,
    band: usize,
    prev: &BandRow,
    cur: &BandRow,
    scratch: &mut Vec<u64>,
) {
    let bottom = bits.row(2 * band - 1);
    let top = bits.row(2 * band);
    let words = top.len();
    scratch.clear();
    scratch.extend((0..words).map(|k| (bottom[k] | shl1(bottom, k) | shr1(bottom, k)) & top[k]));
    let contact = &scratch[..];
    let mut ends_word = 0;
    let mut ends = contact[0] & !shr1(contact, 0);
    for k in 0..words {
        let mut starts = contact[k] & !shl1(contact, k);
        while starts != 0 {
            let y0 = 64 * k + starts.trailing_zeros() as usize;
            starts &= starts - 1;
            while ends == 0 {
                ends_word += 1;
                ends = contact[ends_word] & !shr1(contact, ends_word);
            }
            let y1 = 64 * ends_word + ends.trailing_zeros() as usize;
            ends &= ends - 1;
            let q = cur.run_at(y0) - offset;
            let (y0, y1) = (y0 as isize, y1 as isize);
            // The contacting pixels above lie within one column of the contact run's ends;
            // chosen without branches, as these bits are random on noisy masks.
            let (before, at_start) = (bit(bottom, y0 - 1), bit(bottom, y0));
            let first = y0 - 1 + isize::from(!before) * (1 + isize::from(!at_start));
            let (after, at_end) = (bit(bottom, y1 + 1), bit(bottom, y1));
            let last = y1 + 1 - isize::from(!after) * (1 + isize::from(!at_end));
            let (p_first, p_last) = (prev.run_at(first as usize) - offset, prev.run_at(last as usize) - offset);
            union(parent, q, p_first);
            for p in p_first + 1..=p_last {
                union(parent, q, p);
            }
        }
    }
}

/// The first column in `s..e` whose bit is set in `row`.
fn first_set_bit(row: &[u64], s: usize, e: usize) -> Option<usize> {
    let mut k = s / 64;
    let mut word = row[k] & (u64::MAX << (s % 64));
    loop {
        if word != 0 {
            let x = 64 * k + word.trailing_zeros() as usize;
            return (x < e).then_some(x);
        }
        k += 1;
        if 64 * k >= e {
            return None;
        }
        word = row[k];
    }
}

/// Band runs of the foreground of a mask, joined into 8-connected components.
pub(crate) struct BandComponents {
    bits: BitImage,
    band_start: Vec<usize>,
    start: Vec<u32>,
    end: Vec<u32>,
    parent: Vec<u32>,
}

impl BandComponents {
    pub(crate) fn new(bits: BitImage) -> Self {
        let bands = bits.rows.div_ceil(2);
        let strips = (bands / 32).clamp(1, 4 * rayon::current_num_threads());
        Self::with_strips(bits, strips)
    }

    pub(crate) fn with_strips(bits: BitImage, strips: usize) -> Self {
        let bands = bits.rows.div_ceil(2);
        let per_band: Vec<usize> = (0..bands)
            .into_par_iter()
            .map_init(
                || vec![0u64; bits.words_per_row],
                |union, b| {
                    let top = bits.row(2 * b);
                    for (k, u) in union.iter_mut().enumerate() {
                        *u = top[k] | if 2 * b + 1 < bits.rows { bits.row(2 * b + 1)[k] } else { 0 };
                    }
                    (0..union.len()).map(|k| (union[k] & !shl1(union, k)).count_ones() as usize).sum::<usize>()
                },
            )
            .collect();
        let mut band_start = Vec::with_capacity(bands + 1);
        band_start.push(0);
        for n in &per_band {
            band_start.push(band_start.last().copied().unwrap_or(0) + n);
        }
        let total = band_start[bands];
        let (mut start, mut end, mut parent) = (vec![0u32; total], vec![0u32; total], vec![0u32; total]);
        let strips = strips.clamp(1, bands.max(1));
        let bounds: Vec<std::ops::Range<usize>> =
            (0..strips).map(|i| i * bands / strips..(i + 1) * bands / strips).collect();
        let jobs = split_for_strips(&bounds, &band_start, &mut start, &mut end, &mut parent);
        let bits_ref = &bits;
        let band_start_ref = &band_start;
        jobs.into_par_iter().for_each(|(b, s, e, p)| {
            let offset = band_start_ref[b.start] as u32;
            // Local indices while the strip is joined, global ones afterwards.
            for (i, v) in p.iter_mut().enumerate() {
                *v = i as u32;
            }
            let mut scratch = Vec::new();
            let mut prev: Option<BandRow> = None;
            let mut n = 0;
            for band in b.clone() {
                let cur = BandRow::new(bits_ref, band, band_start_ref[band] as u32);
                for k in 0..cur.union.len() {
                    let mut starts = cur.starts[k];
                    while starts != 0 {
                        s[n] = (64 * k) as u32 + starts.trailing_zeros();
                        n += 1;
                        starts &= starts - 1;
                    }
                }
                let mut m = band_start_ref[band] - offset as usize;
                for k in 0..cur.union.len() {
                    let mut ends = cur.union[k] & !shr1(&cur.union, k);
                    while ends != 0 {
                        e[m] = (64 * k) as u32 + ends.trailing_zeros() + 1;
                        m += 1;
                        ends &= ends - 1;
                    }
                }
                if let Some(prev) = &prev {
                    join_bands(p, offset, bits_ref, band, prev, &cur, &mut scratch);
                }
                prev = Some(cur);
            }
            for v in p.iter_mut() {
                *v += offset;
            }
        });
        let mut comps = BandComponents { bits, band_start, start, end, parent };
        // Seams between strips.
        let mut scratch = Vec::new();
        for b in bounds.iter().skip(1).filter(|b| b.start > 0 && b.start < bands) {
            let prev = BandRow::new(&comps.bits, b.start - 1, comps.band_start[b.start - 1] as u32);
            let cur = BandRow::new(&comps.bits, b.start, comps.band_start[b.start] as u32);
            join_bands(&mut comps.parent, 0, &comps.bits, b.start, &prev, &cur, &mut scratch);
        }
        comps
    }

    pub(crate) fn count(&self) -> usize {
        self.parent.iter().enumerate().filter(|&(i, &p)| i as u32 == p).count()
    }

    /// Row-major label image and the number of components. `mask`, when given, is the
    /// foreground as row-major 0/1 bytes (faster to fill from than the bits).
    pub(crate) fn label_image(mut self, mask: Option<&[u8]>) -> (Vec<u32>, usize) {
        // Number the components in raster order of their first pixel, as scikit-image
        // does, band by band. Band runs are disjoint and in column order, so among the
        // components that start in a band, those with a pixel in its top row come first,
        // in the order in which their first top-row band run is met; the others (bottom
        // row only) follow in the order of their first band run.
        let (bits, start, end) = (&self.bits, &self.start, &self.end);
        let has_top =
            |band: usize, i: usize| first_set_bit(bits.row(2 * band), start[i] as usize, end[i] as usize).is_some();
        let (labels, next) = number_components(&mut self.parent, &self.band_start, has_top);
        let (rows, cols) = (self.bits.rows, self.bits.cols);
        let mut flat = vec![0u32; rows * cols];
        if cols == 0 {
            return (flat, next);
        }
        let (bits, band_start, start, end) = (&self.bits, &self.band_start, &self.start, &self.end);
        let bands_per_task = 16;
        flat.par_chunks_mut(2 * cols * bands_per_task).enumerate().for_each(|(task, out)| {
            for (j, out) in out.chunks_mut(2 * cols).enumerate() {
                let band = task * bands_per_task + j;
                let (top_out, bottom_out) = out.split_at_mut(cols.min(out.len()));
                let runs = band_start[band]..band_start[band + 1];
                match mask {
                    // Multiply by the mask's 0/1 bytes: a loop the compiler vectorises.
                    Some(m) => {
                        let top = &m[2 * band * cols..(2 * band + 1) * cols];
                        let bottom =
                            if bottom_out.is_empty() { top } else { &m[(2 * band + 1) * cols..(2 * band + 2) * cols] };
                        if runs.len() * 8 > cols {
                            // Many short runs (noise): walk the pixels, counting band-run
                            // starts, rather than setting up a loop for every short run.
                            let union_row = BandRow::new(bits, band, 0);
                            let mut idx = runs.start; // one past the current run
                            for x in 0..cols {
                                idx += ((union_row.starts[x / 64] >> (x % 64)) & 1) as usize;
                                let l = labels[idx.max(1) - 1];
                                top_out[x] = l * u32::from(top[x]);
                                if !bottom_out.is_empty() {
                                    bottom_out[x] = l * u32::from(bottom[x]);
                                }
                            }
                            continue;
                        }
                        for i in runs {
                            let (l, span) = (labels[i], start[i] as usize..end[i] as usize);
                            for (o, &v) in top_out[span.clone()].iter_mut().zip(&top[span.clone()]) {
                                *o = l * u32::from(v);
                            }
                            if !bottom_out.is_empty() {
                                for (o, &v) in bottom_out[span.clone()].iter_mut().zip(&bottom[span]) {
                                    *o = l * u32::from(v);
                                }
                            }
                        }
                    }
                    None => {
                        let top = bits.row(2 * band);
                        let bottom = if bottom_out.is_empty() { top } else { bits.row(2 * band + 1) };
                        for i in runs {
                            let l = labels[i];
                            for x in start[i] as usize..end[i] as usize {
                                let (w, s) = (x / 64, x % 64);
                                top_out[x] = l & ((top[w] >> s) & 1).wrapping_neg() as u32;
                                if !bottom_out.is_empty() {
                                    bottom_out[x] = l & ((bottom[w] >> s) & 1).wrapping_neg() as u32;
                                }
                            }
                        }
                    }
                }
            }
        });
        (flat, next)
    }
}
