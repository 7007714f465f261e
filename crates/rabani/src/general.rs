//! The general kernel: particles of 1 or 3 cells, optional next-nearest-neighbour bonds,
//! periodic or open boundaries, random-site or per-particle-sweep move schedules.
//!
//! Slower than [`kernel`](crate::kernel) and deliberately plain: the energy change of a
//! move is the difference of the local energy (every bond touching a changed cell, once)
//! after and before the move, so it is right by construction for every geometry, and the
//! tests compare it with the full Hamiltonian anyway.

use crate::lattice::{LIQUID, Lattice, PARTICLE, bond_energy, bond_weights};
use crate::params::{Boundary, MoveSchedule, Params};
use nanoml_core::Xoshiro256PlusPlus;

const NONE: u32 = u32::MAX;
const DIRECTIONS: [(isize, isize); 4] = [(-1, 0), (1, 0), (0, -1), (0, 1)];

/// Scratch and bookkeeping of the general kernel for one lattice.
#[derive(Clone, Debug)]
pub(crate) struct General {
    size: usize,
    particle_size: usize,
    periodic: bool,
    /// Neighbour offsets with their bond weights.
    offsets: Vec<(isize, isize, f64)>,
    /// Top-left cell of each particle (kept in `Lattice::particles` for 3×3 particles).
    positions: Vec<u32>,
    /// Particle index whose top-left cell this is, or `NONE`.
    corner: Vec<u32>,
    changed: Vec<usize>,
    /// Condensation energy by `21 · (nearest-neighbour code sum) + (diagonal code sum)`
    /// (codes 0/1/5, so each sum tells liquid and particle counts apart); evaporation is
    /// its negative. With the Metropolis thresholds of both.
    #[cfg_attr(not(test), allow(dead_code))]
    condense: Vec<f64>,
    thresholds: [Vec<u64>; 2],
}

impl General {
    pub(crate) fn new(params: &Params, lattice: &Lattice) -> Self {
        let (w1, w2) = bond_weights(params.next_nearest);
        let mut offsets = vec![(-1, 0, w1), (1, 0, w1), (0, -1, w1), (0, 1, w1)];
        if w2 > 0.0 {
            offsets.extend([(-1, -1, w2), (-1, 1, w2), (1, -1, w2), (1, 1, w2)]);
        }
        let positions: Vec<u32> = if lattice.particle_size == 1 {
            (0..lattice.cells.len() as u32).filter(|&i| lattice.cells[i as usize] == PARTICLE).collect()
        } else {
            lattice.particles.clone()
        };
        let condense: Vec<f64> = (0..21 * 21)
            .map(|key| {
                let bonds = |sum: usize| -((sum % 5) as f64) - params.e_nl * (sum / 5) as f64;
                params.mu + w1 * bonds(key / 21) + w2 * bonds(key % 21)
            })
            .collect();
        let thresholds = [
            condense.iter().map(|&de| params.threshold(de)).collect(),
            condense.iter().map(|&de| params.threshold(-de)).collect(),
        ];
        let mut corner = vec![NONE; lattice.cells.len()];
        for (k, &p) in positions.iter().enumerate() {
            corner[p as usize] = k as u32;
        }
        General {
            size: lattice.size,
            particle_size: lattice.particle_size,
            periodic: params.boundary == Boundary::Periodic,
            offsets,
            positions,
            corner,
            changed: Vec::new(),
            condense,
            thresholds,
        }
    }

    /// The cell at `(r + dr, c + dc)`, wrapped or `None` outside an open lattice.
    #[inline]
    fn at(&self, r: usize, c: usize, dr: isize, dc: isize) -> Option<usize> {
        let l = self.size as isize;
        let (r2, c2) = (r as isize + dr, c as isize + dc);
        if self.periodic {
            Some((r2.rem_euclid(l) * l + c2.rem_euclid(l)) as usize)
        } else if (0..l).contains(&r2) && (0..l).contains(&c2) {
            Some((r2 * l + c2) as usize)
        } else {
            None
        }
    }

    /// Energy of every bond that touches a cell of `self.changed` (each once), plus the
    /// chemical-potential term of those cells.
    fn local_energy(&self, params: &Params, cells: &[u8]) -> f64 {
        let l = self.size;
        let mut e = 0.0;
        for &i in &self.changed {
            let a = cells[i];
            e += params.mu * f64::from(u8::from(a == LIQUID));
            for &(dr, dc, w) in &self.offsets {
                let Some(j) = self.at(i / l, i % l, dr, dc) else { continue };
                // A bond between two changed cells is met twice; count it from the smaller.
                if j < i && self.changed.contains(&j) {
                    continue;
                }
                e += w * bond_energy(params, a, cells[j]);
            }
        }
        e
    }

    /// The table key of a solvent flip at cell `i` (see `condense`), or `None` when a
    /// particle sits there.
    fn solvent_key(&self, cells: &[u8], i: usize) -> Option<usize> {
        if cells[i] == PARTICLE {
            return None;
        }
        let l = self.size;
        let mut sums = [0usize; 2];
        for (n, &(dr, dc, _)) in self.offsets.iter().enumerate() {
            if let Some(j) = self.at(i / l, i % l, dr, dc) {
                sums[n / 4] += usize::from(cells[j]);
            }
        }
        Some(21 * sums[0] + sums[1])
    }

    /// Energy change of flipping the solvent at cell `i` (dry ↔ liquid), or `None` when a
    /// particle sits there.
    #[cfg(test)]
    pub(crate) fn solvent_delta(&self, cells: &[u8], i: usize) -> Option<f64> {
        let key = self.solvent_key(cells, i)?;
        Some(if cells[i] == LIQUID { -self.condense[key] } else { self.condense[key] })
    }

    /// Moves particle `k` one cell in direction `d` (0: row − 1, 1: row + 1, 2: column − 1,
    /// 3: column + 1) if every cell it enters is liquid, and returns the energy change;
    /// `None` (and nothing changed) otherwise. [`undo_move`](Self::undo_move) reverts it.
    pub(crate) fn try_move(&mut self, params: &Params, cells: &mut [u8], k: usize, d: usize) -> Option<f64> {
        let (l, s) = (self.size, self.particle_size as isize);
        let p = self.positions[k] as usize;
        let (r0, c0) = (p / l, p % l);
        // Leading strip (liquid → particle) and trailing strip (particle → liquid).
        let (lead, trail, along): ((isize, isize), (isize, isize), (isize, isize)) = match d {
            0 => ((-1, 0), (s - 1, 0), (0, 1)),
            1 => ((s, 0), (0, 0), (0, 1)),
            2 => ((0, -1), (0, s - 1), (1, 0)),
            _ => ((0, s), (0, 0), (1, 0)),
        };
        self.changed.clear();
        for j in 0..s {
            let cell = self.at(r0, c0, lead.0 + j * along.0, lead.1 + j * along.1)?;
            if cells[cell] != LIQUID {
                return None;
            }
            self.changed.push(cell);
        }
        for j in 0..s {
            let cell = self.at(r0, c0, trail.0 + j * along.0, trail.1 + j * along.1)?;
            self.changed.push(cell);
        }
        let before = self.local_energy(params, cells);
        self.apply(cells, true);
        Some(self.local_energy(params, cells) - before)
    }

    fn apply(&self, cells: &mut [u8], forward: bool) {
        let s = self.particle_size;
        for (n, &cell) in self.changed.iter().enumerate() {
            cells[cell] = if (n < s) == forward { PARTICLE } else { LIQUID };
        }
    }

    /// Reverts the move just made by [`try_move`](Self::try_move).
    pub(crate) fn undo_move(&self, cells: &mut [u8]) {
        self.apply(cells, false);
    }

    /// Records that particle `k` has moved in direction `d`.
    fn commit_move(&mut self, lattice: &mut Lattice, k: usize, d: usize) {
        let l = self.size;
        let p = self.positions[k] as usize;
        let (dr, dc) = DIRECTIONS[d];
        let moved = self.at(p / l, p % l, dr, dc).unwrap_or(p);
        self.corner[p] = NONE;
        self.corner[moved] = k as u32;
        self.positions[k] = moved as u32;
        if self.particle_size > 1 {
            lattice.particles[k] = moved as u32;
        }
    }

    /// One Metropolis attempt to move particle `k` in direction `d`.
    fn move_attempt(
        &mut self,
        params: &Params,
        lattice: &mut Lattice,
        rng: &mut Xoshiro256PlusPlus,
        k: usize,
        d: usize,
    ) {
        let Some(de) = self.try_move(params, &mut lattice.cells, k, d) else { return };
        if crate::kernel::accept(rng, params.threshold(de)) {
            self.commit_move(lattice, k, d);
        } else {
            self.undo_move(&mut lattice.cells);
        }
    }

    /// Number of particles.
    #[cfg(test)]
    pub(crate) fn particles(&self) -> usize {
        self.positions.len()
    }

    /// One Monte Carlo step: `L²` solvent attempts at random sites, then the particle
    /// moves of `params.moves`.
    pub(crate) fn step(&mut self, params: &Params, lattice: &mut Lattice, rng: &mut Xoshiro256PlusPlus) {
        let n = self.size * self.size;
        for _ in 0..n {
            let i = rng.index(n);
            if let Some(key) = self.solvent_key(&lattice.cells, i)
                && crate::kernel::accept(rng, self.thresholds[usize::from(lattice.cells[i])][key])
            {
                lattice.cells[i] ^= 1;
            }
        }
        match params.moves {
            MoveSchedule::RandomSites => {
                for _ in 0..n * params.mobility as usize {
                    let (i, d) = (rng.index(n), rng.index(4));
                    let k = self.corner[i];
                    if k != NONE {
                        self.move_attempt(params, lattice, rng, k as usize, d);
                    }
                }
            }
            MoveSchedule::ParticleSweeps => {
                let mut order: Vec<usize> = (0..self.positions.len()).collect();
                for _ in 0..params.mobility {
                    rng.shuffle(&mut order);
                    for &k in &order {
                        let d = rng.index(4);
                        self.move_attempt(params, lattice, rng, k, d);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::DRY;
    use proptest::prelude::*;

    /// A random state: the initial particles, then random dry/liquid elsewhere.
    fn random_state(params: &Params, seed: u64) -> Lattice {
        let mut lat = Lattice::initial(params, seed).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        for c in &mut lat.cells {
            if *c != PARTICLE && rng.bernoulli(0.3) {
                *c = DRY;
            }
        }
        lat
    }

    proptest! {
        #[test]
        fn local_energy_changes_equal_hamiltonian_differences(
            seed in 0u64..500, three in any::<bool>(), nnn in any::<bool>(), open in any::<bool>(),
            e_nl in 0.5f64..3.0, e_nn in 0.5f64..3.0, mu in 1.0f64..4.0,
        ) {
            let params = Params {
                size: if three { 12 } else { 6 },
                coverage: 0.25,
                particle_size: if three { 3 } else { 1 },
                next_nearest: nnn,
                boundary: if open { Boundary::Open } else { Boundary::Periodic },
                e_nl, e_nn, mu,
                ..Params::default()
            };
            let mut lat = random_state(&params, seed);
            let mut g = General::new(&params, &lat);
            let e0 = lat.energy(&params);
            for i in 0..lat.cells.len() {
                if let Some(de) = g.solvent_delta(&lat.cells, i) {
                    lat.cells[i] ^= 1;
                    prop_assert!((lat.energy(&params) - e0 - de).abs() < 1e-9);
                    lat.cells[i] ^= 1;
                }
            }
            let original = lat.clone();
            for k in 0..g.particles() {
                for d in 0..4 {
                    if let Some(de) = g.try_move(&params, &mut lat.cells, k, d) {
                        prop_assert!((lat.energy(&params) - e0 - de).abs() < 1e-9);
                        prop_assert_eq!(lat.counts(), original.counts());
                        g.undo_move(&mut lat.cells);
                        prop_assert_eq!(&lat, &original);
                    }
                }
            }
        }

        #[test]
        fn steps_conserve_particles_and_keep_3x3_particles_whole(seed in 0u64..200, sweeps in any::<bool>()) {
            let params = Params {
                size: 15,
                kt: 0.3,
                moves: if sweeps { MoveSchedule::ParticleSweeps } else { MoveSchedule::RandomSites },
                mobility: 3,
                ..Params::rabani_2003()
            };
            let mut lat = Lattice::initial(&params, seed).unwrap();
            let mut g = General::new(&params, &lat);
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let n = lat.counts()[2];
            for _ in 0..5 {
                g.step(&params, &mut lat, &mut rng);
                prop_assert_eq!(lat.counts()[2], n);
                let mut covered = vec![false; lat.cells.len()];
                for (r, c) in lat.particle_corners() {
                    for dr in 0..3 {
                        for dc in 0..3 {
                            let i = (r + dr) * 15 + c + dc; // open boundaries: never wraps
                            prop_assert!(!covered[i], "particles overlap");
                            covered[i] = true;
                        }
                    }
                }
                for (i, &c) in lat.cells.iter().enumerate() {
                    prop_assert_eq!(c == PARTICLE, covered[i]);
                }
            }
        }
    }
}
