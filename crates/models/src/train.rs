//! The training loop: seeded shuffling, batches, class weights, validation each epoch,
//! best-epoch keeping, early stopping, learning-rate schedules, a history and progress.
//!
//! Data come from a [`Dataset`], which turns a list of sample indices into a [`Batch`]
//! (optionally augmented with a seed). Two in-memory datasets cover the screening networks:
//! [`LabelledImages`] (classification) and [`Denoising`] (clean images, corrupted on the
//! fly). The loss follows from the targets: weighted cross-entropy for classes, binary
//! cross-entropy for images.

use std::time::Instant;

use candle_core::{Device, Tensor};
use nanoml_core::progress::{Progress, ProgressCounter};
use nanoml_core::{Xoshiro256PlusPlus, derive_seed};
use ndarray::{Array2, Array3, Axis};
use serde::{Deserialize, Serialize};

use crate::augment::Augment;
use crate::metrics::argmax_rows;
use crate::nn::{Mode, binary_cross_entropy_with_logits, weighted_cross_entropy};
use crate::optim::{Optimizer, Schedule};
use crate::tensor::{stack_to_tensor, tensor_to_array2};
use crate::{Error, Network, Result};

/// What a batch is trained towards.
#[derive(Clone, Debug)]
pub enum Targets {
    /// Class indices, one per sample (cross-entropy on logits).
    Classes(Vec<usize>),
    /// Target images in [0, 1], the output's shape (binary cross-entropy on logits).
    Images(Tensor),
}

/// Inputs and targets of one batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Inputs, NCHW.
    pub inputs: Tensor,
    /// Targets.
    pub targets: Targets,
}

/// A source of training or validation samples.
pub trait Dataset: Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Class labels of all samples, for class weights and accuracy (none for image targets).
    fn labels(&self) -> Option<&[usize]> {
        None
    }
    /// The samples `indices` as a batch on `device`; `augment_seed` is `Some` in training
    /// (augment with this seed) and `None` in validation (no augmentation).
    fn batch(&self, indices: &[usize], augment_seed: Option<u64>, device: &Device) -> Result<Batch>;
}

fn stack(images: &Array3<f32>, indices: &[usize]) -> Result<Array3<f32>> {
    if let Some(&i) = indices.iter().find(|&&i| i >= images.len_of(Axis(0))) {
        return Err(Error::invalid("indices", i, format!("below {}", images.len_of(Axis(0)))));
    }
    Ok(images.select(Axis(0), indices))
}

fn check_images(images: &Array3<f32>) -> Result<()> {
    let (n, h, w) = images.dim();
    if n == 0 || h == 0 || w == 0 {
        return Err(Error::invalid("images", format!("{n}×{h}×{w}"), "at least one non-empty image"));
    }
    if let Some(v) = images.iter().find(|v| !v.is_finite()) {
        return Err(Error::invalid("images", v, "finite pixel values"));
    }
    Ok(())
}

/// Grey images `[n, h, w]` with class labels; augmented in training.
#[derive(Clone, Debug)]
pub struct LabelledImages {
    images: Array3<f32>,
    labels: Vec<usize>,
    augment: Augment,
}

impl LabelledImages {
    /// Checks that there is one label per image and that pixels are finite.
    pub fn new(images: Array3<f32>, labels: Vec<usize>, augment: Augment) -> Result<Self> {
        check_images(&images)?;
        if labels.len() != images.len_of(Axis(0)) {
            return Err(Error::invalid(
                "labels",
                format!("{} labels", labels.len()),
                format!("{}, one per image", images.len_of(Axis(0))),
            ));
        }
        augment.validate()?;
        Ok(LabelledImages { images, labels, augment })
    }

    /// The images.
    pub fn images(&self) -> &Array3<f32> {
        &self.images
    }
}

impl Dataset for LabelledImages {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn labels(&self) -> Option<&[usize]> {
        Some(&self.labels)
    }
    fn batch(&self, indices: &[usize], augment_seed: Option<u64>, device: &Device) -> Result<Batch> {
        let mut x = stack(&self.images, indices)?;
        if let Some(seed) = augment_seed {
            x = self.augment.apply_batch(&x, seed)?;
        }
        let targets = Targets::Classes(indices.iter().map(|&i| self.labels[i]).collect());
        Ok(Batch { inputs: stack_to_tensor(x, device)?, targets })
    }
}

/// Clean images `[n, h, w]` in [0, 1]; inputs are the images after `augment` (in training)
/// and `corruption` (always; in validation with a fixed seed per sample, so the validation
/// set does not change between epochs), targets the augmented clean images.
#[derive(Clone, Debug)]
pub struct Denoising {
    clean: Array3<f32>,
    augment: Augment,
    corruption: Augment,
    validation_seed: u64,
}

impl Denoising {
    /// `corruption` should hold only noise (its geometric steps would move the input away
    /// from its target).
    pub fn new(clean: Array3<f32>, augment: Augment, corruption: Augment, validation_seed: u64) -> Result<Self> {
        check_images(&clean)?;
        augment.validate()?;
        corruption.validate()?;
        let geometric = corruption.flips
            || corruption.quarter_turns
            || corruption.rotation
            || corruption.crop.is_some()
            || corruption.circular_shift;
        if geometric {
            return Err(Error::invalid("corruption", "geometric steps", "noise only (Gaussian, speckle, pepper)"));
        }
        Ok(Denoising { clean, augment, corruption, validation_seed })
    }
}

impl Dataset for Denoising {
    fn len(&self) -> usize {
        self.clean.len_of(Axis(0))
    }
    fn batch(&self, indices: &[usize], augment_seed: Option<u64>, device: &Device) -> Result<Batch> {
        let mut clean = stack(&self.clean, indices)?;
        let noise_seed = match augment_seed {
            Some(seed) => {
                clean = self.augment.apply_batch(&clean, seed)?;
                derive_seed(seed, u64::MAX)
            }
            // Validation: the same corruption of sample i every epoch.
            None => derive_seed(self.validation_seed, indices.first().copied().unwrap_or(0) as u64),
        };
        let noisy = self.corruption.apply_batch(&clean, noise_seed)?;
        Ok(Batch { inputs: stack_to_tensor(noisy, device)?, targets: Targets::Images(stack_to_tensor(clean, device)?) })
    }
}

/// Class weights of the cross-entropy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeights {
    /// All 1.
    #[default]
    Uniform,
    /// `n_samples / (n_classes · count_c)` (scikit-learn's and Keras's "balanced"), from
    /// the training labels.
    Balanced,
    /// Given weights, one per class.
    Given(Vec<f32>),
}

/// Which validation figure picks the best epoch and drives early stopping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// The lowest validation loss.
    #[default]
    ValLoss,
    /// The highest validation accuracy (classification only).
    ValAccuracy,
}

/// Settings of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set (or over `steps_per_epoch` batches).
    pub epochs: usize,
    /// Samples per batch.
    pub batch_size: usize,
    /// Batches per epoch; `None`: the whole shuffled training set. (The reference trained
    /// on a tenth of its set per epoch.)
    pub steps_per_epoch: Option<usize>,
    /// Base learning rate.
    pub learning_rate: f64,
    /// The optimiser.
    pub optimizer: Optimizer,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// Class weights (classification).
    pub class_weights: ClassWeights,
    /// The figure that picks the best epoch.
    pub monitor: Monitor,
    /// Stop after this many epochs without improvement of the monitored figure.
    pub patience: Option<usize>,
    /// At the end, restore the parameters of the best validated epoch.
    pub keep_best: bool,
    /// Seed of shuffling, dropout and augmentation.
    pub seed: u64,
}

impl Default for TrainConfig {
    /// The reference's settings: Adam (lr 1e-3), batch 128, 9 epochs, balanced class
    /// weights, the best epoch by validation loss.
    fn default() -> Self {
        TrainConfig {
            epochs: 9,
            batch_size: 128,
            steps_per_epoch: None,
            learning_rate: 1e-3,
            optimizer: Optimizer::adam(),
            schedule: Schedule::Constant,
            class_weights: ClassWeights::Balanced,
            monitor: Monitor::ValLoss,
            patience: None,
            keep_best: true,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", 0, "at least 1"));
        }
        if self.steps_per_epoch == Some(0) {
            return Err(Error::invalid("steps_per_epoch", 0, "at least 1 (or None for whole epochs)"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::invalid("learning_rate", self.learning_rate, "a finite rate > 0"));
        }
        if let ClassWeights::Given(w) = &self.class_weights
            && w.iter().any(|v| !(*v >= 0.0 && v.is_finite()))
        {
            return Err(Error::invalid("class_weights", format!("{w:?}"), "finite weights ≥ 0"));
        }
        self.optimizer.validate()?;
        self.schedule.validate()
    }
}

/// What happened in one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 0.
    pub epoch: usize,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation loss, when validated.
    pub val_loss: Option<f64>,
    /// Validation accuracy, for classification.
    pub val_accuracy: Option<f64>,
    /// Wall time of the epoch, seconds.
    pub seconds: f64,
    /// Training samples per second in this epoch (forward, backward and update).
    pub samples_per_second: f64,
}

/// The record of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One record per epoch run.
    pub epochs: Vec<EpochRecord>,
    /// The epoch with the best monitored figure (the last epoch without validation).
    pub best_epoch: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

/// Evaluation of a network on a dataset.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean loss (unweighted).
    pub loss: f64,
    /// Class probabilities `[n, classes]`, for classification.
    pub probabilities: Option<Array2<f64>>,
    /// Predicted classes (first maximum), for classification.
    pub predictions: Option<Vec<usize>>,
    /// Accuracy, for classification.
    pub accuracy: Option<f64>,
}

fn loss_of(output: &Tensor, targets: &Targets, class_weights: Option<&[f32]>) -> Result<Tensor> {
    match targets {
        Targets::Classes(c) => weighted_cross_entropy(output, c, class_weights),
        Targets::Images(t) => binary_cross_entropy_with_logits(output, t),
    }
}

/// Runs `network` over `data` in evaluation mode, in batches of `batch_size`.
pub fn evaluate(network: &dyn Network, data: &dyn Dataset, batch_size: usize) -> Result<Evaluation> {
    if data.is_empty() || batch_size == 0 {
        return Err(Error::invalid("data", data.len(), "a non-empty dataset and batch_size ≥ 1"));
    }
    let device = network.params().device().clone();
    let indices: Vec<usize> = (0..data.len()).collect();
    let (mut total, mut probs) = (0.0, Vec::<Array2<f32>>::new());
    for chunk in indices.chunks(batch_size) {
        let batch = data.batch(chunk, None, &device)?;
        let out = network.forward(&batch.inputs, Mode::Eval)?;
        total += loss_of(&out, &batch.targets, None)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        if let Targets::Classes(_) = batch.targets {
            probs.push(tensor_to_array2(&candle_nn::ops::softmax_last_dim(&out)?)?);
        }
    }
    let loss = total / data.len() as f64;
    if probs.is_empty() {
        return Ok(Evaluation { loss, probabilities: None, predictions: None, accuracy: None });
    }
    let views: Vec<_> = probs.iter().map(|p| p.view()).collect();
    let p = ndarray::concatenate(Axis(0), &views)
        .map_err(|e| Error::invalid("batches", e, "equal class counts"))?
        .mapv(f64::from);
    let predictions = argmax_rows(p.view());
    let accuracy =
        data.labels().map(|l| l.iter().zip(&predictions).filter(|(a, b)| a == b).count() as f64 / l.len() as f64);
    Ok(Evaluation { loss, probabilities: Some(p), predictions: Some(predictions), accuracy })
}

/// Trains a network; see the module documentation.
pub struct Trainer<'a> {
    config: TrainConfig,
    progress: &'a dyn Progress,
    on_epoch: Option<&'a (dyn Fn(&EpochRecord) + Sync)>,
}

impl<'a> Trainer<'a> {
    /// A trainer with these settings, reporting no progress.
    pub fn new(config: TrainConfig) -> Self {
        Trainer { config, progress: &nanoml_core::NoProgress, on_epoch: None }
    }

    /// Reports every training batch (stage `"train"`, total = all batches of all epochs).
    pub fn progress(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Calls `f` with each epoch's record as soon as the epoch ends.
    pub fn on_epoch(mut self, f: &'a (dyn Fn(&EpochRecord) + Sync)) -> Self {
        self.on_epoch = Some(f);
        self
    }

    fn class_weights(&self, data: &dyn Dataset) -> Result<Option<Vec<f32>>> {
        let Some(labels) = data.labels() else { return Ok(None) };
        let classes = labels.iter().max().map_or(0, |m| m + 1);
        Ok(match &self.config.class_weights {
            ClassWeights::Uniform => None,
            ClassWeights::Given(w) => {
                if w.len() < classes {
                    return Err(Error::invalid(
                        "class_weights",
                        format!("{} weights", w.len()),
                        format!("at least {classes}, one per class"),
                    ));
                }
                Some(w.clone())
            }
            ClassWeights::Balanced => {
                let mut counts = vec![0usize; classes];
                for &l in labels {
                    counts[l] += 1;
                }
                let present = counts.iter().filter(|&&c| c > 0).count();
                let n = labels.len() as f64;
                Some(
                    counts
                        .iter()
                        .map(|&c| if c == 0 { 0.0 } else { (n / (present as f64 * c as f64)) as f32 })
                        .collect(),
                )
            }
        })
    }

    /// Trains `network` on `train`, validating on `validation` after each epoch.
    pub fn fit(&self, network: &dyn Network, train: &dyn Dataset, validation: Option<&dyn Dataset>) -> Result<History> {
        let cfg = &self.config;
        cfg.validate()?;
        if train.is_empty() {
            return Err(Error::invalid("train", "an empty dataset", "at least one sample"));
        }
        let weights = self.class_weights(train)?;
        let device = network.params().device().clone();
        let mut optimizer = cfg.optimizer.start(network.params().vars())?;
        let full_steps = train.len().div_ceil(cfg.batch_size);
        let steps = cfg.steps_per_epoch.unwrap_or(full_steps);
        let counter = ProgressCounter::new(self.progress, "train", Some((steps * cfg.epochs) as u64));
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut cursor = order.len();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
        let mut history = History { epochs: vec![], best_epoch: 0, stopped_early: false };
        let mut best: Option<(f64, std::collections::HashMap<String, Tensor>)> = None;
        let mut step_index = 0u64;
        for epoch in 0..cfg.epochs {
            let start = Instant::now();
            let lr = cfg.schedule.rate(cfg.learning_rate, epoch, cfg.epochs);
            let (mut loss_sum, mut seen) = (0.0, 0usize);
            for _ in 0..steps {
                if cursor >= order.len() {
                    rng.shuffle(&mut order);
                    cursor = 0;
                }
                let end = (cursor + cfg.batch_size).min(order.len());
                let indices = &order[cursor..end];
                cursor = end;
                let step_seed = derive_seed(cfg.seed, step_index);
                step_index += 1;
                let batch = train.batch(indices, Some(step_seed), &device)?;
                let out = network.forward(&batch.inputs, Mode::Train { seed: step_seed })?;
                let loss = loss_of(&out, &batch.targets, weights.as_deref())?;
                let value = loss.to_scalar::<f32>()? as f64;
                if !value.is_finite() {
                    return Err(Error::undefined(
                        "training loss",
                        format!("it became {value} in epoch {epoch}; lower the learning rate"),
                    ));
                }
                optimizer.step(&loss.backward()?, lr)?;
                loss_sum += value * indices.len() as f64;
                seen += indices.len();
                counter.advance(1);
            }
            let train_seconds = start.elapsed().as_secs_f64();
            let eval = validation.map(|v| evaluate(network, v, cfg.batch_size)).transpose()?;
            let record = EpochRecord {
                epoch,
                learning_rate: lr,
                train_loss: loss_sum / seen.max(1) as f64,
                val_loss: eval.as_ref().map(|e| e.loss),
                val_accuracy: eval.as_ref().and_then(|e| e.accuracy),
                seconds: start.elapsed().as_secs_f64(),
                samples_per_second: seen as f64 / train_seconds.max(1e-9),
            };
            if let Some(f) = self.on_epoch {
                f(&record);
            }
            let score = match (cfg.monitor, &eval) {
                (_, None) => None,
                (Monitor::ValLoss, Some(e)) => Some(e.loss),
                (Monitor::ValAccuracy, Some(e)) => Some(-e.accuracy.ok_or_else(|| {
                    Error::invalid("monitor", "val_accuracy", "val_loss for datasets without class labels")
                })?),
            };
            history.epochs.push(record);
            match score {
                None => history.best_epoch = epoch,
                Some(s) if best.as_ref().is_none_or(|(b, _)| s < *b) => {
                    history.best_epoch = epoch;
                    best = Some((s, if cfg.keep_best { network.params().snapshot()? } else { Default::default() }));
                }
                Some(_) => {
                    if cfg.patience.is_some_and(|p| epoch - history.best_epoch >= p) {
                        history.stopped_early = true;
                        break;
                    }
                }
            }
        }
        if cfg.keep_best
            && let Some((_, snapshot)) = best
            && history.best_epoch + 1 != history.epochs.len()
        {
            network.params().restore(&snapshot, "best epoch")?;
        }
        Ok(history)
    }
}
