//! Two-dimensional FFTs with rustfft plans made once per grid and reused. A 2-D
//! transform is a parallel pass of row FFTs, a blocked transpose, a second parallel pass
//! and a transpose back; `inverse` includes the 1/N of numpy's `ifft2`.

use ndarray::Array2;
use num_complex::Complex;
use rayon::prelude::*;
use rustfft::{Fft, FftPlanner, num_traits::Float};
use std::sync::Arc;

/// Forward and inverse plans for an `nx × ny` grid.
pub(crate) struct Fft2<T: rustfft::FftNum> {
    rows: (Arc<dyn Fft<T>>, Arc<dyn Fft<T>>),
    cols: (Arc<dyn Fft<T>>, Arc<dyn Fft<T>>),
    shape: (usize, usize),
}

/// FFTs of every `len`-long chunk of `data`, in parallel, one scratch buffer per task.
fn fft_rows<T: rustfft::FftNum>(plan: &Arc<dyn Fft<T>>, data: &mut [Complex<T>], len: usize) {
    let per_task = (len * 16).max(1 << 14) / len * len;
    data.par_chunks_mut(per_task).for_each_init(
        || vec![Complex::new(T::zero(), T::zero()); plan.get_inplace_scratch_len()],
        |scratch, chunk| plan.process_with_scratch(chunk, scratch),
    );
}

/// `dst[j][i] = src[i][j]` for an `rows × cols` source: stripes of 16 output rows in
/// parallel, each filled from 16×16 tiles read row by row (the tile's 16 output lines
/// stay in L1 while the source is read contiguously).
fn transpose<T: Copy + Send + Sync>(src: &[T], dst: &mut [T], rows: usize, cols: usize) {
    const B: usize = 16;
    dst.par_chunks_mut(B * rows).enumerate().for_each(|(jb, out)| {
        let j0 = jb * B;
        let j1 = (j0 + B).min(cols);
        for i0 in (0..rows).step_by(B) {
            let i1 = (i0 + B).min(rows);
            for i in i0..i1 {
                let line = &src[i * cols + j0..i * cols + j1];
                for (dj, &v) in line.iter().enumerate() {
                    out[dj * rows + i] = v;
                }
            }
        }
    });
}

impl<T: rustfft::FftNum + Float> Fft2<T> {
    pub(crate) fn new(nx: usize, ny: usize) -> Self {
        let mut planner = FftPlanner::new();
        Fft2 {
            rows: (planner.plan_fft_forward(ny), planner.plan_fft_inverse(ny)),
            cols: (planner.plan_fft_forward(nx), planner.plan_fft_inverse(nx)),
            shape: (nx, ny),
        }
    }

    fn run(&self, a: &mut Array2<Complex<T>>, inverse: bool) {
        let (nx, ny) = self.shape;
        let (row, col) = if inverse { (&self.rows.1, &self.cols.1) } else { (&self.rows.0, &self.cols.0) };
        if a.as_slice().is_none() {
            *a = a.as_standard_layout().into_owned();
        }
        let Some(flat) = a.as_slice_mut() else { return };
        fft_rows(row, flat, ny);
        let mut t = vec![Complex::new(T::zero(), T::zero()); nx * ny];
        transpose(flat, &mut t, nx, ny);
        fft_rows(col, &mut t, nx);
        transpose(&t, flat, ny, nx);
        if inverse {
            let scale = T::one() / T::from(nx * ny).unwrap_or_else(T::one);
            flat.par_iter_mut().for_each(|v| *v = *v * scale);
        }
    }

    /// The spectrum of `a` (`nx × ny`, row-major) written transposed (`ny × nx`) into
    /// `out`; `a` is left as scratch. Saves the transpose back when the spectrum is only
    /// multiplied by a kernel stored transposed.
    pub(crate) fn forward_transposed(&self, a: &mut [Complex<T>], out: &mut [Complex<T>]) {
        let (nx, ny) = self.shape;
        fft_rows(&self.rows.0, a, ny);
        transpose(a, out, nx, ny);
        fft_rows(&self.cols.0, out, nx);
    }

    /// The inverse of [`Self::forward_transposed`]: a transposed spectrum `t` back to
    /// `a` (`nx × ny`), with numpy's 1/N; `t` is left as scratch.
    pub(crate) fn inverse_transposed(&self, t: &mut [Complex<T>], a: &mut [Complex<T>]) {
        let (nx, ny) = self.shape;
        fft_rows(&self.cols.1, t, nx);
        transpose(t, a, ny, nx);
        fft_rows(&self.rows.1, a, ny);
        let scale = T::one() / T::from(nx * ny).unwrap_or_else(T::one);
        a.par_iter_mut().for_each(|v| *v = *v * scale);
    }

    pub(crate) fn forward(&self, a: &mut Array2<Complex<T>>) {
        self.run(a, false);
    }

    pub(crate) fn inverse(&self, a: &mut Array2<Complex<T>>) {
        self.run(a, true);
    }
}
