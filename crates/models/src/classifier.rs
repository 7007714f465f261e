//! The CNN that classifies AFM-like binary windows into the five Rabani classes (Gordon et
//! al., Nano Lett. 2020): VGG-like blocks of 3×3 convolutions with ReLU, each block ended
//! by 2×2 max pooling and dropout, then dense layers and a softmax.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use nanoml_core::resample::resize_bilinear;
use ndarray::ArrayView2;

use crate::nn::{Builder, Conv2d, Linear, Mode, Padding, Params, dropout, global_avg_pool2d, max_pool2d, relu};
use crate::tensor::images_to_tensor;
use crate::{Error, Network, Result};

/// The layers of a [`Classifier`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Side of the square input, pixels.
    pub input_size: usize,
    /// Output channels of the convolutions, block by block; each block ends with 2×2 max
    /// pooling and dropout.
    pub blocks: Vec<Vec<usize>>,
    /// Padding of the convolutions.
    pub padding: Padding,
    /// Dropout rate after each block.
    pub block_dropout: f64,
    /// Average the last feature maps over the image (global average pooling) instead of
    /// flattening them.
    pub global_pool: bool,
    /// Widths of the hidden dense layers (ReLU, each followed by dropout).
    pub dense: Vec<usize>,
    /// Dropout rate after each hidden dense layer.
    pub dense_dropout: f64,
    /// Number of classes.
    pub classes: usize,
}

impl ClassifierConfig {
    /// The published network, layer for layer: 200×200 input, two blocks of two valid 3×3
    /// convolutions (32, 64 channels), dropout 0.25, a 256-unit dense layer with dropout
    /// 0.5 and five classes; 36,258,789 parameters.
    pub fn paper() -> Self {
        ClassifierConfig {
            input_size: 200,
            blocks: vec![vec![32, 32], vec![64, 64]],
            padding: Padding::Valid,
            block_dropout: 0.25,
            global_pool: false,
            dense: vec![256],
            dense_dropout: 0.5,
            classes: 5,
        }
    }

    /// A small network for tests and shipped weights: windows reduced to 100×100, three
    /// blocks of two convolutions (8, 16, 32 channels, "same" padding), global average
    /// pooling, one 32-unit dense layer; 19,261 parameters. Global pooling suits the task: the classes
    /// differ in topology, and the Euler number is a sum of local terms.
    pub fn small() -> Self {
        ClassifierConfig {
            input_size: 100,
            blocks: vec![vec![8, 8], vec![16, 16], vec![32, 32]],
            padding: Padding::Same,
            block_dropout: 0.1,
            global_pool: true,
            dense: vec![32],
            dense_dropout: 0.2,
            classes: 5,
        }
    }

    /// Side of the feature maps after the last block.
    fn final_side(&self) -> Option<usize> {
        let mut side = self.input_size;
        for block in &self.blocks {
            for _ in block {
                side = match self.padding {
                    Padding::Same => side,
                    Padding::Valid => side.checked_sub(2)?,
                };
            }
            side /= 2;
        }
        (side > 0).then_some(side)
    }

    /// Checks that the layers fit together.
    pub fn validate(&self) -> Result<()> {
        if self.classes < 2 {
            return Err(Error::invalid("classes", self.classes, "at least 2"));
        }
        if self.blocks.is_empty() || self.blocks.iter().any(|b| b.is_empty() || b.contains(&0)) {
            return Err(Error::invalid(
                "blocks",
                format!("{:?}", self.blocks),
                "one or more blocks of non-zero channel counts",
            ));
        }
        if self.dense.contains(&0) {
            return Err(Error::invalid("dense", format!("{:?}", self.dense), "non-zero widths"));
        }
        for (name, rate) in [("block_dropout", self.block_dropout), ("dense_dropout", self.dense_dropout)] {
            if !(0.0..1.0).contains(&rate) {
                return Err(Error::invalid(name, rate, "0 ≤ rate < 1"));
            }
        }
        if self.final_side().is_none() {
            return Err(Error::invalid(
                "input_size",
                self.input_size,
                "large enough for every block to leave at least one pixel",
            ));
        }
        Ok(())
    }
}

/// The classifier: windows `[n, 1, s, s]` in, class logits `[n, classes]` out.
#[derive(Clone, Debug)]
pub struct Classifier {
    config: ClassifierConfig,
    convs: Vec<Vec<Conv2d>>,
    dense: Vec<Linear>,
    head: Linear,
    params: Params,
}

impl Classifier {
    /// Builds the network with parameters drawn from `seed` on `device`.
    pub fn new(config: &ClassifierConfig, seed: u64, device: &candle_core::Device) -> Result<Self> {
        config.validate()?;
        let mut b = Builder::new(seed, device);
        let mut channels = 1;
        let mut convs = vec![];
        for (i, block) in config.blocks.iter().enumerate() {
            let mut layers = vec![];
            for (j, &out) in block.iter().enumerate() {
                layers.push(Conv2d::new(&mut b, &format!("block{i}.conv{j}"), channels, out, 3, 1, config.padding)?);
                channels = out;
            }
            convs.push(layers);
        }
        let side = config.final_side().unwrap_or(1);
        let mut features = if config.global_pool { channels } else { channels * side * side };
        let mut dense = vec![];
        for (i, &width) in config.dense.iter().enumerate() {
            dense.push(Linear::new(&mut b, &format!("dense{i}"), features, width)?);
            features = width;
        }
        let head = Linear::new(&mut b, "head", features, config.classes)?;
        Ok(Classifier { config: config.clone(), convs, dense, head, params: b.finish() })
    }

    /// The configuration.
    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// Windows of any (equal) size as an input batch: each is resized bilinearly to
    /// `input_size` (a 200-pixel window becomes 2×2 block means at 100) and stacked.
    pub fn prepare(&self, windows: &[ArrayView2<'_, f32>]) -> Result<Tensor> {
        let s = self.config.input_size;
        let resized: Vec<ndarray::Array2<f32>> = windows
            .iter()
            .map(|w| if w.dim() == (s, s) { Ok(w.to_owned()) } else { resize_bilinear(*w, (s, s)) })
            .collect::<Result<_, _>>()?;
        let views: Vec<_> = resized.iter().map(|r| r.view()).collect();
        images_to_tensor(&views, self.params.device())
    }

    /// Class probabilities `[n, classes]` (softmax of the logits), in evaluation mode.
    pub fn probabilities(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::softmax_last_dim(&self.forward(x, Mode::Eval)?)?)
    }
}

impl Network for Classifier {
    fn params(&self) -> &Params {
        &self.params
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        let s = self.config.input_size;
        if (c, h, w) != (1, s, s) {
            return Err(Error::invalid("input", format!("[n, {c}, {h}, {w}]"), format!("[n, 1, {s}, {s}]")));
        }
        let mut x = x.clone();
        let mut salt = 0;
        for block in &self.convs {
            // The block's last convolution and the pooling are one op.
            let pooled = match block.split_last() {
                Some((last, first)) => {
                    for conv in first {
                        x = conv.forward_relu(&x)?;
                    }
                    last.forward_relu_max_pool(&x, 2)?
                }
                None => max_pool2d(&x, 2)?,
            };
            x = dropout(&pooled, self.config.block_dropout, mode, salt)?;
            salt += 1;
        }
        x = if self.config.global_pool { global_avg_pool2d(&x)? } else { x.flatten_from(1)? };
        for layer in &self.dense {
            x = dropout(&relu(&layer.forward(&x)?)?, self.config.dense_dropout, mode, salt)?;
            salt += 1;
        }
        self.head.forward(&x)
    }
}
