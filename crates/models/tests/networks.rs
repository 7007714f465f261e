//! The networks' shapes, parameter counts, checkpoints and errors.

use candle_core::{DType, Device, Tensor};
use nanoml_models::nn::Mode;
use nanoml_models::{Classifier, ClassifierConfig, Denoiser, DenoiserConfig, Error, Network, checkpoint};

#[test]
fn paper_configurations_have_the_published_parameter_counts() {
    let classifier = Classifier::new(&ClassifierConfig::paper(), 0, &Device::Cpu).unwrap();
    assert_eq!(classifier.params().count(), 36_258_789);
    let denoiser = Denoiser::new(&DenoiserConfig::paper(), 0, &Device::Cpu).unwrap();
    assert_eq!(denoiser.params().count(), 47_425);
    let shapes = classifier.params().shapes();
    assert_eq!(shapes[8], ("dense0.weight".to_string(), vec![256, 141_376]));
}

#[test]
fn small_networks_map_shapes_and_stay_small() {
    let c = Classifier::new(&ClassifierConfig::small(), 1, &Device::Cpu).unwrap();
    assert_eq!(c.params().count(), 19_261);
    let x = Tensor::zeros((3, 1, 100, 100), DType::F32, &Device::Cpu).unwrap();
    let p = c.probabilities(&x).unwrap();
    assert_eq!(p.dims(), &[3, 5]);
    let sums = p.sum(1).unwrap().to_vec1::<f32>().unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));

    let d = Denoiser::new(&DenoiserConfig::small(), 1, &Device::Cpu).unwrap();
    assert_eq!(d.params().count(), 2_625);
    let y = d.denoise(&Tensor::zeros((2, 1, 200, 200), DType::F32, &Device::Cpu).unwrap()).unwrap();
    assert_eq!(y.dims(), &[2, 1, 200, 200]);
}

#[test]
fn paper_classifier_runs_forward_at_200_pixels() {
    let c = Classifier::new(&ClassifierConfig::paper(), 2, &Device::Cpu).unwrap();
    let x = Tensor::ones((1, 1, 200, 200), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(c.forward(&x, Mode::Train { seed: 1 }).unwrap().dims(), &[1, 5]);
}

#[test]
fn wrong_inputs_and_configurations_are_errors() {
    let c = Classifier::new(&ClassifierConfig::small(), 1, &Device::Cpu).unwrap();
    let wrong = Tensor::zeros((1, 1, 64, 64), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(c.forward(&wrong, Mode::Eval), Err(Error::InvalidParameter { name: "input", .. })));
    let d = Denoiser::new(&DenoiserConfig::small(), 1, &Device::Cpu).unwrap();
    let odd = Tensor::zeros((1, 1, 201, 201), DType::F32, &Device::Cpu).unwrap();
    assert!(d.forward(&odd, Mode::Eval).is_err());
    let tiny = ClassifierConfig { input_size: 10, ..ClassifierConfig::paper() };
    assert!(matches!(Classifier::new(&tiny, 0, &Device::Cpu), Err(Error::InvalidParameter { name: "input_size", .. })));
    let unbalanced = DenoiserConfig { encoder: vec![8], decoder: vec![8, 8] };
    assert!(Denoiser::new(&unbalanced, 0, &Device::Cpu).is_err());
}

#[test]
fn checkpoints_rebuild_the_network_and_refuse_another_kind() {
    let dir = std::env::temp_dir().join(format!("nanoml-ckpt-{}", std::process::id()));
    let c = Classifier::new(&ClassifierConfig::small(), 9, &Device::Cpu).unwrap();
    checkpoint::save(&c, &dir.join("clf")).unwrap();
    let back: Classifier = checkpoint::load(&dir.join("clf"), &Device::Cpu).unwrap();
    assert_eq!(back.config(), c.config());
    let x = Tensor::rand(0f32, 1f32, (2, 1, 100, 100), &Device::Cpu).unwrap();
    let a = c.probabilities(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = back.probabilities(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a, b);
    let err = checkpoint::load::<Denoiser>(&dir.join("clf"), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("not a denoiser"), "{err}");
    assert!(matches!(checkpoint::load::<Classifier>(&dir.join("missing"), &Device::Cpu), Err(Error::Io { .. })));
    std::fs::remove_dir_all(dir).unwrap();
}
