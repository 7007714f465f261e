//! # nanoml-models
//!
//! Networks on candle for nanoscale microscopy, and what training them needs: layers with
//! seeded initialisation, the AFM-screening classifier and denoising autoencoder (Gordon
//! et al., Nano Lett. 2020), a training loop with optimisers and schedules, metrics equal
//! to scikit-learn's, safetensors checkpoints and batch augmentation.
//!
//! Networks take NCHW f32 tensors on any candle device (CPU by default; features `cuda`,
//! `cudnn`, `metal`). Every random choice (initial weights, dropout, shuffling,
//! augmentation) comes from an explicit seed, so a run is reproducible.
//!
//! ```
//! use candle_core::Device;
//! use nanoml_models::{Classifier, ClassifierConfig, Network};
//! let net = Classifier::new(&ClassifierConfig::paper(), 0, &Device::Cpu)?;
//! assert_eq!(net.params().count(), 36_258_789);
//! # Ok::<(), nanoml_models::Error>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod augment;
pub mod checkpoint;
pub mod classifier;
pub mod denoiser;
pub mod device;
mod error;
pub mod memory;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod pretrained;
pub mod tensor;
pub mod train;

pub use candle_core::{DType, Device, Tensor, Var};
pub use classifier::{Classifier, ClassifierConfig};
pub use denoiser::{Denoiser, DenoiserConfig};
pub use device::DeviceChoice;
pub use error::{Error, Result};
pub use memory::keep_freed_memory;

/// A network: named parameters and a forward pass.
pub trait Network {
    /// The trainable parameters.
    fn params(&self) -> &nn::Params;
    /// The raw output (logits) for an NCHW batch.
    fn forward(&self, x: &Tensor, mode: nn::Mode) -> Result<Tensor>;
}
