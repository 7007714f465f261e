//! Two-dimensional FFTs with rustfft plans made once per grid and reused. A 2-D
//! transform is a parallel pass of row FFTs, a tiled transpose and a second parallel
//! pass; the spectrum stays transposed, so filtering (multiply by a kernel stored
//! transposed, transform back) needs no transpose in between. The inverse includes the
//! 1/N of numpy's `ifft2`.

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

    /// `a ← IFFT(FFT(a)·kernel)`: the one filtering step every caller needs, with
    /// `kernel` laid out transposed (`[j, i]`) as the spectrum is; `spectrum` is scratch
    /// of the same length.
    pub(crate) fn filter<K: Copy + Send + Sync>(&self, a: &mut [Complex<T>], kernel: &[K], spectrum: &mut [Complex<T>])
    where
        Complex<T>: std::ops::MulAssign<K>,
    {
        self.forward_transposed(a, spectrum);
        spectrum.par_iter_mut().zip(kernel.par_iter()).for_each(|(s, &k)| *s *= k);
        self.inverse_transposed(spectrum, a);
    }
}
