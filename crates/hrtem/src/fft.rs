//! Two-dimensional filtering with rustfft plans made once per grid and reused:
//! `a ← IFFT(FFT(a)·K)` in place, in three parallel passes over the array (each reads
//! and writes it once; no transposed copies):
//!
//! 1. the rows of `a`: an optional elementwise step, then FFTs along y;
//! 2. blocks of 32 columns, gathered into a buffer: FFT along x, multiply by the
//!    kernel, inverse FFT along x, written back (columns where the kernel vanishes,
//!    beyond a band limit, are set to zero without transforms);
//! 3. the rows again: inverse FFTs along y, then an optional elementwise step.
//!
//! The kernel is stored transposed (`[j, i]`, one line per column of the spectrum)
//! with numpy's 1/N of `ifft2` folded in.

use ndarray::{ArrayViewMut2, Axis};
use num_complex::Complex;
use rayon::prelude::*;
use rustfft::{Fft, FftPlanner};
use std::collections::HashMap;
use std::ops::{Mul, MulAssign};
use std::sync::{Arc, Mutex, OnceLock};

type C32 = Complex<f32>;

/// Plans kept per grid shape.
type Plans = HashMap<(usize, usize), Arc<Fft2>>;

/// Forward and inverse plans for an `nx × ny` grid.
pub(crate) struct Fft2 {
    rows: (Arc<dyn Fft<f32>>, Arc<dyn Fft<f32>>),
    cols: (Arc<dyn Fft<f32>>, Arc<dyn Fft<f32>>),
    shape: (usize, usize),
}

/// A filter kernel in the transposed layout of the spectrum, scaled by 1/N, with the
/// transposed rows (fixed `ky`) that hold any non-zero value.
pub(crate) struct Kernel<K> {
    values: Vec<K>,
    live: Vec<bool>,
}

/// A symmetry of a kernel that saves evaluating it everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Symmetry {
    /// `K(−k) = K(k)` (every aberration function: χ has only even orders here). The
    /// Nyquist column of an even grid is evaluated, not mirrored.
    Point,
    /// `K(±kx, ±ky) = K(kx, ky)` (functions of `kx²` and `ky²`: radial kernels, the
    /// propagator, the potentials' form factors).
    Axes,
}

impl<K: Copy + PartialEq + Default + Send + Sync + Mul<f32, Output = K>> Kernel<K> {
    /// A kernel from `value(i, j)` at frequency indices `i` (x) and `j` (y) of an
    /// `nx × ny` grid in FFT order, evaluated in parallel on the half (or quarter) of
    /// the grid that `symmetry` leaves to compute and copied to the rest. The copies are
    /// exact: mirrored frequencies are exact negations.
    pub(crate) fn new(nx: usize, ny: usize, symmetry: Symmetry, value: impl Fn(usize, usize) -> K + Sync) -> Self {
        let scale = 1.0 / (nx * ny).max(1) as f32;
        let mut values = vec![K::default(); nx * ny];
        let half = (ny / 2 + 1).min(ny) * nx;
        let (first, rest) = values.split_at_mut(half);
        let is_live = |row: &[K]| row.iter().any(|v| *v != K::default());
        let mut live: Vec<bool> = first
            .par_chunks_mut(nx.max(1))
            .enumerate()
            .map(|(j, row)| {
                match symmetry {
                    Symmetry::Point => row.iter_mut().enumerate().for_each(|(i, v)| *v = value(i, j) * scale),
                    Symmetry::Axes => {
                        row.iter_mut().take(nx / 2 + 1).enumerate().for_each(|(i, v)| *v = value(i, j) * scale);
                        for i in nx / 2 + 1..nx {
                            row[i] = row[nx - i];
                        }
                    }
                }
                is_live(row)
            })
            .collect();
        let first = &*first;
        let rest_live: Vec<bool> = rest
            .par_chunks_mut(nx.max(1))
            .enumerate()
            .map(|(r, row)| {
                let source = &first[(ny - (ny / 2 + 1 + r)) * nx..][..nx];
                match symmetry {
                    Symmetry::Point => {
                        row.iter_mut().enumerate().for_each(|(i, v)| *v = source[(nx - i) % nx]);
                        // The Nyquist column of an even grid is its own mirror: −kx is not
                        // on the grid there, so it is evaluated.
                        if nx.is_multiple_of(2) {
                            row[nx / 2] = value(nx / 2, ny / 2 + 1 + r) * scale;
                        }
                    }
                    Symmetry::Axes => row.copy_from_slice(source),
                }
                is_live(row)
            })
            .collect();
        live.extend(rest_live);
        Kernel { values, live }
    }
}

/// Rows per parallel task: at least 16 and about 16k values.
fn rows_per_task(len: usize) -> usize {
    ((len * 16).max(1 << 14) / len.max(1)).max(1)
}

/// FFTs of every `len`-long row of `data` in parallel, each task's rows first given to
/// `step(offset, rows)` (`offset`: index of the first value) when `before`, else after.
/// Rows not flagged in `nonzero` (when given) are zero and left as they are.
fn fft_rows(
    plan: &Arc<dyn Fft<f32>>,
    data: &mut [C32],
    len: usize,
    step: &(impl Fn(usize, &mut [C32]) + Sync),
    before: bool,
    nonzero: Option<&[bool]>,
) {
    let per_task = rows_per_task(len) * len;
    data.par_chunks_mut(per_task).enumerate().for_each_init(
        || vec![C32::new(0.0, 0.0); plan.get_inplace_scratch_len()],
        |scratch, (t, chunk)| {
            if before {
                step(t * per_task, chunk);
            }
            match nonzero {
                None => plan.process_with_scratch(chunk, scratch),
                Some(flags) => {
                    for (r, row) in chunk.chunks_mut(len).enumerate() {
                        if flags.get(t * per_task / len + r).copied().unwrap_or(true) {
                            plan.process_with_scratch(row, scratch);
                        }
                    }
                }
            }
            if !before {
                step(t * per_task, chunk);
            }
        },
    );
}

/// Columns per task of the column pass: 32 values of 8 bytes, four whole cache lines
/// of each row.
const COLUMNS: usize = 32;

/// Padding of the gathered columns, so that the lines of a block do not all fall in
/// the same cache set when `nx` is a power of two.
const PAD: usize = 4;

/// No elementwise step.
pub(crate) fn nothing(_: usize, _: &mut [C32]) {}

impl Fft2 {
    fn new(nx: usize, ny: usize) -> Self {
        let mut planner = FftPlanner::new();
        Fft2 {
            rows: (planner.plan_fft_forward(ny), planner.plan_fft_inverse(ny)),
            cols: (planner.plan_fft_forward(nx), planner.plan_fft_inverse(nx)),
            shape: (nx, ny),
        }
    }

    /// The plans for an `nx × ny` grid, made on first use and kept (the few most
    /// recent grids) for later calls.
    pub(crate) fn cached(nx: usize, ny: usize) -> Arc<Fft2> {
        static PLANS: OnceLock<Mutex<Plans>> = OnceLock::new();
        let mut plans = PLANS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = plans.get(&(nx, ny)) {
            return Arc::clone(p);
        }
        if plans.len() >= 8 {
            plans.clear();
        }
        let p = Arc::new(Fft2::new(nx, ny));
        plans.insert((nx, ny), Arc::clone(&p));
        p
    }

    /// `a ← IFFT(FFT(pre(a))·kernel)`, then `post(a)`: `pre` and `post` get runs of
    /// whole rows of `a` (`nx × ny`, row-major) with the index of their first value.
    pub(crate) fn filter<K: Copy + Send + Sync>(
        &self,
        a: &mut [C32],
        kernel: &Kernel<K>,
        pre: impl Fn(usize, &mut [C32]) + Sync,
        post: impl Fn(usize, &mut [C32]) + Sync,
    ) where
        C32: MulAssign<K>,
    {
        self.rows_forward(a, pre);
        self.columns(a, kernel);
        self.rows_inverse(a, post);
    }

    /// The first pass of [`Self::filter`]: `pre`, then FFTs along the rows.
    pub(crate) fn rows_forward(&self, a: &mut [C32], pre: impl Fn(usize, &mut [C32]) + Sync) {
        fft_rows(&self.rows.0, a, self.shape.1, &pre, true, None);
    }

    /// [`Self::rows_forward`] without a step, for arrays that are zero outside the rows
    /// flagged in `nonzero` (the FFT of a zero row is zero, so those are skipped).
    pub(crate) fn rows_forward_sparse(&self, a: &mut [C32], nonzero: &[bool]) {
        fft_rows(&self.rows.0, a, self.shape.1, &nothing, true, Some(nonzero));
    }

    /// The last pass of [`Self::filter`]: inverse FFTs along the rows, then `post`.
    pub(crate) fn rows_inverse(&self, a: &mut [C32], post: impl Fn(usize, &mut [C32]) + Sync) {
        fft_rows(&self.rows.1, a, self.shape.1, &post, false, None);
    }

    /// One sweep over the rows of two arrays that have been through
    /// [`Self::rows_forward`] and [`Self::columns`]: the rows of `b` are transformed back
    /// into a copy (`b` is left as it is), those of `a` in place when `a_filtered`
    /// (else `a` is taken as it is), then `step(a_rows, b_rows)` combines them and the
    /// rows of `a` are transformed forward, ready for the next [`Self::columns`]. Ends
    /// two filters, combines their results and starts the next filter of `a` while
    /// the rows are in cache.
    pub(crate) fn rows_combine(
        &self,
        a: &mut [C32],
        a_filtered: bool,
        b: &[C32],
        step: impl Fn(&mut [C32], &[C32]) + Sync,
    ) {
        let ny = self.shape.1;
        let per_task = rows_per_task(ny) * ny;
        let (forward, inverse) = (&self.rows.0, &self.rows.1);
        let scratch_len = forward.get_inplace_scratch_len().max(inverse.get_inplace_scratch_len());
        a.par_chunks_mut(per_task).zip(b.par_chunks(per_task)).for_each(|(a, b)| {
            with_buffers([scratch_len, b.len()], |scratch, copy| {
                copy.copy_from_slice(b);
                inverse.process_with_scratch(copy, scratch);
                if a_filtered {
                    inverse.process_with_scratch(a, scratch);
                }
                step(a, copy);
                forward.process_with_scratch(a, scratch);
            });
        });
    }

    /// The column pass: blocks of [`COLUMNS`] columns in parallel, each gathered into a
    /// buffer, transformed along x, multiplied by the kernel, transformed back and
    /// written in place. Columns where the kernel vanishes are set to zero.
    pub(crate) fn columns<K: Copy + Send + Sync>(&self, a: &mut [C32], kernel: &Kernel<K>)
    where
        C32: MulAssign<K>,
    {
        let (nx, ny) = self.shape;
        let Ok(mut view) = ArrayViewMut2::from_shape((nx, ny), a) else { return };
        let blocks: Vec<_> = view.axis_chunks_iter_mut(Axis(1), COLUMNS).enumerate().collect();
        let (forward, inverse) = (&self.cols.0, &self.cols.1);
        let scratch_len = forward.get_inplace_scratch_len().max(inverse.get_inplace_scratch_len());
        let stride = nx + PAD;
        blocks.into_par_iter().for_each(|(b, mut block)| {
            let (j0, width) = (b * COLUMNS, block.ncols());
            if !kernel.live[j0..j0 + width].iter().any(|&l| l) {
                // Row by row: each row piece is contiguous, the block is not.
                block.rows_mut().into_iter().for_each(|mut row| row.fill(C32::new(0.0, 0.0)));
                return;
            }
            with_buffers([COLUMNS * stride, scratch_len], |buffer, scratch| {
                // Through 32 × 32 tiles: whole row pieces in, whole column pieces out.
                let mut tile = [[C32::new(0.0, 0.0); COLUMNS]; COLUMNS];
                for i0 in (0..nx).step_by(COLUMNS) {
                    let h = (nx - i0).min(COLUMNS);
                    for (di, t) in tile.iter_mut().enumerate().take(h) {
                        let row = block.row(i0 + di);
                        // Whole blocks as fixed-size copies (inlined moves, no calls).
                        match row.as_slice().map(<&[C32; COLUMNS]>::try_from) {
                            Some(Ok(row)) => *t = *row,
                            _ => t.iter_mut().zip(row.iter()).for_each(|(t, &v)| *t = v),
                        }
                    }
                    for c in 0..width {
                        let line = &mut buffer[c * stride + i0..c * stride + i0 + h];
                        for (di, v) in line.iter_mut().enumerate() {
                            *v = tile[di][c];
                        }
                    }
                }
                for c in 0..width {
                    let (j, line) = (j0 + c, &mut buffer[c * stride..c * stride + nx]);
                    if !kernel.live[j] {
                        line.fill(C32::new(0.0, 0.0));
                        continue;
                    }
                    forward.process_with_scratch(line, scratch);
                    line.iter_mut().zip(&kernel.values[j * nx..(j + 1) * nx]).for_each(|(s, &k)| *s *= k);
                    inverse.process_with_scratch(line, scratch);
                }
                for i0 in (0..nx).step_by(COLUMNS) {
                    let h = (nx - i0).min(COLUMNS);
                    for c in 0..width {
                        let line = &buffer[c * stride + i0..c * stride + i0 + h];
                        for (di, &v) in line.iter().enumerate() {
                            tile[di][c] = v;
                        }
                    }
                    for (di, t) in tile.iter().enumerate().take(h) {
                        let mut row = block.row_mut(i0 + di);
                        match row.as_slice_mut().map(<&mut [C32; COLUMNS]>::try_from) {
                            Some(Ok(row)) => *row = *t,
                            _ => row.iter_mut().zip(t).for_each(|(v, &t)| *v = t),
                        }
                    }
                }
            });
        });
    }
}

/// Per-thread scratch buffers of the passes, kept between calls: fresh buffers of
/// 100 kB and more would be mapped and faulted in for every task.
fn with_buffers<R>(lens: [usize; 2], f: impl FnOnce(&mut [C32], &mut [C32]) -> R) -> R {
    thread_local! {
        static BUFFERS: std::cell::RefCell<[Vec<C32>; 2]> = const { std::cell::RefCell::new([Vec::new(), Vec::new()]) };
    }
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => {
            let [a, b] = &mut *buffers;
            for (v, &len) in [&mut *a, &mut *b].into_iter().zip(&lens) {
                if v.len() < len {
                    v.resize(len, C32::new(0.0, 0.0));
                }
            }
            f(&mut a[..lens[0]], &mut b[..lens[1]])
        }
        // Only if a pass ever ran inside another on the same thread.
        Err(_) => f(&mut vec![C32::new(0.0, 0.0); lens[0]], &mut vec![C32::new(0.0, 0.0); lens[1]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::potential::frequencies;
    use std::f64::consts::PI;

    /// `IFFT(FFT(a)·K)` by direct sums in f64, `K[i][j]` in FFT order.
    fn direct(a: &[C32], k: &dyn Fn(usize, usize) -> Complex<f64>, nx: usize, ny: usize) -> Vec<Complex<f64>> {
        let e = |x: f64| Complex::new(x.cos(), x.sin());
        let mut spectrum = vec![Complex::new(0.0, 0.0); nx * ny];
        for (u, s) in spectrum.iter_mut().enumerate() {
            let (p, q) = (u / ny, u % ny);
            for (v, &x) in a.iter().enumerate() {
                let (i, j) = (v / ny, v % ny);
                let phase = -2.0 * PI * ((p * i) as f64 / nx as f64 + (q * j) as f64 / ny as f64);
                *s += Complex::new(f64::from(x.re), f64::from(x.im)) * e(phase);
            }
            *s *= k(p, q);
        }
        (0..nx * ny)
            .map(|v| {
                let (i, j) = (v / ny, v % ny);
                let sum: Complex<f64> = spectrum
                    .iter()
                    .enumerate()
                    .map(|(u, &s)| {
                        let (p, q) = (u / ny, u % ny);
                        s * e(2.0 * PI * ((p * i) as f64 / nx as f64 + (q * j) as f64 / ny as f64))
                    })
                    .sum();
                sum / (nx * ny) as f64
            })
            .collect()
    }

    #[test]
    fn filtering_equals_direct_sums_on_odd_even_and_wide_grids() {
        for (nx, ny) in [(5, 7), (6, 4), (9, 33), (33, 18), (1, 8)] {
            let a: Vec<C32> =
                (0..nx * ny).map(|v| C32::new(((v * 37) % 11) as f32 - 5.0, ((v * 13) % 7) as f32 * 0.5)).collect();
            let (kx, ky) = (frequencies(nx, 0.3), frequencies(ny, 0.2));
            // An even (point-symmetric) kernel with a band limit on ky, so that whole
            // columns of the spectrum vanish.
            let k = |i: usize, j: usize| {
                if ky[j].abs() > 1.6 {
                    Complex::new(0.0, 0.0)
                } else {
                    let chi = 3.0 * kx[i] * ky[j] + kx[i] * kx[i] - 0.5 * ky[j] * ky[j];
                    Complex::new(chi.cos(), -chi.sin()) * (-(kx[i] * kx[i]) * 0.1).exp()
                }
            };
            let kernel = Kernel::new(nx, ny, Symmetry::Point, |i, j| {
                let v = k(i, j);
                C32::new(v.re as f32, v.im as f32)
            });
            let want = direct(&a, &k, nx, ny);
            let mut got = a.clone();
            Fft2::cached(nx, ny).filter(&mut got, &kernel, nothing, nothing);
            let scale = want.iter().map(|w| w.norm()).fold(0.0, f64::max);
            for (g, w) in got.iter().zip(&want) {
                let d = (Complex::new(f64::from(g.re), f64::from(g.im)) - w).norm();
                assert!(d < 2e-5 * scale, "{nx}×{ny}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn symmetric_kernels_equal_full_evaluation() {
        for (nx, ny) in [(5, 7), (6, 4), (8, 8), (1, 3), (2, 1)] {
            let (kx, ky) = (frequencies(nx, 0.7), frequencies(ny, 0.4));
            let radial = |i: usize, j: usize| ((kx[i] * kx[i] + 2.0 * ky[j] * ky[j]).sqrt() + 0.3) as f32;
            let point_even =
                |i: usize, j: usize| C32::new((kx[i] * ky[j]) as f32, ((kx[i] * kx[i]) - (ky[j] * ky[j])) as f32);
            let scale = 1.0 / (nx * ny) as f32;
            let axes = Kernel::new(nx, ny, Symmetry::Axes, radial);
            let point = Kernel::new(nx, ny, Symmetry::Point, point_even);
            for j in 0..ny {
                for i in 0..nx {
                    assert_eq!(axes.values[j * nx + i], radial(i, j) * scale, "axes {nx}×{ny} at {i},{j}");
                    assert_eq!(point.values[j * nx + i], point_even(i, j) * scale, "point {nx}×{ny} at {i},{j}");
                }
            }
        }
    }
}
