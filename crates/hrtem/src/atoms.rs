//! A set of atoms: atomic numbers and Cartesian positions in Å, optionally in an
//! orthorhombic cell (the simulation box: x, y across the beam, z along it).

use crate::{Error, Result};
use std::fmt::Write as _;

/// A 3×3 rotation (or any linear map), row-major: `r · p`.
pub type Matrix3 = [[f64; 3]; 3];

/// Atoms: numbers, positions (Å) and the box they sit in.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Atoms {
    /// Atomic numbers, one per atom.
    pub numbers: Vec<u8>,
    /// Positions in Å.
    pub positions: Vec<[f64; 3]>,
    /// Edge lengths of the orthorhombic box in Å (all zero: no box).
    pub cell: [f64; 3],
}

fn apply(r: &Matrix3, p: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| r[i][0] * p[0] + r[i][1] * p[1] + r[i][2] * p[2])
}

/// The rotation by `angle` (radians) about the unit vector `axis` (right-handed).
pub fn rotation(axis: [f64; 3], angle: f64) -> Matrix3 {
    let (s, c) = angle.sin_cos();
    let [x, y, z] = axis;
    let t = 1.0 - c;
    [
        [c + x * x * t, x * y * t - z * s, x * z * t + y * s],
        [y * x * t + z * s, c + y * y * t, y * z * t - x * s],
        [z * x * t - y * s, z * y * t + x * s, c + z * z * t],
    ]
}

/// The rotation that takes the crystal direction `[u v w]` to +z (the beam) by the
/// shortest turn: about `[u v w] × z`. `[0 0 1]` is the identity, `[0 1 1]` a turn of 45°
/// about x, `[1 1 1]` a turn of 54.74° about `[1 −1 0]`.
///
/// # Errors
/// The zero vector.
pub fn zone_axis_rotation(uvw: [i32; 3]) -> Result<Matrix3> {
    let v = uvw.map(f64::from);
    let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if norm == 0.0 {
        return Err(Error::invalid("zone axis", format!("{uvw:?}"), "a non-zero direction [u v w]"));
    }
    let v = v.map(|c| c / norm);
    let axis = [v[1], -v[0], 0.0]; // v × z
    let s = (axis[0] * axis[0] + axis[1] * axis[1]).sqrt();
    if s < 1e-15 {
        // Along ±z already: identity, or a half turn about x for −z.
        return Ok(if v[2] > 0.0 {
            rotation([1.0, 0.0, 0.0], 0.0)
        } else {
            rotation([1.0, 0.0, 0.0], std::f64::consts::PI)
        });
    }
    Ok(rotation(axis.map(|c| c / s), s.atan2(v[2])))
}

impl Atoms {
    /// Number of atoms.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether there are no atoms.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The atoms turned by `r` about the origin (the box is kept).
    pub fn rotated(&self, r: &Matrix3) -> Atoms {
        Atoms { positions: self.positions.iter().map(|&p| apply(r, p)).collect(), ..self.clone() }
    }

    /// The atoms oriented so that the crystal direction `uvw` runs along the beam (+z);
    /// see [`zone_axis_rotation`].
    ///
    /// # Errors
    /// The zero vector.
    pub fn oriented(&self, uvw: [i32; 3]) -> Result<Atoms> {
        Ok(self.rotated(&zone_axis_rotation(uvw)?))
    }

    /// Smallest and largest coordinate along each axis.
    pub fn bounds(&self) -> Option<([f64; 3], [f64; 3])> {
        let first = *self.positions.first()?;
        Some(self.positions.iter().fold((first, first), |(lo, hi), p| {
            ([0, 1, 2].map(|i| lo[i].min(p[i])), [0, 1, 2].map(|i| hi[i].max(p[i])))
        }))
    }

    /// The atoms in an orthorhombic box of edges `cell` (Å) with their bounding box
    /// centred in it.
    ///
    /// # Errors
    /// No atoms, a non-positive or non-finite edge, or atoms that do not fit.
    pub fn centered_in(&self, cell: [f64; 3]) -> Result<Atoms> {
        let (lo, hi) = self.bounds().ok_or_else(|| Error::invalid("atoms", "none", "at least one atom"))?;
        if let Some(bad) = cell.iter().find(|c| !(c.is_finite() && **c > 0.0)) {
            return Err(Error::invalid("cell", bad, "positive, finite edges in Å"));
        }
        for i in 0..3 {
            if hi[i] - lo[i] > cell[i] {
                return Err(Error::invalid(
                    "cell",
                    format!("{:?}", cell),
                    format!("edges at least the particle's extent {:?} Å", [0, 1, 2].map(|k| hi[k] - lo[k])),
                ));
            }
        }
        let shift = [0, 1, 2].map(|i| 0.5 * cell[i] - 0.5 * (lo[i] + hi[i]));
        let positions = self.positions.iter().map(|p| [0, 1, 2].map(|i| p[i] + shift[i])).collect();
        Ok(Atoms { numbers: self.numbers.clone(), positions, cell })
    }

    /// The atoms centred in a box with `vacuum` Å of empty space on every side.
    ///
    /// # Errors
    /// No atoms, or a negative or non-finite vacuum.
    pub fn with_vacuum(&self, vacuum: f64) -> Result<Atoms> {
        if !(vacuum.is_finite() && vacuum >= 0.0) {
            return Err(Error::invalid("vacuum", vacuum, "a finite width ≥ 0 Å"));
        }
        let (lo, hi) = self.bounds().ok_or_else(|| Error::invalid("atoms", "none", "at least one atom"))?;
        let cell = [0, 1, 2].map(|i| (hi[i] - lo[i] + 2.0 * vacuum).max(f64::MIN_POSITIVE));
        self.centered_in(cell)
    }

    /// The atoms as an (extended) XYZ file: count, a comment line with the box (ASE's
    /// `Lattice="…" Properties=species:S:1:pos:R:3` when there is one), one line per atom.
    pub fn to_xyz(&self, symbol_of: impl Fn(u8) -> &'static str) -> String {
        let mut out = format!("{}\n", self.len());
        if self.cell.iter().any(|&c| c > 0.0) {
            let [a, b, c] = self.cell;
            let _ = writeln!(out, "Lattice=\"{a} 0 0 0 {b} 0 0 0 {c}\" Properties=species:S:1:pos:R:3 pbc=\"F F F\"");
        } else {
            out.push_str("Properties=species:S:1:pos:R:3\n");
        }
        for (&z, p) in self.numbers.iter().zip(&self.positions) {
            let _ = writeln!(out, "{} {:.8} {:.8} {:.8}", symbol_of(z), p[0], p[1], p[2]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_axes_go_to_the_beam() {
        for uvw in [[0, 0, 1], [0, 1, 1], [1, 1, 1], [1, 2, 3], [0, 0, -1], [-1, 0, 0]] {
            let r = zone_axis_rotation(uvw).unwrap();
            let v = uvw.map(f64::from);
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            let z = apply(&r, v.map(|c| c / n));
            assert!(z[0].abs() < 1e-12 && z[1].abs() < 1e-12 && (z[2] - 1.0).abs() < 1e-12, "{uvw:?} → {z:?}");
        }
        // [011] is a 45° turn about x.
        let r = zone_axis_rotation([0, 1, 1]).unwrap();
        assert!((r[0][0] - 1.0).abs() < 1e-15 && (r[1][1] - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
        assert!(zone_axis_rotation([0, 0, 0]).is_err());
    }

    #[test]
    fn boxes_and_xyz() {
        let atoms =
            Atoms { numbers: vec![79, 79], positions: vec![[0.0, 0.0, 0.0], [2.04, 2.04, 0.0]], cell: [0.0; 3] };
        let boxed = atoms.with_vacuum(5.0).unwrap();
        assert_eq!(boxed.cell, [12.04, 12.04, 10.0]);
        assert_eq!(boxed.positions[0], [5.0, 5.0, 5.0]);
        let xyz = boxed.to_xyz(|_| "Au");
        assert!(xyz.starts_with("2\nLattice=\"12.04 0 0 0 12.04 0 0 0 10\""), "{xyz}");
        assert_eq!(xyz.lines().count(), 4);
        assert!(atoms.centered_in([1.0, 10.0, 10.0]).is_err());
        assert!(Atoms::default().with_vacuum(1.0).is_err());
        assert!(atoms.with_vacuum(f64::NAN).is_err());
    }
}
