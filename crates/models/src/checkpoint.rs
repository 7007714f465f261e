//! Checkpoints: the weights as safetensors beside a JSON document of the configuration.
//!
//! `save(dir/name)` writes `name.safetensors` and `name.json`; the JSON names the kind of
//! network (`"classifier"`, `"denoiser"`), its configuration and the nanoml version, so a
//! checkpoint can be rebuilt without knowing its layers beforehand and a mismatch is an
//! error, not silent garbage.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::classifier::{Classifier, ClassifierConfig};
use crate::denoiser::{Denoiser, DenoiserConfig};
use crate::{Error, Network, Result};

/// A network that can be saved and rebuilt from its configuration.
pub trait Checkpointed: Network + Sized {
    /// The configuration type, stored as JSON.
    type Config: Serialize + DeserializeOwned;
    /// The kind written to the JSON document.
    const KIND: &'static str;
    /// The configuration of this network.
    fn config(&self) -> &Self::Config;
    /// A fresh network of this configuration (its weights are then loaded).
    fn build(config: &Self::Config, device: &Device) -> Result<Self>;
}

impl Checkpointed for Classifier {
    type Config = ClassifierConfig;
    const KIND: &'static str = "classifier";
    fn config(&self) -> &ClassifierConfig {
        Classifier::config(self)
    }
    fn build(config: &ClassifierConfig, device: &Device) -> Result<Self> {
        Classifier::new(config, 0, device)
    }
}

impl Checkpointed for Denoiser {
    type Config = DenoiserConfig;
    const KIND: &'static str = "denoiser";
    fn config(&self) -> &DenoiserConfig {
        Denoiser::config(self)
    }
    fn build(config: &DenoiserConfig, device: &Device) -> Result<Self> {
        Denoiser::new(config, 0, device)
    }
}

#[derive(Serialize, Deserialize)]
struct Header<C> {
    kind: String,
    nanoml: String,
    parameters: usize,
    config: C,
}

fn paths(stem: &Path) -> (PathBuf, PathBuf) {
    (stem.with_extension("safetensors"), stem.with_extension("json"))
}

/// Writes `stem.safetensors` and `stem.json`.
pub fn save<N: Checkpointed>(network: &N, stem: &Path) -> Result<()> {
    let (weights, json) = paths(stem);
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
    }
    let header = Header {
        kind: N::KIND.to_string(),
        nanoml: env!("CARGO_PKG_VERSION").to_string(),
        parameters: network.params().count(),
        config: network.config(),
    };
    let text = serde_json::to_string_pretty(&header)
        .map_err(|source| Error::Json { path: json.display().to_string(), source })?;
    std::fs::write(&json, text).map_err(|source| Error::Io { path: json.display().to_string(), source })?;
    network.params().save(&weights)
}

/// Parses a checkpoint's JSON document, checking its kind.
pub fn config_from_json<N: Checkpointed>(text: &str, origin: &str) -> Result<N::Config> {
    let header: Header<serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| Error::Checkpoint { path: origin.to_string(), reason: format!("unreadable JSON ({e})") })?;
    if header.kind != N::KIND {
        return Err(Error::Checkpoint {
            path: origin.to_string(),
            reason: format!("holds a {}, not a {}", header.kind, N::KIND),
        });
    }
    serde_json::from_value(header.config).map_err(|e| Error::Checkpoint {
        path: origin.to_string(),
        reason: format!("configuration does not fit a {} ({e})", N::KIND),
    })
}

/// Rebuilds a network from `stem.json` and loads `stem.safetensors` onto `device`.
pub fn load<N: Checkpointed>(stem: &Path, device: &Device) -> Result<N> {
    let (weights, json) = paths(stem);
    let text =
        std::fs::read_to_string(&json).map_err(|source| Error::Io { path: json.display().to_string(), source })?;
    let config = config_from_json::<N>(&text, &json.display().to_string())?;
    let network = N::build(&config, device)?;
    network.params().load(&weights)?;
    Ok(network)
}

/// Rebuilds a network from a checkpoint held in memory (e.g. embedded with `include_bytes!`).
pub fn load_bytes<N: Checkpointed>(json: &str, weights: &[u8], origin: &str, device: &Device) -> Result<N> {
    let config = config_from_json::<N>(json, origin)?;
    let network = N::build(&config, device)?;
    network.params().load_bytes(weights, origin)?;
    Ok(network)
}
