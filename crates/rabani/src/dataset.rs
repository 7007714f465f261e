//! Training sets for the AFM screening networks: sample parameters, simulate, label by
//! Euler number, upscale, augment and flatten to two levels (Gordon et al. 2020;
//! ../shared/notes/rabani.md §5.3).
//!
//! Each candidate `i` of a set draws from its own seed `derive_seed(seed, i)`, so a set is
//! the same whatever the number of threads, and the iterator and the parallel
//! [`TrainingSet::generate`] agree sample for sample.
//!
//! The pipeline of one sample:
//! 1. parameters drawn uniformly from [`ParamRanges`] (integers inclusive);
//! 2. a simulation ([`crate::simulate`]) and its category ([`crate::categorize`]) on the
//!    L×L image; unclassified films are dropped (counted in the report);
//! 3. nearest-neighbour upscaling to `image_size`² (`skimage.transform.resize(order=0)`);
//! 4. augmentation ([`Augmentation`]): random flips, rot90, circular shift and speckle
//!    noise (a fraction `|N(mean, std)|` of pixels set to substrate or particle at random);
//! 5. two-level flattening as the reference's `remove_least_common_level`: the least
//!    common of the three levels is replaced by one of the other two (a fair coin per
//!    image), except for "hole" films (liquid ≥ 40 % and substrate ≥ 2 %), whose particle
//!    level is replaced instead; the two remaining levels become 0 and 1 (the higher
//!    level 1, so particles are 1 on dry films).

use crate::classify::{Category, categorize};
use crate::params::Params;
use crate::simulate::Simulator;
use crate::{Error, Result};
use nanoml_core::rng::derive_seed;
use nanoml_core::{Progress, ProgressCounter, Xoshiro256PlusPlus};
use nanoml_morphology::EulerRule;
use ndarray::{Array2, Array3, Axis, s};
use rayon::prelude::*;
use std::path::Path;

/// Inclusive ranges the parameters of each simulation are drawn from, uniformly. Fields
/// not listed (energies, early stopping, model variant) come from `base`.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamRanges {
    /// kT range. Default 0.01–0.35 (pyRabani's sweeps).
    pub kt: (f64, f64),
    /// mu range. Default 2.35–3.47.
    pub mu: (f64, f64),
    /// Mobility ratio range. Default 1–1.
    pub mobility: (u32, u32),
    /// Coverage range. Default 0.3–0.3.
    pub coverage: (f64, f64),
    /// Lattice side range. Default 128–128.
    pub size: (usize, usize),
    /// Maximum-steps range. Default 5001–5001 with pyRabani's early stopping in `base`.
    pub max_steps: (usize, usize),
    /// Everything else. Default [`Params::default`] with [`EarlyStop::PyRabani`](crate::EarlyStop::PyRabani).
    pub base: Params,
}

impl Default for ParamRanges {
    fn default() -> Self {
        ParamRanges {
            kt: (0.01, 0.35),
            mu: (2.35, 3.47),
            mobility: (1, 1),
            coverage: (0.3, 0.3),
            size: (128, 128),
            max_steps: (5001, 5001),
            base: Params { early_stop: crate::EarlyStop::PyRabani, ..Params::default() },
        }
    }
}

impl ParamRanges {
    /// Checks that every range is ordered and that its ends are valid parameters.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the range or the parameter.
    pub fn validate(&self) -> Result<()> {
        let ordered = |name: &'static str, lo: f64, hi: f64| {
            if lo <= hi {
                Ok(())
            } else {
                Err(Error::invalid(name, format!("({lo}, {hi})"), "a range with low ≤ high"))
            }
        };
        ordered("ranges.kt", self.kt.0, self.kt.1)?;
        ordered("ranges.mu", self.mu.0, self.mu.1)?;
        ordered("ranges.mobility", f64::from(self.mobility.0), f64::from(self.mobility.1))?;
        ordered("ranges.coverage", self.coverage.0, self.coverage.1)?;
        ordered("ranges.size", self.size.0 as f64, self.size.1 as f64)?;
        ordered("ranges.max_steps", self.max_steps.0 as f64, self.max_steps.1 as f64)?;
        for corner in [false, true] {
            self.pick(|lo, hi| if corner { hi } else { lo }).validate()?;
        }
        Ok(())
    }

    fn pick(&self, mut f: impl FnMut(f64, f64) -> f64) -> Params {
        let int = |f: &mut dyn FnMut(f64, f64) -> f64, (lo, hi): (usize, usize)| {
            f(lo as f64, hi as f64 + 1.0).floor().min(hi as f64) as usize
        };
        Params {
            kt: f(self.kt.0, self.kt.1),
            mu: f(self.mu.0, self.mu.1),
            mobility: int(&mut f, (self.mobility.0 as usize, self.mobility.1 as usize)) as u32,
            coverage: f(self.coverage.0, self.coverage.1),
            size: int(&mut f, self.size),
            max_steps: int(&mut f, self.max_steps),
            ..self.base.clone()
        }
    }

    /// Parameters drawn uniformly from the ranges.
    pub fn sample(&self, rng: &mut Xoshiro256PlusPlus) -> Params {
        self.pick(|lo, hi| if hi > lo { rng.uniform_in(lo, hi) } else { lo })
    }
}

/// Random augmentations applied after upscaling (on the three-level image).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augmentation {
    /// Flip vertically and horizontally, each with probability 1/2. (The reference flips
    /// every image both ways, a quirk of its "random subset"; a fair coin is the intent.)
    pub flips: bool,
    /// Rotate by a random multiple of 90°.
    pub rot90: bool,
    /// Roll by a random offset in both directions (the lattice is periodic).
    pub circular_shift: bool,
    /// Speckle noise: a fraction `|N(mean, std)|` of pixels set to substrate or particle
    /// with equal odds (the reference's `(0.005, 0.002)`), or `None`.
    pub speckle: Option<(f64, f64)>,
}

impl Default for Augmentation {
    fn default() -> Self {
        Augmentation { flips: true, rot90: true, circular_shift: true, speckle: Some((0.005, 0.002)) }
    }
}

impl Augmentation {
    /// No augmentation (validation and test sets).
    pub fn none() -> Self {
        Augmentation { flips: false, rot90: false, circular_shift: false, speckle: None }
    }

    /// Applies the augmentations to a three-level image (0 substrate, 1 liquid,
    /// 2 particle) in place.
    pub fn apply(&self, image: &mut Array2<u8>, rng: &mut Xoshiro256PlusPlus) {
        if self.flips {
            if rng.bernoulli(0.5) {
                image.invert_axis(Axis(0));
            }
            if rng.bernoulli(0.5) {
                image.invert_axis(Axis(1));
            }
        }
        if self.rot90 {
            for _ in 0..rng.index(4) {
                // rot90 = transpose then flip rows.
                let t = image.t().to_owned();
                *image = t;
                image.invert_axis(Axis(0));
            }
        }
        if self.circular_shift {
            let (h, w) = image.dim();
            let (dy, dx) = (rng.index(h.max(1)), rng.index(w.max(1)));
            *image = Array2::from_shape_fn((h, w), |(r, c)| image[[(r + h - dy) % h, (c + w - dx) % w]]);
        }
        if !image.is_standard_layout() {
            *image = image.as_standard_layout().into_owned();
        }
        if let Some((mean, std)) = self.speckle {
            let p = (mean + std * rng.normal()).abs();
            for v in image.iter_mut() {
                if rng.bernoulli(p) {
                    *v = if rng.bernoulli(0.5) { 0 } else { 2 };
                }
            }
        }
    }
}

/// Pepper noise on a binary image: each pixel set to 0 with probability `fraction`. This
/// is what the reference's "speckle" noise does to two-level images (its replacement
/// value is always the lower level), and how it made the noisy inputs of the denoising
/// autoencoder (`fraction = 0.4`) and of sliding-window classification (0.05).
///
/// # Errors
/// [`Error::InvalidParameter`] unless `fraction` lies in [0, 1].
pub fn pepper_noise(image: &Array2<u8>, fraction: f64, rng: &mut Xoshiro256PlusPlus) -> Result<Array2<u8>> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(Error::invalid("fraction", fraction, "a probability in [0, 1]"));
    }
    Ok(image.mapv(|v| if rng.bernoulli(fraction) { 0 } else { v }))
}

/// The reference's two-level flattening of a three-level image (see the module docs);
/// `coin` chooses the replacement level. Returns 0/1 pixels.
pub fn flatten_two_levels(image: &Array2<u8>, coin: bool) -> Array2<u8> {
    let mut counts = [0usize; 3];
    for &v in image {
        counts[usize::from(v.min(2))] += 1;
    }
    let total = image.len().max(1) as f64;
    let (dry, liquid) = (counts[0] as f64 / total, counts[1] as f64 / total);
    // Least common level, ties to the lower value (numpy's argmin).
    let least = (0..3).min_by_key(|&v| (counts[v], v)).unwrap_or(0);
    let (removed, replacement) = if liquid >= 0.4 && dry >= 0.02 {
        (2u8, u8::from(coin))
    } else {
        let others: Vec<u8> = (0..3u8).filter(|&v| usize::from(v) != least).collect();
        (least as u8, others[usize::from(coin)])
    };
    let merged = image.mapv(|v| if v.min(2) == removed { replacement } else { v.min(2) });
    let (lo, hi) = merged.iter().fold((u8::MAX, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    merged.mapv(|v| u8::from(hi > lo && v == hi))
}

/// One training sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The flattened image, `image_size`², pixels 0 or 1.
    pub image: Array2<u8>,
    /// Its category (never [`Category::Unclassified`]).
    pub category: Category,
    /// Euler number of the simulated substrate under the set's rule.
    pub euler: i64,
    /// The Euler number over the particle count.
    pub normalised_euler: f64,
    /// The parameters it was simulated with.
    pub params: Params,
    /// Steps the simulation ran.
    pub steps: usize,
    /// Index of the candidate that produced it (its seed is `derive_seed(seed, index)`).
    pub index: u64,
}

/// A training-set generator.
///
/// ```
/// use nanoml_rabani::dataset::{ParamRanges, TrainingSet};
/// use nanoml_rabani::Params;
/// let ranges = ParamRanges {
///     size: (32, 32),
///     max_steps: (40, 40),
///     base: Params::default(),
///     ..ParamRanges::default()
/// };
/// let set = TrainingSet { ranges, image_size: 64, ..TrainingSet::default() };
/// let first: Vec<_> = set.iter(7).take(2).collect::<Result<_, _>>()?;
/// assert_eq!(first[0].image.dim(), (64, 64));
/// # Ok::<(), nanoml_rabani::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingSet {
    /// Where parameters come from.
    pub ranges: ParamRanges,
    /// Side of the output images in pixels. Default 200 (the classifier's input).
    pub image_size: usize,
    /// Euler rule of the labels. Default [`EulerRule::Legacy`] (the paper's labels).
    pub euler_rule: EulerRule,
    /// Augmentations. Default [`Augmentation::default`].
    pub augmentation: Augmentation,
}

impl Default for TrainingSet {
    fn default() -> Self {
        TrainingSet {
            ranges: ParamRanges::default(),
            image_size: 200,
            euler_rule: EulerRule::Legacy,
            augmentation: Augmentation::default(),
        }
    }
}

/// What [`TrainingSet::generate`] produced and what it discarded.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The samples, in candidate order.
    pub samples: Vec<Sample>,
    /// Candidates simulated in all.
    pub candidates: u64,
    /// Candidates dropped as unclassified.
    pub unclassified: u64,
    /// Candidates dropped because their class was already full (balanced sets only).
    pub over_quota: u64,
}

impl TrainingSet {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for bad ranges or a zero image size.
    pub fn validate(&self) -> Result<()> {
        self.ranges.validate()?;
        if self.image_size == 0 {
            return Err(Error::invalid("image_size", 0, "≥ 1 pixel"));
        }
        Ok(())
    }

    /// Candidate `index`: `None` when the film is unclassified.
    ///
    /// # Errors
    /// When the drawn parameters do not validate.
    pub fn candidate(&self, seed: u64, index: u64) -> Result<Option<Sample>> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed(seed, index));
        let params = self.ranges.sample(&mut rng);
        let sim = Simulator::new(&params, rng.next_u64())?.run(&nanoml_core::NoProgress);
        let raw = sim.lattice.image();
        let label = categorize(&raw, self.euler_rule)?;
        if label.category == Category::Unclassified {
            return Ok(None);
        }
        let mut image = nanoml_core::resample::resize_nearest(raw.view(), (self.image_size, self.image_size))?;
        self.augmentation.apply(&mut image, &mut rng);
        let image = flatten_two_levels(&image, rng.bernoulli(0.5));
        Ok(Some(Sample {
            image,
            category: label.category,
            euler: label.euler,
            normalised_euler: label.normalised_euler,
            params,
            steps: sim.steps,
            index,
        }))
    }

    /// Samples one after another (candidates 0, 1, 2, … with unclassified films
    /// skipped), endlessly: take as many as needed. (Ranges that only ever give
    /// unclassified films never yield.)
    ///
    /// # Errors
    /// The first item is the validation error when the settings are invalid, and the
    /// iterator ends there.
    pub fn iter(&self, seed: u64) -> impl Iterator<Item = Result<Sample>> + '_ {
        let mut invalid = self.validate().err();
        let mut stopped = false;
        (0u64..)
            .map_while(move |i| {
                if stopped {
                    return None;
                }
                if let Some(e) = invalid.take() {
                    stopped = true;
                    return Some(Some(Err(e)));
                }
                Some(self.candidate(seed, i).transpose())
            })
            .flatten()
    }

    /// `count` samples, simulated in parallel. With `balanced`, every one of the five
    /// classes gets `count / 5` samples (the first `count % 5` classes one more) and
    /// candidates are simulated until every class is full or `max_candidates` have run.
    /// `progress` receives one unit per accepted sample (stage `"training set"`).
    ///
    /// # Errors
    /// Invalid settings, or a balanced set that cannot be filled within
    /// `max_candidates` (the error says which classes fell short).
    pub fn generate(
        &self,
        count: usize,
        balanced: bool,
        max_candidates: u64,
        seed: u64,
        progress: &dyn Progress,
    ) -> Result<Dataset> {
        self.validate()?;
        let counter = ProgressCounter::new(progress, "training set", Some(count as u64));
        let quota: Vec<usize> = (0..5).map(|c| count / 5 + usize::from(c < count % 5)).collect();
        let mut have = [0usize; 5];
        let mut out = Dataset { samples: Vec::with_capacity(count), candidates: 0, unclassified: 0, over_quota: 0 };
        let chunk = (4 * rayon::current_num_threads()) as u64;
        while out.samples.len() < count && out.candidates < max_candidates {
            let end = (out.candidates + chunk).min(max_candidates);
            let batch: Vec<Result<Option<Sample>>> =
                (out.candidates..end).into_par_iter().map(|i| self.candidate(seed, i)).collect();
            out.candidates = end;
            for sample in batch {
                let Some(sample) = sample? else {
                    out.unclassified += 1;
                    continue;
                };
                let class = sample.category.class_index().unwrap_or(0);
                if out.samples.len() >= count || (balanced && have[class] >= quota[class]) {
                    out.over_quota += u64::from(balanced);
                    continue;
                }
                have[class] += 1;
                out.samples.push(sample);
                counter.advance(1);
            }
        }
        if out.samples.len() < count {
            let short: Vec<String> = Category::ALL[..5]
                .iter()
                .zip(have.iter().zip(&quota))
                .filter(|(_, (h, q))| h < q)
                .map(|(c, (h, q))| format!("{c}: {h} of {q}"))
                .collect();
            return Err(Error::invalid(
                "max_candidates",
                max_candidates,
                format!("enough candidates to fill the set ({})", short.join(", ")),
            ));
        }
        Ok(out)
    }
}

impl Dataset {
    /// The images stacked as `(n, size, size)`.
    pub fn images(&self) -> Array3<u8> {
        let size = self.samples.first().map_or(0, |s| s.image.nrows());
        let mut stack = Array3::zeros((self.samples.len(), size, size));
        for (k, s) in self.samples.iter().enumerate() {
            stack.slice_mut(s![k, .., ..]).assign(&s.image);
        }
        stack
    }

    /// Writes `images.npy` (uint8, `(n, size, size)`, pixels 0/1), `labels.npy` (uint8
    /// class indices `liquid, hole, cellular, labyrinth, island` = 0…4) and `samples.csv`
    /// (one row per sample: index, category, Euler numbers, parameters, steps) to `dir`,
    /// creating it if needed.
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| nanoml_core::Error::Io { path: dir.to_path_buf(), source: e })?;
        nanoml_core::io::npy::write(dir.join("images.npy"), &self.images())?;
        let labels: ndarray::Array1<u8> =
            self.samples.iter().map(|s| s.category.class_index().unwrap_or(0) as u8).collect();
        nanoml_core::io::npy::write(dir.join("labels.npy"), &labels)?;
        let mut csv = String::from("index,category,euler,normalised_euler,kT,mu,MR,C,e_nl,e_nn,L,max_steps,steps\n");
        for s in &self.samples {
            let p = &s.params;
            csv += &format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                s.index,
                s.category,
                s.euler,
                s.normalised_euler,
                p.kt,
                p.mu,
                p.mobility,
                p.coverage,
                p.e_nl,
                p.e_nn,
                p.size,
                p.max_steps,
                s.steps
            );
        }
        let path = dir.join("samples.csv");
        std::fs::write(&path, csv).map_err(|e| nanoml_core::Error::Io { path, source: e })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn flattening_replaces_the_least_common_level() {
        // Liquid (1) is least common: it becomes 0 or 2, then particles are 1.
        let img = array![[0u8, 0, 2], [2, 1, 0], [0, 2, 2]];
        let a = flatten_two_levels(&img, false);
        let b = flatten_two_levels(&img, true);
        assert_eq!(a, array![[0u8, 0, 1], [1, 0, 0], [0, 1, 1]]);
        assert_eq!(b, array![[0u8, 0, 1], [1, 1, 0], [0, 1, 1]]);
    }

    #[test]
    fn hole_films_lose_their_particles() {
        // 50 % liquid, 10 % dry: the particle level goes, liquid becomes 1.
        let mut img = Array2::from_elem((10, 10), 1u8);
        img.slice_mut(s![0..4, ..]).fill(2);
        img.slice_mut(s![9, ..]).fill(0);
        let flat = flatten_two_levels(&img, false);
        assert_eq!(flat.iter().filter(|&&v| v == 1).count(), 50);
        assert_eq!(flat[[9, 0]], 0);
        assert_eq!(flat[[0, 0]], 0); // particles → substrate
        let flat = flatten_two_levels(&img, true);
        assert_eq!(flat[[0, 0]], 1); // particles → liquid
    }

    #[test]
    fn uniform_images_flatten_to_zeros() {
        assert_eq!(flatten_two_levels(&Array2::from_elem((3, 3), 2u8), true), Array2::<u8>::zeros((3, 3)));
    }

    #[test]
    fn augmentation_keeps_level_counts_without_noise() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let img = Array2::from_shape_fn((7, 7), |(r, c)| ((r * 3 + c) % 3) as u8);
        for _ in 0..20 {
            let mut a = img.clone();
            Augmentation { speckle: None, ..Augmentation::default() }.apply(&mut a, &mut rng);
            let count = |m: &Array2<u8>, v: u8| m.iter().filter(|&&x| x == v).count();
            assert_eq!((count(&a, 0), count(&a, 1), count(&a, 2)), (count(&img, 0), count(&img, 1), count(&img, 2)));
        }
    }

    #[test]
    fn pepper_noise_only_clears_pixels_at_about_the_rate_asked() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(8);
        let ones = Array2::from_elem((100, 100), 1u8);
        let noisy = pepper_noise(&ones, 0.4, &mut rng).unwrap();
        let cleared = noisy.iter().filter(|&&v| v == 0).count() as f64 / 1e4;
        assert!((cleared - 0.4).abs() < 0.02, "{cleared}");
        assert!(pepper_noise(&ones, 1.5, &mut rng).is_err());
    }

    #[test]
    fn bad_ranges_are_named() {
        let set =
            TrainingSet { ranges: ParamRanges { kt: (0.3, 0.1), ..ParamRanges::default() }, ..TrainingSet::default() };
        assert!(set.validate().unwrap_err().to_string().contains("ranges.kt"));
        let set =
            TrainingSet { ranges: ParamRanges { kt: (0.0, 0.1), ..ParamRanges::default() }, ..TrainingSet::default() };
        assert!(set.validate().unwrap_err().to_string().contains("kt"));
        assert!(TrainingSet { image_size: 0, ..TrainingSet::default() }.validate().is_err());
    }
}
