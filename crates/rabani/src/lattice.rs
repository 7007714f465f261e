//! The lattice state: dry substrate, liquid or nanoparticle in every cell.

use crate::params::{Boundary, Params};
use crate::{Error, Result};
use nanoml_core::Xoshiro256PlusPlus;
use ndarray::{Array2, ArrayView2};

/// Internal cell codes. Particle is 5 so that the sum of up to four neighbour codes tells
/// the liquid count (sum mod 5) and the particle count (sum div 5) apart.
pub(crate) const DRY: u8 = 0;
pub(crate) const LIQUID: u8 = 1;
pub(crate) const PARTICLE: u8 = 5;

/// State of one lattice cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cell {
    /// Dry substrate (image value 0).
    Substrate = 0,
    /// Liquid solvent (image value 1).
    Liquid = 1,
    /// Nanoparticle (image value 2).
    Particle = 2,
}

impl Cell {
    pub(crate) fn from_code(code: u8) -> Cell {
        match code {
            DRY => Cell::Substrate,
            LIQUID => Cell::Liquid,
            _ => Cell::Particle,
        }
    }

    fn code(self) -> u8 {
        match self {
            Cell::Substrate => DRY,
            Cell::Liquid => LIQUID,
            Cell::Particle => PARTICLE,
        }
    }
}

/// An L×L Rabani lattice. Cell `(row, col)` is pyRabani's `[x, y]`: moves "left/right"
/// change the row, "down/up" the column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lattice {
    pub(crate) size: usize,
    pub(crate) cells: Vec<u8>,
    pub(crate) particle_size: usize,
    /// Top-left cell (row-major index) of each particle, for particles larger than one
    /// cell; empty for single-cell particles (the cells say it all).
    pub(crate) particles: Vec<u32>,
}

impl Lattice {
    /// The initial state of a simulation: particles on random cells (⌊C·L²⌋ distinct
    /// cells, as pyRabani's `np.random.choice(N, int(C*N), replace=False)`), or 3×3
    /// particles on random distinct blocks of a 3-cell grid, and liquid everywhere else.
    ///
    /// # Errors
    /// When `params` do not validate.
    pub fn initial(params: &Params, seed: u64) -> Result<Lattice> {
        params.validate()?;
        let l = params.size;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut cells = vec![LIQUID; l * l];
        let mut particles = Vec::new();
        let count = params.particle_count();
        if params.particle_size == 1 {
            for i in choose_distinct(&mut rng, l * l, count) {
                cells[i] = PARTICLE;
            }
        } else {
            let s = params.particle_size;
            let per_row = l / s;
            for b in choose_distinct(&mut rng, per_row * per_row, count) {
                let (r0, c0) = (b / per_row * s, b % per_row * s);
                particles.push((r0 * l + c0) as u32);
                for r in r0..r0 + s {
                    cells[r * l + c0..r * l + c0 + s].fill(PARTICLE);
                }
            }
        }
        Ok(Lattice { size: l, cells, particle_size: params.particle_size, particles })
    }

    /// A lattice of single-cell particles from an image of cell values (0 substrate,
    /// 1 liquid, 2 particle), e.g. to continue a run or to start from a chosen state.
    ///
    /// # Errors
    /// When the image is not square, smaller than 4×4, or holds other values.
    pub fn from_image(image: ArrayView2<'_, u8>) -> Result<Lattice> {
        let (rows, cols) = image.dim();
        if rows != cols || rows < 4 {
            return Err(Error::invalid("image", format!("{rows}×{cols}"), "a square image of at least 4×4 cells"));
        }
        let mut cells = Vec::with_capacity(rows * cols);
        for ((r, c), &v) in image.indexed_iter() {
            let cell = match v {
                0 => Cell::Substrate,
                1 => Cell::Liquid,
                2 => Cell::Particle,
                _ => return Err(Error::invalid("image", format!("{v} at ({r}, {c})"), "cell values 0, 1 or 2")),
            };
            cells.push(cell.code());
        }
        Ok(Lattice { size: rows, cells, particle_size: 1, particles: Vec::new() })
    }

    /// Side length L.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Side of a particle in cells (1 or 3).
    pub fn particle_size(&self) -> usize {
        self.particle_size
    }

    /// State of cell `(row, col)`, or `None` outside the lattice.
    pub fn get(&self, row: usize, col: usize) -> Option<Cell> {
        (row < self.size && col < self.size).then(|| Cell::from_code(self.cells[row * self.size + col]))
    }

    /// Sets cell `(row, col)` of a lattice of single-cell particles (for building test
    /// states; the simulation changes cells only through moves).
    ///
    /// # Errors
    /// Outside the lattice, or on a lattice of 3×3 particles.
    pub fn set(&mut self, row: usize, col: usize, cell: Cell) -> Result<()> {
        if self.particle_size != 1 {
            return Err(Error::invalid("particle_size", self.particle_size, "1 to set single cells"));
        }
        if row >= self.size || col >= self.size {
            return Err(Error::invalid(
                "(row, col)",
                format!("({row}, {col})"),
                format!("inside the {0}×{0} lattice", self.size),
            ));
        }
        self.cells[row * self.size + col] = cell.code();
        Ok(())
    }

    /// The image pyRabani returns, `2·NP + LQ`: 0 substrate, 1 liquid, 2 particle.
    pub fn image(&self) -> Array2<u8> {
        let l = self.size;
        Array2::from_shape_fn((l, l), |(r, c)| Cell::from_code(self.cells[r * l + c]) as u8)
    }

    /// Cells in each state: `[substrate, liquid, particle]`.
    pub fn counts(&self) -> [usize; 3] {
        let mut n = [0usize; 3];
        for &c in &self.cells {
            n[Cell::from_code(c) as usize] += 1;
        }
        n
    }

    /// Fractions of cells in each state: `[substrate, liquid, particle]`.
    pub fn fractions(&self) -> [f64; 3] {
        let total = (self.size * self.size).max(1) as f64;
        self.counts().map(|n| n as f64 / total)
    }

    /// Top-left cells `(row, col)` of the 3×3 particles (empty for single-cell particles).
    pub fn particle_corners(&self) -> Vec<(usize, usize)> {
        self.particles.iter().map(|&i| (i as usize / self.size, i as usize % self.size)).collect()
    }

    /// The Hamiltonian of [`Params`](crate::Params) summed over the whole lattice, bond by
    /// bond (slow; the simulation uses local energy differences, and the tests check them
    /// against differences of this).
    pub fn energy(&self, params: &Params) -> f64 {
        let l = self.size as isize;
        let (w1, w2) = bond_weights(params.next_nearest);
        let periodic = params.boundary == Boundary::Periodic;
        let mut e = 0.0;
        // Forward neighbours only, so that each bond is counted once.
        let forward: &[(isize, isize, f64)] = &[(0, 1, w1), (1, 0, w1), (1, 1, w2), (1, -1, w2)];
        for r in 0..l {
            for c in 0..l {
                let a = self.cells[(r * l + c) as usize];
                e += params.mu * f64::from(u8::from(a == LIQUID));
                for &(dr, dc, w) in forward {
                    if w == 0.0 {
                        continue;
                    }
                    let (mut r2, mut c2) = (r + dr, c + dc);
                    if periodic {
                        (r2, c2) = (r2.rem_euclid(l), c2.rem_euclid(l));
                    } else if r2 < 0 || r2 >= l || c2 < 0 || c2 >= l {
                        continue;
                    }
                    e += w * bond_energy(params, a, self.cells[(r2 * l + c2) as usize]);
                }
            }
        }
        e
    }
}

/// Weights of nearest- and next-nearest-neighbour bonds.
pub(crate) fn bond_weights(next_nearest: bool) -> (f64, f64) {
    if next_nearest {
        let d = std::f64::consts::FRAC_1_SQRT_2;
        (1.0 / (1.0 + d), d / (1.0 + d))
    } else {
        (1.0, 0.0)
    }
}

/// Energy of one bond of unit weight between cells of codes `a` and `b`.
#[inline]
pub(crate) fn bond_energy(params: &Params, a: u8, b: u8) -> f64 {
    match (a, b) {
        (LIQUID, LIQUID) => -1.0,
        (PARTICLE, PARTICLE) => -params.e_nn,
        (PARTICLE, LIQUID) | (LIQUID, PARTICLE) => -params.e_nl,
        _ => 0.0,
    }
}

/// `k` distinct integers from `0..n` in random order (partial Fisher–Yates).
fn choose_distinct(rng: &mut Xoshiro256PlusPlus, n: usize, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = i + rng.index(n - i);
        all.swap(i, j);
    }
    all.truncate(k.min(n));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_state_has_floor_c_n_particles_and_liquid_elsewhere() {
        let p = Params { size: 37, coverage: 0.3, ..Params::default() };
        let lat = Lattice::initial(&p, 1).unwrap();
        assert_eq!(lat.counts(), [0, 37 * 37 - 410, 410]);
        let p3 = Params { size: 40, ..Params::rabani_2003() };
        let lat3 = Lattice::initial(&p3, 1).unwrap();
        let n = p3.particle_count();
        assert_eq!(lat3.counts()[2], 9 * n);
        assert_eq!(lat3.particles.len(), n);
    }

    #[test]
    fn image_roundtrip_and_bad_images() {
        let lat = Lattice::initial(&Params { size: 8, ..Params::default() }, 3).unwrap();
        assert_eq!(Lattice::from_image(lat.image().view()).unwrap(), lat);
        assert!(Lattice::from_image(Array2::<u8>::zeros((4, 5)).view()).is_err());
        assert!(Lattice::from_image(Array2::<u8>::from_elem((4, 4), 3).view()).is_err());
    }
}
