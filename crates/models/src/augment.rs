//! Seeded augmentation of image batches: flips, quarter turns, arbitrary rotations with an
//! inner-square crop, crops and pans, circular shifts, and Gaussian, speckle and pepper
//! noise.
//!
//! Each image of a batch draws from its own generator seeded with
//! `derive_seed(seed, index)`, so a batch is augmented the same way whatever the number of
//! threads. Geometry comes first (flips, quarter turn, rotation, crop, shift), then
//! optional re-binarisation, then noise.

use std::f64::consts::{PI, SQRT_2};

use nanoml_core::resample::resize_bilinear;
use nanoml_core::warp::{Affine2, Padding, warp_affine};
use nanoml_core::{Xoshiro256PlusPlus, derive_seed};
use ndarray::{Array2, Array3, ArrayView2, Axis, s};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which augmentations to apply, and how strongly. `Default` applies none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Flip left-right and up-down, each with probability ½.
    pub flips: bool,
    /// Turn by a random multiple of 90° (square images only).
    pub quarter_turns: bool,
    /// Rotate by a uniform random angle, keep the largest axis-aligned square inside the
    /// rotated image (side `n / √2`) and resize it back to `n` (square images only).
    pub rotation: bool,
    /// Crop a random square of side between this fraction of the image and all of it, at
    /// a random position, and resize it back (zoom and pan). `None`: no crop.
    pub crop: Option<f64>,
    /// Shift circularly by a random offset along both axes (for periodic images such as
    /// simulation lattices).
    pub circular_shift: bool,
    /// After the geometric steps, round pixels to 0 or 1 (binary images stay binary).
    pub binarise: bool,
    /// Standard deviation of additive Gaussian noise (0: none).
    pub gaussian: f64,
    /// Standard deviation of multiplicative (speckle) noise `x (1 + σ n)` (0: none).
    pub speckle: f64,
    /// Fraction of pixels set to 0 (pepper noise; 0: none).
    pub pepper: f64,
}

impl Augment {
    /// Checks the strengths.
    pub fn validate(&self) -> Result<()> {
        if let Some(c) = self.crop
            && !(c > 0.0 && c <= 1.0)
        {
            return Err(Error::invalid("crop", c, "a fraction in (0, 1]"));
        }
        for (name, v) in [("gaussian", self.gaussian), ("speckle", self.speckle)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::invalid(name, v, "a finite standard deviation ≥ 0"));
            }
        }
        if !(0.0..=1.0).contains(&self.pepper) {
            return Err(Error::invalid("pepper", self.pepper, "a fraction in [0, 1]"));
        }
        Ok(())
    }

    /// Augments one image with `rng`.
    pub fn apply(&self, image: ArrayView2<'_, f32>, rng: &mut Xoshiro256PlusPlus) -> Result<Array2<f32>> {
        self.validate()?;
        let (h, w) = image.dim();
        if h == 0 || w == 0 {
            return Err(Error::invalid("image", format!("{h}×{w}"), "a non-empty image"));
        }
        let square = h == w;
        if (self.quarter_turns || self.rotation) && !square {
            return Err(Error::invalid("image", format!("{h}×{w}"), "a square image for quarter turns and rotations"));
        }
        let mut x = image.to_owned();
        if self.flips {
            if rng.bernoulli(0.5) {
                x.invert_axis(Axis(1));
            }
            if rng.bernoulli(0.5) {
                x.invert_axis(Axis(0));
            }
        }
        if self.quarter_turns {
            x = rot90(x.view(), rng.below(4) as usize);
        }
        if self.rotation {
            x = rotate_inner_square(x.view(), rng.uniform_in(0.0, 2.0 * PI))?;
        }
        if let Some(min) = self.crop {
            let (ch, cw) = (crop_side(h, min, rng), crop_side(w, min, rng));
            let (r0, c0) = (rng.index(h - ch + 1), rng.index(w - cw + 1));
            let cropped = x.slice(s![r0..r0 + ch, c0..c0 + cw]);
            x = resize_bilinear(cropped, (h, w))?;
        }
        if self.circular_shift {
            x = roll(x.view(), rng.index(h), rng.index(w));
        }
        if self.binarise {
            x.mapv_inplace(|v| if v >= 0.5 { 1.0 } else { 0.0 });
        }
        if self.gaussian > 0.0 || self.speckle > 0.0 || self.pepper > 0.0 {
            for v in x.iter_mut() {
                if self.gaussian > 0.0 {
                    *v += (self.gaussian * rng.normal()) as f32;
                }
                if self.speckle > 0.0 {
                    *v *= (1.0 + self.speckle * rng.normal()) as f32;
                }
                if self.pepper > 0.0 && rng.bernoulli(self.pepper) {
                    *v = 0.0;
                }
            }
        }
        Ok(x)
    }

    /// Augments every image of an `[n, h, w]` batch in parallel; image `i` uses
    /// `derive_seed(seed, i)`.
    pub fn apply_batch(&self, images: &Array3<f32>, seed: u64) -> Result<Array3<f32>> {
        self.validate()?;
        let out: Vec<Array2<f32>> = (0..images.len_of(Axis(0)))
            .into_par_iter()
            .map(|i| {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed(seed, i as u64));
                self.apply(images.index_axis(Axis(0), i), &mut rng)
            })
            .collect::<Result<_>>()?;
        let (n, h, w) = images.dim();
        let mut stacked = Array3::zeros((n, h, w));
        for (mut dst, src) in stacked.outer_iter_mut().zip(&out) {
            dst.assign(src);
        }
        Ok(stacked)
    }
}

fn crop_side(n: usize, min_fraction: f64, rng: &mut Xoshiro256PlusPlus) -> usize {
    let lo = ((n as f64 * min_fraction).ceil() as usize).clamp(1, n);
    lo + rng.index(n - lo + 1)
}

/// Turns a square image counter-clockwise by `k` quarter turns (numpy's `rot90`).
pub fn rot90(image: ArrayView2<'_, f32>, k: usize) -> Array2<f32> {
    let mut v = image.view();
    for _ in 0..k % 4 {
        v = v.reversed_axes();
        v.invert_axis(Axis(0));
    }
    v.to_owned()
}

/// Shifts circularly: output `[r, c]` is input `[(r − dr) mod h, (c − dc) mod w]` (numpy's
/// `roll` by `(dr, dc)`).
pub fn roll(image: ArrayView2<'_, f32>, dr: usize, dc: usize) -> Array2<f32> {
    let (h, w) = image.dim();
    Array2::from_shape_fn((h, w), |(r, c)| image[[(r + h - dr % h) % h, (c + w - dc % w) % w]])
}

/// Rotates a square image by `angle` (radians, counter-clockwise on screen) about its
/// centre, crops the largest axis-aligned square inside the rotated square and resizes it
/// back to the original side. No padding enters the result.
pub fn rotate_inner_square(image: ArrayView2<'_, f32>, angle: f64) -> Result<Array2<f32>> {
    let n = image.nrows();
    let c = (n as f64 - 1.0) / 2.0;
    // The inscribed square of a square of side n rotated by θ has side n / (|cos θ| + |sin θ|) ≥ n/√2.
    let inner = ((n as f64 / SQRT_2).floor() as usize).max(1);
    let offset = (n - inner) as f64 / 2.0;
    let forward = Affine2::rotation(angle).about(c, c).then(Affine2::translation(-offset, -offset));
    let cropped = warp_affine(image, &forward, (inner, inner), Padding::Edge)?;
    Ok(resize_bilinear(cropped.view(), (n, n))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn rng(seed: u64) -> Xoshiro256PlusPlus {
        Xoshiro256PlusPlus::seed_from_u64(seed)
    }

    #[test]
    fn rot90_and_roll_match_numpy() {
        let a = array![[1.0f32, 2.0], [3.0, 4.0]];
        assert_eq!(rot90(a.view(), 1), array![[2.0, 4.0], [1.0, 3.0]]);
        assert_eq!(rot90(a.view(), 4), a);
        let b = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        assert_eq!(roll(b.view(), 1, 1), array![[6.0, 4.0, 5.0], [3.0, 1.0, 2.0]]);
    }

    #[test]
    fn rotation_by_a_quarter_turn_is_rot90_of_the_inner_square() {
        let n = 20;
        let img = Array2::from_shape_fn((n, n), |(r, c)| (r * n + c) as f32);
        let rotated = rotate_inner_square(img.view(), PI / 2.0).unwrap();
        let inner = (n as f64 / SQRT_2).floor() as usize;
        let o = (n - inner) / 2;
        let expected = resize_bilinear(rot90(img.view(), 1).slice(s![o..o + inner, o..o + inner]), (n, n)).unwrap();
        let err = rotated.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-3, "max difference {err}");
    }

    #[test]
    fn augmentation_is_seeded_and_keeps_binary_images_binary() {
        let img = Array2::from_shape_fn((32, 32), |(r, c)| ((r / 4 + c / 4) % 2) as f32);
        let aug = Augment {
            flips: true,
            quarter_turns: true,
            rotation: true,
            crop: Some(0.7),
            circular_shift: true,
            binarise: true,
            ..Default::default()
        };
        let a = aug.apply(img.view(), &mut rng(5)).unwrap();
        assert_eq!(a, aug.apply(img.view(), &mut rng(5)).unwrap());
        assert!(a.iter().all(|&v| v == 0.0 || v == 1.0));
        let batch = Array3::from_shape_fn((6, 32, 32), |(_, r, c)| img[[r, c]]);
        let out = aug.apply_batch(&batch, 3).unwrap();
        assert_eq!(out.index_axis(Axis(0), 4), aug.apply(img.view(), &mut rng(derive_seed(3, 4))).unwrap());
    }

    #[test]
    fn pepper_noise_zeroes_the_asked_fraction() {
        let ones = Array2::from_elem((100, 100), 1.0f32);
        let aug = Augment { pepper: 0.4, ..Default::default() };
        let out = aug.apply(ones.view(), &mut rng(1)).unwrap();
        let zeros = out.iter().filter(|&&v| v == 0.0).count() as f64 / 1e4;
        assert!((zeros - 0.4).abs() < 0.02, "{zeros}");
    }

    #[test]
    fn bad_settings_are_errors() {
        let img = Array2::zeros((4, 6));
        assert!(Augment { rotation: true, ..Default::default() }.apply(img.view(), &mut rng(0)).is_err());
        assert!(Augment { pepper: 1.5, ..Default::default() }.validate().is_err());
        assert!(Augment { crop: Some(0.0), ..Default::default() }.validate().is_err());
        assert!(Augment { gaussian: f64::NAN, ..Default::default() }.validate().is_err());
    }
}
