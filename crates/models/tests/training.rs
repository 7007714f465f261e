//! The training loop on small, learnable problems.

use candle_core::Device;
use nanoml_core::Xoshiro256PlusPlus;
use nanoml_models::augment::Augment;
use nanoml_models::nn::Padding;
use nanoml_models::optim::{Optimizer, Schedule};
use nanoml_models::train::{
    ClassWeights, Dataset, Denoising, LabelledImages, Monitor, Targets, TrainConfig, Trainer, evaluate,
};
use nanoml_models::{Classifier, ClassifierConfig, Denoiser, DenoiserConfig, Error};
use ndarray::Array3;

/// Stripes along rows (0), along columns (1) or checkerboards (2), with random period,
/// phase and pixel noise.
fn stripes(n: usize, seed: u64) -> (Array3<f32>, Vec<usize>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut images = Array3::zeros((n, 16, 16));
    let mut labels = vec![];
    for i in 0..n {
        let class = i % 3;
        let period = 2 + rng.index(3);
        let phase = rng.index(period);
        for r in 0..16 {
            for c in 0..16 {
                let on = match class {
                    0 => ((r + phase) / period).is_multiple_of(2),
                    1 => ((c + phase) / period).is_multiple_of(2),
                    _ => ((r + phase) / period + c / period).is_multiple_of(2),
                };
                images[[i, r, c]] = on as u8 as f32 + 0.1 * rng.normal() as f32;
            }
        }
        labels.push(class);
    }
    (images, labels)
}

fn tiny() -> ClassifierConfig {
    ClassifierConfig {
        input_size: 16,
        blocks: vec![vec![8], vec![8]],
        padding: Padding::Same,
        block_dropout: 0.0,
        global_pool: true,
        dense: vec![],
        dense_dropout: 0.0,
        classes: 3,
    }
}

fn config() -> TrainConfig {
    TrainConfig { epochs: 12, batch_size: 16, learning_rate: 0.01, seed: 4, ..TrainConfig::default() }
}

#[test]
fn a_classifier_learns_stripes_and_the_run_is_reproducible() {
    let (x, y) = stripes(96, 1);
    let (vx, vy) = stripes(48, 2);
    let flips = Augment { flips: true, ..Default::default() };
    let train = LabelledImages::new(x, y, flips).unwrap();
    let val = LabelledImages::new(vx, vy, Augment::default()).unwrap();
    let run = || {
        let net = Classifier::new(&tiny(), 3, &Device::Cpu).unwrap();
        let history = Trainer::new(config()).fit(&net, &train, Some(&val)).unwrap();
        (net, history)
    };
    let (net, history) = run();
    let first = &history.epochs[0];
    let best = &history.epochs[history.best_epoch];
    assert!(best.val_accuracy.unwrap() >= 0.95, "{history:#?}");
    assert!(best.val_loss.unwrap() < first.val_loss.unwrap() / 3.0, "{history:#?}");
    // keep_best restored the best epoch's parameters.
    let eval = evaluate(&net, &val, 7).unwrap();
    assert!((eval.loss - best.val_loss.unwrap()).abs() < 1e-5, "{} vs {:?}", eval.loss, best.val_loss);
    assert_eq!(eval.predictions.as_ref().unwrap().len(), 48);
    // Same seed, same run.
    let (_, again) = run();
    let losses = |h: &nanoml_models::train::History| h.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&history), losses(&again));
}

#[test]
fn early_stopping_ends_a_run_that_stops_improving() {
    let (x, y) = stripes(48, 5);
    let (vx, vy) = stripes(24, 6);
    let train = LabelledImages::new(x, y, Augment::default()).unwrap();
    let val = LabelledImages::new(vx, vy, Augment::default()).unwrap();
    let net = Classifier::new(&tiny(), 3, &Device::Cpu).unwrap();
    // A huge, decaying step size: progress stalls after the first epochs.
    let cfg = TrainConfig {
        epochs: 40,
        learning_rate: 0.5,
        optimizer: Optimizer::sgd_momentum(),
        schedule: Schedule::Exponential { gamma: 0.3 },
        monitor: Monitor::ValAccuracy,
        patience: Some(3),
        class_weights: ClassWeights::Uniform,
        ..config()
    };
    let history = Trainer::new(cfg).fit(&net, &train, Some(&val)).unwrap();
    assert!(history.stopped_early, "{history:#?}");
    assert_eq!(history.epochs.len(), history.best_epoch + 4);
}

#[test]
fn a_denoiser_learns_to_remove_pepper_noise() {
    // Discs of radius 3 to 5 on a 16×16 field.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let mut clean = Array3::zeros((64, 16, 16));
    for mut im in clean.outer_iter_mut() {
        let (cr, cc, rad) = (rng.uniform_in(3.0, 13.0), rng.uniform_in(3.0, 13.0), rng.uniform_in(3.0, 5.0));
        im.indexed_iter_mut().for_each(|((r, c), v)| {
            *v = (((r as f64 - cr).powi(2) + (c as f64 - cc).powi(2)) <= rad * rad) as u8 as f32
        });
    }
    let pepper = Augment { pepper: 0.3, ..Default::default() };
    let train =
        Denoising::new(clean.clone(), Augment { flips: true, ..Default::default() }, pepper.clone(), 1).unwrap();
    let val = Denoising::new(clean.slice(ndarray::s![..16, .., ..]).to_owned(), Augment::default(), pepper.clone(), 1)
        .unwrap();
    let net = Denoiser::new(&DenoiserConfig { encoder: vec![8], decoder: vec![8] }, 1, &Device::Cpu).unwrap();
    let before = evaluate(&net, &val, 16).unwrap().loss;
    let cfg = TrainConfig { epochs: 25, batch_size: 8, learning_rate: 0.01, ..TrainConfig::default() };
    let history = Trainer::new(cfg).fit(&net, &train, Some(&val)).unwrap();
    let after = evaluate(&net, &val, 16).unwrap().loss;
    assert!(after < 0.7 * before, "loss {before} → {after}: {history:#?}");
    // Pixel accuracy of the rounded output beats that of the noisy input.
    let batch = val.batch(&(0..16).collect::<Vec<_>>(), None, &Device::Cpu).unwrap();
    let Targets::Images(target) = &batch.targets else { panic!("image targets") };
    let target = target.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let noisy = batch.inputs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let cleaned = net.denoise(&batch.inputs).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let accuracy = |v: &[f32]| {
        v.iter().zip(&target).filter(|(a, b)| (a.round() - **b).abs() < 0.5).count() as f64 / target.len() as f64
    };
    assert!(
        accuracy(&cleaned) > accuracy(&noisy) + 0.03,
        "pixel accuracy {} (noisy {})",
        accuracy(&cleaned),
        accuracy(&noisy)
    );
    let bad = Augment { flips: true, ..pepper };
    assert!(Denoising::new(clean, Augment::default(), bad, 0).is_err());
}

#[test]
fn bad_settings_and_data_are_errors() {
    let (x, y) = stripes(6, 1);
    assert!(LabelledImages::new(x.clone(), y[..5].to_vec(), Augment::default()).is_err());
    let mut nan = x.clone();
    nan[[0, 0, 0]] = f32::NAN;
    assert!(matches!(
        LabelledImages::new(nan, y.clone(), Augment::default()),
        Err(Error::InvalidParameter { name: "images", .. })
    ));
    let data = LabelledImages::new(x, y, Augment::default()).unwrap();
    let net = Classifier::new(&tiny(), 0, &Device::Cpu).unwrap();
    for cfg in [
        TrainConfig { epochs: 0, ..config() },
        TrainConfig { batch_size: 0, ..config() },
        TrainConfig { learning_rate: f64::NAN, ..config() },
        TrainConfig { class_weights: ClassWeights::Given(vec![1.0]), ..config() },
    ] {
        assert!(Trainer::new(cfg).fit(&net, &data, None).is_err());
    }
    let huge = TrainConfig {
        learning_rate: 1e30,
        optimizer: Optimizer::Sgd { momentum: 0.0, nesterov: false, weight_decay: 0.0 },
        ..config()
    };
    assert!(matches!(Trainer::new(huge).fit(&net, &data, None), Err(Error::Undefined { .. })));
}
