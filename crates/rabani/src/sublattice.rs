//! Sublattice (checkerboard) updating of pyRabani's model for one large lattice, in
//! parallel ([`Dynamics::Sublattice`](crate::Dynamics::Sublattice)).
//!
//! Solvent flips read the four nearest neighbours and write one cell, so all cells of one
//! checkerboard colour can flip at once. A particle move from `s` to a neighbour `t`
//! writes `{s, t}` and reads the neighbours of both (cells within Manhattan distance 2 of
//! `s`); two sources 4 cells apart in rows or columns therefore never touch a common cell
//! that either writes, so each of the 16 classes `(row mod 4, col mod 4)` is updated at
//! once (L must be a multiple of 4 on the torus). Rows of a class are processed in
//! parallel; the cells are atomics accessed with relaxed ordering (plain loads and stores
//! on common hardware), which the conflict-freedom makes race-free in effect, and rayon's
//! joins order the phases.
//!
//! Each row of each phase draws from its own generator seeded by
//! `derive_seed_path(seed, [step, phase, class, row])`, so results depend on the seed
//! only, never on the number of threads.

use crate::kernel::{CellStore, Tables, particle_attempt, solvent_attempt};
use nanoml_core::Xoshiro256PlusPlus;
use nanoml_core::rng::derive_seed_path;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// Cells shared by the tasks of one phase (see the module docs for why this is sound).
struct Shared<'a>(&'a [AtomicU8]);

impl CellStore for Shared<'_> {
    #[inline]
    fn get(&self, i: usize) -> u8 {
        self.0[i].load(Relaxed)
    }

    #[inline]
    fn set(&mut self, i: usize, code: u8) {
        self.0[i].store(code, Relaxed);
    }
}

/// The lattice as shared cells, kept by the simulator between steps.
pub(crate) fn shared_cells(cells: &[u8]) -> Vec<AtomicU8> {
    cells.iter().map(|&c| AtomicU8::new(c)).collect()
}

/// One sublattice Monte Carlo step on the shared cells `atomic`, copied into `cells`
/// afterwards. `order` supplies the random order of the particle classes (from the
/// simulation's own generator); `step` numbers the step for seeding.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    atomic: &[AtomicU8],
    cells: &mut [u8],
    l: usize,
    mobility: u32,
    tables: &Tables,
    seed: u64,
    step: u64,
    order: &mut Xoshiro256PlusPlus,
) {
    let cells_a = atomic;
    for colour in 0..2usize {
        (0..l).into_par_iter().for_each(|x| {
            let mut rng =
                Xoshiro256PlusPlus::seed_from_u64(derive_seed_path(seed, &[step, 0, colour as u64, x as u64]));
            let mut shared = Shared(cells_a);
            for y in ((x + colour) % 2..l).step_by(2) {
                solvent_attempt(&mut shared, l, tables, &mut rng, x, y);
            }
        });
    }
    let mut classes: Vec<u64> = (0..16).collect();
    for pass in 0..u64::from(mobility) {
        order.shuffle(&mut classes);
        for &class in &classes {
            let (a, b) = ((class / 4) as usize, (class % 4) as usize);
            (0..l / 4).into_par_iter().for_each(|k| {
                let x = 4 * k + a;
                let path = [step, 1 + pass, class, x as u64];
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed_path(seed, &path));
                let mut shared = Shared(cells_a);
                for y in (b..l).step_by(4) {
                    let d = rng.next_u64() & 3;
                    particle_attempt(&mut shared, l, tables, &mut rng, (x, y), d);
                }
            });
        }
    }
    for (c, a) in cells.iter_mut().zip(atomic) {
        *c = a.load(Relaxed);
    }
}
