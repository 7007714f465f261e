//! # nanoml-spm
//!
//! Scanning-probe (AFM/STM) image processing for the screening pipelines. This first
//! part holds the thresholds the AFM screening binarises with:
//!
//! | what | where | matches |
//! |---|---|---|
//! | histogram of an image | [`threshold::histogram`] | `skimage.exposure.histogram(source_range='image')` |
//! | multi-Otsu thresholds (2–32 classes) | [`threshold::threshold_multiotsu`], [`threshold::threshold_multiotsu_histogram`] | `skimage.filters.threshold_multiotsu` (0.26), bit for bit |
//! | Otsu's threshold | [`threshold::threshold_otsu`] | `skimage.filters.threshold_otsu` |
//! | classes and masks from thresholds | [`threshold::digitize`], [`threshold::binarize`] | `np.digitize`, `image > t` |
//! | one image type for every reader: channels (name, unit, size, scan direction, data), metadata | [`SpmImage`] | — |
//! | Gwyddion native files (`.gwy`): read any object tree, channels out, write channels Gwyddion opens | [`io::gwy`] | gwyfile 0.3.0 on its test file |
//! | Nanonis scans (`.sxm`): every frame, forward and backward, oriented as Gwyddion shows them | [`io::sxm`] | nanonispy 1.1.0 on files built to the layout |
//! | Igor binary waves (`.ibw`, versions 2, 3, 5, both byte orders, numeric and text) | [`io::ibw`] | igor2 0.5.15 on the WaveMetrics samples |
//! | plane and polynomial levelling | [`level`] | Gwyddion 2.62 |
//! | row alignment: median, median of differences, trimmed means (and of differences), modus, row polynomials; exact ranks or libgwyddion 2.62's selection | [`align`], [`rank`] | Gwyddion 2.62, bit for bit with [`rank::Ranks::Gwyddion262`] |
//! | the screening code's preprocessing: min–max, binned median-of-differences alignment, noise rows, separable polynomial background, flat-binarisation test | [`screening`] | pyRabani's `Filters/screening.py` |
//! | synthetic artefacts: tip dilation (blunt, double), tip changes, step edges, tilt, bow, row offsets, scars, white and 1/f noise | [`synth`] | — |
//! | sliding windows | [`windows`] (re-exported from `nanoml-core`) | pyRabani's window count or full coverage |
//!
//! ```
//! use ndarray::Array2;
//! use nanoml_spm::threshold::{binarize, threshold_multiotsu};
//! // A height map with three terraces: the screening code keeps what lies above the
//! // lower of the two multi-Otsu thresholds.
//! let heights = Array2::from_shape_fn((30, 30), |(r, _)| (r / 10) as f64 * 1e-9);
//! let t = threshold_multiotsu(&heights, 3, 1000)?;
//! let mask = binarize(&heights, t[0]);
//! assert_eq!(mask.iter().filter(|&&m| m).count(), 600);
//! # Ok::<(), nanoml_spm::Error>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod align;
mod error;
pub mod image;
pub mod level;
mod lsq;
pub mod rank;

/// Readers of instrument and analysis files.
pub mod io {
    pub mod gwy;
    pub mod ibw;
    pub mod raw;
    pub mod sxm;

    /// Reads a file and parses its bytes; I/O errors and [`Corrupt`](crate::Error::Corrupt)
    /// errors name the path.
    pub(crate) fn read_file<T>(
        path: &std::path::Path,
        parse: impl FnOnce(&[u8]) -> crate::Result<T>,
    ) -> crate::Result<T> {
        let bytes =
            std::fs::read(path).map_err(|source| nanoml_core::Error::Io { path: path.to_path_buf(), source })?;
        parse(&bytes).map_err(|e| match e {
            crate::Error::Corrupt { format, path: None, reason } => {
                crate::Error::Corrupt { format, path: Some(path.to_path_buf()), reason }
            }
            other => other,
        })
    }
}
pub mod scars;
pub mod screening;
pub mod synth;
pub mod threshold;

pub use error::{Error, Result};
pub use image::{Channel, ScanDirection, SpmImage};

/// Sliding windows over images (from `nanoml-core`): pyRabani's window count or full
/// coverage, windows as views.
pub mod windows {
    pub use nanoml_core::window::*;
}
