//! Ground truth for the column-height networks (../shared/notes/hrtem.md §4): atomic
//! columns of an oriented particle, the Gaussian-sum height map whose peaks equal the
//! number of atoms in each column (Ragone et al.'s regression target), and per-height
//! class maps with a background channel (Madsen et al.'s classification target).
//!
//! Maps are indexed `[i, j]` with pixel `(i, j)` at `x = i·s`, `y = j·s` (Å, `s` the
//! sampling in Å per pixel; no half-pixel offset), the beam along z: the first axis runs
//! along x, as in ASE and abTEM.

use crate::atoms::Atoms;
use crate::{Error, Result};
use ndarray::{Array2, Array3, ArrayViewMut2, Axis, s};

/// An atomic column seen along the beam.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Column {
    /// Mean x of its atoms, Å.
    pub x: f64,
    /// Mean y of its atoms, Å.
    pub y: f64,
    /// Number of atoms in the column.
    pub height: usize,
}

/// Columns: atoms whose projections (x, y) are joined by steps of at most `cutoff` Å
/// (single linkage, as `scipy.cluster.hierarchy.fcluster(linkage(xy, 'single'), cutoff,
/// 'distance')`; 1 Å in the reference code). Sorted by x, then y.
///
/// # Errors
/// A cutoff that is not positive and finite.
pub fn columns(atoms: &Atoms, cutoff: f64) -> Result<Vec<Column>> {
    if !(cutoff.is_finite() && cutoff > 0.0) {
        return Err(Error::invalid("cutoff", cutoff, "a positive distance in Å"));
    }
    let n = atoms.len();
    // Union–find over pairs closer than the cutoff, found through a grid of cutoff-sized
    // cells (neighbours are in the 3×3 cells around).
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    let cell = |v: f64| (v / cutoff).floor() as i64;
    let mut grid: std::collections::HashMap<(i64, i64), Vec<usize>> = std::collections::HashMap::new();
    for (k, p) in atoms.positions.iter().enumerate() {
        grid.entry((cell(p[0]), cell(p[1]))).or_default().push(k);
    }
    for (k, p) in atoms.positions.iter().enumerate() {
        let (cx, cy) = (cell(p[0]), cell(p[1]));
        for dx in -1..=1 {
            for dy in -1..=1 {
                for &m in grid.get(&(cx + dx, cy + dy)).map(Vec::as_slice).unwrap_or(&[]) {
                    let q = atoms.positions[m];
                    if m > k && (p[0] - q[0]).hypot(p[1] - q[1]) <= cutoff {
                        let (a, b) = (find(&mut parent, k), find(&mut parent, m));
                        parent[a.max(b)] = a.min(b);
                    }
                }
            }
        }
    }
    let mut sums: std::collections::BTreeMap<usize, (f64, f64, usize)> = std::collections::BTreeMap::new();
    for (k, p) in atoms.positions.iter().enumerate() {
        let root = find(&mut parent, k);
        let e = sums.entry(root).or_insert((0.0, 0.0, 0));
        *e = (e.0 + p[0], e.1 + p[1], e.2 + 1);
    }
    let mut out: Vec<Column> =
        sums.values().map(|&(x, y, h)| Column { x: x / h as f64, y: y / h as f64, height: h }).collect();
    out.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
    Ok(out)
}

fn check_grid(shape: (usize, usize), sampling: f64, width: f64) -> Result<()> {
    if shape.0 == 0 || shape.1 == 0 {
        return Err(Error::invalid("shape", format!("{shape:?}"), "at least one pixel each way"));
    }
    if !(sampling.is_finite() && sampling > 0.0) {
        return Err(Error::invalid("sampling", sampling, "a positive pixel size in Å"));
    }
    if !(width.is_finite() && width > 0.0) {
        return Err(Error::invalid("width", width, "a positive width in pixels"));
    }
    Ok(())
}

/// Adds `peak · exp(−d²/denominator)` around `(px, py)` (pixels) within `reach` pixels.
fn splat(mut map: ArrayViewMut2<'_, f32>, px: f64, py: f64, reach: f64, denominator: f64, peak: f64) {
    let (nx, ny) = map.dim();
    let range = |c: f64, n: usize| {
        let lo = (c.round() - reach).max(0.0);
        let hi = (c.round() + reach + 1.0).min(n as f64);
        (lo as usize, if hi > lo { hi as usize } else { lo as usize })
    };
    let ((x0, x1), (y0, y1)) = (range(px, nx), range(py, ny));
    for i in x0..x1 {
        for j in y0..y1 {
            let d2 = (i as f64 - px).powi(2) + (j as f64 - py).powi(2);
            map[[i, j]] += (peak * (-d2 / denominator).exp()) as f32;
        }
    }
}

/// Ragone et al.'s regression target: a Gaussian of standard deviation `width` pixels
/// and unit peak per atom (summed, so a column's peak is its height), within ±4·width
/// pixels of the atom; `shape` pixels `(nx, ny)` of `sampling` Å (2 px at 0.26 Å in the
/// paper). Atoms outside the map add what falls inside.
///
/// # Errors
/// An empty shape, or a sampling or width that is not positive and finite.
pub fn height_map(atoms: &Atoms, shape: (usize, usize), sampling: f64, width: f64) -> Result<Array2<f32>> {
    check_grid(shape, sampling, width)?;
    let mut map = Array2::zeros(shape);
    for p in &atoms.positions {
        splat(map.view_mut(), p[0] / sampling, p[1] / sampling, 4.0 * width, 2.0 * width * width, 1.0);
    }
    Ok(map)
}

/// Madsen et al.'s classification target: channel `h` (1 ..= `max_height`) holds
/// `exp(−d²/width)` around each column of height `h` (taller columns count as
/// `max_height`), channel 0 the background `1 − Σ_h`, clamped at 0. Shape
/// `(max_height + 1, nx, ny)`.
///
/// # Errors
/// As [`height_map`], `max_height` 0, and a bad column cutoff.
pub fn class_maps(
    atoms: &Atoms,
    shape: (usize, usize),
    sampling: f64,
    width: f64,
    max_height: usize,
    cutoff: f64,
) -> Result<Array3<f32>> {
    check_grid(shape, sampling, width)?;
    if max_height == 0 {
        return Err(Error::invalid("max_height", 0, "at least one column height class"));
    }
    let mut maps = Array3::zeros((max_height + 1, shape.0, shape.1));
    let reach = 3.0 * width.sqrt();
    for c in columns(atoms, cutoff)? {
        let h = c.height.min(max_height);
        splat(maps.index_axis_mut(Axis(0), h), c.x / sampling, c.y / sampling, reach, width, 1.0);
    }
    let sum = maps.slice(s![1.., .., ..]).sum_axis(Axis(0));
    maps.index_axis_mut(Axis(0), 0).assign(&sum.mapv(|v| (1.0 - v).max(0.0)));
    Ok(maps)
}
