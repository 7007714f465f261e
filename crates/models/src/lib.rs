//! # nanoml-models
//!
//! Networks on candle for nanoscale microscopy, and what training them needs: layers with
//! seeded initialisation, the AFM-screening classifier and denoising autoencoder (Gordon
//! et al., Nano Lett. 2020), a training loop with optimisers and schedules, metrics equal
//! to scikit-learn's, safetensors checkpoints and batch augmentation.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod error;
pub mod metrics;

pub use error::{Error, Result};
