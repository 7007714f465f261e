//! The fast kernel for pyRabani's model: single-cell particles, nearest-neighbour bonds,
//! periodic lattice, random-sequential updating at random sites.
//!
//! One Monte Carlo step is `L²` solvent attempts at uniformly random sites, then
//! `L²·MR` particle move attempts at uniformly random sites, each with a uniformly random
//! direction (Gordon et al. 2020's kernel, ../shared/notes/rabani.md §1.3). Metropolis
//! acceptance uses precomputed thresholds: cell codes are 0 (dry), 1 (liquid) and 5
//! (particle), so the sum of neighbour codes identifies the liquid and particle counts and
//! indexes the table directly, and a move is accepted iff a uniform 53-bit integer is
//! below `⌈exp(−ΔE/kT)·2^53⌉`, which is pyRabani's `r < exp(−ΔE/kT)` for `r ∈ [0, 1)`.
//!
//! Up to 512² the simulator runs [`Skipping`], which draws how many attempts of a phase
//! can do anything and performs only those (exactly the same law of lattice states, see
//! its docs); above, the attempt-by-attempt [`step`]. Sites come from Lemire's
//! multiply-shift with rejection (exactly uniform); in `Skipping` the random bits left
//! over from a site draw start the acceptance draw, and more are drawn only in the rare
//! case they do not decide it. The sublattice dynamics share the single-attempt functions.

use crate::lattice::{LIQUID, PARTICLE};
use crate::params::{ALWAYS, Params};
use nanoml_core::Xoshiro256PlusPlus;

const FIELD_BITS: u32 = 30;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;

/// Cell storage the kernel reads and writes: a plain slice, or shared atomics for
/// sublattice updating (see [`crate::sublattice`]).
pub(crate) trait CellStore {
    fn get(&self, i: usize) -> u8;
    fn set(&mut self, i: usize, code: u8);
}

impl CellStore for [u8] {
    #[inline]
    fn get(&self, i: usize) -> u8 {
        self[i]
    }

    #[inline]
    fn set(&mut self, i: usize, code: u8) {
        self[i] = code;
    }
}

/// Metropolis thresholds of every local configuration.
#[derive(Clone, Debug)]
pub(crate) struct Tables {
    /// `[cell code (0 dry, 1 liquid)][sum of the four neighbour codes]`.
    pub(crate) solvent: [[u64; 21]; 2],
    /// `[code sum of the 3 other neighbours of the source][of the target]`.
    pub(crate) particle: [[u64; 16]; 16],
    /// The energy changes behind the thresholds, same indexing (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) solvent_de: [[f64; 21]; 2],
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) particle_de: [[f64; 16]; 16],
}

impl Tables {
    pub(crate) fn new(params: &Params) -> Self {
        let mut solvent_de = [[0.0; 21]; 2];
        let [dry, liquid] = &mut solvent_de;
        for (sum, (d, w)) in dry.iter_mut().zip(liquid.iter_mut()).enumerate() {
            let (liquids, particles) = ((sum % 5) as f64, (sum / 5) as f64);
            // Condensation of a dry cell; evaporation is its exact reverse.
            let condense = -liquids - params.e_nl * particles + params.mu;
            (*d, *w) = (condense, -condense);
        }
        let mut particle_de = [[0.0; 16]; 16];
        for (a, row) in particle_de.iter_mut().enumerate() {
            for (b, de) in row.iter_mut().enumerate() {
                let (la, na) = ((a % 5) as f64, (a / 5) as f64);
                let (lb, nb) = ((b % 5) as f64, (b / 5) as f64);
                *de = (params.e_nl - 1.0) * (la - lb) + (params.e_nn - params.e_nl) * (na - nb);
            }
        }
        let solvent = solvent_de.map(|row| row.map(|de| params.threshold(de)));
        let particle = particle_de.map(|row| row.map(|de| params.threshold(de)));
        Tables { solvent, particle, solvent_de, particle_de }
    }
}

/// Draws a uniformly random cell `(row, col)` of an `l × l` lattice and two more random
/// bits (a direction).
#[inline]
pub(crate) fn random_site(rng: &mut Xoshiro256PlusPlus, l: u64, reject_below: u64) -> (usize, usize, u64) {
    loop {
        let u = rng.next_u64();
        let (mx, my) = ((u >> 34) * l, ((u >> 4) & FIELD_MASK) * l);
        if (mx & FIELD_MASK) >= reject_below && (my & FIELD_MASK) >= reject_below {
            return ((mx >> FIELD_BITS) as usize, (my >> FIELD_BITS) as usize, u & 3);
        }
    }
}

/// The rejection bound of Lemire's method for 30-bit fields: `2^30 mod l`.
pub(crate) fn reject_below(l: usize) -> u64 {
    (1u64 << FIELD_BITS) % l as u64
}

/// `true` with the probability encoded by a Metropolis threshold.
#[inline]
pub(crate) fn accept(rng: &mut Xoshiro256PlusPlus, threshold: u64) -> bool {
    threshold >= ALWAYS || (rng.next_u64() >> 11) < threshold
}

/// [`accept`] with the first `bits` of the 53-bit uniform taken from `spare` (random bits
/// left over from the draw that chose the site); the remaining bits are drawn only when
/// those leave the outcome open (probability 2^−bits), so the decision is exactly
/// `U < threshold` for a uniform 53-bit `U`.
#[inline]
fn accept_spare(rng: &mut Xoshiro256PlusPlus, threshold: u64, spare: u64, bits: u32) -> bool {
    let rest = 53 - bits;
    let head = threshold >> rest;
    // Computed without a branch on the (unpredictable) outcome; only the rare tie draws.
    let mut accepted = spare < head;
    if spare == head {
        accepted = (rng.next_u64() >> (64 - rest)) < threshold & ((1 << rest) - 1);
    }
    accepted
}

/// Neighbouring indices on a torus: `(x − 1, x + 1) mod l`.
#[inline]
fn around(x: usize, l: usize) -> (usize, usize) {
    (if x == 0 { l - 1 } else { x - 1 }, if x + 1 == l { 0 } else { x + 1 })
}

/// Sum of the codes of the four nearest neighbours of `(x, y)`.
#[inline]
fn neighbour_sum<C: CellStore + ?Sized>(cells: &C, l: usize, x: usize, y: usize) -> u8 {
    let ((xm, xp), (ym, yp)) = (around(x, l), around(y, l));
    cells.get(xm * l + y) + cells.get(xp * l + y) + cells.get(x * l + ym) + cells.get(x * l + yp)
}

/// The cell index, its code and the neighbour code sum of a solvent attempt at `(x, y)`,
/// or `None` on a particle.
#[inline]
pub(crate) fn solvent_site<C: CellStore + ?Sized>(cells: &C, l: usize, x: usize, y: usize) -> Option<(usize, u8, u8)> {
    let i = x * l + y;
    let c = cells.get(i);
    (c != PARTICLE).then(|| (i, c, neighbour_sum(cells, l, x, y)))
}

/// One solvent evaporation/condensation attempt at `(x, y)`.
#[inline]
pub(crate) fn solvent_attempt<C: CellStore + ?Sized>(
    cells: &mut C,
    l: usize,
    tables: &Tables,
    rng: &mut Xoshiro256PlusPlus,
    x: usize,
    y: usize,
) {
    if let Some((i, c, sum)) = solvent_site(cells, l, x, y)
        && accept(rng, tables.solvent[c as usize][sum as usize])
    {
        cells.set(i, c ^ 1);
    }
}

/// Source and target cells of a particle move from `(x, y)` in direction `d` (0: row − 1,
/// 1: row + 1, 2: column − 1, 3: column + 1) and the code sums of A (the source's
/// neighbours other than the target) and B (the target's other than the source); `None`
/// unless a particle sits at the source and liquid at the target.
#[inline]
pub(crate) fn particle_move<C: CellStore + ?Sized>(
    cells: &C,
    l: usize,
    (x, y): (usize, usize),
    d: u64,
) -> Option<(usize, usize, u8, u8)> {
    let i = x * l + y;
    if cells.get(i) != PARTICLE {
        return None;
    }
    let ((xm, xp), (ym, yp)) = (around(x, l), around(y, l));
    let (tx, ty) = match d {
        0 => (xm, y),
        1 => (xp, y),
        2 => (x, ym),
        _ => (x, yp),
    };
    let t = tx * l + ty;
    if cells.get(t) != LIQUID {
        return None;
    }
    let sum_a = cells.get(xm * l + y) + cells.get(xp * l + y) + cells.get(x * l + ym) + cells.get(x * l + yp) - LIQUID;
    let sum_b = neighbour_sum(cells, l, tx, ty) - PARTICLE;
    Some((i, t, sum_a, sum_b))
}

/// One particle move attempt (see [`particle_move`]); the move swaps the particle with
/// the liquid. ΔE = (e_nl − 1)(L_A − L_B) + (e_nn − e_nl)(N_A − N_B).
#[inline]
pub(crate) fn particle_attempt<C: CellStore + ?Sized>(
    cells: &mut C,
    l: usize,
    tables: &Tables,
    rng: &mut Xoshiro256PlusPlus,
    site: (usize, usize),
    d: u64,
) {
    if let Some((i, t, a, b)) = particle_move(cells, l, site, d)
        && accept(rng, tables.particle[a as usize][b as usize])
    {
        cells.set(t, PARTICLE);
        cells.set(i, LIQUID);
    }
}

/// One Monte Carlo step of pyRabani's model, attempt by attempt as the reference does it
/// (the simulator's choice for lattices too large for [`Skipping`]'s lists to stay in
/// cache, and the tests' reference).
pub(crate) fn step(cells: &mut [u8], l: usize, mobility: u32, tables: &Tables, rng: &mut Xoshiro256PlusPlus) {
    let n = l * l;
    let (lu, reject) = (l as u64, reject_below(l));
    for _ in 0..n {
        let (x, y, _) = random_site(rng, lu, reject);
        solvent_attempt(cells, l, tables, rng, x, y);
    }
    for _ in 0..n * mobility as usize {
        let (x, y, d) = random_site(rng, lu, reject);
        particle_attempt(cells, l, tables, rng, (x, y), d);
    }
}

/// Uniform integer in `0..n` from 32 random bits by Lemire's multiply-shift; `None` on
/// the rare draws that rejection discards (so the result is exactly uniform).
#[inline]
fn lemire32(bits: u32, n: u64, reject: u64) -> Option<u64> {
    let m = u64::from(bits) * n;
    ((m & 0xffff_ffff) >= reject).then_some(m >> 32)
}

/// A Binomial(`draws`, `hits_below / total`) count, drawn exactly: the number of `draws`
/// uniform sites of `0..total` that fall below `hits_below`.
///
/// Bit-sliced Bernoulli trials, 64 at a time: trial `j` compares the binary expansion of
/// its own uniform `U_j` (bit `j` of successive random words) with that of
/// `p = hits_below / total` (produced exactly by long division) and is decided at the
/// first differing bit (`U_j < p` where `p` has a 1 and `U_j` a 0). Each trial is exactly
/// Bernoulli(p); about eight random words decide 64 trials.
fn count_hits(rng: &mut Xoshiro256PlusPlus, draws: usize, hits_below: u64, total: u64) -> usize {
    if hits_below >= total {
        return draws;
    }
    let mut hits = 0usize;
    let mut left = draws;
    while left > 0 {
        let m = left.min(64);
        let mut undecided = if m == 64 { u64::MAX } else { (1u64 << m) - 1 };
        let mut below = 0u64;
        let mut rem = u128::from(hits_below);
        let total = u128::from(total);
        while undecided != 0 {
            rem *= 2;
            let r = rng.next_u64();
            if rem >= total {
                rem -= total;
                below |= undecided & !r;
                undecided &= r;
            } else {
                undecided &= !r;
            }
        }
        hits += below.count_ones() as usize;
        left -= m;
    }
    hits
}

/// pyRabani's step without the wasted attempts.
///
/// An attempt at a uniformly random site does nothing unless the site can change (not a
/// particle for the solvent phase, a particle for the particle phase), and the number of
/// such sites is constant within each phase (solvent flips never touch particles, moves
/// conserve them). So the number of effective attempts of a phase is Binomial(attempts,
/// sites/L²), drawn exactly ([`count_hits`]), and each effective attempt picks a uniform
/// site of the right kind from a list. The sequence of lattice states has exactly the law
/// of the attempt-by-attempt kernel; only the wasted work (and its unpredictable
/// branches) is gone.
///
/// The kernel works on its own copy of the lattice with a one-cell frame of ghost cells
/// that mirror the opposite edges, so that the four neighbours of any cell are at fixed
/// offsets (`±1`, `±W` with `W = L + 2`); a write to an edge cell updates its ghosts.
/// The lists hold frame indices, `slot[cell]` is a cell's position in its list (so a
/// move updates both lists in O(1)), and `canon` maps a ghost to the cell it mirrors.
#[derive(Clone, Debug)]
pub(crate) struct Skipping {
    l: usize,
    w: usize,
    framed: Vec<u8>,
    canon: Vec<u32>,
    /// Where a cell's ghosts are: bit 0, on the first row (mirrored below the last); bit
    /// 1, on the last row (mirrored above the first); bits 2 and 3 likewise for columns.
    edge: Vec<u8>,
    particles: Vec<u32>,
    others: Vec<u32>,
    slot: Vec<u32>,
}

impl Skipping {
    pub(crate) fn new(cells: &[u8], l: usize) -> Self {
        let w = l + 2;
        let mut framed = vec![0u8; w * w];
        let mut canon: Vec<u32> = (0..(w * w) as u32).collect();
        let mut edge = vec![0u8; w * w];
        let (mut particles, mut others) = (Vec::new(), Vec::new());
        let mut slot = vec![0u32; w * w];
        for x in 0..l {
            for y in 0..l {
                let j = (x + 1) * w + y + 1;
                let list = if cells[x * l + y] == PARTICLE { &mut particles } else { &mut others };
                slot[j] = list.len() as u32;
                list.push(j as u32);
                edge[j] =
                    u8::from(x == 0) | u8::from(x == l - 1) << 1 | u8::from(y == 0) << 2 | u8::from(y == l - 1) << 3;
            }
        }
        for k in 1..=l {
            // Ghost rows and columns show the opposite edge.
            canon[k] = (l * w + k) as u32;
            canon[(l + 1) * w + k] = (w + k) as u32;
            canon[k * w] = (k * w + l) as u32;
            canon[k * w + l + 1] = (k * w + 1) as u32;
        }
        for (f, &c) in framed.iter_mut().zip(&canon) {
            // Every frame cell but the four unused corners shows a real cell.
            let (x, y) = (c as usize / w, c as usize % w);
            if (1..=l).contains(&x) && (1..=l).contains(&y) {
                *f = cells[(x - 1) * l + y - 1];
            }
        }
        Skipping { l, w, framed, canon, edge, particles, others, slot }
    }

    /// Writes cell `j` (a frame index of a real cell) and its ghosts.
    #[inline]
    fn set(&mut self, j: usize, code: u8) {
        self.framed[j] = code;
        let e = self.edge[j];
        if e != 0 {
            let (lw, l) = (self.l * self.w, self.l);
            if e & 1 != 0 {
                self.framed[j + lw] = code;
            }
            if e & 2 != 0 {
                self.framed[j - lw] = code;
            }
            if e & 4 != 0 {
                self.framed[j + l] = code;
            }
            if e & 8 != 0 {
                self.framed[j - l] = code;
            }
        }
    }

    #[inline]
    fn neighbour_sum(&self, j: usize) -> u8 {
        let f = &self.framed;
        f[j - 1] + f[j + 1] + f[j - self.w] + f[j + self.w]
    }

    /// One step on the framed copy, then the plain `cells` updated from it.
    pub(crate) fn step(&mut self, cells: &mut [u8], mobility: u32, tables: &Tables, rng: &mut Xoshiro256PlusPlus) {
        let (l, w) = (self.l, self.w);
        let total = (l * l) as u64;
        // Solvent phase: only cells without a particle can flip.
        let n_others = self.others.len() as u64;
        let flips = count_hits(rng, l * l, n_others, total);
        let reject = (1u64 << 32) % n_others.max(1);
        let mut done = 0;
        while done < flips {
            let u = rng.next_u64();
            let Some(k) = lemire32(u as u32, n_others, reject) else { continue };
            done += 1;
            let j = self.others[k as usize] as usize;
            let (c, sum) = (self.framed[j], self.neighbour_sum(j));
            let flip = accept_spare(rng, tables.solvent[c as usize][sum as usize], u >> 32, 32);
            self.set(j, c ^ u8::from(flip));
        }
        // Particle phase: only attempts at particles can move one.
        let n_particles = self.particles.len() as u64;
        if n_particles > 0 && n_others > 0 {
            let moves = count_hits(rng, l * l * mobility as usize, n_particles, total);
            let reject = (1u64 << 32) % n_particles;
            let offsets = [w.wrapping_neg(), w, usize::MAX, 1];
            let mut done = 0;
            while done < moves {
                let u = rng.next_u64();
                let Some(k) = lemire32(u as u32, n_particles, reject) else { continue };
                done += 1;
                let k = k as usize;
                let i = self.particles[k] as usize;
                let t = self.canon[i.wrapping_add(offsets[((u >> 32) & 3) as usize])] as usize;
                if self.framed[t] != LIQUID {
                    continue;
                }
                // A: the source's neighbours but the target; B: the target's but the source.
                let sum_a = self.neighbour_sum(i) - LIQUID;
                let sum_b = self.neighbour_sum(t) - PARTICLE;
                if accept_spare(rng, tables.particle[sum_a as usize][sum_b as usize], u >> 34, 30) {
                    self.set(t, PARTICLE);
                    self.set(i, LIQUID);
                    let ts = self.slot[t];
                    self.particles[k] = t as u32;
                    self.others[ts as usize] = i as u32;
                    self.slot[i] = ts;
                    self.slot[t] = k as u32;
                }
            }
        }
        for (x, row) in cells.chunks_exact_mut(l).enumerate() {
            row.copy_from_slice(&self.framed[(x + 1) * w + 1..(x + 1) * w + 1 + l]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::{DRY, Lattice};
    use proptest::prelude::*;

    /// A random lattice of single-cell particles with every state present.
    fn random_state(l: usize, seed: u64) -> Lattice {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let image = ndarray::Array2::from_shape_fn((l, l), |_| rng.index(3) as u8);
        Lattice::from_image(image.view()).unwrap()
    }

    fn params(e_nl: f64, e_nn: f64, mu: f64) -> Params {
        Params { e_nl, e_nn, mu, kt: 0.3, ..Params::default() }
    }

    proptest! {
        #[test]
        fn incremental_energy_changes_equal_hamiltonian_differences(
            seed in 0u64..1000, l in 4usize..9, e_nl in 0.5f64..3.0, e_nn in 0.5f64..3.0, mu in 1.0f64..4.0,
        ) {
            let p = params(e_nl, e_nn, mu);
            let tables = Tables::new(&p);
            let lat = random_state(l, seed);
            let e0 = lat.energy(&p);
            for x in 0..l {
                for y in 0..l {
                    if let Some((i, c, sum)) = solvent_site(&lat.cells[..], l, x, y) {
                        let mut after = lat.clone();
                        after.cells[i] = c ^ 1;
                        let exact = after.energy(&p) - e0;
                        prop_assert!((tables.solvent_de[c as usize][sum as usize] - exact).abs() < 1e-9);
                    }
                    for d in 0..4 {
                        if let Some((i, t, a, b)) = particle_move(&lat.cells[..], l, (x, y), d) {
                            let mut after = lat.clone();
                            after.cells[t] = PARTICLE;
                            after.cells[i] = LIQUID;
                            let exact = after.energy(&p) - e0;
                            prop_assert!((tables.particle_de[a as usize][b as usize] - exact).abs() < 1e-9);
                        }
                    }
                }
            }
        }

        #[test]
        fn steps_conserve_particles_and_particle_moves_conserve_liquid(seed in 0u64..1000, l in 4usize..12, kt in 0.05f64..2.0) {
            let p = Params { kt, mu: 2.5, ..Params::default() };
            let tables = Tables::new(&p);
            let mut lat = random_state(l, seed);
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xabc);
            let before = lat.counts();
            step(&mut lat.cells, l, 2, &tables, &mut rng);
            prop_assert_eq!(lat.counts()[2], before[2]);
            // The particle phase alone: liquid conserved, and particles only enter cells
            // that were liquid.
            let counts = lat.counts();
            for _ in 0..l * l * 4 {
                let was = lat.cells.clone();
                let (x, y, d) = random_site(&mut rng, l as u64, reject_below(l));
                particle_attempt(&mut lat.cells[..], l, &tables, &mut rng, (x, y), d);
                for (i, (&old, &new)) in was.iter().zip(&lat.cells).enumerate() {
                    if new == PARTICLE && old != PARTICLE {
                        prop_assert_eq!(old, LIQUID, "particle entered cell {} that was {}", i, old);
                    }
                    prop_assert!(new != DRY || old == DRY);
                }
            }
            prop_assert_eq!(lat.counts(), counts);
        }
    }

    /// Mean and standard error (from 50 batch means) of the energy per step.
    fn energy_mean(mut step_fn: impl FnMut(&mut Lattice), params: &Params, lat: &mut Lattice) -> (f64, f64) {
        for _ in 0..200 {
            step_fn(lat);
        }
        let batches: Vec<f64> = (0..50)
            .map(|_| {
                (0..1000)
                    .map(|_| {
                        step_fn(lat);
                        lat.energy(params)
                    })
                    .sum::<f64>()
                    / 1000.0
            })
            .collect();
        let m = batches.iter().sum::<f64>() / 50.0;
        let se = (batches.iter().map(|b| (b - m).powi(2)).sum::<f64>() / (50.0 * 49.0)).sqrt();
        (m, se)
    }

    #[test]
    fn skipping_and_plain_kernels_sample_the_same_mean_energy() {
        let p = Params { kt: 0.8, mu: 2.3, size: 6, ..Params::default() };
        let tables = Tables::new(&p);
        let mut lat = random_state(6, 4);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let plain = energy_mean(|lat| step(&mut lat.cells, 6, 1, &tables, &mut rng), &p, &mut lat.clone());
        let mut skipping = Skipping::new(&lat.cells, 6);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let fast = energy_mean(|lat| skipping.step(&mut lat.cells, 1, &tables, &mut rng), &p, &mut lat);
        let diff = (plain.0 - fast.0).abs();
        assert!(diff < 4.0 * (plain.1.hypot(fast.1)), "plain {plain:?} vs skipping {fast:?}");
    }

    #[test]
    fn ghost_cells_always_mirror_their_cells() {
        let p = Params { kt: 0.6, mu: 2.2, ..Params::default() };
        let tables = Tables::new(&p);
        for l in [4usize, 5, 9] {
            let mut lat = random_state(l, l as u64);
            let mut skipping = Skipping::new(&lat.cells, l);
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
            for _ in 0..50 {
                skipping.step(&mut lat.cells, 2, &tables, &mut rng);
                let w = l + 2;
                for (j, &c) in skipping.canon.iter().enumerate() {
                    let (x, y) = (j / w, j % w);
                    let corner = (x == 0 || x == w - 1) && (y == 0 || y == w - 1);
                    if !corner {
                        assert_eq!(skipping.framed[j], skipping.framed[c as usize], "L {l}, frame cell {j}");
                        let (cx, cy) = (c as usize / w - 1, c as usize % w - 1);
                        assert_eq!(skipping.framed[j], lat.cells[cx * l + cy]);
                    }
                }
                for &i in &skipping.particles {
                    assert_eq!(skipping.framed[i as usize], PARTICLE);
                }
            }
        }
    }

    #[test]
    fn hit_counts_are_binomial() {
        // Binomial(10, 3/7) and Binomial(70, 1/2): mean and variance of 20 000 draws
        // within 4 standard errors, and the exact pmf by chi-square for the first.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        for (n, k, total) in [(10usize, 3u64, 7u64), (70, 8, 16), (130, 1, 1000)] {
            let p = k as f64 / total as f64;
            let draws: Vec<f64> = (0..20_000).map(|_| count_hits(&mut rng, n, k, total) as f64).collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (draws.len() - 1) as f64;
            let (m0, v0) = (n as f64 * p, n as f64 * p * (1.0 - p));
            assert!((mean - m0).abs() < 4.0 * (v0 / 20_000.0).sqrt(), "n {n} p {p}: mean {mean} vs {m0}");
            assert!((var / v0 - 1.0).abs() < 0.05, "n {n} p {p}: variance {var} vs {v0}");
        }
        let (n, p) = (10usize, 3.0f64 / 7.0);
        let mut counts = [0u32; 11];
        for _ in 0..50_000 {
            counts[count_hits(&mut rng, n, 3, 7)] += 1;
        }
        let mut chi2 = 0.0;
        let mut choose = 1.0;
        for (j, &c) in counts.iter().enumerate() {
            if j > 0 {
                choose *= (n - j + 1) as f64 / j as f64;
            }
            let expected = 50_000.0 * choose * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32);
            chi2 += (f64::from(c) - expected).powi(2) / expected;
        }
        // 10 degrees of freedom: the 99.9 % quantile is 29.6.
        assert!(chi2 < 29.6, "chi2 = {chi2}, counts {counts:?}");
        assert_eq!(count_hits(&mut rng, 77, 5, 5), 77);
        assert_eq!(count_hits(&mut rng, 77, 0, 5), 0);
    }

    #[test]
    fn random_sites_are_uniform_and_directions_too() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let l = 6;
        let mut hits = vec![0u32; l * l * 4];
        let n = 288_000;
        for _ in 0..n {
            let (x, y, d) = random_site(&mut rng, l as u64, reject_below(l));
            hits[(x * l + y) * 4 + d as usize] += 1;
        }
        let expected = n as f64 / hits.len() as f64;
        let chi2: f64 = hits.iter().map(|&h| (f64::from(h) - expected).powi(2) / expected).sum();
        // 143 degrees of freedom: the 99.9 % quantile is about 200.
        assert!(chi2 < 200.0, "chi2 = {chi2}");
    }
}
