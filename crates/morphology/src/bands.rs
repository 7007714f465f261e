//! Connected-component labelling on bands of two rows.
//!
//! The pixels of two adjacent rows (a "band") split into "band runs": maximal column
//! intervals whose pixels are all connected within the band. With 8-connectivity a band
//! run is a run of the rows' union (bitwise OR), since neighbouring columns of it lie in
//! one 2×2 block; with 4-connectivity a union run is further cut between two columns that
//! share no horizontal pair of pixels. The union–find then works on band runs, about a
//! third as many as row runs on noisy masks, and bands need joining only across every
//! second row boundary. Two band runs `P` (band above) and `Q` (band below) touch iff a
//! pixel of the upper band's bottom row in `P` is adjacent to a pixel of the lower band's
//! top row in `Q`. Those contacts are found with bit operations. With 4-connectivity the
//! contacts are the columns set in both rows, and a run of them lies in one `P` and one
//! `Q`. With 8-connectivity the lower top row is masked by the dilated upper bottom row;
//! each contact run lies in one `Q` and touches the consecutive band runs `P` between its
//! first and last contacting pixels above.

use crate::bits::{BitImage, shl1, shr1};
use crate::label::Connectivity;
use crate::unionfind::{offsets_and_strips, resolve_labels, union};
use rayon::prelude::*;

/// A band's union row with the starts and (inclusive) ends of its band runs, the number
/// of starts before each word, and which runs hold no top-row pixel.
#[derive(Default)]
struct BandRow {
    union: Vec<u64>,
    link: Vec<u64>,
    starts: Vec<u64>,
    starts_before: Vec<u32>,
    /// Bit x set where column x is the last of a band run without a pixel in the band's
    /// top row (see [`seedless_ends`]).
    seedless: Vec<u64>,
    base: u32,
    /// Index of each band run (in column order) in the band's storage order: runs with a
    /// pixel in the top row first, then the others, each group in column order. The
    /// earliest stored run of a component is then the one holding its first pixel in
    /// raster order, so numbering roots in index order numbers components as
    /// scikit-image does.
    order: Vec<u32>,
}

/// Fills `union` and `link` (bit x: columns x and x + 1 are connected within the band)
/// of `band` and returns its top row.
#[inline(always)]
fn band_words<'a>(
    bits: &'a BitImage,
    band: usize,
    connectivity: Connectivity,
    union: &mut Vec<u64>,
    link: &mut Vec<u64>,
) -> &'a [u64] {
    let words = bits.words_per_row;
    let top = bits.row(2 * band);
    let bottom = if 2 * band + 1 < bits.rows { Some(bits.row(2 * band + 1)) } else { None };
    union.clear();
    union.extend((0..words).map(|k| top[k] | bottom.map_or(0, |b| b[k])));
    link.clear();
    match (connectivity, bottom) {
        (Connectivity::Eight, _) | (Connectivity::Four, None) => {
            let u = &union[..];
            link.extend((0..words).map(|k| u[k] & shr1(u, k)));
        }
        (Connectivity::Four, Some(b)) => {
            link.extend((0..words).map(|k| (top[k] & shr1(top, k)) | (b[k] & shr1(b, k))));
        }
    }
    top
}

/// Marks in `out` the last column of every band run that holds no pixel of the band's
/// `top` row.
///
/// Such a run is a run of the band's `bottom` row alone. With 8-connectivity it is a run
/// of the union (with no top-row pixel in it: a top-row pixel diagonally next to it would
/// belong to it); with 4-connectivity it is a run of the bottom row with no top-row pixel
/// above any of its columns. Either way the candidate runs (`runs`, starting at `starts`)
/// are separated by empty columns, and one multi-word addition finds them all: adding
/// each run's start bit to the run's pixels that are not top-row pixels carries through
/// the whole run, out into the empty column after it, exactly when the run has no top-row
/// pixel; otherwise the carry stops at the first top-row pixel inside the run.
#[inline(always)]
fn seedless_ends(runs: &[u64], starts: impl Fn(usize) -> u64, top: &[u64], out: &mut Vec<u64>) {
    let words = runs.len();
    out.clear();
    out.resize(words, 0);
    let mut carry = false;
    for k in 0..words {
        let (sum, c1) = (runs[k] & !top[k]).overflowing_add(starts(k));
        let (sum, c2) = sum.overflowing_add(u64::from(carry));
        carry = c1 | c2;
        // The carry lands one column after the run's end (never past the spare column
        // after the last one); shift it back onto the end.
        let landed = sum & !runs[k];
        out[k] |= landed >> 1;
        if k > 0 {
            out[k - 1] |= landed << 63;
        }
    }
}

/// The stored index of a band's first run without a top-row pixel: runs with one come
/// first (see [`BandRow::order`]), from `base`; the `runs` of the band end there.
#[inline(always)]
fn first_without_top(base: u32, runs: u32, seedless: &[u64]) -> u32 {
    base + runs - seedless.iter().map(|w| w.count_ones()).sum::<u32>()
}

/// Calls `f(stored_index)` for every band run of a band (`runs` of them) in column order,
/// with the run's index in storage order (see [`BandRow::order`]).
#[inline(always)]
fn for_each_stored_index(
    union: &[u64],
    link: &[u64],
    seedless: &[u64],
    (base, runs): (u32, u32),
    mut f: impl FnMut(u32),
) {
    let (mut t, mut b) = (base, first_without_top(base, runs, seedless));
    for k in 0..union.len() {
        let mut ends = union[k] & !link[k];
        let lone = seedless[k];
        while ends != 0 {
            let x = ends.trailing_zeros();
            ends &= ends - 1;
            let no_top = (lone >> x) & 1 == 1;
            f(if no_top { b } else { t });
            t += u32::from(!no_top);
            b += u32::from(no_top);
        }
    }
}

/// Calls `f(first, last, stored_index)` for every band run of a band (`runs` of them) from
/// the last to the first (columns of its first and last pixel, index as in
/// [`for_each_stored_index`]).
#[inline(always)]
fn for_each_run_backwards(
    union: &[u64],
    link: &[u64],
    seedless: &[u64],
    (base, runs): (u32, u32),
    mut f: impl FnMut(usize, usize, u32),
) {
    // One past the last stored index of each group.
    let (mut t, mut b) = (first_without_top(base, runs, seedless), base + runs);
    let (mut start_word, mut starts) = (union.len(), 0u64);
    for k in (0..union.len()).rev() {
        let mut ends = union[k] & !link[k];
        let lone = seedless[k];
        while ends != 0 {
            let x = 63 - ends.leading_zeros();
            ends ^= 1 << x;
            // The run's start is the highest start not after its end.
            while starts == 0 {
                start_word -= 1;
                starts = union[start_word] & !shl1(link, start_word);
            }
            let sx = 63 - starts.leading_zeros();
            starts ^= 1 << sx;
            let no_top = (lone >> x) & 1 == 1;
            t -= u32::from(!no_top);
            b -= u32::from(no_top);
            f(64 * start_word + sx as usize, 64 * k + x as usize, if no_top { b } else { t });
        }
    }
}

impl BandRow {
    /// Recomputes the row for `band`, reusing the buffers; returns the band's top row.
    #[inline(always)]
    fn load<'a>(&mut self, bits: &'a BitImage, band: usize, base: u32, connectivity: Connectivity) -> &'a [u64] {
        let words = bits.words_per_row;
        self.base = base;
        let top = band_words(bits, band, connectivity, &mut self.union, &mut self.link);
        self.starts.clear();
        self.starts.extend((0..words).map(|k| self.union[k] & !shl1(&self.link, k)));
        self.starts_before.clear();
        let mut before = 0;
        for k in 0..words {
            self.starts_before.push(before);
            before += self.starts[k].count_ones();
        }
        top
    }

    /// [`load`](Self::load), then which runs hold no top-row pixel and the storage order
    /// of the runs (identity when `ordered` is false, e.g. when only counting components).
    #[inline(always)]
    fn load_ordered(&mut self, bits: &BitImage, band: usize, base: u32, connectivity: Connectivity, ordered: bool) {
        let top = self.load(bits, band, base, connectivity);
        let runs = self.starts_before.last().copied().unwrap_or(0) + self.starts.last().map_or(0, |w| w.count_ones());
        self.order.clear();
        if !ordered {
            self.order.extend(base..base + runs);
            return;
        }
        match connectivity {
            Connectivity::Eight => seedless_ends(&self.union, |k| self.starts[k], top, &mut self.seedless),
            // A band of one row (the last of an odd number) has only top-row pixels.
            Connectivity::Four if 2 * band + 1 == bits.rows => {
                self.seedless.clear();
                self.seedless.resize(top.len(), 0);
            }
            Connectivity::Four => {
                let bottom = bits.row(2 * band + 1);
                seedless_ends(bottom, |k| bottom[k] & !shl1(bottom, k), top, &mut self.seedless);
            }
        }
        let order = &mut self.order;
        for_each_stored_index(&self.union, &self.link, &self.seedless, (base, runs), |stored| order.push(stored));
    }

    fn new(bits: &BitImage, band: usize, base: u32, connectivity: Connectivity, ordered: bool) -> Self {
        let mut row = BandRow::default();
        row.load_ordered(bits, band, base, connectivity, ordered);
        row
    }

    /// Stored index of the band run covering column `x` (which must be set).
    #[inline]
    fn index_at(&self, x: usize) -> u32 {
        self.order[(self.run_at(x) - self.base) as usize]
    }

    /// Index of the band run covering column `x` (which must be set in the union).
    #[inline]
    fn run_at(&self, x: usize) -> u32 {
        let (k, b) = (x / 64, x % 64);
        self.base + self.starts_before[k] + (self.starts[k] & (u64::MAX >> (63 - b))).count_ones() - 1
    }
}

/// Number of band runs of `band`, computed word by word without buffers.
fn count_band_runs(bits: &BitImage, band: usize, connectivity: Connectivity) -> usize {
    let top = bits.row(2 * band);
    let bottom = if 2 * band + 1 < bits.rows { bits.row(2 * band + 1) } else { top };
    let mut prev_link = 0u64;
    let mut runs = 0;
    for k in 0..top.len() {
        let union = top[k] | bottom[k];
        let link = match connectivity {
            Connectivity::Eight => union & shr1_pair(union, top, bottom, k),
            Connectivity::Four => (top[k] & shr1(top, k)) | (bottom[k] & shr1(bottom, k)),
        };
        runs += (union & !(link << 1 | prev_link >> 63)).count_ones() as usize;
        prev_link = link;
    }
    runs
}

/// Word `k` of the union of two rows shifted as [`shr1`] shifts one row.
#[inline(always)]
fn shr1_pair(union: u64, top: &[u64], bottom: &[u64], k: usize) -> u64 {
    let next = if k + 1 < top.len() { top[k + 1] | bottom[k + 1] } else { 0 };
    (union >> 1) | next << 63
}

/// Joins band `b` (`cur`) with band `b − 1` (`prev`); `offset` is subtracted from band-run
/// indices to index `parent`.
///
/// A pixel of the upper band's bottom row `B` touches one of the lower band's top row `T`
/// straight below it (both connectivities) or, with 8-connectivity, diagonally. Pixels
/// next to each other in `B` lie in one band run above, and so do those in `T` below, so
/// one union per run of vertical contacts (`B & T`) joins all of them. A diagonal contact
/// needs its own union only where neither of its pixels has a vertical contact (the
/// contact is then already joined through its neighbours): `B` at `x`, `T` at `x + 1`,
/// neither `T` at `x` nor `B` at `x + 1` (and mirrored). Those are single columns, one
/// union each, found with word-wide bit operations like the runs.
#[inline(always)]
fn join_bands(
    parent: &mut [u32],
    offset: u32,
    bits: &BitImage,
    band: usize,
    (prev, cur): (&BandRow, &BandRow),
    connectivity: Connectivity,
) {
    let bottom = bits.row(2 * band - 1);
    let top = bits.row(2 * band);
    let mut previous_vertical = 0u64;
    for k in 0..top.len() {
        let vertical = bottom[k] & top[k];
        let mut starts = vertical & !(vertical << 1 | previous_vertical >> 63);
        previous_vertical = vertical;
        while starts != 0 {
            let x = 64 * k + starts.trailing_zeros() as usize;
            starts &= starts - 1;
            union(parent, cur.index_at(x) - offset, prev.index_at(x) - offset);
        }
        if connectivity == Connectivity::Four {
            continue;
        }
        // Bit x of `right_b`, `right_t`: the pixel at x + 1.
        let (right_b, right_t) = (shr1(bottom, k), shr1(top, k));
        let mut down_right = bottom[k] & !right_b & right_t & !top[k];
        while down_right != 0 {
            let x = 64 * k + down_right.trailing_zeros() as usize;
            down_right &= down_right - 1;
            union(parent, cur.index_at(x + 1) - offset, prev.index_at(x) - offset);
        }
        let mut down_left = right_b & !bottom[k] & top[k] & !right_t;
        while down_left != 0 {
            let x = 64 * k + down_left.trailing_zeros() as usize;
            down_left &= down_left - 1;
            union(parent, cur.index_at(x) - offset, prev.index_at(x + 1) - offset);
        }
    }
}

/// One strip's share of the work: its range of bands, its slice of `parent` and of the
/// per-band words marking runs without a top-row pixel.
type StripJob<'a> = (std::ops::Range<usize>, &'a mut [u32], &'a mut [u64]);

/// Joins the band runs of one strip of bands band to band (the per-strip work of
/// [`BandComponents::with_strips`]) and stores which of them hold no top-row pixel, with
/// the fastest code this CPU runs unless `portable` asks for the baseline code (which
/// tests compare with).
fn join_strip(
    job: StripJob<'_>,
    bits: &BitImage,
    band_start: &[usize],
    connectivity: Connectivity,
    ordered: bool,
    portable: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if !portable && crate::bits::has_bit_instructions() {
        // SAFETY: the CPU has the instructions `join_strip_bit_instructions` is compiled for.
        #[allow(unsafe_code)]
        return unsafe { join_strip_bit_instructions(job, bits, band_start, connectivity, ordered) };
    }
    join_strip_portable(job, bits, band_start, connectivity, ordered)
}

/// [`join_strip_portable`] compiled with x86-64's bit-manipulation instructions: band-run
/// indices are bit counts, which baseline x86-64 code computes in software (about ten
/// instructions for one `popcnt`). About 15 % faster on noisy masks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt,lzcnt,bmi1,bmi2")]
fn join_strip_bit_instructions(
    job: StripJob<'_>,
    bits: &BitImage,
    band_start: &[usize],
    connectivity: Connectivity,
    ordered: bool,
) {
    join_strip_portable(job, bits, band_start, connectivity, ordered);
}

#[inline(always)]
fn join_strip_portable(
    (b, p, seedless): StripJob<'_>,
    bits: &BitImage,
    band_start: &[usize],
    connectivity: Connectivity,
    ordered: bool,
) {
    let offset = band_start[b.start] as u32;
    // Local indices while the strip is joined, global ones afterwards.
    for (i, v) in p.iter_mut().enumerate() {
        *v = i as u32;
    }
    let (mut prev, mut cur) = (BandRow::default(), BandRow::default());
    let words = bits.words_per_row;
    for band in b.clone() {
        cur.load_ordered(bits, band, band_start[band] as u32, connectivity, ordered);
        if ordered {
            let j = band - b.start;
            seedless[j * words..(j + 1) * words].copy_from_slice(&cur.seedless);
        }
        if band > b.start {
            join_bands(p, offset, bits, band, (&prev, &cur), connectivity);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    for v in p.iter_mut() {
        *v += offset;
    }
}

/// Band runs of the foreground of a mask, joined into connected components.
pub(crate) struct BandComponents {
    bits: BitImage,
    connectivity: Connectivity,
    band_start: Vec<usize>,
    parent: Vec<u32>,
    /// Per band, `words_per_row` words marking the ends of runs without a top-row pixel
    /// (empty unless built `ordered`).
    seedless: Vec<u64>,
}

impl BandComponents {
    /// Components of the foreground of `bits`. With `ordered`, band runs are stored in
    /// the order that makes [`label_image`](Self::label_image) number components in raster
    /// order; without, only [`count`](Self::count) is meaningful.
    pub(crate) fn new(bits: BitImage, connectivity: Connectivity, ordered: bool) -> Self {
        let bands = bits.rows.div_ceil(2);
        let strips = (bands / 32).clamp(1, 4 * rayon::current_num_threads());
        Self::with_strips(bits, connectivity, ordered, strips)
    }

    pub(crate) fn with_strips(bits: BitImage, connectivity: Connectivity, ordered: bool, strips: usize) -> Self {
        Self::with_strips_using(bits, connectivity, ordered, strips, false)
    }

    /// [`with_strips`](Self::with_strips), with the baseline code for every CPU when
    /// `portable`.
    pub(crate) fn with_strips_using(
        bits: BitImage,
        connectivity: Connectivity,
        ordered: bool,
        strips: usize,
        portable: bool,
    ) -> Self {
        let bands = bits.rows.div_ceil(2);
        let words = bits.words_per_row;
        let per_band: Vec<usize> =
            (0..bands).into_par_iter().map(|b| count_band_runs(&bits, b, connectivity)).collect();
        let (band_start, bounds) = offsets_and_strips(&per_band, strips);
        let mut parent = vec![0u32; band_start[bands]];
        let mut seedless = if ordered { vec![0u64; bands * words] } else { Vec::new() };
        let mut jobs: Vec<StripJob<'_>> = Vec::with_capacity(bounds.len());
        let (mut p_rest, mut s_rest) = (&mut parent[..], &mut seedless[..]);
        for r in &bounds {
            let (p_now, p_next) = std::mem::take(&mut p_rest).split_at_mut(band_start[r.end] - band_start[r.start]);
            let n = if ordered { r.len() * words } else { 0 };
            let (s_now, s_next) = std::mem::take(&mut s_rest).split_at_mut(n);
            (p_rest, s_rest) = (p_next, s_next);
            jobs.push((r.clone(), p_now, s_now));
        }
        let bits_ref = &bits;
        let band_start_ref = &band_start;
        jobs.into_par_iter().for_each(|job| join_strip(job, bits_ref, band_start_ref, connectivity, ordered, portable));
        let mut comps = BandComponents { bits, connectivity, band_start, parent, seedless };
        // Seams between strips.
        for b in bounds.iter().skip(1).filter(|b| b.start > 0 && b.start < bands) {
            let prev =
                BandRow::new(&comps.bits, b.start - 1, comps.band_start[b.start - 1] as u32, connectivity, ordered);
            let cur = BandRow::new(&comps.bits, b.start, comps.band_start[b.start] as u32, connectivity, ordered);
            join_bands(&mut comps.parent, 0, &comps.bits, b.start, (&prev, &cur), connectivity);
        }
        comps
    }

    pub(crate) fn count(&self) -> usize {
        self.parent.iter().enumerate().filter(|&(i, &p)| i as u32 == p).count()
    }

    /// Row-major label image and the number of components. `mask`, when given, is the
    /// foreground as row-major 0/1 bytes (faster to fill from than the bits). Must be
    /// built `ordered`.
    pub(crate) fn label_image(mut self, mask: Option<&[u8]>) -> (Vec<u32>, usize) {
        // Roots are numbered in index order, which is raster order of first pixels thanks to
        // the storage order of band runs.
        let (labels, next) = resolve_labels(&mut self.parent);
        let (rows, cols) = (self.bits.rows, self.bits.cols);
        if cols == 0 || rows == 0 {
            return (Vec::new(), next);
        }
        // The label image is written exactly once, band by band in parallel, into
        // uninitialised memory: zero-initialising 4 bytes per pixel first, on one thread,
        // would cost a tenth of the whole labelling on large masks.
        let n = rows * cols;
        let mut flat: Vec<u32> = Vec::with_capacity(n);
        let (bits, band_start, seedless, connectivity) =
            (&self.bits, &self.band_start, &self.seedless, self.connectivity);
        let words = bits.words_per_row;
        let bands_per_task = 16;
        flat.spare_capacity_mut()[..n].par_chunks_mut(2 * cols * bands_per_task).enumerate().for_each(|(task, out)| {
            let (mut marker, mut union, mut link) = (Vec::<u32>::new(), Vec::new(), Vec::new());
            for (j, out) in out.chunks_mut(2 * cols).enumerate() {
                let band = task * bands_per_task + j;
                band_words(bits, band, connectivity, &mut union, &mut link);
                let lone = &seedless[band * words..(band + 1) * words];
                let (base, runs) = (band_start[band] as u32, (band_start[band + 1] - band_start[band]) as u32);
                let (top_out, bottom_out) = out.split_at_mut(cols.min(out.len()));
                let many = runs as usize * 8 > cols;
                match mask {
                    // Many short runs (noise): a row of labels covering every run, then both
                    // rows masked by multiplying with the mask's 0/1 bytes (a loop the
                    // compiler vectorises); every pixel of the band is written. Columns
                    // between runs are empty in both rows, so what the label row holds
                    // there is masked away.
                    Some(m) if many => {
                        let top = &m[2 * band * cols..(2 * band + 1) * cols];
                        let bottom =
                            if bottom_out.is_empty() { top } else { &m[(2 * band + 1) * cols..(2 * band + 2) * cols] };
                        // marker[8 + x] is column x's label; eight labels are stored at once
                        // ending at each run's last column, from the last run to the first,
                        // so that every run's columns keep its own label.
                        marker.resize(cols + 8, 0);
                        for_each_run_backwards(&union, &link, lone, (base, runs), |first, last, i| {
                            let l = labels[i as usize];
                            marker[last + 1..last + 9].copy_from_slice(&[l; 8]);
                            if last - first >= 8 {
                                marker[8 + first..last + 1].fill(l);
                            }
                        });
                        let marker = &marker[8..];
                        for ((o, &t), &l) in top_out.iter_mut().zip(top).zip(marker) {
                            o.write(l & u32::from(t).wrapping_neg());
                        }
                        for ((o, &b), &l) in bottom_out.iter_mut().zip(bottom).zip(marker) {
                            o.write(l & u32::from(b).wrapping_neg());
                        }
                    }
                    // Few long runs: zero the band, then write each run.
                    _ => {
                        out.fill(std::mem::MaybeUninit::new(0));
                        let (top_out, bottom_out) = out.split_at_mut(cols.min(out.len()));
                        let (top_bits, bottom_bits) = (bits.row(2 * band), bits.row((2 * band + 1).min(rows - 1)));
                        for_each_run_backwards(&union, &link, lone, (base, runs), |first, last, i| {
                            let (l, span) = (labels[i as usize], first..last + 1);
                            match mask {
                                Some(m) => {
                                    let top = &m[2 * band * cols..][span.clone()];
                                    for (o, &v) in top_out[span.clone()].iter_mut().zip(top) {
                                        o.write(l & u32::from(v).wrapping_neg());
                                    }
                                    if !bottom_out.is_empty() {
                                        let bottom = &m[(2 * band + 1) * cols..][span.clone()];
                                        for (o, &v) in bottom_out[span].iter_mut().zip(bottom) {
                                            o.write(l & u32::from(v).wrapping_neg());
                                        }
                                    }
                                }
                                None => {
                                    for x in span {
                                        let (w, s) = (x / 64, x % 64);
                                        top_out[x].write(l & ((top_bits[w] >> s) & 1).wrapping_neg() as u32);
                                        if !bottom_out.is_empty() {
                                            bottom_out[x].write(l & ((bottom_bits[w] >> s) & 1).wrapping_neg() as u32);
                                        }
                                    }
                                }
                            }
                        });
                    }
                }
            }
        });
        // SAFETY: the chunks above cover `0..n` (every band's one or two rows), and every
        // branch writes each element of its band: the sweep writes all `cols` pixels of both
        // rows, the other branch zeroes the band before writing runs.
        #[allow(unsafe_code)]
        unsafe {
            flat.set_len(n);
        }
        (flat, next)
    }
}
