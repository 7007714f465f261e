//! Two-dimensional FFTs with rustfft plans made once per grid and reused: rows, then
//! columns through a scratch column. `inverse` includes the 1/N of numpy's `ifft2`.

use ndarray::Array2;
use num_complex::Complex;
use rustfft::{Fft, FftPlanner, num_traits::Float};
use std::sync::Arc;

/// Forward and inverse plans for an `nx × ny` grid.
pub(crate) struct Fft2<T: rustfft::FftNum> {
    rows: (Arc<dyn Fft<T>>, Arc<dyn Fft<T>>),
    cols: (Arc<dyn Fft<T>>, Arc<dyn Fft<T>>),
    shape: (usize, usize),
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
        // `a` is standard layout: each row (fixed i, all j) is contiguous.
        if let Some(flat) = a.as_slice_mut() {
            row.process(flat);
        }
        let mut column = vec![Complex::new(T::zero(), T::zero()); nx];
        for j in 0..ny {
            for i in 0..nx {
                column[i] = a[[i, j]];
            }
            col.process(&mut column);
            for i in 0..nx {
                a[[i, j]] = column[i];
            }
        }
        if inverse {
            let scale = T::one() / T::from(nx * ny).unwrap_or_else(T::one);
            a.mapv_inplace(|v| v * scale);
        }
    }

    pub(crate) fn forward(&self, a: &mut Array2<Complex<T>>) {
        self.run(a, false);
    }

    pub(crate) fn inverse(&self, a: &mut Array2<Complex<T>>) {
        self.run(a, true);
    }
}
