//! # nanoml-rabani
//!
//! The Rabani lattice Monte Carlo model of drying nanoparticle films (Rabani et al.,
//! Nature 426, 271, 2003), in the single-cell form of pyRabani (Gordon et al., Nano Lett.
//! 2020) and the original 3×3 form, with the Euler-number labelling that turns
//! simulations into training data for the AFM screening networks.
//!
//! Each cell of an L×L lattice is dry substrate, liquid solvent or nanoparticle. One
//! Monte Carlo step attempts `L²` solvent evaporations/condensations, then `MR` particle
//! moves per particle (a particle moves one cell, only into liquid, swapping with it),
//! each accepted by the Metropolis rule for the Hamiltonian documented on [`Params`].
//!
//! | what | where |
//! |---|---|
//! | parameters, presets, validation | [`Params`], [`Params::rabani_2003`] |
//! | one run, step by step or to the end | [`Simulator`], [`simulate`] |
//! | many runs in parallel, deterministic | [`simulate_batch`] |
//! | morphology categories by Euler number | [`categorize`], [`Category`] |
//! | training sets: sample, simulate, label, upscale, augment, flatten | [`dataset::TrainingSet`] |
//!
//! ```
//! use nanoml_rabani::{categorize, simulate, EarlyStop, Params};
//! use nanoml_morphology::EulerRule;
//! let params = Params {
//!     size: 64, kt: 0.25, mu: 2.8, max_steps: 400, early_stop: EarlyStop::converged(), ..Params::default()
//! };
//! let run = simulate(&params, 42)?;
//! let label = categorize(&run.lattice.image(), EulerRule::Legacy)?;
//! assert_eq!(run.lattice.counts()[2], params.particle_count()); // particles are conserved
//! println!("{} after {} steps (χ = {})", label.category, run.steps, label.euler);
//! # Ok::<(), nanoml_rabani::Error>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod classify;
pub mod dataset;
mod error;
mod general;
mod kernel;
mod lattice;
mod params;
mod simulate;
mod sublattice;

pub use classify::{
    CELLULAR_MIN, Category, HOLE_MIN_DRY, ISLAND_MAX, LABYRINTH_MAX, LABYRINTH_MIN, Labelled, categorize,
};
pub use error::{Error, Result};
pub use lattice::{Cell, Lattice};
pub use params::{Boundary, Dynamics, EarlyStop, MoveSchedule, Params};
pub use simulate::{Run, Simulation, Simulator, Snapshot, simulate, simulate_batch};
