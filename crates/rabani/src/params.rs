//! Model parameters and their validation.
//!
//! Energies are in units of the solvent–solvent bond ε_l = 1, so `kt` is kT/ε_l. The
//! chemical potential follows pyRabani's sign: the Hamiltonian has `+mu Σ l_i`, so
//! `mu = −μ_Rabani`; liquid–vapour coexistence of the pure solvent is at `mu = 2`
//! (with nearest-neighbour bonds) and `mu > 2` dries the film.

use crate::{Error, Result};

/// Boundary conditions of the lattice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Boundary {
    /// Periodic in both directions (a torus), as pyRabani.
    #[default]
    Periodic,
    /// Open: cells outside the lattice do not exist (no bonds across the edge, no moves
    /// out of it), as the public 3×3 reimplementation of Rabani et al. 2003.
    Open,
}

/// How the `mobility` (MR) nanoparticle move attempts of one Monte Carlo step are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MoveSchedule {
    /// pyRabani: `L² · MR` attempts at uniformly random sites (with replacement); an
    /// attempt at a site that holds no particle (for 3×3 particles: no particle centre)
    /// is wasted. Each particle gets MR attempts per step on average.
    #[default]
    RandomSites,
    /// Rabani et al. 2003: MR sweeps per step, each visiting every particle once in a
    /// fresh random order.
    ParticleSweeps,
}

/// How one Monte Carlo step visits the lattice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dynamics {
    /// Random-sequential updating, as pyRabani: each attempt picks a random site.
    #[default]
    RandomSequential,
    /// Sublattice updating for one large lattice, in parallel: solvent flips on the two
    /// colours of a checkerboard, one colour after the other, every site once per step;
    /// particle moves from the 16 classes of a 4×4 colouring (sources 4 cells apart in
    /// both directions never read or write the same cell), MR passes over all classes in
    /// random order per step. Every update is a Metropolis update of the same Hamiltonian,
    /// so equilibrium is unchanged, but the kinetics of this non-equilibrium process differ
    /// from random-sequential updating (see the crate docs for the statistical
    /// comparison). Needs single-cell particles, nearest-neighbour bonds, periodic
    /// boundaries and `size` a multiple of 4. Results depend on the seed only, not on the
    /// number of threads.
    Sublattice,
}

/// When a simulation stops before `max_steps`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum EarlyStop {
    /// Run all `max_steps` steps.
    #[default]
    Off,
    /// pyRabani's rule exactly as coded: every 25 steps the fraction of cells unchanged
    /// since the previous check is pushed into a 4-entry window that starts with random
    /// values and is rolled so that its last entry is stale; the run stops as soon as
    /// the population standard deviation of the window's three differences lies in
    /// (0, 0.002) and the step index (0-based) exceeds 200. The first check compares
    /// against an all-liquid image. A film that has stopped changing altogether gives a
    /// deviation of exactly 0 and therefore never stops early (as in the reference).
    PyRabani,
    /// A clean alternative: every `interval` steps record the fraction of cells
    /// unchanged since the previous check; stop when the last `window` fractions span
    /// less than `tolerance` (max − min) and at least `min_steps` steps have run.
    Converged {
        /// Steps between checks.
        interval: usize,
        /// Number of recent fractions compared (at least 2).
        window: usize,
        /// Largest allowed spread of those fractions.
        tolerance: f64,
        /// Never stop before this many steps.
        min_steps: usize,
    },
}

impl EarlyStop {
    /// The clean rule with the spirit of pyRabani's settings: checks every 25 steps, the
    /// last 4 fractions within 0.002, at least 200 steps.
    pub fn converged() -> Self {
        EarlyStop::Converged { interval: 25, window: 4, tolerance: 0.002, min_steps: 200 }
    }
}

/// Parameters of a Rabani simulation. [`Params::default`] is pyRabani's model (single-cell
/// particles, nearest-neighbour bonds, periodic lattice, random-site moves) at the
/// parameters of a typical training run; [`Params::rabani_2003`] is the original model.
///
/// The Hamiltonian, with `l_i, n_i ∈ {0, 1}` the liquid and particle occupation of cell
/// `i` (a cell is dry, liquid or particle) and bonds `⟨ij⟩` counted once:
///
/// `H = Σ_⟨ij⟩ w_ij [−l_i l_j − e_nn n_i n_j − e_nl (n_i l_j + l_i n_j)] + mu Σ_i l_i`
///
/// with `w_ij = 1` for nearest neighbours; with `next_nearest`, nearest-neighbour bonds
/// weigh `1/(1 + 1/√2)` and diagonal ones `(1/√2)/(1 + 1/√2)`, so the total coordination
/// stays 4 and `mu = 2` stays the coexistence point.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Thermal energy kT in units of ε_l. Must be > 0. Default 0.35.
    pub kt: f64,
    /// Chemical potential of the solvent (pyRabani sign, see the module docs). Default 3.0.
    pub mu: f64,
    /// Mobility ratio MR: nanoparticle move attempts per particle per step. Must be ≥ 1.
    /// Default 1.
    pub mobility: u32,
    /// Nanoparticle coverage C: the fraction of cells covered by particles at the start
    /// (⌊C·L²⌋ cells, or ⌊C·L²/9⌋ particles of 3×3). Must lie in (0, 1). Default 0.3.
    pub coverage: f64,
    /// Nanoparticle–liquid attraction e_nl in units of ε_l. Default 1.5.
    pub e_nl: f64,
    /// Nanoparticle–nanoparticle attraction e_nn in units of ε_l. Default 2.0.
    pub e_nn: f64,
    /// Lattice side L in cells. At least 4 (at least 12 with 3×3 particles). Default 128.
    pub size: usize,
    /// Maximum number of Monte Carlo steps. pyRabani's loop runs `MCS_max + 1` steps, so
    /// its `MCS_max = 500` is `max_steps = 501` here. Default 1000.
    pub max_steps: usize,
    /// Side of a nanoparticle in cells: 1 (pyRabani) or 3 (Rabani et al. 2003). Default 1.
    pub particle_size: usize,
    /// Include diagonal bonds weighted 1/√2 (see the type docs). Default false.
    pub next_nearest: bool,
    /// Boundary conditions. Default periodic.
    pub boundary: Boundary,
    /// How particle moves are scheduled. Default [`MoveSchedule::RandomSites`].
    pub moves: MoveSchedule,
    /// Update order. Default [`Dynamics::RandomSequential`].
    pub dynamics: Dynamics,
    /// Early stopping. Default off.
    pub early_stop: EarlyStop,
    /// Steps after which to keep a copy of the lattice (e.g. `[100, 300, 1000]` for three
    /// coarsening stages of one run). Steps beyond the end of the run are not recorded.
    pub snapshot_steps: Vec<usize>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            kt: 0.35,
            mu: 3.0,
            mobility: 1,
            coverage: 0.3,
            e_nl: 1.5,
            e_nn: 2.0,
            size: 128,
            max_steps: 1000,
            particle_size: 1,
            next_nearest: false,
            boundary: Boundary::Periodic,
            moves: MoveSchedule::RandomSites,
            dynamics: Dynamics::RandomSequential,
            early_stop: EarlyStop::Off,
            snapshot_steps: Vec::new(),
        }
    }
}

impl Params {
    /// The original model of Rabani et al. (Nature 426, 271, 2003) as the public
    /// reimplementation describes it: 3×3 particles, next-nearest-neighbour bonds, open
    /// boundaries, 30 particle sweeps per solvent sweep, kT = 0.2, μ_Rabani = −2.5
    /// (`mu = 2.5`), coverage 0.2, L = 256, 200 steps.
    pub fn rabani_2003() -> Self {
        Params {
            kt: 0.2,
            mu: 2.5,
            mobility: 30,
            coverage: 0.2,
            size: 256,
            max_steps: 200,
            particle_size: 3,
            next_nearest: true,
            boundary: Boundary::Open,
            moves: MoveSchedule::ParticleSweeps,
            ..Params::default()
        }
    }

    /// Whether the fast pyRabani kernel applies (single-cell particles, nearest
    /// neighbours, periodic, random sites, random-sequential).
    pub(crate) fn is_pyrabani(&self) -> bool {
        self.particle_size == 1
            && !self.next_nearest
            && self.boundary == Boundary::Periodic
            && self.moves == MoveSchedule::RandomSites
    }

    /// Checks every parameter; the error names the first one out of range.
    ///
    /// ```
    /// use nanoml_rabani::Params;
    /// assert!(Params::default().validate().is_ok());
    /// let hot = Params { kt: 0.0, ..Params::default() };
    /// assert!(hot.validate().unwrap_err().to_string().contains("kt"));
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the parameter, its value and the allowed range.
    pub fn validate(&self) -> Result<()> {
        let finite = |name: &'static str, v: f64| {
            if v.is_finite() { Ok(()) } else { Err(Error::invalid(name, v, "a finite number")) }
        };
        if !(self.kt > 0.0 && self.kt.is_finite()) {
            return Err(Error::invalid("kt", self.kt, "a finite number > 0 (units of the solvent bond)"));
        }
        finite("mu", self.mu)?;
        finite("e_nl", self.e_nl)?;
        finite("e_nn", self.e_nn)?;
        if self.mobility == 0 {
            return Err(Error::invalid(
                "mobility",
                self.mobility,
                "an integer ≥ 1 (move attempts per particle per step)",
            ));
        }
        if !(self.coverage > 0.0 && self.coverage < 1.0) {
            return Err(Error::invalid("coverage", self.coverage, "a fraction in (0, 1)"));
        }
        if self.particle_size != 1 && self.particle_size != 3 {
            return Err(Error::invalid("particle_size", self.particle_size, "1 or 3 (cells)"));
        }
        let min_size = if self.particle_size == 3 { 12 } else { 4 };
        if self.size < min_size || self.size > 1 << 15 {
            return Err(Error::invalid(
                "size",
                self.size,
                format!("{min_size} ..= 32768 cells for {0}×{0} particles", self.particle_size),
            ));
        }
        if self.particle_size == 3 {
            let blocks = (self.size / 3) * (self.size / 3);
            let particles = self.particle_count();
            if particles > blocks {
                return Err(Error::invalid(
                    "coverage",
                    self.coverage,
                    format!(
                        "at most {:.4} for L = {} (room for {blocks} particles of 3×3)",
                        blocks as f64 * 9.0 / (self.size * self.size) as f64,
                        self.size
                    ),
                ));
            }
        }
        if self.dynamics == Dynamics::Sublattice {
            if !self.is_pyrabani() {
                return Err(Error::invalid(
                    "dynamics",
                    "Sublattice",
                    "random-sequential unless particles are single cells with nearest-neighbour bonds, periodic boundaries and random-site moves",
                ));
            }
            if !self.size.is_multiple_of(4) {
                return Err(Error::invalid("size", self.size, "a multiple of 4 for sublattice dynamics"));
            }
        }
        if let EarlyStop::Converged { interval, window, tolerance, .. } = self.early_stop {
            if interval == 0 {
                return Err(Error::invalid("early_stop.interval", interval, "≥ 1 step"));
            }
            if window < 2 {
                return Err(Error::invalid("early_stop.window", window, "≥ 2 checks"));
            }
            if !(tolerance >= 0.0 && tolerance.is_finite()) {
                return Err(Error::invalid("early_stop.tolerance", tolerance, "a finite number ≥ 0"));
            }
        }
        Ok(())
    }

    /// Number of nanoparticles placed at the start: ⌊C·L²⌋ single cells, or ⌊C·L²/9⌋
    /// particles of 3×3.
    pub fn particle_count(&self) -> usize {
        let cells = (self.size * self.size) as f64;
        let area = (self.particle_size * self.particle_size) as f64;
        (self.coverage * cells / area).floor() as usize
    }

    /// Boltzmann acceptance threshold for an energy change, as a 53-bit integer: a move
    /// is accepted iff `u < threshold` for `u` uniform in `0..2^53`, i.e. iff a uniform
    /// `r ∈ [0, 1)` satisfies `r < exp(−ΔE/kT)` (Metropolis, as pyRabani).
    pub(crate) fn threshold(&self, delta_e: f64) -> u64 {
        let p = (-delta_e / self.kt).exp();
        if p >= 1.0 { ALWAYS } else { (p * ALWAYS as f64).ceil() as u64 }
    }
}

/// Threshold that accepts every move (`2^53`).
pub(crate) const ALWAYS: u64 = 1 << 53;

#[cfg(test)]
mod tests {
    use super::*;

    fn err_name(p: Params) -> &'static str {
        match p.validate() {
            Err(Error::InvalidParameter { name, .. }) => name,
            other => panic!("expected an invalid parameter, got {other:?}"),
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let d = Params::default;
        assert_eq!(err_name(Params { kt: 0.0, ..d() }), "kt");
        assert_eq!(err_name(Params { kt: -1.0, ..d() }), "kt");
        assert_eq!(err_name(Params { kt: f64::NAN, ..d() }), "kt");
        assert_eq!(err_name(Params { mu: f64::NAN, ..d() }), "mu");
        assert_eq!(err_name(Params { e_nn: f64::INFINITY, ..d() }), "e_nn");
        assert_eq!(err_name(Params { coverage: 0.0, ..d() }), "coverage");
        assert_eq!(err_name(Params { coverage: 1.0, ..d() }), "coverage");
        assert_eq!(err_name(Params { coverage: f64::NAN, ..d() }), "coverage");
        assert_eq!(err_name(Params { mobility: 0, ..d() }), "mobility");
        assert_eq!(err_name(Params { size: 3, ..d() }), "size");
        assert_eq!(err_name(Params { size: 10, ..Params::rabani_2003() }), "size");
        assert_eq!(err_name(Params { particle_size: 2, ..d() }), "particle_size");
        assert_eq!(err_name(Params { dynamics: Dynamics::Sublattice, size: 130, ..d() }), "size");
        assert_eq!(err_name(Params { dynamics: Dynamics::Sublattice, ..Params::rabani_2003() }), "dynamics");
        assert_eq!(err_name(Params { coverage: 0.99, size: 13, ..Params::rabani_2003() }), "coverage");
        let bad_stop = EarlyStop::Converged { interval: 0, window: 4, tolerance: 0.1, min_steps: 0 };
        assert_eq!(err_name(Params { early_stop: bad_stop, ..d() }), "early_stop.interval");
    }

    #[test]
    fn error_message_gives_the_allowed_range() {
        let msg = Params { coverage: 1.5, ..Params::default() }.validate().unwrap_err().to_string();
        assert!(msg.contains("coverage") && msg.contains("1.5") && msg.contains("(0, 1)"), "{msg}");
    }

    #[test]
    fn presets_are_valid() {
        Params::default().validate().unwrap();
        Params::rabani_2003().validate().unwrap();
    }

    #[test]
    fn threshold_matches_metropolis() {
        let p = Params { kt: 0.5, ..Params::default() };
        assert_eq!(p.threshold(-1.0), ALWAYS);
        assert_eq!(p.threshold(0.0), ALWAYS);
        let t = p.threshold(1.0) as f64 / ALWAYS as f64;
        assert!((t - (-2.0f64).exp()).abs() < 1e-15);
    }
}
