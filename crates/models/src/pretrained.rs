//! Weights shipped with nanoml: the small AFM-screening classifier and denoiser, trained
//! on simulated Rabani films by `examples/train_screening.rs` (seeded; figures in
//! `docs/reproduction.md`). The classifier comes from
//! `train_screening -- --out crates/models/weights` (its report is `weights/report.json`,
//! whose denoiser section is an earlier two-level denoiser that is not shipped); the
//! denoiser from the same command with `--classifier crates/models/weights`, which
//! simulates the same films and trains only the denoiser (`weights/report-denoiser.json`).
//! Held-out accuracy of the classifier: 98.4 % on 2000 films.
//!
//! The weights are compiled into the library, so screening works without downloads or
//! training.

use candle_core::Device;

use crate::checkpoint::load_bytes;
use crate::{Classifier, Denoiser, Result};

const CLASSIFIER_JSON: &str = include_str!("../weights/classifier.json");
const CLASSIFIER_WEIGHTS: &[u8] = include_bytes!("../weights/classifier.safetensors");
const DENOISER_JSON: &str = include_str!("../weights/denoiser.json");
const DENOISER_WEIGHTS: &[u8] = include_bytes!("../weights/denoiser.safetensors");

/// The five classes of the screening classifier, in output order.
pub const CLASSES: [&str; 5] = ["liquid", "hole", "cellular", "labyrinth", "island"];

/// The shipped classifier ([`crate::ClassifierConfig::small`]) on `device`.
pub fn screening_classifier(device: &Device) -> Result<Classifier> {
    load_bytes(CLASSIFIER_JSON, CLASSIFIER_WEIGHTS, "embedded classifier", device)
}

/// The shipped denoiser ([`crate::DenoiserConfig::small`]) on `device`.
pub fn screening_denoiser(device: &Device) -> Result<Denoiser> {
    load_bytes(DENOISER_JSON, DENOISER_WEIGHTS, "embedded denoiser", device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Network;

    #[test]
    fn embedded_weights_load_and_are_small() {
        let c = screening_classifier(&Device::Cpu).unwrap();
        let d = screening_denoiser(&Device::Cpu).unwrap();
        assert_eq!(c.config().classes, CLASSES.len());
        assert!(c.params().count() + d.params().count() < 5 * 1024 * 1024 / 4);
        assert!(CLASSIFIER_WEIGHTS.len() + DENOISER_WEIGHTS.len() < 5 * 1024 * 1024);
    }
}
