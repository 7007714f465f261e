//! # nanoml-hrtem
//!
//! High-resolution TEM of metal nanoparticles, for the column-height method (Ragone et
//! al. 2020, after Madsen et al. 2018). This first part builds the particles: FCC
//! clusters and the Wulff construction exactly as ASE builds them, orientation to zone
//! axes, placement in a simulation box, XYZ export. Lengths are in Å.
//!
//! | what | where | matches |
//! |---|---|---|
//! | elements with FCC presets (Au, Ag, Pt, Pd, Cu, Al, …) | [`Element`] | ASE 3.29 reference states |
//! | FCC clusters bounded by Miller families | [`wulff::fcc_cluster`] | `ase.cluster.FaceCenteredCubic` |
//! | Wulff construction with ASE's rounding modes | [`wulff::wulff_construction`] | `ase.cluster.wulff_construction`, atom for atom |
//! | zone-axis orientation, rotations, boxes with vacuum, XYZ | [`Atoms`] | ASE's extended XYZ |
//!
//! ```
//! use nanoml_hrtem::wulff::{wulff_construction, Rounding};
//! use nanoml_hrtem::Element;
//! // Ragone et al.'s particles: surface energies 6, 2, 4 for {100}, {110}, {111}.
//! let np = wulff_construction(Element::AU, &[[1, 0, 0], [1, 1, 0], [1, 1, 1]], &[6.0, 2.0, 4.0], 1000, Rounding::Above, None)?;
//! assert_eq!(np.atoms.len(), 1163);
//! let in_box = np.atoms.oriented([0, 1, 1])?.with_vacuum(5.0)?; // [011] along the beam
//! assert_eq!(in_box.len(), 1163);
//! # Ok::<(), nanoml_hrtem::Error>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod atoms;
pub mod ctf;
mod element;
mod error;
mod fft;
pub mod multislice;
mod parametrization_data;
pub mod physics;
pub mod potential;
pub mod truth;
pub mod wulff;

pub use atoms::{Atoms, Matrix3, rotation, zone_axis_rotation};
pub use element::{Element, FCC_METALS};
pub use error::{Error, Result};
