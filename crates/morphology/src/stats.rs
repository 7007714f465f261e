//! Scale-invariant shape statistics and window-based homogeneity tests of binary images,
//! as used by the AFM screening method of Gordon et al. (Nano Lett. 2020).
//!
//! * [`scale_invariant_stats`]: SIA, SIP and SIE of a binarised image after a 3×3 closing.
//! * [`scale_invariance`]: how those statistics vary with the window size (they should stay
//!   flat for a self-similar structure).
//! * [`homogeneity`]: the screening code's sliding-window test on the normalised Euler
//!   number, eccentricity and equivalent diameter.

use crate::euler::{euler_number, euler_number_legacy};
use crate::label::{Connectivity, count_components};
use crate::morph::closing_square;
use crate::perimeter::{Neighbourhood, area, perimeter};
use crate::regionprops::{MeanStd, mask_region_props};
use crate::{Error, Result};
use nanoml_core::rng::{Xoshiro256PlusPlus, derive_seed};
use nanoml_core::window::{Coverage, WindowGrid};
use ndarray::{ArrayBase, ArrayView2, Data, Ix2};
use rayon::prelude::*;

/// The scale-invariant statistics of a binary image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleInvariantStats {
    /// Scale-invariant area: area of the majority phase / number of pixels.
    pub sia: f64,
    /// Scale-invariant perimeter: `P / (H0 · √(mean size))`.
    pub sip: f64,
    /// Scale-invariant Euler ratio `H0 / H1`.
    pub sie: f64,
    /// H0: 8-connected foreground components after closing.
    pub foreground_components: usize,
    /// H1: 8-connected background components after closing.
    pub background_components: usize,
}

/// SIA, SIP and SIE of `mask` as defined by the reference code
/// (`calculate_normalised_stats`):
///
/// 1. close the mask with a 3×3 square;
/// 2. H0, H1 = numbers of 8-connected components of the foreground and the background;
/// 3. if H0 > H1 the "area" is the foreground pixel count and the mean size is area/H0,
///    otherwise the background count and area/H1;
/// 4. P = perimeter (4-neighbourhood) of the background;
/// 5. SIA = area / #pixels, SIP = P / (H0·√(mean size)), SIE = H0 / H1.
///
/// # Errors
/// [`Error::Undefined`] when the closed mask has no foreground or no background component
/// (the ratios divide by zero), or is empty.
pub fn scale_invariant_stats<S: Data<Elem = bool>>(mask: &ArrayBase<S, Ix2>) -> Result<ScaleInvariantStats> {
    if mask.is_empty() {
        return Err(Error::Undefined { statistic: "SIA/SIP/SIE", reason: "the mask has no pixels".into() });
    }
    let closed = closing_square(mask, 3)?;
    let background = closed.mapv(|v| !v);
    let h0 = count_components(&closed, Connectivity::Eight)?;
    let h1 = count_components(&background, Connectivity::Eight)?;
    if h0 == 0 || h1 == 0 {
        return Err(Error::Undefined {
            statistic: "SIA/SIP/SIE",
            reason: format!(
                "after closing the mask has {h0} foreground and {h1} background components; both must be > 0"
            ),
        });
    }
    let (majority_area, components) = if h0 > h1 { (area(&closed), h0) } else { (area(&background), h1) };
    let mean_size = majority_area as f64 / components as f64;
    let p = perimeter(&background, Neighbourhood::Four);
    Ok(ScaleInvariantStats {
        sia: majority_area as f64 / closed.len() as f64,
        sip: p / (h0 as f64 * mean_size.sqrt()),
        sie: h0 as f64 / h1 as f64,
        foreground_components: h0,
        background_components: h1,
    })
}

/// One row of [`scale_invariance`]: statistics over the windows of one size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleInvarianceRow {
    /// Window side (pixels).
    pub size: usize,
    /// Windows sampled.
    pub windows: usize,
    /// Windows on which the statistics are undefined (uniform after closing); they are
    /// left out of the means.
    pub undefined: usize,
    /// SIA over the defined windows.
    pub sia: MeanStd,
    /// SIP over the defined windows.
    pub sip: MeanStd,
    /// SIE over the defined windows.
    pub sie: MeanStd,
}

/// SIA, SIP and SIE on random square windows of each size in `sizes`, at most
/// `max_windows` per size, drawn without replacement from the full-coverage grid with
/// `stride` (the reference test uses sizes 1, 3, 5, …, stride 8 and 20 windows).
/// Deterministic for a given `seed`, whatever the number of threads.
///
/// # Errors
/// [`Error::InvalidParameter`] for an empty `sizes`, `max_windows == 0`, or a size or stride
/// that does not fit the mask (named as `size` / `stride`).
pub fn scale_invariance<S: Data<Elem = bool> + Sync>(
    mask: &ArrayBase<S, Ix2>,
    sizes: &[usize],
    stride: usize,
    max_windows: usize,
    seed: u64,
) -> Result<Vec<ScaleInvarianceRow>> {
    if sizes.is_empty() {
        return Err(Error::invalid("sizes", "[]", "at least one window size"));
    }
    if max_windows == 0 {
        return Err(Error::invalid("max_windows", 0, ">= 1"));
    }
    let view = mask.view();
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let grid = WindowGrid::square(view.dim(), size, stride, Coverage::Full)?;
            let mut positions: Vec<(usize, usize)> = grid.positions().collect();
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed(seed, i as u64));
            rng.shuffle(&mut positions);
            positions.truncate(max_windows);
            let stats: Vec<Option<ScaleInvariantStats>> = positions
                .par_iter()
                .map(|&(r, c)| scale_invariant_stats(&view.slice(ndarray::s![r..r + size, c..c + size])).ok())
                .collect();
            let defined: Vec<ScaleInvariantStats> = stats.iter().flatten().copied().collect();
            Ok(ScaleInvarianceRow {
                size,
                windows: stats.len(),
                undefined: stats.len() - defined.len(),
                sia: MeanStd::of(defined.iter().map(|s| s.sia)),
                sip: MeanStd::of(defined.iter().map(|s| s.sip)),
                sie: MeanStd::of(defined.iter().map(|s| s.sie)),
            })
        })
        .collect()
}

/// Which Euler number the homogeneity test normalises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EulerRule {
    /// scikit-image ≤ 0.17's region rule, `1 − #holes` (what the 2020 screening ran).
    #[default]
    Legacy,
    /// `#components − #holes` with the given foreground connectivity (scikit-image ≥ 0.18).
    Modern(Connectivity),
}

impl EulerRule {
    /// The Euler number of `mask` under this rule.
    ///
    /// # Errors
    /// Only for images of 2³² − 1 pixels or more.
    pub fn euler_number<S: Data<Elem = bool>>(self, mask: &ArrayBase<S, Ix2>) -> Result<i64> {
        match self {
            EulerRule::Legacy => euler_number_legacy(mask),
            EulerRule::Modern(c) => Ok(euler_number(mask, c)),
        }
    }
}

/// Settings of [`homogeneity`]; the defaults are the reference screening code's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HomogeneityParams {
    /// Window side (pixels). Default 200, the classifier's input size.
    pub window: usize,
    /// Window stride (pixels). Default 8.
    pub stride: usize,
    /// Window placement. Default [`Coverage::PyRabani`].
    pub coverage: Coverage,
    /// Euler rule. Default [`EulerRule::Legacy`].
    pub euler_rule: EulerRule,
    /// Allowed range of the mean normalised Euler number. Default `[−0.05, 0.05]`.
    pub euler_range: (f64, f64),
    /// The test fails when the standard deviation of the normalised Euler number is at
    /// least this. Default 0.005.
    pub max_euler_std: f64,
    /// Fails when the eccentricity's standard deviation is at least this. Default 0.13.
    pub max_eccentricity_std: f64,
    /// Fails when the equivalent diameter's standard deviation (pixels) is at least this.
    /// Default 8.
    pub max_diameter_std: f64,
}

impl Default for HomogeneityParams {
    fn default() -> Self {
        HomogeneityParams {
            window: 200,
            stride: 8,
            coverage: Coverage::PyRabani,
            euler_rule: EulerRule::Legacy,
            euler_range: (-0.05, 0.05),
            max_euler_std: 0.005,
            max_eccentricity_std: 0.13,
            max_diameter_std: 8.0,
        }
    }
}

impl HomogeneityParams {
    /// Checks the thresholds (window and stride are checked against the image by
    /// [`homogeneity`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let (lo, hi) = self.euler_range;
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return Err(Error::invalid("euler_range", format!("({lo}, {hi})"), "finite bounds with low <= high"));
        }
        for (name, v) in [
            ("max_euler_std", self.max_euler_std),
            ("max_eccentricity_std", self.max_eccentricity_std),
            ("max_diameter_std", self.max_diameter_std),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(name, v, "a finite value > 0"));
            }
        }
        Ok(())
    }
}

/// Statistics of one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowStats {
    /// Top-left corner `(row, col)`.
    pub position: (usize, usize),
    /// Foreground pixels.
    pub foreground: u64,
    /// Euler number / foreground pixels; `+∞` for a window without foreground (the
    /// reference divides the background region's Euler number, 1, by zero).
    pub normalised_euler: f64,
    /// Eccentricity of the foreground as one region (of the whole window when empty).
    pub eccentricity: f64,
    /// Equivalent diameter of that region (pixels).
    pub equivalent_diameter: f64,
}

/// Why a mask failed [`homogeneity`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HomogeneityFailure {
    /// The mean normalised Euler number is outside the allowed range ("Euler Wrong Range").
    EulerOutOfRange {
        /// The mean.
        mean: f64,
    },
    /// Its standard deviation is too large ("Euler Too Varied").
    EulerTooVaried {
        /// The standard deviation.
        std: f64,
    },
    /// The eccentricity varies too much between windows.
    EccentricityTooVaried {
        /// The standard deviation.
        std: f64,
    },
    /// The equivalent diameter varies too much between windows.
    DiameterTooVaried {
        /// The standard deviation (pixels).
        std: f64,
    },
}

/// Result of [`homogeneity`]: per-window statistics, their aggregates and the verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct HomogeneityReport {
    /// Every window, in row-major order of position.
    pub windows: Vec<WindowStats>,
    /// Windows with no foreground pixel.
    pub empty_windows: usize,
    /// Normalised Euler number over windows.
    pub euler: MeanStd,
    /// Eccentricity over windows.
    pub eccentricity: MeanStd,
    /// Equivalent diameter over windows.
    pub equivalent_diameter: MeanStd,
    /// Every failed criterion, in the order the reference checks them; empty when the mask
    /// passes.
    pub failures: Vec<HomogeneityFailure>,
}

impl HomogeneityReport {
    /// Whether every criterion passed.
    pub fn is_homogeneous(&self) -> bool {
        self.failures.is_empty()
    }
}

fn window_stats(win: ArrayView2<'_, bool>, position: (usize, usize), rule: EulerRule) -> Result<WindowStats> {
    let fg = area(&win);
    let (normalised_euler, region) = if fg == 0 {
        (f64::INFINITY, mask_region_props(&win.mapv(|v| !v)))
    } else {
        (rule.euler_number(&win)? as f64 / fg as f64, mask_region_props(&win))
    };
    let (eccentricity, equivalent_diameter) = region.map_or((0.0, 0.0), |p| (p.eccentricity, p.equivalent_diameter));
    Ok(WindowStats { position, foreground: fg, normalised_euler, eccentricity, equivalent_diameter })
}

/// The screening code's homogeneity test (`_is_image_homogenous`): slide windows over the
/// binarised image and require the normalised Euler number to be small and steady, and
/// the eccentricity and equivalent diameter of the foreground to be steady. Windows are
/// evaluated in parallel; the result does not depend on the number of threads.
///
/// ```
/// use ndarray::Array2;
/// use nanoml_morphology::{homogeneity, HomogeneityParams};
/// // A regular lattice of round holes in a film is homogeneous.
/// let film = Array2::from_shape_fn((96, 96), |(r, c)| ((r % 8) as f64 - 3.5).hypot((c % 8) as f64 - 3.5) > 2.5);
/// let params = HomogeneityParams { window: 32, stride: 8, ..Default::default() };
/// let report = homogeneity(&film, &params)?;
/// assert!(report.is_homogeneous(), "{:?}", report.failures);
/// # Ok::<(), nanoml_morphology::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidParameter`] for invalid thresholds, or a window or stride that does not
/// fit the mask (named `size` / `stride`).
pub fn homogeneity<S: Data<Elem = bool> + Sync>(
    mask: &ArrayBase<S, Ix2>,
    params: &HomogeneityParams,
) -> Result<HomogeneityReport> {
    params.validate()?;
    let grid = WindowGrid::square(mask.dim(), params.window, params.stride, params.coverage)?;
    let view = mask.view();
    let positions: Vec<(usize, usize)> = grid.positions().collect();
    let w = params.window;
    let windows = positions
        .par_iter()
        .map(|&(r, c)| window_stats(view.slice(ndarray::s![r..r + w, c..c + w]), (r, c), params.euler_rule))
        .collect::<Result<Vec<_>>>()?;
    let euler = MeanStd::of(windows.iter().map(|w| w.normalised_euler));
    let eccentricity = MeanStd::of(windows.iter().map(|w| w.eccentricity));
    let equivalent_diameter = MeanStd::of(windows.iter().map(|w| w.equivalent_diameter));
    // NaN statistics (no window, or an infinite normalised Euler number) must fail, so
    // each test is written as "not within the limit".
    let within = |value: f64, limit: f64| value < limit;
    let mut failures = Vec::new();
    let (lo, hi) = params.euler_range;
    if !(lo <= euler.mean && euler.mean <= hi) {
        failures.push(HomogeneityFailure::EulerOutOfRange { mean: euler.mean });
    }
    if !within(euler.std, params.max_euler_std) {
        failures.push(HomogeneityFailure::EulerTooVaried { std: euler.std });
    }
    if !within(eccentricity.std, params.max_eccentricity_std) {
        failures.push(HomogeneityFailure::EccentricityTooVaried { std: eccentricity.std });
    }
    if !within(equivalent_diameter.std, params.max_diameter_std) {
        failures.push(HomogeneityFailure::DiameterTooVaried { std: equivalent_diameter.std });
    }
    let empty_windows = windows.iter().filter(|w| w.foreground == 0).count();
    Ok(HomogeneityReport { windows, empty_windows, euler, eccentricity, equivalent_diameter, failures })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn film(n: usize) -> Array2<bool> {
        Array2::from_shape_fn((n, n), |(r, c)| ((r % 8) as f64 - 3.5).hypot((c % 8) as f64 - 3.5) > 2.5)
    }

    #[test]
    fn stats_of_a_hole_lattice() {
        let s = scale_invariant_stats(&film(64)).unwrap();
        // 64 isolated holes in one connected film: H0 = 1, H1 = 64.
        assert_eq!((s.foreground_components, s.background_components), (1, 64));
        assert!((s.sie - 1.0 / 64.0).abs() < 1e-15);
    }

    #[test]
    fn uniform_masks_are_undefined_not_nan() {
        let e = scale_invariant_stats(&Array2::from_elem((10, 10), true)).unwrap_err();
        assert!(matches!(e, Error::Undefined { .. }));
        assert!(scale_invariant_stats(&Array2::from_elem((0, 0), true)).is_err());
    }

    #[test]
    fn half_filled_scan_is_not_homogeneous() {
        let mut m = film(128);
        m.slice_mut(ndarray::s![.., 64..]).fill(false);
        let params = HomogeneityParams { window: 32, stride: 8, ..Default::default() };
        let r = homogeneity(&m, &params).unwrap();
        assert!(!r.is_homogeneous());
        assert!(r.empty_windows > 0);
        assert!(matches!(r.failures[0], HomogeneityFailure::EulerOutOfRange { .. }));
    }

    #[test]
    fn bad_params_name_the_field() {
        let m = film(64);
        let e = homogeneity(&m, &HomogeneityParams { window: 0, ..Default::default() }).unwrap_err();
        assert!(matches!(e, Error::Core(nanoml_core::Error::InvalidParameter { name: "size", .. })), "{e}");
        let e = homogeneity(&m, &HomogeneityParams { window: 16, stride: 65, ..Default::default() }).unwrap_err();
        assert!(matches!(e, Error::Core(nanoml_core::Error::InvalidParameter { name: "stride", .. })), "{e}");
        let e = homogeneity(&m, &HomogeneityParams { max_euler_std: -1.0, ..Default::default() }).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { name: "max_euler_std", .. }));
        assert!(scale_invariance(&m, &[], 8, 20, 0).is_err());
        assert!(scale_invariance(&m, &[65], 8, 20, 0).is_err());
    }

    #[test]
    fn scale_invariance_is_flat_for_a_periodic_film_and_reproducible() {
        let m = film(128);
        let rows = scale_invariance(&m, &[16, 32, 64], 8, 10, 7).unwrap();
        assert_eq!(rows, scale_invariance(&m, &[16, 32, 64], 8, 10, 7).unwrap());
        for row in &rows {
            assert_eq!(row.windows, 10);
            assert!((row.sia.mean - rows[2].sia.mean).abs() < 0.05, "{rows:?}");
        }
    }
}
