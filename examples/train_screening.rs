//! Trains the AFM-screening classifier and denoiser on freshly simulated Rabani films and
//! evaluates them on a held-out simulated set (Gordon et al., Nano Lett. 2020).
//!
//! ```text
//! cargo run --release --example train_screening -- [--out DIR] [--config small|paper]
//!     [--train N] [--val N] [--epochs E] [--denoiser-train N] [--denoiser-epochs E] [--seed S]
//!     [--device cpu|cuda|cuda:N|metal|auto]
//! ```
//!
//! The shipped weights (`crates/models/weights/`) were made with
//! `cargo run --release --example train_screening -- --out crates/models/weights` (the
//! defaults below; everything is seeded, so the command reproduces them on any machine up
//! to floating-point summation order).
//!
//! 1. Training films (seed S) and held-out validation films (seed S + 1): Rabani
//!    simulations with pyRabani's parameter ranges (L = 128, early stopping), labelled by
//!    the legacy Euler rule, unclassified films dropped, upscaled to 200×200 and flattened
//!    to two levels (training films are augmented once by the generator: flips, quarter
//!    turns, shifts, speckle).
//! 2. The classifier trains with balanced class weights (the paper's setting), Adam, fresh
//!    flips, quarter turns and circular shifts each epoch, and keeps the epoch with the
//!    lowest validation loss.
//! 3. The denoiser trains on 100×100 crops of the clean training films corrupted with 40 %
//!    pepper noise (the reference's autoencoder noise).
//! 4. Report: accuracy, balanced accuracy, per-class F1, AUROC and the confusion matrix on
//!    the validation set; the denoiser's pixel accuracy on 40 % pepper noise; and the
//!    classifier's accuracy on noisy windows with and without the denoiser. Written to
//!    `DIR/report.json` beside the checkpoints.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program: printing is its job

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nanoml::core::{Progress, ProgressUpdate, Xoshiro256PlusPlus, derive_seed};
use nanoml::models::augment::Augment;
use nanoml::models::metrics::{self, Average, ClassReport};
use nanoml::models::optim::{Optimizer, Schedule};
use nanoml::models::train::{ClassWeights, Denoising, EpochRecord, LabelledImages, TrainConfig, Trainer};
use nanoml::models::{Classifier, ClassifierConfig, Denoiser, DenoiserConfig, DeviceChoice, Network, checkpoint};
use nanoml::rabani::Category;
use nanoml::rabani::dataset::{Augmentation, TrainingSet};
use ndarray::{Array2, Array3, Axis, s};

struct Args {
    out: PathBuf,
    config: String,
    train: usize,
    val: usize,
    epochs: usize,
    denoiser_train: usize,
    denoiser_epochs: usize,
    seed: u64,
    classifier: Option<PathBuf>,
    device: DeviceChoice,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        out: PathBuf::from("target/nanoml-out/screening-weights"),
        config: "small".into(),
        train: 4000,
        val: 2000,
        epochs: 10,
        denoiser_train: 1500,
        denoiser_epochs: 6,
        seed: 2020,
        classifier: None,
        device: DeviceChoice::Cpu,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(value()?),
            "--config" => a.config = value()?,
            "--train" => a.train = value()?.parse()?,
            "--val" => a.val = value()?.parse()?,
            "--epochs" => a.epochs = value()?.parse()?,
            "--denoiser-train" => a.denoiser_train = value()?.parse()?,
            "--denoiser-epochs" => a.denoiser_epochs = value()?.parse()?,
            "--seed" => a.seed = value()?.parse()?,
            "--classifier" => a.classifier = Some(PathBuf::from(value()?)),
            "--device" => a.device = value()?.parse()?,
            other => bail!("unknown argument {other:?}; see the example's documentation"),
        }
    }
    Ok(a)
}

fn bar(label: &'static str) -> impl Progress {
    move |u: &ProgressUpdate<'_>| {
        if u.done.is_multiple_of(8) || Some(u.done) == u.total {
            eprint!("\r  {label}: {} / {}   ", u.done, u.total.unwrap_or(0));
        }
    }
}

fn simulate(count: usize, seed: u64, augment: bool) -> Result<(Array3<f32>, Vec<usize>)> {
    let set = TrainingSet {
        augmentation: if augment { Augmentation::default() } else { Augmentation::none() },
        ..TrainingSet::default()
    };
    let data = set.generate(count, false, 50 * count as u64 + 1000, seed, &bar("films"))?;
    eprintln!();
    let images = data.images().mapv(f32::from);
    let labels = data.samples.iter().map(|s| s.category.class_index().unwrap_or(0)).collect();
    Ok((images, labels))
}

fn class_counts(labels: &[usize]) -> String {
    Category::ALL[..5]
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} {}", labels.iter().filter(|&&l| l == i).count()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Classifier probabilities for 200-pixel windows, in batches.
fn classify(net: &Classifier, windows: &Array3<f32>) -> Result<Array2<f64>> {
    let mut rows = vec![];
    for start in (0..windows.len_of(Axis(0))).step_by(64) {
        let end = (start + 64).min(windows.len_of(Axis(0)));
        let views: Vec<_> = (start..end).map(|i| windows.index_axis(Axis(0), i)).collect();
        let p = net.probabilities(&net.prepare(&views)?)?;
        rows.push(nanoml::models::tensor::tensor_to_array2(&p)?.mapv(f64::from));
    }
    let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
    Ok(ndarray::concatenate(Axis(0), &views)?)
}

/// Rounded denoiser output for 200-pixel windows, in batches.
fn denoise(net: &Denoiser, windows: &Array3<f32>) -> Result<Array3<f32>> {
    let mut out = windows.clone();
    for start in (0..windows.len_of(Axis(0))).step_by(32) {
        let end = (start + 32).min(windows.len_of(Axis(0)));
        let x = nanoml::models::tensor::array4_to_tensor(
            windows.slice(s![start..end, .., ..]).insert_axis(Axis(1)),
            net.params().device(),
        )?;
        let y = nanoml::models::tensor::tensor_to_array4(&net.denoise(&x)?)?;
        out.slice_mut(s![start..end, .., ..]).assign(&y.index_axis(Axis(1), 0).mapv(|v| v.round()));
    }
    Ok(out)
}

fn main() -> Result<()> {
    // Reuse the networks' freed activations instead of faulting in fresh pages each batch.
    nanoml::models::keep_freed_memory();
    let args = parse()?;
    let config = match args.config.as_str() {
        "small" => ClassifierConfig::small(),
        "paper" => ClassifierConfig::paper(),
        other => bail!("--config must be small or paper, not {other:?}"),
    };
    let denoiser_config = if args.config == "paper" { DenoiserConfig::paper() } else { DenoiserConfig::small() };
    std::fs::create_dir_all(&args.out)?;
    let device = args.device.open()?;
    println!("Device: {}", nanoml::models::device::device_name(&device));
    let t0 = Instant::now();

    println!("Simulating {} training and {} held-out validation films (L = 128, 200×200) …", args.train, args.val);
    let (train_x, train_y) = simulate(args.train, args.seed, true)?;
    let (val_x, val_y) = simulate(args.val, args.seed + 1, false)?;
    println!("  training:   {}", class_counts(&train_y));
    println!("  validation: {}", class_counts(&val_y));
    println!("  {:.0} s", t0.elapsed().as_secs_f64());

    // The classifier sees windows resized to its input size.
    let side = config.input_size;
    let resize = |x: &Array3<f32>| -> Result<Array3<f32>> {
        let mut out = Array3::zeros((x.len_of(Axis(0)), side, side));
        for (mut o, i) in out.outer_iter_mut().zip(x.outer_iter()) {
            o.assign(&nanoml::core::resample::resize_bilinear(i, (side, side))?);
        }
        Ok(out)
    };
    let geometry = Augment { flips: true, quarter_turns: true, circular_shift: true, ..Default::default() };
    let train_set = LabelledImages::new(resize(&train_x)?, train_y.clone(), geometry.clone())?;
    let val_set = LabelledImages::new(resize(&val_x)?, val_y.clone(), Augment::default())?;
    let classifier = Classifier::new(&config, derive_seed(args.seed, 1), &device)?;
    println!(
        "\nTraining the {} classifier ({} parameters, {side}×{side} input) for {} epochs …",
        args.config,
        classifier.params().count(),
        args.epochs
    );
    let print_epoch = |e: &EpochRecord| {
        eprint!("\r");
        println!(
            "  epoch {:>2}: lr {:.1e}, train loss {:.4}, val loss {:.4}, val accuracy {:.2} % ({:.0} s, {:.1} images/s)",
            e.epoch,
            e.learning_rate,
            e.train_loss,
            e.val_loss.unwrap_or(f64::NAN),
            100.0 * e.val_accuracy.unwrap_or(f64::NAN),
            e.seconds,
            e.samples_per_second
        );
    };
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch_size: 32,
        learning_rate: 2e-3,
        optimizer: Optimizer::adam(),
        schedule: Schedule::Cosine { min_lr: 1e-4 },
        class_weights: ClassWeights::Balanced,
        seed: derive_seed(args.seed, 2),
        ..TrainConfig::default()
    };
    let progress = bar("batches");
    let (classifier, history) = match &args.classifier {
        // A classifier trained before by this command (same seed, same films): only the
        // denoiser is trained.
        Some(dir) => {
            let trained: Classifier = checkpoint::load(&dir.join("classifier"), &device)?;
            println!("  (loaded from {} instead of training)", dir.display());
            (trained, None)
        }
        None => {
            let h = Trainer::new(cfg).progress(&progress).on_epoch(&print_epoch).fit(
                &classifier,
                &train_set,
                Some(&val_set),
            )?;
            (classifier, Some(h))
        }
    };
    checkpoint::save(&classifier, &args.out.join("classifier"))?;

    let probs = classify(&classifier, &val_x)?;
    let pred = metrics::argmax_rows(probs.view());
    let accuracy = metrics::accuracy(&val_y, &pred)?;
    let balanced = metrics::balanced_accuracy(&val_y, &pred, 5)?;
    let report = ClassReport::new(&val_y, &pred, 5)?;
    let auroc = metrics::roc_auc_ovr(&val_y, probs.view(), Average::Macro).ok();
    let confusion = metrics::confusion_matrix(&val_y, &pred, 5)?;
    println!("\nHeld-out validation ({} films), best epoch {:?}:", val_y.len(), history.as_ref().map(|h| h.best_epoch));
    println!(
        "  accuracy {:.2} %, balanced accuracy {:.2} %, macro F1 {:.3}, AUROC (one-vs-rest, macro) {}",
        100.0 * accuracy,
        100.0 * balanced,
        report.f1(Average::Macro),
        auroc.map_or("undefined (a class is missing)".into(), |a| format!("{a:.4}"))
    );
    println!("  confusion (rows: truth liquid, hole, cellular, labyrinth, island):");
    for row in confusion.outer_iter() {
        println!("    {}", row.iter().map(|v| format!("{v:>5}")).collect::<String>());
    }

    // Denoiser on crops of the clean training films.
    let crop = 100;
    let n_crops = args.denoiser_train.min(4 * train_x.len_of(Axis(0)));
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(derive_seed(args.seed, 3));
    let mut crops = Array3::zeros((n_crops, crop, crop));
    for (k, mut c) in crops.outer_iter_mut().enumerate() {
        let img = train_x.index_axis(Axis(0), k % train_x.len_of(Axis(0)));
        let (r, q) = (rng.index(200 - crop + 1), rng.index(200 - crop + 1));
        c.assign(&img.slice(s![r..r + crop, q..q + crop]));
    }
    let pepper = Augment { pepper: 0.4, ..Default::default() };
    let den_train = Denoising::new(crops, Augment { flips: true, ..Default::default() }, pepper.clone(), 1)?;
    let den_val_clean = val_x.slice(s![..val_x.len_of(Axis(0)).min(200), .., ..]).to_owned();
    let den_val = Denoising::new(den_val_clean.clone(), Augment::default(), pepper.clone(), derive_seed(args.seed, 4))?;
    let denoiser = Denoiser::new(&denoiser_config, derive_seed(args.seed, 5), &device)?;
    println!(
        "\nTraining the {} denoiser ({} parameters) on {n_crops} {crop}×{crop} crops, 40 % pepper noise, {} epochs …",
        args.config,
        denoiser.params().count(),
        args.denoiser_epochs
    );
    let cfg = TrainConfig {
        epochs: args.denoiser_epochs,
        batch_size: 16,
        learning_rate: 3e-3,
        schedule: Schedule::Cosine { min_lr: 2e-4 },
        class_weights: ClassWeights::Uniform,
        seed: derive_seed(args.seed, 6),
        ..TrainConfig::default()
    };
    let print_den = |e: &EpochRecord| {
        eprint!("\r");
        println!(
            "  epoch {:>2}: train loss {:.4}, val loss {:.4} ({:.0} s, {:.1} images/s)",
            e.epoch,
            e.train_loss,
            e.val_loss.unwrap_or(f64::NAN),
            e.seconds,
            e.samples_per_second
        );
    };
    Trainer::new(cfg).progress(&progress).on_epoch(&print_den).fit(&denoiser, &den_train, Some(&den_val))?;
    checkpoint::save(&denoiser, &args.out.join("denoiser"))?;

    // Noisy validation windows: 40 % pepper noise.
    let noisy = pepper.apply_batch(&val_x, derive_seed(args.seed, 7))?;
    let cleaned = denoise(&denoiser, &noisy)?;
    let pixel_accuracy =
        |a: &Array3<f32>| a.iter().zip(val_x.iter()).filter(|(x, y)| x == y).count() as f64 / a.len() as f64;
    let (noisy_px, cleaned_px) = (pixel_accuracy(&noisy), pixel_accuracy(&cleaned));
    let acc_noisy = metrics::accuracy(&val_y, &metrics::argmax_rows(classify(&classifier, &noisy)?.view()))?;
    let acc_cleaned = metrics::accuracy(&val_y, &metrics::argmax_rows(classify(&classifier, &cleaned)?.view()))?;
    println!("\n40 % pepper noise on the {} validation films:", val_y.len());
    println!("  pixel accuracy: noisy {:.2} %, denoised {:.2} %", 100.0 * noisy_px, 100.0 * cleaned_px);
    println!(
        "  classifier accuracy: on noisy windows {:.2} %, on denoised windows {:.2} %",
        100.0 * acc_noisy,
        100.0 * acc_cleaned
    );

    let doc = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "seed": args.seed,
        "config": args.config,
        "train_films": train_y.len(),
        "validation_films": val_y.len(),
        "classifier": {
            "parameters": classifier.params().count(),
            "history": history,
            "accuracy": accuracy,
            "balanced_accuracy": balanced,
            "macro_f1": report.f1(Average::Macro),
            "per_class_f1": report.f1,
            "auroc_ovr_macro": auroc,
            "confusion": confusion.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
        },
        "denoiser": {
            "parameters": denoiser.params().count(),
            "pepper_fraction": 0.4,
            "pixel_accuracy_noisy": noisy_px,
            "pixel_accuracy_denoised": cleaned_px,
            "classifier_accuracy_noisy": acc_noisy,
            "classifier_accuracy_denoised": acc_cleaned,
        },
        "seconds": t0.elapsed().as_secs_f64(),
    });
    std::fs::write(args.out.join("report.json"), serde_json::to_string_pretty(&doc)?)?;
    println!(
        "\nWrote {}/{{classifier,denoiser}}.{{safetensors,json}} and report.json in {:.0} s.",
        args.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
