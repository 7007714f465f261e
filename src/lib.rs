//! # nanoml
//!
//! Machine learning on nanoscale microscopy images: physics simulations make labelled
//! training data, networks trained on them find, clean, classify and measure structures
//! in real AFM/STM and HRTEM images.
//!
//! This facade re-exports the member crates under short names and, as they land, holds the
//! workflows that combine them:
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `nanoml-core` | seed policy and RNG, progress callbacks, PNG/NPY I/O, resampling, affine warps, sliding windows |
//! | [`morphology`] | `nanoml-morphology` | labelling, Euler numbers, perimeters, Minkowski functionals, region properties, homogeneity tests |
//! | [`spm`] | `nanoml-spm` | scanning-probe images: instrument files, levelling, row alignment and scars as Gwyddion, multi-Otsu and Otsu as scikit-image, the screening chain, synthetic artefacts |
//! | [`hrtem`] | `nanoml-hrtem` | HRTEM of nanoparticles: Wulff-constructed FCC particles as ASE builds them, zone axes, column-height ground truth (multislice to come) |
//! | [`models`] | `nanoml-models` | networks on candle: the AFM-screening classifier and denoiser, training loop and optimisers, metrics equal to scikit-learn's, checkpoints, augmentation |
//! | [`screening`] | facade | the AFM screening workflow: preprocessing → denoiser → homogeneity → classifier → verdict, reports and overlays |
//! | [`rabani`] | `nanoml-rabani` | Rabani lattice Monte Carlo of drying nanoparticle films, Euler-number categories, training sets |
//!
//! ```
//! use nanoml::morphology::{euler_number, Connectivity};
//! let ring = ndarray::array![[true, true, true], [true, false, true], [true, true, true]];
//! assert_eq!(euler_number(&ring, Connectivity::Eight), 0);
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub use nanoml_core as core;
pub use nanoml_hrtem as hrtem;
pub use nanoml_models as models;
pub use nanoml_morphology as morphology;
pub use nanoml_rabani as rabani;
pub use nanoml_spm as spm;

pub mod screening;

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The version of this facade crate.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
