//! FCC clusters bounded by crystal planes, and the Wulff construction, exactly as ASE
//! builds them (`ase.cluster.FaceCenteredCubic` and `ase.cluster.wulff_construction`,
//! 3.29; ../shared/notes/hrtem.md §2).
//!
//! A cluster is cut from a block of conventional FCC cells (4-atom basis, lattice
//! constant `a` in Å): each listed Miller family is expanded to its symmetry-equivalent
//! planes (the 48 operations of m3̄m: permutations and sign changes) and every plane
//! `(hkl)` with `l` layers keeps the atoms with `(r − c)·n̂ < (l + 0.1)·d_hkl`, `c` the
//! block's centre (a lattice site) and `d_hkl = a·gcd(h+k, k+l, h+l) / (2·|hkl|)` the
//! spacing of the FCC lattice planes. The block is ASE's: it spans the planes' foot
//! points (rounded to 0.01 cell, then outwards), so shapes whose vertices reach beyond
//! them are clipped as ASE clips them. The atoms are finally centred on their bounding
//! box.
//!
//! The Wulff construction scales the layer counts with surface energy over plane
//! spacing, `l_i = round(f·γ_i/d_i)` (ties to even, as numpy), and adjusts `f` until a
//! cluster at or below and one at or above the requested size are found; `Rounding`
//! picks one.

use crate::atoms::Atoms;
use crate::element::Element;
use crate::{Error, Result};

/// Miller indices `(h, k, l)`.
pub type Miller = [i32; 3];

/// Which cluster the Wulff construction returns when none has exactly the requested
/// number of atoms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Rounding {
    /// The nearer one (the smaller on a tie), ASE's default.
    #[default]
    Closest,
    /// The smallest cluster with at least the requested atoms (Ragone et al.'s choice).
    Above,
    /// The largest cluster with at most the requested atoms.
    Below,
}

/// A cluster with the planes that bound it.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// The atoms, centred on their bounding box (no cell).
    pub atoms: Atoms,
    /// Every bounding plane (the listed families expanded by symmetry) with its layer
    /// count.
    pub planes: Vec<(Miller, i64)>,
    /// Lattice constant, Å.
    pub lattice_constant: f64,
}

fn gcd(a: i32, b: i32) -> i32 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while a != 0 {
        (a, b) = (b % a, a);
    }
    b
}

/// The lowest integers along the same direction.
fn reduce(m: Miller) -> Result<Miller> {
    let g = gcd(gcd(m[0], m[1]), m[2]);
    if g == 0 {
        return Err(Error::invalid("Miller index", format!("{m:?}"), "a non-zero (h, k, l)"));
    }
    Ok(m.map(|v| v / g))
}

/// The planes equivalent to `m` under m3̄m (all permutations and sign changes), sorted.
pub fn equivalent_planes(m: Miller) -> Vec<Miller> {
    let perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    let mut out: Vec<Miller> = perms
        .iter()
        .flat_map(|p| (0..8).map(move |s: i32| [0, 1, 2].map(|i| if s >> i & 1 == 1 { -m[p[i]] } else { m[p[i]] })))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Spacing of the FCC lattice planes normal to `m` (reduced), Å.
pub fn layer_spacing(m: Miller, a: f64) -> f64 {
    let g = gcd(gcd(m[0] + m[1], m[1] + m[2]), m[0] + m[2]);
    let norm = f64::from(m[0] * m[0] + m[1] * m[1] + m[2] * m[2]).sqrt();
    a * f64::from(g) / (2.0 * norm)
}

fn unit(m: Miller) -> [f64; 3] {
    let v = m.map(f64::from);
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    v.map(|c| c / n)
}

fn check_lattice_constant(a: f64) -> Result<()> {
    if !(a.is_finite() && a > 0.0) {
        return Err(Error::invalid("lattice constant", a, "a positive length in Å"));
    }
    Ok(())
}

/// An FCC cluster bounded by the families `surfaces` (each expanded by symmetry) with
/// `layers[i]` layers from the centre (ASE's `FaceCenteredCubic(symbol, surfaces,
/// layers, latticeconstant)`).
///
/// # Errors
/// Mismatched lengths, no surfaces, a zero Miller index, a bad lattice constant, or a
/// block too large to build (more than 10⁸ sites).
pub fn fcc_cluster(
    element: Element,
    surfaces: &[Miller],
    layers: &[i64],
    lattice_constant: Option<f64>,
) -> Result<Cluster> {
    let a = lattice_constant.unwrap_or(element.fcc_a);
    check_lattice_constant(a)?;
    if surfaces.is_empty() || surfaces.len() != layers.len() {
        return Err(Error::invalid(
            "surfaces",
            format!("{} surfaces, {} layer counts", surfaces.len(), layers.len()),
            "one layer count per surface, at least one surface",
        ));
    }
    // The listed planes first (reduced), then each family's other members with its layers.
    let listed: Vec<Miller> = surfaces.iter().map(|&s| reduce(s)).collect::<Result<_>>()?;
    let mut planes: Vec<(Miller, i64)> = listed.iter().copied().zip(layers.iter().copied()).collect();
    for (&s, &l) in listed.iter().zip(layers) {
        for e in equivalent_planes(s) {
            if !planes.iter().any(|(p, _)| *p == e) {
                planes.push((e, l));
            }
        }
    }
    // The block: lattice coordinates of every plane's foot point, rounded to 0.01 and
    // then outwards, at least one cell either side of the centre.
    let (mut lo, mut hi) = ([-1i64; 3], [1i64; 3]);
    for &(m, l) in &planes {
        let d = layer_spacing(m, a) * l as f64;
        let n = unit(m);
        for i in 0..3 {
            let k = ((n[i] * d / a) * 100.0).round_ties_even() / 100.0;
            let k = if k > 0.0 {
                k.ceil()
            } else if k < 0.0 {
                k.floor()
            } else {
                0.0
            } as i64;
            hi[i] = hi[i].max(k);
            lo[i] = lo[i].min(k);
        }
    }
    let size = [0, 1, 2].map(|i| (hi[i] - lo[i] + 1) as usize);
    let sites = size.iter().product::<usize>().saturating_mul(4);
    if sites > 100_000_000 {
        return Err(Error::invalid("layers", format!("{layers:?}"), "a cluster of at most 10⁸ lattice sites"));
    }
    let center = lo.map(|v| -(v as f64) * a);
    let basis = [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]].map(|b| b.map(|c: f64| c * a));
    let cuts: Vec<([f64; 3], f64)> =
        planes.iter().map(|&(m, l)| (unit(m), layer_spacing(m, a) * (l as f64 + 0.1))).collect();
    let mut positions = Vec::new();
    for h in 0..size[0] {
        for k in 0..size[1] {
            for l in 0..size[2] {
                let t = [h as f64 * a, k as f64 * a, l as f64 * a];
                for b in &basis {
                    let p = [b[0] + t[0], b[1] + t[1], b[2] + t[2]];
                    let r = [p[0] - center[0], p[1] - center[1], p[2] - center[2]];
                    if cuts.iter().all(|(n, rmax)| r[0] * n[0] + r[1] * n[1] + r[2] * n[2] < *rmax) {
                        positions.push(p);
                    }
                }
            }
        }
    }
    let mut atoms = Atoms { numbers: vec![element.z; positions.len()], positions, cell: [0.0; 3] };
    if let Some((lo, hi)) = atoms.bounds() {
        let mid = [0, 1, 2].map(|i| 0.5 * (lo[i] + hi[i]));
        atoms.positions.iter_mut().for_each(|p| *p = [p[0] - mid[0], p[1] - mid[1], p[2] - mid[2]]);
    }
    Ok(Cluster { atoms, planes, lattice_constant: a })
}

/// The Wulff construction (ASE's `wulff_construction(symbol, surfaces, energies, size,
/// 'fcc', rounding, latticeconstant)`): an FCC cluster of about `size` atoms whose
/// facets sit at distances proportional to the surface energies (any unit; only ratios
/// matter).
///
/// # Errors
/// No surfaces, lengths that differ, energies not positive and finite, `size` 0, a bad
/// lattice constant, or no finite cluster within 100 iterations.
pub fn wulff_construction(
    element: Element,
    surfaces: &[Miller],
    energies: &[f64],
    size: usize,
    rounding: Rounding,
    lattice_constant: Option<f64>,
) -> Result<Cluster> {
    let a = lattice_constant.unwrap_or(element.fcc_a);
    check_lattice_constant(a)?;
    if surfaces.is_empty() || surfaces.len() != energies.len() {
        return Err(Error::invalid(
            "energies",
            format!("{} surfaces, {} energies", surfaces.len(), energies.len()),
            "one surface energy per surface, at least one surface",
        ));
    }
    if let Some(bad) = energies.iter().find(|e| !(e.is_finite() && **e > 0.0)) {
        return Err(Error::invalid("surface energy", bad, "positive and finite"));
    }
    if size == 0 {
        return Err(Error::invalid("size", 0, "at least one atom"));
    }
    // Energy per layer spacing: layers ∝ γ/d puts the facets at distances ∝ γ.
    let e: Vec<f64> =
        surfaces.iter().zip(energies).map(|(&s, &g)| Ok(g / layer_spacing(reduce(s)?, a))).collect::<Result<_>>()?;
    let make = |factor: f64| -> Result<(Cluster, Vec<i64>)> {
        let layers: Vec<i64> = e.iter().map(|&x| (factor * x).round_ties_even() as i64).collect();
        Ok((fcc_cluster(element, surfaces, &layers, Some(a))?, layers))
    };
    let e_max = e.iter().copied().fold(f64::MIN, f64::max);
    let e_min = e.iter().copied().fold(f64::MAX, f64::min);
    let mut factor = (size as f64).powf(1.0 / 3.0) / e_max;
    let (mut cluster, mut layers) = make(factor)?;
    if cluster.atoms.is_empty() {
        factor = 1.0 / e_min;
        (cluster, layers) = make(factor)?;
        if cluster.atoms.is_empty() {
            return Err(Error::Unsuitable {
                what: "Wulff construction",
                reason: "the first guesses gave empty clusters".into(),
            });
        }
    }
    let rescaled = factor * (size as f64 / cluster.atoms.len() as f64).powf(1.0 / 3.0);
    let (next, next_layers) = make(rescaled)?;
    if !next.atoms.is_empty() {
        (cluster, layers) = (next, next_layers);
    }
    let (mut below, mut above) = (None, None);
    for _ in 0..=100 {
        let n = cluster.atoms.len();
        if n <= size {
            below = Some(cluster.clone());
        }
        if n >= size {
            above = Some(cluster.clone());
        }
        if let (Some(b), Some(a)) = (&below, &above) {
            return Ok(match rounding {
                Rounding::Below => b.clone(),
                Rounding::Above => a.clone(),
                Rounding::Closest => {
                    if a.atoms.len() - size < size - b.atoms.len() {
                        a.clone()
                    } else {
                        b.clone()
                    }
                }
            });
        }
        // One layer more (or fewer) on the plane that is nearest to gaining (losing) one.
        factor = if n < size {
            layers.iter().zip(&e).map(|(&l, &x)| (l as f64 + 0.5 + 1e-10) / x).fold(f64::MAX, f64::min)
        } else {
            layers.iter().zip(&e).map(|(&l, &x)| (l as f64 - 0.5 - 1e-10) / x).fold(f64::MIN, f64::max)
        };
        (cluster, layers) = make(factor)?;
    }
    Err(Error::Unsuitable {
        what: "Wulff construction",
        reason: format!("no cluster brackets {size} atoms after 100 steps"),
    })
}

impl Cluster {
    /// The cluster with `remove` random surface atoms taken away and then `add` atoms put
    /// on random empty lattice sites next to the surface (Ragone et al.'s random
    /// insertion and removal), seeded. Surface atoms have fewer than 12 nearest
    /// neighbours; candidate sites are the empty nearest-neighbour sites of the atoms
    /// (the FCC vectors `(±a/2, ±a/2, 0)` and permutations), so the particle stays on
    /// its lattice. Works on the unrotated cluster.
    ///
    /// # Errors
    /// More removals than surface atoms.
    pub fn with_surface_noise(&self, remove: usize, add: usize, seed: u64) -> Result<Cluster> {
        let h = self.lattice_constant / 2.0;
        let key = |p: &[f64; 3]| p.map(|c| (c / h).round() as i64);
        let mut sites: std::collections::BTreeMap<[i64; 3], [f64; 3]> =
            self.atoms.positions.iter().map(|p| (key(p), *p)).collect();
        let vectors: Vec<[i64; 3]> = [[1, 1, 0], [1, -1, 0], [-1, 1, 0], [-1, -1, 0]]
            .iter()
            .flat_map(|v| [*v, [v[0], 0, v[1]], [0, v[0], v[1]]])
            .collect();
        let neighbours = |k: &[i64; 3]| {
            let k = *k;
            vectors.iter().map(move |v| [k[0] + v[0], k[1] + v[1], k[2] + v[2]])
        };
        let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut surface: Vec<[i64; 3]> =
            sites.keys().filter(|k| neighbours(k).filter(|n| sites.contains_key(n)).count() < 12).copied().collect();
        if remove > surface.len() {
            return Err(Error::invalid("remove", remove, format!("at most the {} surface atoms", surface.len())));
        }
        rng.shuffle(&mut surface);
        for k in &surface[..remove] {
            sites.remove(k);
        }
        let origin = self.atoms.positions.first().copied().unwrap_or([0.0; 3]);
        let offset = [0, 1, 2].map(|i| origin[i] - key(&origin)[i] as f64 * h);
        for _ in 0..add {
            let mut empty: Vec<[i64; 3]> =
                sites.keys().flat_map(&neighbours).filter(|n| !sites.contains_key(n)).collect();
            empty.sort_unstable();
            empty.dedup();
            if empty.is_empty() {
                break;
            }
            let k = empty[rng.index(empty.len())];
            sites.insert(k, [0, 1, 2].map(|i| k[i] as f64 * h + offset[i]));
        }
        let positions: Vec<[f64; 3]> = sites.into_values().collect();
        let z = self.atoms.numbers.first().copied().unwrap_or(79);
        Ok(Cluster {
            atoms: Atoms { numbers: vec![z; positions.len()], positions, cell: [0.0; 3] },
            planes: self.planes.clone(),
            lattice_constant: self.lattice_constant,
        })
    }

    /// For each listed family (reduced Miller index), the atoms in the outermost layer
    /// of each of its planes, summed over the planes: the atoms on its facets (edges and
    /// vertices of other facets count where a family does not bound the cluster).
    pub fn outer_layer_atoms(&self, families: &[Miller]) -> Result<Vec<usize>> {
        families
            .iter()
            .map(|&f| {
                let f = reduce(f)?;
                let d = layer_spacing(f, self.lattice_constant);
                Ok(equivalent_planes(f)
                    .into_iter()
                    .map(|m| {
                        let n = unit(m);
                        let proj: Vec<f64> =
                            self.atoms.positions.iter().map(|p| p[0] * n[0] + p[1] * n[1] + p[2] * n[2]).collect();
                        let top = proj.iter().copied().fold(f64::MIN, f64::max);
                        proj.iter().filter(|&&s| s > top - 0.5 * d).count()
                    })
                    .sum())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacings_and_families() {
        let a = 4.08;
        assert!((layer_spacing([1, 0, 0], a) - 2.04).abs() < 1e-15);
        assert!((layer_spacing([1, 1, 0], a) - a / (2.0 * 2f64.sqrt())).abs() < 1e-15);
        assert!((layer_spacing([1, 1, 1], a) - a / 3f64.sqrt()).abs() < 1e-15);
        assert_eq!(equivalent_planes([1, 0, 0]).len(), 6);
        assert_eq!(equivalent_planes([1, 1, 0]).len(), 12);
        assert_eq!(equivalent_planes([1, 1, 1]).len(), 8);
        assert_eq!(equivalent_planes([1, 2, 3]).len(), 48);
        assert_eq!(reduce([2, -4, 0]).unwrap(), [1, -2, 0]);
        assert!(reduce([0, 0, 0]).is_err());
    }

    #[test]
    fn a_cube_of_layers() {
        // {100} with 2 layers: a 5×5×5-site cube of FCC sites, 63 atoms.
        let c = fcc_cluster(Element::AU, &[[1, 0, 0]], &[2], None).unwrap();
        assert_eq!(c.atoms.len(), 63);
        assert_eq!(c.planes.len(), 6);
    }

    #[test]
    fn surface_noise_keeps_the_lattice() {
        let c =
            wulff_construction(Element::AU, &[[1, 0, 0], [1, 1, 1]], &[1.0, 1.0], 300, Rounding::Above, None).unwrap();
        let noisy = c.with_surface_noise(20, 12, 7).unwrap();
        assert_eq!(noisy.atoms.len(), c.atoms.len() - 20 + 12);
        // Every atom is still on the original FCC lattice (a shared half-cell grid).
        let h = c.lattice_constant / 2.0;
        let o = c.atoms.positions[0];
        for p in &noisy.atoms.positions {
            for i in 0..3 {
                let q = (p[i] - o[i]) / h;
                assert!((q - q.round()).abs() < 1e-9);
            }
        }
        assert_eq!(c.with_surface_noise(20, 12, 7).unwrap(), noisy);
        assert!(c.with_surface_noise(100_000, 0, 7).is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        let au = Element::AU;
        assert!(wulff_construction(au, &[[1, 0, 0]], &[1.0, 2.0], 100, Rounding::Above, None).is_err());
        assert!(wulff_construction(au, &[[1, 0, 0]], &[-1.0], 100, Rounding::Above, None).is_err());
        assert!(wulff_construction(au, &[[1, 0, 0]], &[1.0], 0, Rounding::Above, None).is_err());
        assert!(wulff_construction(au, &[[0, 0, 0]], &[1.0], 10, Rounding::Above, None).is_err());
        assert!(wulff_construction(au, &[[1, 0, 0]], &[1.0], 10, Rounding::Above, Some(-4.0)).is_err());
        assert!(Element::from_symbol("Xx").is_err());
    }
}
