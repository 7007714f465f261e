//! # nanoml-morphology
//!
//! Exact, fast topology and shape statistics of binary images (`ndarray` arrays of
//! `bool`, indexed `[row, col]`):
//!
//! | what | function | matches |
//! |---|---|---|
//! | connected components (4/8, optionally periodic) | [`label()`], [`label_periodic`], [`count_components`] | `skimage.measure.label` |
//! | Euler number | [`euler_number`] | `skimage.measure.euler_number` (0.26) |
//! | legacy region Euler number, `1 − holes` | [`euler_number_legacy`] | `regionprops(..).euler_number`, scikit-image ≤ 0.17 |
//! | Euler number on a torus | [`euler_number_periodic`] | — |
//! | perimeter | [`perimeter()`] | `skimage.measure.perimeter` |
//! | Crofton perimeter | [`perimeter_crofton`] | `skimage.measure.perimeter_crofton` |
//! | Minkowski functionals | [`minkowski_functionals`] | Legland et al. 2007 |
//! | eccentricity, equivalent diameter | [`region_props`], [`mask_region_props`] | `regionprops` |
//! | closing with a square | [`closing_square`] | `skimage.morphology.closing` |
//! | SIA, SIP, SIE; homogeneity | [`scale_invariant_stats`], [`scale_invariance`], [`homogeneity`] | Gordon et al. 2020 |
//!
//! The "matches" column is tested against fixtures produced by scikit-image 0.26
//! (`tools/fixtures/morphology.py`).
//!
//! # Performance
//! Euler numbers, Crofton perimeters and Minkowski functionals come from one histogram of
//! 2×2 configurations computed on bit-packed rows (64 windows per machine word);
//! [`perimeter()`] classifies border pixels with bit-sliced neighbour counts; labelling
//! joins runs rather than pixels. See `docs/benchmarks.md` for the figures against
//! scikit-image.
//!
//! ```
//! use ndarray::Array2;
//! use nanoml_morphology::{euler_number, label, perimeter, Connectivity, Neighbourhood};
//! let mut mask = Array2::from_elem((8, 8), false);
//! mask.slice_mut(ndarray::s![1..4, 1..4]).fill(true);
//! mask.slice_mut(ndarray::s![5..7, 5..7]).fill(true);
//! assert_eq!(label(&mask, Connectivity::Eight)?.count, 2);
//! assert_eq!(euler_number(&mask, Connectivity::Eight), 2);
//! assert_eq!(perimeter(&mask, Neighbourhood::Four), 8.0 + 4.0);
//! # Ok::<(), nanoml_morphology::Error>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod bands;
mod bits;
mod error;
pub mod euler;
pub mod label;
pub mod minkowski;
pub mod morph;
pub mod perimeter;
pub mod quad;
pub mod regionprops;
pub mod stats;
mod unionfind;

pub use error::{Error, Result};
pub use euler::{bounding_box, count_holes, euler_number, euler_number_legacy, euler_number_periodic};
pub use label::{Connectivity, Labels, count_components, label, label_periodic};
pub use minkowski::{MinkowskiFunctionals, Spacing, minkowski_functionals, minkowski_functionals_periodic};
pub use morph::{closing_square, dilation_square, erosion_square};
pub use perimeter::{CroftonDirections, Neighbourhood, area, perimeter, perimeter_crofton};
pub use quad::QuadHistogram;
pub use regionprops::{MeanStd, RegionProps, RegionSummary, mask_region_props, region_props, summarize};
pub use stats::{
    EulerRule, HomogeneityFailure, HomogeneityParams, HomogeneityReport, ScaleInvarianceRow, ScaleInvariantStats,
    WindowStats, homogeneity, scale_invariance, scale_invariant_stats,
};
