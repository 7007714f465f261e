//! Sliding windows over images, as views (no copies).
//!
//! Two placement rules are offered:
//!
//! * [`Coverage::PyRabani`] reproduces the window count of the reference AFM screening code
//!   (Gordon et al. 2020): along an axis of length `n`, `⌊(n − size)/stride⌋` windows at
//!   `0, stride, 2·stride, …`. The last rows/columns are not covered, and an image exactly
//!   one window wide yields no window at all.
//! * [`Coverage::Full`] places windows at `0, stride, …` while they fit and adds one flush
//!   with the far edge when the stride leaves pixels uncovered, so that (for `stride <=
//!   size`) every pixel is in at least one window.
//!
//! ```
//! use ndarray::Array2;
//! use nanoml_core::window::{Coverage, WindowGrid};
//! let img = Array2::<f32>::zeros((10, 10));
//! let grid = WindowGrid::square(img.dim(), 4, 3, Coverage::Full)?;
//! assert_eq!(grid.offsets_along_rows(), &[0, 3, 6]);
//! let grid = WindowGrid::square(img.dim(), 4, 3, Coverage::PyRabani)?;
//! assert_eq!(grid.offsets_along_rows(), &[0, 3]);
//! assert_eq!(grid.views(img.view())?.count(), 4);
//! # Ok::<(), nanoml_core::Error>(())
//! ```

use crate::{Error, Result};
use ndarray::{ArrayView2, s};

/// Window placement rule; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Coverage {
    /// `⌊(n − size)/stride⌋` windows per axis, as the reference screening code counts them.
    PyRabani,
    /// The last window is flush with the far edge: with `stride <= size` every pixel is covered.
    #[default]
    Full,
}

/// The positions of equally sized windows on an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowGrid {
    shape: (usize, usize),
    size: (usize, usize),
    rows: Vec<usize>,
    cols: Vec<usize>,
}

fn offsets(n: usize, size: usize, stride: usize, coverage: Coverage) -> Vec<usize> {
    match coverage {
        Coverage::PyRabani => (0..(n - size) / stride).map(|a| a * stride).collect(),
        Coverage::Full => {
            let mut v: Vec<usize> = (0..=(n - size) / stride).map(|a| a * stride).collect();
            if v.last().is_some_and(|&l| l + size < n) {
                v.push(n - size);
            }
            v
        }
    }
}

impl WindowGrid {
    /// Windows of `size = (rows, cols)` moved by `stride = (rows, cols)` over an image of
    /// `shape = (rows, cols)`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming `size` or `stride` when either is zero or larger
    /// than the image, and naming `size` when the rule places no window.
    pub fn new(
        shape: (usize, usize),
        size: (usize, usize),
        stride: (usize, usize),
        coverage: Coverage,
    ) -> Result<Self> {
        if shape.0 == 0 || shape.1 == 0 {
            return Err(Error::EmptyInput { op: "WindowGrid::new", name: "image" });
        }
        if size.0 == 0 || size.1 == 0 || size.0 > shape.0 || size.1 > shape.1 {
            return Err(Error::invalid(
                "size",
                format!("{size:?}"),
                format!("each side in 1..={} x 1..={} (the image)", shape.0, shape.1),
            ));
        }
        if stride.0 == 0 || stride.1 == 0 || stride.0 > shape.0 || stride.1 > shape.1 {
            return Err(Error::invalid(
                "stride",
                format!("{stride:?}"),
                format!("each side in 1..={} x 1..={} (the image)", shape.0, shape.1),
            ));
        }
        let rows = offsets(shape.0, size.0, stride.0, coverage);
        let cols = offsets(shape.1, size.1, stride.1, coverage);
        if rows.is_empty() || cols.is_empty() {
            return Err(Error::invalid(
                "size",
                format!("{size:?}"),
                format!(
                    "small enough that the {coverage:?} rule places a window on a {shape:?} image (it needs image >= size + stride)"
                ),
            ));
        }
        Ok(WindowGrid { shape, size, rows, cols })
    }

    /// Square windows of side `size` and equal strides along both axes.
    ///
    /// # Errors
    /// As [`WindowGrid::new`].
    pub fn square(shape: (usize, usize), size: usize, stride: usize, coverage: Coverage) -> Result<Self> {
        Self::new(shape, (size, size), (stride, stride), coverage)
    }

    /// Window size `(rows, cols)`.
    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// Top offsets of the window rows.
    pub fn offsets_along_rows(&self) -> &[usize] {
        &self.rows
    }

    /// Left offsets of the window columns.
    pub fn offsets_along_cols(&self) -> &[usize] {
        &self.cols
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.rows.len() * self.cols.len()
    }

    /// Never true: construction fails when no window fits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Top-left corners `(row, col)` in row-major order.
    pub fn positions(&self) -> impl ExactSizeIterator<Item = (usize, usize)> + '_ {
        let nc = self.cols.len();
        (0..self.len()).map(move |i| (self.rows[i / nc], self.cols[i % nc]))
    }

    /// Views of the windows of `image`, in the order of [`positions`](Self::positions).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `image` does not have the shape the grid was made for.
    pub fn views<'a, T>(
        &'a self,
        image: ArrayView2<'a, T>,
    ) -> Result<impl ExactSizeIterator<Item = ArrayView2<'a, T>> + 'a> {
        if image.dim() != self.shape {
            return Err(Error::ShapeMismatch {
                op: "WindowGrid::views",
                left: vec![self.shape.0, self.shape.1],
                right: image.shape().to_vec(),
            });
        }
        let (h, w) = self.size;
        Ok(self.positions().map(move |(r, c)| image.slice_move(s![r..r + h, c..c + w])))
    }

    /// The image shape `(rows, cols)` the grid was made for.
    pub fn shape(&self) -> (usize, usize) {
        self.shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use proptest::prelude::*;

    #[test]
    fn pyrabani_counts_match_the_reference_formula() {
        // 512-px scan, 200-px windows, stride 8: int((512 - 200) / 8) = 39 per axis.
        let g = WindowGrid::square((512, 512), 200, 8, Coverage::PyRabani).unwrap();
        assert_eq!(g.len(), 39 * 39);
        assert_eq!(*g.offsets_along_rows().last().unwrap(), 38 * 8);
    }

    #[test]
    fn bad_sizes_and_strides_name_the_parameter() {
        let e = WindowGrid::square((10, 10), 0, 1, Coverage::Full).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { name: "size", .. }));
        let e = WindowGrid::square((10, 10), 11, 1, Coverage::Full).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { name: "size", .. }));
        let e = WindowGrid::square((10, 10), 3, 0, Coverage::Full).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { name: "stride", .. }));
        let e = WindowGrid::square((10, 10), 3, 11, Coverage::Full).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { name: "stride", .. }));
        let e = WindowGrid::square((10, 10), 10, 1, Coverage::PyRabani).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { name: "size", .. }));
        assert!(WindowGrid::square((0, 10), 1, 1, Coverage::Full).is_err());
    }

    #[test]
    fn views_are_the_right_pixels() {
        let img = Array2::from_shape_fn((6, 7), |(r, c)| r * 10 + c);
        let g = WindowGrid::new(img.dim(), (2, 3), (2, 2), Coverage::Full).unwrap();
        for ((r, c), v) in g.positions().zip(g.views(img.view()).unwrap()) {
            assert_eq!(v.dim(), (2, 3));
            assert_eq!(v[[0, 0]], r * 10 + c);
        }
    }

    #[test]
    fn views_of_an_image_of_another_shape_are_a_shape_error() {
        let g = WindowGrid::square((8, 8), 4, 4, Coverage::Full).unwrap();
        let small = Array2::<f32>::zeros((6, 8));
        assert!(matches!(g.views(small.view()), Err(Error::ShapeMismatch { op: "WindowGrid::views", .. })));
    }

    proptest! {
        #[test]
        fn full_coverage_covers_every_pixel((n, size, stride) in (1usize..60).prop_flat_map(|n| (Just(n), 1..=n)).prop_flat_map(|(n, s)| (Just(n), Just(s), 1..=s))) {
            let g = WindowGrid::square((n, n), size, stride, Coverage::Full).unwrap();
            let mut covered = vec![false; n];
            for &o in g.offsets_along_rows() {
                prop_assert!(o + size <= n);
                covered[o..o + size].iter_mut().for_each(|c| *c = true);
            }
            prop_assert!(covered.into_iter().all(|c| c));
        }
    }
}
