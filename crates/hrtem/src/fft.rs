//! Two-dimensional filtering with rustfft plans made once per grid and reused:
//! `a ← IFFT(FFT(a)·K)` in three parallel passes of 1-D transforms with two tiled
//! transposes between them.
//!
//! 1. pass over the rows of `a`: an optional elementwise step, then FFTs along y;
//! 2. transpose; pass over the rows of the transposed spectrum: FFT along x, multiply
//!    by the kernel row, inverse FFT along x, all while the row is in cache (rows where
//!    the kernel vanishes, beyond a band limit, are set to zero without transforms);
//! 3. transpose back; pass over the rows of `a`: inverse FFTs along y, then an optional
//!    elementwise step.
//!
//! The kernel is stored transposed (`[j, i]`) with numpy's 1/N of `ifft2` folded in.

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

impl<K: Copy + PartialEq + Default + Send + Mul<f32, Output = K>> Kernel<K> {
    /// A kernel from `value(i, j)` at frequency indices `i` (x) and `j` (y) of an
    /// `nx × ny` grid, evaluated in parallel.
    pub(crate) fn new(nx: usize, ny: usize, value: impl Fn(usize, usize) -> K + Sync) -> Self {
        let scale = 1.0 / (nx * ny).max(1) as f32;
        let mut values = vec![K::default(); nx * ny];
        let live = values
            .par_chunks_mut(nx.max(1))
            .enumerate()
            .map(|(j, row)| {
                let mut any = false;
                for (i, v) in row.iter_mut().enumerate() {
                    *v = value(i, j) * scale;
                    any |= *v != K::default();
                }
                any
            })
            .collect();
        Kernel { values, live }
    }
}

/// Rows per parallel task: at least 16 and about 16k values.
fn rows_per_task(len: usize) -> usize {
    ((len * 16).max(1 << 14) / len.max(1)).max(1)
}

/// FFTs of every `len`-long row of `data` in parallel, each task's rows first given to
/// `step(offset, rows)` (`offset`: index of the first value) when `before`, else after.
fn fft_rows(
    plan: &Arc<dyn Fft<f32>>,
    data: &mut [C32],
    len: usize,
    step: &(impl Fn(usize, &mut [C32]) + Sync),
    before: bool,
) {
    let per_task = rows_per_task(len) * len;
    data.par_chunks_mut(per_task).enumerate().for_each_init(
        || vec![C32::new(0.0, 0.0); plan.get_inplace_scratch_len()],
        |scratch, (t, chunk)| {
            if before {
                step(t * per_task, chunk);
            }
            plan.process_with_scratch(chunk, scratch);
            if !before {
                step(t * per_task, chunk);
            }
        },
    );
}

/// `dst[j][i] = src[i][j]` for an `rows × cols` source: stripes of `B` output rows in
/// parallel, each built from `B × B` tiles copied through a buffer on the stack (so
/// neither the reads nor the writes stride across power-of-two rows tile by tile).
fn transpose(src: &[C32], dst: &mut [C32], rows: usize, cols: usize) {
    const B: usize = 32;
    dst.par_chunks_mut(B * rows).enumerate().for_each(|(jb, out)| {
        let j0 = jb * B;
        let w = (cols - j0).min(B);
        let mut tile = [[C32::new(0.0, 0.0); B]; B];
        for i0 in (0..rows).step_by(B) {
            let h = (rows - i0).min(B);
            for di in 0..h {
                let line = &src[(i0 + di) * cols + j0..][..w];
                for (dj, &v) in line.iter().enumerate() {
                    tile[dj][di] = v;
                }
            }
            for (dj, t) in tile.iter().enumerate().take(w) {
                let line = &mut out[dj * rows + i0..][..h];
                // Whole tiles as fixed-size copies (inlined vector moves).
                match <&mut [C32; B]>::try_from(&mut *line) {
                    Ok(line) => *line = *t,
                    Err(_) => line.copy_from_slice(&t[..h]),
                }
            }
        }
    });
}

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
    /// `spectrum` is scratch of the same length.
    pub(crate) fn filter<K: Copy + Send + Sync>(
        &self,
        a: &mut [C32],
        spectrum: &mut [C32],
        kernel: &Kernel<K>,
        pre: impl Fn(usize, &mut [C32]) + Sync,
        post: impl Fn(usize, &mut [C32]) + Sync,
    ) where
        C32: MulAssign<K>,
    {
        let (nx, ny) = self.shape;
        fft_rows(&self.rows.0, a, ny, &pre, true);
        transpose(a, spectrum, nx, ny);
        let per_task = rows_per_task(nx) * nx;
        let (forward, inverse) = (&self.cols.0, &self.cols.1);
        let scratch_len = forward.get_inplace_scratch_len().max(inverse.get_inplace_scratch_len());
        spectrum.par_chunks_mut(per_task).enumerate().for_each_init(
            || vec![C32::new(0.0, 0.0); scratch_len],
            |scratch, (t, chunk)| {
                for (r, row) in chunk.chunks_mut(nx).enumerate() {
                    let j = t * per_task / nx + r;
                    if !kernel.live[j] {
                        row.fill(C32::new(0.0, 0.0));
                        continue;
                    }
                    forward.process_with_scratch(row, scratch);
                    row.iter_mut().zip(&kernel.values[j * nx..(j + 1) * nx]).for_each(|(s, &k)| *s *= k);
                    inverse.process_with_scratch(row, scratch);
                }
            },
        );
        transpose(spectrum, a, ny, nx);
        fft_rows(&self.rows.1, a, ny, &post, false);
    }
}
