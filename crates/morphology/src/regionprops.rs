//! Region properties used by the screening filters: area, centroid, bounding box,
//! eccentricity and equivalent diameter, per labelled region or for a whole mask.
//!
//! Definitions are those of `skimage.measure.regionprops`: the eccentricity is
//! `√(1 − λ₂/λ₁)` with `λ₁ ≥ λ₂` the eigenvalues of the region's inertia tensor (central
//! second moments divided by the area; 0 when `λ₁ = 0`), and the equivalent diameter is
//! that of the disk of the same area, `√(4A/π)`. Lengths are in pixels. Moments are
//! accumulated in exact integer arithmetic.

use crate::label::Labels;
use ndarray::{ArrayBase, Data, Ix2};

/// Properties of one region.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegionProps {
    /// The region's label (1 for the whole-mask region of [`mask_region_props`]).
    pub label: u32,
    /// Number of pixels.
    pub area: u64,
    /// Centroid `(row, col)`.
    pub centroid: (f64, f64),
    /// Half-open bounding box `(row_start, row_end, col_start, col_end)`.
    pub bbox: (usize, usize, usize, usize),
    /// Eigenvalues `(λ₁, λ₂)`, `λ₁ ≥ λ₂ ≥ 0`, of the inertia tensor (pixels²).
    pub inertia_eigenvalues: (f64, f64),
    /// Eccentricity of the ellipse with the same second moments, in `[0, 1]`.
    pub eccentricity: f64,
    /// Diameter of the disk with the same area (pixels).
    pub equivalent_diameter: f64,
}

#[derive(Clone, Copy, Default)]
struct Moments {
    n: u64,
    sr: u128,
    sc: u128,
    srr: u128,
    scc: u128,
    src: u128,
    bbox: Option<(usize, usize, usize, usize)>,
}

impl Moments {
    #[inline]
    fn add(&mut self, r: usize, c: usize) {
        let (ru, cu) = (r as u128, c as u128);
        self.n += 1;
        self.sr += ru;
        self.sc += cu;
        self.srr += ru * ru;
        self.scc += cu * cu;
        self.src += ru * cu;
        self.bbox = Some(match self.bbox {
            None => (r, r + 1, c, c + 1),
            Some((a, b, d, e)) => (a.min(r), b.max(r + 1), d.min(c), e.max(c + 1)),
        });
    }

    fn props(&self, label: u32) -> Option<RegionProps> {
        let bbox = self.bbox?;
        let n = self.n as f64;
        let ni = i128::from(self.n as i64);
        // Central moments × n, exact: n·Σx² − (Σx)².
        let central = |sxx: u128, sx: u128, sy: u128| (ni * sxx as i128 - sx as i128 * sy as i128) as f64 / n;
        let mu_rr = central(self.srr, self.sr, self.sr);
        let mu_cc = central(self.scc, self.sc, self.sc);
        let mu_rc = central(self.src, self.sr, self.sc);
        let (a, c, b) = (mu_cc / n, mu_rr / n, -mu_rc / n);
        let mid = (a + c) / 2.0;
        let half = (4.0 * b * b + (a - c) * (a - c)).sqrt() / 2.0;
        let (l1, l2) = ((mid + half).max(0.0), (mid - half).max(0.0));
        let eccentricity = if l1 == 0.0 { 0.0 } else { (1.0 - l2 / l1).max(0.0).sqrt() };
        Some(RegionProps {
            label,
            area: self.n,
            centroid: (self.sr as f64 / n, self.sc as f64 / n),
            bbox,
            inertia_eigenvalues: (l1, l2),
            eccentricity,
            equivalent_diameter: (4.0 * n / std::f64::consts::PI).sqrt(),
        })
    }
}

/// Properties of every labelled region, in label order.
///
/// ```
/// use ndarray::array;
/// use nanoml_morphology::{label, region_props, Connectivity};
/// let mask = array![[true, true, false, false], [false, false, false, true]];
/// let props = region_props(&label(&mask, Connectivity::Eight)?);
/// assert_eq!(props.len(), 2);
/// assert_eq!(props[0].area, 2);
/// assert_eq!(props[0].eccentricity, 1.0); // a line segment
/// # Ok::<(), nanoml_morphology::Error>(())
/// ```
pub fn region_props(labels: &Labels) -> Vec<RegionProps> {
    let mut moments = vec![Moments::default(); labels.count + 1];
    for ((r, c), &l) in labels.image.indexed_iter() {
        if l != 0
            && let Some(m) = moments.get_mut(l as usize)
        {
            m.add(r, c);
        }
    }
    moments.iter().enumerate().skip(1).filter_map(|(l, m)| m.props(l as u32)).collect()
}

/// Properties of the whole foreground taken as one region — what
/// `regionprops((mask != 0) + 1)[-1]` gives in the reference screening code when the mask
/// has foreground. `None` for an empty mask.
pub fn mask_region_props<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>) -> Option<RegionProps> {
    let mut m = Moments::default();
    for ((r, c), &v) in mask.indexed_iter() {
        if v {
            m.add(r, c);
        }
    }
    m.props(1)
}

/// Mean and population standard deviation (NumPy's `std`, `ddof = 0`) of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanStd {
    /// Arithmetic mean (NaN for an empty sample).
    pub mean: f64,
    /// Population standard deviation (NaN for an empty sample).
    pub std: f64,
}

impl MeanStd {
    /// Mean and standard deviation of `values` (two passes, as NumPy).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return MeanStd { mean: f64::NAN, std: f64::NAN };
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        MeanStd { mean, std: var.sqrt() }
    }
}

/// Aggregate of region properties over many regions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegionSummary {
    /// Number of regions.
    pub count: usize,
    /// Area (pixels).
    pub area: MeanStd,
    /// Eccentricity.
    pub eccentricity: MeanStd,
    /// Equivalent diameter (pixels).
    pub equivalent_diameter: MeanStd,
}

/// Summarises region properties (e.g. of all particles in an image).
pub fn summarize(props: &[RegionProps]) -> RegionSummary {
    RegionSummary {
        count: props.len(),
        area: MeanStd::of(props.iter().map(|p| p.area as f64)),
        eccentricity: MeanStd::of(props.iter().map(|p| p.eccentricity)),
        equivalent_diameter: MeanStd::of(props.iter().map(|p| p.equivalent_diameter)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::label::{Connectivity, label};
    use ndarray::Array2;

    #[test]
    fn disk_is_round_and_has_its_diameter() {
        let mask = Array2::from_shape_fn((61, 61), |(r, c)| (r as f64 - 30.0).hypot(c as f64 - 30.0) <= 20.0);
        let p = mask_region_props(&mask).unwrap();
        assert!(p.eccentricity < 1e-6);
        assert!((p.equivalent_diameter - 40.0).abs() < 0.5);
        assert_eq!(p.centroid, (30.0, 30.0));
        assert_eq!(p.bbox, (10, 51, 10, 51));
    }

    #[test]
    fn ellipse_eccentricity_matches_its_axes() {
        let (a, b) = (30.0f64, 15.0f64);
        let mask = Array2::from_shape_fn((41, 71), |(r, c)| {
            ((c as f64 - 35.0) / a).powi(2) + ((r as f64 - 20.0) / b).powi(2) <= 1.0
        });
        let e = mask_region_props(&mask).unwrap().eccentricity;
        assert!((e - (1.0 - (b / a).powi(2)).sqrt()).abs() < 0.01, "{e}");
    }

    #[test]
    fn per_region_props_and_summary() {
        let mut mask = Array2::from_elem((10, 10), false);
        mask.slice_mut(ndarray::s![0..2, 0..2]).fill(true);
        mask.slice_mut(ndarray::s![5..9, 5..9]).fill(true);
        let props = region_props(&label(&mask, Connectivity::Eight).unwrap());
        assert_eq!(props.iter().map(|p| p.area).collect::<Vec<_>>(), vec![4, 16]);
        let s = summarize(&props);
        assert_eq!(s.area.mean, 10.0);
        assert_eq!(s.area.std, 6.0);
        assert!(mask_region_props(&Array2::from_elem((3, 3), false)).is_none());
        assert!(MeanStd::of([]).mean.is_nan());
    }
}
