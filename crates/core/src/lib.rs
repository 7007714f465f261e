//! # nanoml-core
//!
//! The little that every nanoml crate shares:
//!
//! * [`rng`]: the seed policy (SplitMix64 derivation of per-task seeds) and the portable
//!   Xoshiro256++ generator;
//! * [`progress`]: the callback type through which long work reports progress;
//! * [`io`]: PNG (8/16-bit grey, RGB) and NPY input and output of `ndarray` arrays;
//! * [`resample`]: nearest-neighbour and bilinear resizing;
//! * [`warp`]: affine warps (rotation, scale, shear, translation) with zero, periodic or
//!   edge padding;
//! * [`window`]: sliding windows as views;
//! * [`Error`], the error type, and the [`ensure_param!`] macro.
//!
//! # Conventions
//! Images are `ndarray::Array2` indexed `[row, col]`, row 0 at the top. Geometric
//! operations use `(x, y) = (col, row)` with pixel centres at integer coordinates. No
//! function here panics on user input or prints.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod draw;
mod error;
pub mod io;
pub mod progress;
pub mod resample;
pub mod rng;
pub mod warp;
pub mod window;

pub use error::{Error, Result};
pub use progress::{NoProgress, Progress, ProgressCounter, ProgressUpdate};
pub use rng::{Xoshiro256PlusPlus, derive_seed};
