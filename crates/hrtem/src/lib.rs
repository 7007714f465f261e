//! # nanoml-hrtem
//!
//! High-resolution TEM of metal nanoparticles, for the column-height method (Ragone et
//! al. 2020, after Madsen et al. 2018): particles (FCC clusters and the Wulff
//! construction exactly as ASE builds them, zone axes, boxes, XYZ), their images (Lobato
//! or Kirkland potentials, plane-wave multislice and CTF as abTEM computes them, the
//! PyQSTEM detector chain, random microscopes with Ragone's ranges) and the ground truth
//! (columns, height maps, class maps). Lengths are in Å, energies in eV.
//!
//! | what | where | matches |
//! |---|---|---|
//! | elements with FCC presets (Au, Ag, Pt, Pd, Cu, Al, …) | [`Element`] | ASE 3.29 reference states |
//! | FCC clusters bounded by Miller families | [`wulff::fcc_cluster`] | `ase.cluster.FaceCenteredCubic` |
//! | Wulff construction with ASE's rounding modes | [`wulff::wulff_construction`] | `ase.cluster.wulff_construction`, atom for atom |
//! | zone-axis orientation, rotations, boxes with vacuum, XYZ | [`Atoms`] | ASE's extended XYZ |
//! | wavelength, interaction constant | [`physics`] | abTEM 1.0.11 |
//! | projected potentials (Lobato, Kirkland), slices | [`potential`] | abTEM's infinite projection |
//! | multislice to an exit wave | [`multislice::Multislice`] | abTEM (exit waves to 1e-5 of the peak) |
//! | lens: CTF, temporal envelope, aperture | [`ctf::Ctf`] | abTEM (images to 1e-5 of the peak) |
//! | blur, dose noise, MTF, local normalisation, random microscopes | [`detector`] | PyQSTEM's `detect`, Ragone's Table 1 |
//! | columns, height maps, class maps | [`truth`] | Ragone's and Madsen's labels |
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
pub mod detector;
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
