//! Training and inference throughput of the screening networks, for
//! `tools/compare/models.py` (which runs the same architectures in PyTorch and prints the
//! ratios). Prints one JSON line per network and pass:
//! `{"network", "batch", "side", "pass": "forward" | "train", "images_per_s"}`.
//!
//! ```text
//! cargo run --release --example compare_models -- [REPEATS] [--device cpu|cuda|cuda:N|metal] [--only NETWORK]
//! ```
//!
//! "train" is one optimisation step: forward in training mode, loss, backward, Adam update.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program: printing is its job

use anyhow::{Context, Result};
use nanoml::models::nn::{Mode, binary_cross_entropy_with_logits, weighted_cross_entropy};
use nanoml::models::optim::Optimizer;
use nanoml::models::{Classifier, ClassifierConfig, Denoiser, DenoiserConfig, DeviceChoice, Network, Tensor};

#[path = "common/mod.rs"]
mod common;

fn measure(name: &str, net: &dyn Network, side: usize, batch: usize, classes: bool, repeats: usize) -> Result<()> {
    let dev = net.params().device();
    let x = Tensor::rand(0f32, 1f32, (batch, 1, side, side), dev)?;
    // GPU kernels run asynchronously: each timed call waits for its device.
    let forward = common::median_seconds(repeats, || -> Result<()> {
        net.forward(&x, Mode::Eval)?;
        Ok(dev.synchronize()?)
    });
    println!(
        r#"{{"network": "{name}", "batch": {batch}, "side": {side}, "pass": "forward", "images_per_s": {}}}"#,
        batch as f64 / forward
    );
    let labels: Vec<usize> = (0..batch).map(|i| i % 5).collect();
    let target = x.ge(0.5)?.to_dtype(nanoml::models::DType::F32)?;
    let mut opt = Optimizer::adam().start(net.params().vars())?;
    let mut step = 0u64;
    let train = common::median_seconds(repeats, || -> Result<()> {
        step += 1;
        let y = net.forward(&x, Mode::Train { seed: step })?;
        let loss = if classes {
            weighted_cross_entropy(&y, &labels, None)?
        } else {
            binary_cross_entropy_with_logits(&y, &target)?
        };
        opt.step(&loss.backward()?, 1e-4)?;
        Ok(dev.synchronize()?)
    });
    println!(
        r#"{{"network": "{name}", "batch": {batch}, "side": {side}, "pass": "train", "images_per_s": {}}}"#,
        batch as f64 / train
    );
    Ok(())
}

fn main() -> Result<()> {
    let mut repeats = 5;
    let mut device = DeviceChoice::Cpu;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => device = args.next().context("--device needs a value")?.parse()?,
            "--only" => only = Some(args.next().context("--only needs a network name")?),
            n => repeats = n.parse::<usize>().with_context(|| format!("REPEATS must be a count, not {n:?}"))?.max(1),
        }
    }
    let dev = device.open()?;
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if wanted("classifier_paper") {
        measure("classifier_paper", &Classifier::new(&ClassifierConfig::paper(), 0, &dev)?, 200, 32, true, repeats)?;
    }
    if wanted("classifier_small") {
        measure("classifier_small", &Classifier::new(&ClassifierConfig::small(), 0, &dev)?, 100, 32, true, repeats)?;
    }
    if wanted("denoiser_paper") {
        measure("denoiser_paper", &Denoiser::new(&DenoiserConfig::paper(), 0, &dev)?, 200, 16, false, repeats)?;
    }
    if wanted("denoiser_small") {
        measure("denoiser_small", &Denoiser::new(&DenoiserConfig::small(), 0, &dev)?, 200, 16, false, repeats)?;
    }
    Ok(())
}
