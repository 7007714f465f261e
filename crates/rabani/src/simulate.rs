//! Running simulations: step by step, to the end with early stopping and snapshots, or as
//! a batch over a parameter grid in parallel.

use crate::general::General;
use crate::kernel::{self, Tables};
use crate::lattice::{LIQUID, Lattice};
use crate::params::{Dynamics, EarlyStop, Params};
use crate::{Error, Result, sublattice};
use nanoml_core::rng::{derive_seed, derive_seed_path};
use nanoml_core::{Progress, ProgressCounter, Xoshiro256PlusPlus};
use rayon::prelude::*;

/// A copy of the lattice after a given number of steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Steps done when the copy was taken.
    pub step: usize,
    /// The lattice at that moment.
    pub lattice: Lattice,
}

/// The outcome of one simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    /// The final lattice.
    pub lattice: Lattice,
    /// Monte Carlo steps done (pyRabani reports this minus one: the index of its last step).
    pub steps: usize,
    /// Whether the early-stopping rule ended the run before `max_steps`.
    pub stopped_early: bool,
    /// Copies at the requested `snapshot_steps` reached by the run, in step order.
    pub snapshots: Vec<Snapshot>,
}

/// Largest lattice side for which the kernel keeps site lists.
const SKIPPING_MAX_SIZE: usize = 512;

enum Engine {
    /// pyRabani's kernel; with site lists ([`kernel::Skipping`]) up to 512², where they
    /// stay in cache (measured side by side: 5.1 vs 9.2 ns per attempt at 256², 8.7 vs
    /// 9.3 at 512², 14.7 vs 10.3 at 640², 29 vs 11 at 1024²).
    Fast(Tables, Option<Box<kernel::Skipping>>),
    /// Sublattice updating, with the lattice as shared atomics kept between steps.
    Sublattice(Tables, Vec<std::sync::atomic::AtomicU8>),
    General(Box<General>),
}

/// A simulation in progress: validated parameters, the lattice and the generator.
///
/// ```
/// use nanoml_rabani::{Params, Simulator};
/// let params = Params { size: 32, max_steps: 20, ..Params::default() };
/// let mut sim = Simulator::new(&params, 7)?;
/// sim.step();
/// assert_eq!(sim.steps(), 1);
/// assert_eq!(sim.lattice().counts()[2], 307); // ⌊0.3 · 32²⌋ particles, conserved
/// # Ok::<(), nanoml_rabani::Error>(())
/// ```
pub struct Simulator {
    params: Params,
    lattice: Lattice,
    rng: Xoshiro256PlusPlus,
    seed: u64,
    steps: usize,
    engine: Engine,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").field("params", &self.params).field("steps", &self.steps).finish_non_exhaustive()
    }
}

impl Simulator {
    /// A new simulation from the initial state of [`Lattice::initial`]. The lattice and
    /// the dynamics draw from independent streams derived from `seed`.
    ///
    /// # Errors
    /// When `params` do not validate.
    pub fn new(params: &Params, seed: u64) -> Result<Self> {
        let lattice = Lattice::initial(params, derive_seed(seed, 0))?;
        Self::with_lattice(params, lattice, seed)
    }

    /// A simulation that starts from a given lattice (its particle count, not
    /// `params.coverage`, then sets the coverage).
    ///
    /// # Errors
    /// When `params` do not validate or the lattice's size or particle size differs from
    /// the parameters'.
    pub fn with_lattice(params: &Params, lattice: Lattice, seed: u64) -> Result<Self> {
        params.validate()?;
        if lattice.size != params.size {
            return Err(Error::invalid("lattice", format!("{0}×{0}", lattice.size), format!("size {}", params.size)));
        }
        if lattice.particle_size != params.particle_size {
            return Err(Error::invalid(
                "lattice",
                format!("particles of {} cells across", lattice.particle_size),
                format!("particle_size {}", params.particle_size),
            ));
        }
        let engine = match params.dynamics {
            Dynamics::Sublattice => Engine::Sublattice(Tables::new(params), sublattice::shared_cells(&lattice.cells)),
            Dynamics::RandomSequential if params.is_pyrabani() => {
                let lists = (lattice.size <= SKIPPING_MAX_SIZE)
                    .then(|| Box::new(kernel::Skipping::new(&lattice.cells, lattice.size)));
                Engine::Fast(Tables::new(params), lists)
            }
            Dynamics::RandomSequential => Engine::General(Box::new(General::new(params, &lattice))),
        };
        let rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed(seed, 1));
        Ok(Simulator { params: params.clone(), lattice, rng, seed, steps: 0, engine })
    }

    /// One Monte Carlo step.
    pub fn step(&mut self) {
        let (p, l) = (&self.params, self.lattice.size);
        match &mut self.engine {
            Engine::Fast(t, Some(s)) => s.step(&mut self.lattice.cells, p.mobility, t, &mut self.rng),
            Engine::Fast(t, None) => kernel::step(&mut self.lattice.cells, l, p.mobility, t, &mut self.rng),
            Engine::Sublattice(t, shared) => {
                let seed = derive_seed(self.seed, 2);
                let cells = &mut self.lattice.cells;
                sublattice::step(shared, cells, l, p.mobility, t, seed, self.steps as u64, &mut self.rng)
            }
            Engine::General(g) => g.step(p, &mut self.lattice, &mut self.rng),
        }
        self.steps += 1;
    }

    /// The lattice now.
    pub fn lattice(&self) -> &Lattice {
        &self.lattice
    }

    /// Steps done so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Runs to `max_steps` or until the early-stopping rule fires, keeping the requested
    /// snapshots; `progress` receives one unit per step (stage `"simulate"`).
    pub fn run(mut self, progress: &dyn Progress) -> Simulation {
        let max = self.params.max_steps;
        let counter = ProgressCounter::new(progress, "simulate", Some(max as u64));
        let mut stop = StopState::new(&self.params, derive_seed(self.seed, 3));
        let mut snapshot_steps = self.params.snapshot_steps.clone();
        snapshot_steps.sort_unstable();
        snapshot_steps.dedup();
        let mut wanted = snapshot_steps.into_iter().filter(|&s| s <= max).peekable();
        let mut snapshots = Vec::new();
        if wanted.peek() == Some(&0) {
            snapshots.push(Snapshot { step: 0, lattice: self.lattice.clone() });
            wanted.next();
        }
        let mut stopped_early = false;
        while self.steps < max {
            self.step();
            counter.advance(1);
            if wanted.peek() == Some(&self.steps) {
                snapshots.push(Snapshot { step: self.steps, lattice: self.lattice.clone() });
                wanted.next();
            }
            if self.steps < max && stop.should_stop(self.steps - 1, &self.lattice) {
                stopped_early = true;
                break;
            }
        }
        Simulation { lattice: self.lattice, steps: self.steps, stopped_early, snapshots }
    }
}

/// Runs one simulation to the end (see [`Simulator::run`]).
///
/// ```
/// use nanoml_rabani::{simulate, Params};
/// let params = Params { size: 32, max_steps: 50, ..Params::default() };
/// let a = simulate(&params, 1)?;
/// assert_eq!(a.steps, 50);
/// assert_eq!(a, simulate(&params, 1)?); // same seed, same film
/// # Ok::<(), nanoml_rabani::Error>(())
/// ```
///
/// # Errors
/// When `params` do not validate.
pub fn simulate(params: &Params, seed: u64) -> Result<Simulation> {
    Ok(Simulator::new(params, seed)?.run(&nanoml_core::NoProgress))
}

/// One simulation of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Index of its parameters in the grid.
    pub params_index: usize,
    /// Repeat number, `0..repeats`.
    pub repeat: usize,
    /// Its seed, `derive_seed_path(seed, [params_index, repeat])`.
    pub seed: u64,
    /// The result.
    pub simulation: Simulation,
}

/// Runs every parameter set of `grid` `repeats` times, in parallel (rayon), one simulation
/// per task. Results come in grid order, repeats innermost, and are identical whatever
/// the number of threads. `progress` receives one unit per finished simulation (stage
/// `"simulate batch"`).
///
/// # Errors
/// When any parameter set does not validate (nothing runs then).
pub fn simulate_batch(grid: &[Params], repeats: usize, seed: u64, progress: &dyn Progress) -> Result<Vec<Run>> {
    for p in grid {
        p.validate()?;
    }
    let total = grid.len() * repeats;
    let counter = ProgressCounter::new(progress, "simulate batch", Some(total as u64));
    (0..total)
        .into_par_iter()
        .map(|task| {
            let (params_index, repeat) = (task / repeats.max(1), task % repeats.max(1));
            let run_seed = derive_seed_path(seed, &[params_index as u64, repeat as u64]);
            let simulation = Simulator::new(&grid[params_index], run_seed)?.run(&nanoml_core::NoProgress);
            counter.advance(1);
            Ok(Run { params_index, repeat, seed: run_seed, simulation })
        })
        .collect()
}

/// State of the early-stopping rule.
struct StopState {
    rule: EarlyStop,
    checkpoint: Vec<u8>,
    fractions: Vec<f64>,
    /// pyRabani's last computed standard deviation (NaN before the first check).
    spread: f64,
    /// Whether the checkpoint holds a real state yet (the clean rule skips the first check).
    primed: bool,
}

impl StopState {
    fn new(params: &Params, seed: u64) -> Self {
        let mut fractions = Vec::new();
        if params.early_stop == EarlyStop::PyRabani {
            // `np.random.random(4)`: the window starts with random values.
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            fractions = (0..4).map(|_| rng.uniform()).collect();
        }
        // pyRabani's first checkpoint is `np.ones`: every cell "liquid".
        StopState {
            rule: params.early_stop,
            checkpoint: vec![LIQUID; params.size * params.size],
            fractions,
            spread: f64::NAN,
            primed: false,
        }
    }

    /// Fraction of cells whose state equals the checkpoint's; the checkpoint becomes now.
    fn unchanged(&mut self, lattice: &Lattice) -> f64 {
        let same = self.checkpoint.iter().zip(&lattice.cells).filter(|(a, b)| a == b).count();
        self.checkpoint.copy_from_slice(&lattice.cells);
        same as f64 / lattice.cells.len().max(1) as f64
    }

    /// Whether to stop after the step of 0-based index `m`.
    fn should_stop(&mut self, m: usize, lattice: &Lattice) -> bool {
        match self.rule {
            EarlyStop::Off => false,
            EarlyStop::PyRabani => {
                if m.is_multiple_of(25) {
                    // perc[-1] = similarity; perc = roll(perc, -1); std(diff(perc)).
                    let f = self.unchanged(lattice);
                    self.fractions[3] = f;
                    self.fractions.rotate_left(1);
                    let d: Vec<f64> = self.fractions.windows(2).map(|w| w[1] - w[0]).collect();
                    let mean = d.iter().sum::<f64>() / 3.0;
                    self.spread = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
                }
                self.spread > 0.0 && self.spread < 0.002 && m > 200
            }
            EarlyStop::Converged { interval, window, tolerance, min_steps } => {
                let done = m + 1;
                if !done.is_multiple_of(interval) {
                    return false;
                }
                let f = self.unchanged(lattice);
                if !std::mem::replace(&mut self.primed, true) {
                    return false;
                }
                self.fractions.push(f);
                if self.fractions.len() > window {
                    self.fractions.remove(0);
                }
                let (lo, hi) = self.fractions.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                self.fractions.len() == window && done >= min_steps && hi - lo < tolerance
            }
        }
    }
}
