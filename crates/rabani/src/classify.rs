//! Morphology categories of simulated films from the Euler number of the dry substrate
//! (Gordon et al. 2020; pyRabani's `calculate_stats`, ../shared/notes/rabani.md §3).
//!
//! The Euler number `χ` of the substrate mask (image value 0) is normalised by the
//! number of particle cells, `e = χ / #particles`. If liquid is the most common cell
//! value (ties go to the smaller value, as `scipy.stats.mode`), the film is a *hole*
//! film when at least 2 % of it is dry and *liquid* otherwise. Else:
//!
//! | category | normalised Euler number |
//! |---|---|
//! | cellular | `e ≥ −0.00025` |
//! | labyrinth | `−0.01 ≤ e < −0.001` |
//! | island | `e ≤ −0.03` |
//! | none | the gaps `(−0.001, −0.00025)` and `(−0.03, −0.01)` |
//!
//! pyRabani ran with scikit-image ≤ 0.17, whose region Euler number is `1 − #holes` on the
//! bounding box ([`EulerRule::Legacy`], the default here); scikit-image ≥ 0.18 gives
//! `#components − #holes` ([`EulerRule::Modern`]). Both ignore the periodic boundary, as
//! the reference does.

use crate::Result;
use nanoml_morphology::EulerRule;
use ndarray::{ArrayBase, Data, Ix2};

/// Morphology class of a simulated (or binarised real) film.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Mostly liquid, under 2 % dry.
    Liquid,
    /// Mostly liquid with dry holes.
    Hole,
    /// A particle network enclosing dry cells.
    Cellular,
    /// Worm-like, labyrinthine structures.
    Labyrinth,
    /// Separate particle islands on dry substrate.
    Island,
    /// Between the thresholds ("none" in pyRabani; discarded from training sets).
    Unclassified,
}

impl Category {
    /// Every category, in the order above.
    pub const ALL: [Category; 6] = [
        Category::Liquid,
        Category::Hole,
        Category::Cellular,
        Category::Labyrinth,
        Category::Island,
        Category::Unclassified,
    ];

    /// pyRabani's name: `"liquid"`, `"hole"`, `"cellular"`, `"labyrinth"`, `"island"` or
    /// `"none"`.
    pub fn name(self) -> &'static str {
        match self {
            Category::Liquid => "liquid",
            Category::Hole => "hole",
            Category::Cellular => "cellular",
            Category::Labyrinth => "labyrinth",
            Category::Island => "island",
            Category::Unclassified => "none",
        }
    }

    /// Index among the five classes of the screening classifier
    /// (`liquid, hole, cellular, labyrinth, island`), `None` for unclassified films.
    pub fn class_index(self) -> Option<usize> {
        Category::ALL[..5].iter().position(|&c| c == self)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The category of a film and the numbers behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Labelled {
    /// The category.
    pub category: Category,
    /// Euler number of the substrate mask under the chosen rule.
    pub euler: i64,
    /// `euler / #particle cells` (NaN without particles).
    pub normalised_euler: f64,
    /// Fractions of cells `[substrate, liquid, particle]`.
    pub fractions: [f64; 3],
}

/// Thresholds of the Euler categories (pyRabani's defaults).
pub const CELLULAR_MIN: f64 = -0.00025;
/// Upper end (exclusive) of the labyrinth band.
pub const LABYRINTH_MAX: f64 = -0.001;
/// Lower end (inclusive) of the labyrinth band.
pub const LABYRINTH_MIN: f64 = -0.01;
/// Upper end (inclusive) of the island band.
pub const ISLAND_MAX: f64 = -0.03;
/// Smallest dry fraction of a "hole" film.
pub const HOLE_MIN_DRY: f64 = 0.02;

/// Categorises an image of cell values (0 substrate, 1 liquid, 2 particle; other values
/// count as particle).
///
/// ```
/// use ndarray::Array2;
/// use nanoml_morphology::EulerRule;
/// use nanoml_rabani::{categorize, Category};
/// let wet = Array2::from_shape_fn((16, 16), |(r, c)| if (r + c) % 4 == 0 { 2u8 } else { 1 });
/// assert_eq!(categorize(&wet, EulerRule::Legacy)?.category, Category::Liquid);
/// # Ok::<(), nanoml_rabani::Error>(())
/// ```
///
/// # Errors
/// Only for images of 2³² − 1 cells or more.
pub fn categorize<S: Data<Elem = u8>>(image: &ArrayBase<S, Ix2>, rule: EulerRule) -> Result<Labelled> {
    let mut counts = [0usize; 3];
    for &v in image {
        counts[usize::from(v.min(2))] += 1;
    }
    let total = image.len().max(1) as f64;
    let fractions = counts.map(|n| n as f64 / total);
    let substrate = image.map(|&v| v == 0);
    let euler = rule.euler_number(&substrate)?;
    let normalised = if counts[2] > 0 { euler as f64 / counts[2] as f64 } else { f64::NAN };
    let liquid_is_mode = counts[1] > counts[0] && counts[1] >= counts[2];
    let category = if liquid_is_mode {
        if fractions[0] >= HOLE_MIN_DRY { Category::Hole } else { Category::Liquid }
    } else if normalised >= CELLULAR_MIN {
        Category::Cellular
    } else if (LABYRINTH_MIN..LABYRINTH_MAX).contains(&normalised) {
        Category::Labyrinth
    } else if normalised <= ISLAND_MAX {
        Category::Island
    } else {
        Category::Unclassified
    };
    Ok(Labelled { category, euler, normalised_euler: normalised, fractions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanoml_morphology::Connectivity;
    use ndarray::Array2;

    #[test]
    fn dry_film_with_many_islands_is_island() {
        // Particle islands (2×2) on a dry substrate, 10 % liquid rims: many holes.
        let img = Array2::from_shape_fn((64, 64), |(r, c)| match (r % 4, c % 4) {
            (1 | 2, 1 | 2) => 2u8,
            _ => 0,
        });
        let l = categorize(&img, EulerRule::Legacy).unwrap();
        assert_eq!(l.euler, 1 - 256);
        assert_eq!(l.category, Category::Island);
    }

    #[test]
    fn particle_network_enclosing_dry_cells_is_cellular() {
        let img = Array2::from_shape_fn((64, 64), |(r, c)| if r % 8 == 0 || c % 8 == 0 { 2u8 } else { 0 });
        let modern = categorize(&img, EulerRule::Modern(Connectivity::Eight)).unwrap();
        assert_eq!(modern.euler, 64);
        assert_eq!(modern.category, Category::Cellular);
        assert_eq!(categorize(&img, EulerRule::Legacy).unwrap().category, Category::Cellular);
    }

    #[test]
    fn liquid_mode_decides_hole_or_liquid() {
        let mut img = Array2::from_elem((10, 10), 1u8);
        img[[0, 0]] = 2;
        assert_eq!(categorize(&img, EulerRule::Legacy).unwrap().category, Category::Liquid);
        img[[5, 5]] = 0;
        img[[5, 6]] = 0;
        assert_eq!(categorize(&img, EulerRule::Legacy).unwrap().category, Category::Hole);
    }

    #[test]
    fn gaps_are_unclassified() {
        // e ≈ −0.00067: between cellular and labyrinth.
        let mut img = Array2::from_elem((100, 100), 2u8);
        img.slice_mut(ndarray::s![0..40, ..]).fill(0);
        for k in 0..5 {
            img[[10, 5 + 8 * k]] = 2; // 5 holes in the substrate: χ = 1 − 5 = −4
        }
        let l = categorize(&img, EulerRule::Legacy).unwrap();
        assert_eq!(l.euler, -4);
        let e = -4.0 / 6005.0;
        assert!((l.normalised_euler - e).abs() < 1e-12);
        assert_eq!(l.category, Category::Unclassified);
    }
}
