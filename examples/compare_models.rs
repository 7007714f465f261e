//! Training and inference throughput of the screening networks, for
//! `tools/compare/models.py` (which runs the same architectures in PyTorch and prints the
//! ratios). Prints one JSON line per network and pass:
//! `{"network", "batch", "side", "pass": "forward" | "train", "images_per_s"}`.
//!
//! ```text
//! cargo run --release --example compare_models -- [REPEATS] [--device cpu|cuda|cuda:N|metal] [--only NETWORK] [--default-malloc]
//! ```
//!
//! It calls [`keep_freed_memory`](nanoml::models::keep_freed_memory) first, as programs
//! that train should, unless `--default-malloc` (glibc's own settings) is given.
//!
//! "train" is one optimisation step: forward in training mode, loss, backward, Adam update.
//!
//! Besides the screening networks, two networks built from `nanoml::models::nn`'s layers
//! show the batch-norm, ELU, PReLU and bilinear kernels at work: a SqueezeNet-like
//! classifier (the STM tip-state notes' "DeepDog" cut: ten 3×3 convolutions, 32 → 1024
//! channels, strides alternating 2 and 1, each followed by batch norm and ELU; global
//! average pooling; dense 5) and the HRTEM notes' encoder-decoder FCN (conv → PReLU →
//! batch norm layers in conv-residual-conv blocks, three poolings, bilinear ×2 up, added
//! skips, ReLU score) at 16 base channels instead of 32.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program: printing is its job

use anyhow::{Context, Result};
use nanoml::models::nn::{
    Activation, BatchNorm2d, Bilinear, Builder, Conv2d, Linear, Mode, Padding, Params, Prelu,
    binary_cross_entropy_with_logits, conv_bn, conv_prelu_bn, global_avg_pool2d, max_pool2d, upsample_bilinear2d,
    weighted_cross_entropy,
};
use nanoml::models::optim::Optimizer;
use nanoml::models::{Classifier, ClassifierConfig, Denoiser, DenoiserConfig, DeviceChoice, Network, Tensor};

#[path = "common/mod.rs"]
mod common;

/// The loss a network trains with.
#[derive(Clone, Copy)]
enum Loss {
    /// Cross-entropy against 5 classes.
    Classes,
    /// Binary cross-entropy with logits against `x ≥ ½`.
    Binary,
    /// Mean squared error against `x ≥ ½`.
    Squared,
}

/// A convolution, batch norm and ELU (the SqueezeNet-like net's layer).
struct ConvBnElu {
    conv: Conv2d,
    bn: BatchNorm2d,
}

/// Ten 3×3 "same" convolutions with batch norm and ELU, strides 2, 1, 2, 1, …; global
/// average pooling; a dense layer to 5 classes.
struct SqueezeLike {
    layers: Vec<ConvBnElu>,
    head: Linear,
    params: Params,
}

impl SqueezeLike {
    fn new(seed: u64, dev: &nanoml::models::Device) -> Result<Self> {
        let mut b = Builder::new(seed, dev);
        let widths = [32, 32, 64, 128, 128, 256, 256, 512, 512, 1024];
        let mut layers = Vec::new();
        let mut ch = 1;
        for (i, &out) in widths.iter().enumerate() {
            let stride = if i % 2 == 0 { 2 } else { 1 };
            let conv = Conv2d::new(&mut b, &format!("conv{i}"), ch, out, 3, stride, Padding::Same)?;
            let bn = BatchNorm2d::new(&mut b, &format!("bn{i}"), out, 1e-3, 0.01)?;
            layers.push(ConvBnElu { conv, bn });
            ch = out;
        }
        let head = Linear::new(&mut b, "head", ch, 5)?;
        Ok(SqueezeLike { layers, head, params: b.finish() })
    }
}

impl Network for SqueezeLike {
    fn params(&self) -> &Params {
        &self.params
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> nanoml::models::Result<Tensor> {
        let mut x = x.clone();
        for l in &self.layers {
            x = conv_bn(&x, &l.conv, &l.bn, mode, Activation::Elu(1.0))?;
        }
        self.head.forward(&global_avg_pool2d(&x)?)
    }
}

/// Convolution → PReLU → batch norm, the FCN's layer.
struct ConvLayer {
    conv: Conv2d,
    prelu: Prelu,
    bn: BatchNorm2d,
}

impl ConvLayer {
    fn new(b: &mut Builder, name: &str, inputs: usize, outputs: usize, kernel: usize) -> Result<Self> {
        Ok(ConvLayer {
            conv: Conv2d::new(b, &format!("{name}.conv"), inputs, outputs, kernel, 1, Padding::Same)?,
            prelu: Prelu::new(b, &format!("{name}.prelu"), outputs, 0.01)?,
            bn: BatchNorm2d::new(b, &format!("{name}.bn"), outputs, 1e-3, 0.01)?,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> nanoml::models::Result<Tensor> {
        conv_prelu_bn(x, &self.conv, &self.prelu, &self.bn, mode)
    }
}

/// conv → (x + conv(conv(conv(x)))) → conv: five layers.
struct Block([ConvLayer; 5]);

impl Block {
    fn new(b: &mut Builder, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        let layer = |b: &mut Builder, i: usize| ConvLayer::new(b, &format!("{name}.{i}"), outputs, outputs, 3);
        let first = ConvLayer::new(b, &format!("{name}.0"), inputs, outputs, 3)?;
        Ok(Block([first, layer(b, 1)?, layer(b, 2)?, layer(b, 3)?, layer(b, 4)?]))
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> nanoml::models::Result<Tensor> {
        let [first, r1, r2, r3, last] = &self.0;
        let x = first.forward(x, mode)?;
        let y = r3.forward(&r2.forward(&r1.forward(&x, mode)?, mode)?, mode)?;
        last.forward(&(x + y)?, mode)
    }
}

/// The HRTEM encoder-decoder: three blocks each followed by 2×2 max pooling, a bridge
/// block, three bilinear ×2 upsamplings each followed by a 1×1 layer, an added skip and a
/// block; a 1×1 ReLU score.
struct SkipFcn {
    down: Vec<Block>,
    bridge: Block,
    up: Vec<(ConvLayer, Block)>,
    score: Conv2d,
    params: Params,
}

impl SkipFcn {
    fn new(base: usize, seed: u64, dev: &nanoml::models::Device) -> Result<Self> {
        let mut b = Builder::new(seed, dev);
        let widths = [base, 2 * base, 4 * base];
        let mut down = Vec::new();
        let mut ch = 1;
        for (i, &w) in widths.iter().enumerate() {
            down.push(Block::new(&mut b, &format!("down{i}"), ch, w)?);
            ch = w;
        }
        let bridge = Block::new(&mut b, "bridge", ch, 8 * base)?;
        ch = 8 * base;
        let mut up = Vec::new();
        for (i, &w) in widths.iter().enumerate().rev() {
            up.push((
                ConvLayer::new(&mut b, &format!("up{i}.proj"), ch, w, 1)?,
                Block::new(&mut b, &format!("up{i}"), w, w)?,
            ));
            ch = w;
        }
        let score = Conv2d::new(&mut b, "score", ch, 1, 1, 1, Padding::Same)?;
        Ok(SkipFcn { down, bridge, up, score, params: b.finish() })
    }
}

impl Network for SkipFcn {
    fn params(&self) -> &Params {
        &self.params
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> nanoml::models::Result<Tensor> {
        let mut skips = Vec::new();
        let mut x = x.clone();
        for block in &self.down {
            let y = block.forward(&x, mode)?;
            x = max_pool2d(&y, 2)?;
            skips.push(y);
        }
        x = self.bridge.forward(&x, mode)?;
        for ((proj, block), skip) in self.up.iter().zip(skips.iter().rev()) {
            let up = proj.forward(&upsample_bilinear2d(&x, 2, Bilinear::HalfPixel)?, mode)?;
            x = block.forward(&(up + skip)?, mode)?;
        }
        self.score.forward_relu(&x)
    }
}

fn measure(name: &str, net: &dyn Network, side: usize, batch: usize, loss: Loss, repeats: usize) -> Result<()> {
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
        let loss = match loss {
            Loss::Classes => weighted_cross_entropy(&y, &labels, None)?,
            Loss::Binary => binary_cross_entropy_with_logits(&y, &target)?,
            Loss::Squared => (y - &target)?.sqr()?.mean_all()?,
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
    let mut keep_memory = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => device = args.next().context("--device needs a value")?.parse()?,
            "--default-malloc" => keep_memory = false,
            "--only" => only = Some(args.next().context("--only needs a network name")?),
            n => repeats = n.parse::<usize>().with_context(|| format!("REPEATS must be a count, not {n:?}"))?.max(1),
        }
    }
    if keep_memory && !nanoml::models::keep_freed_memory() {
        eprintln!("note: the C allocator did not take nanoml::models::keep_freed_memory's settings");
    }
    let dev = device.open()?;
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if wanted("classifier_paper") {
        measure(
            "classifier_paper",
            &Classifier::new(&ClassifierConfig::paper(), 0, &dev)?,
            200,
            32,
            Loss::Classes,
            repeats,
        )?;
    }
    if wanted("classifier_paper_64") {
        let config = ClassifierConfig { input_size: 64, ..ClassifierConfig::paper() };
        measure("classifier_paper_64", &Classifier::new(&config, 0, &dev)?, 64, 64, Loss::Classes, repeats)?;
    }
    if wanted("classifier_small") {
        measure(
            "classifier_small",
            &Classifier::new(&ClassifierConfig::small(), 0, &dev)?,
            100,
            32,
            Loss::Classes,
            repeats,
        )?;
    }
    if wanted("denoiser_paper") {
        measure("denoiser_paper", &Denoiser::new(&DenoiserConfig::paper(), 0, &dev)?, 200, 16, Loss::Binary, repeats)?;
    }
    if wanted("denoiser_small") {
        measure("denoiser_small", &Denoiser::new(&DenoiserConfig::small(), 0, &dev)?, 200, 16, Loss::Binary, repeats)?;
    }
    if wanted("squeeze_bn_elu") {
        measure("squeeze_bn_elu", &SqueezeLike::new(0, &dev)?, 128, 32, Loss::Classes, repeats)?;
    }
    if wanted("skip_fcn") {
        measure("skip_fcn", &SkipFcn::new(16, 0, &dev)?, 256, 4, Loss::Squared, repeats)?;
    }
    Ok(())
}
