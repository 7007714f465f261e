//! The AFM screening workflow: rejections with their reasons, reports, and the shipped
//! networks on freshly simulated films.

use nanoml::core::resample::resize_nearest;
use nanoml::core::{NoProgress, Xoshiro256PlusPlus, derive_seed};
use nanoml::models::metrics;
use nanoml::models::pretrained::{CLASSES, screening_classifier};
use nanoml::models::{Device, tensor::tensor_to_array2};
use nanoml::rabani::dataset::{Augmentation, TrainingSet};
use nanoml::screening::{Reason, Screener, ScreeningConfig, confidence_roc, overlay, write_csv, write_json};
use ndarray::{Array2, Axis};

fn screener() -> Screener {
    Screener::pretrained(ScreeningConfig::default(), &Device::Cpu).unwrap()
}

/// A 256-pixel three-level height map of random islands (no network needed to make it).
fn islands(seed: u64) -> Array2<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let small = Array2::from_shape_fn((64, 64), |_| if rng.bernoulli(0.3) { 2.0 } else { 0.0 });
    resize_nearest(small.view(), (256, 256)).unwrap().mapv(|v| v + 0.01 * rng.normal())
}

#[test]
fn bad_scans_are_rejected_with_the_right_reason() {
    let s = screener();
    let r = s.screen_heights("wide", &Array2::zeros((256, 300)));
    assert_eq!(r.reasons, vec![Reason::IncompleteScan { rows: 256, cols: 300 }]);
    let r = s.screen_heights("tiny", &Array2::zeros((100, 100)));
    assert_eq!(r.reasons, vec![Reason::TooSmall { side: 100, window: 200 }]);
    let mut nan = islands(1);
    nan[[3, 3]] = f64::NAN;
    assert!(matches!(s.screen_heights("nan", &nan).reasons[..], [Reason::Unprocessable { .. }]));
    assert!(matches!(s.screen_heights("flat", &Array2::ones((256, 256))).reasons[..], [Reason::Unprocessable { .. }]));
    let mut saturated = islands(2);
    for r in (0..256).step_by(10) {
        saturated.row_mut(r).fill(5.0);
    }
    let r = s.screen_heights("saturated", &saturated);
    assert!(matches!(r.reasons[..], [Reason::Noisy { .. }]), "{:?}", r.reasons);
    assert!(!r.accepted);
}

#[test]
fn a_directory_run_survives_bad_files_and_writes_reports() {
    let dir = std::env::temp_dir().join(format!("nanoml-screen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("corrupt.gwy"), b"GWYPnot really").unwrap();
    std::fs::write(dir.join("notes.txt"), b"hello").unwrap();
    let paths = vec![dir.join("corrupt.gwy"), dir.join("notes.txt"), dir.join("missing.sxm")];
    let s = screener();
    let results = s.screen_files(&paths, &NoProgress);
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| !r.accepted && matches!(r.reasons[..], [Reason::Unreadable { .. }])), "{results:?}");
    let mut all = results;
    all.push(s.screen_heights("islands", &islands(3)));
    assert!(all[3].windows == 49, "256-pixel scans have 7 × 7 windows at stride 8");
    write_json(&all, &dir.join("r.json")).unwrap();
    write_csv(&all, &dir.join("r.csv")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 4);
    assert_eq!(json[0]["reasons"][0]["reason"], "unreadable");
    let csv = std::fs::read_to_string(dir.join("r.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    assert!(csv.starts_with("name,accepted,class,p_liquid"));
    // The denoising path (off by default) classifies the same 49 windows.
    let denoising =
        Screener::pretrained(ScreeningConfig { denoise: true, ..Default::default() }, &Device::Cpu).unwrap();
    let d = denoising.screen_heights("islands", &islands(3));
    assert_eq!((d.windows, d.mean_probabilities.len()), (49, 5));
    assert_ne!(d.mask, all[3].mask, "the denoiser changed nothing");
    // ROC of the confidence rule: the classified scan scores above the unreadable ones.
    let roc = confidence_roc(&all, &[false, false, false, true]).unwrap();
    assert_eq!(roc.auc(), 1.0);
    assert!(confidence_roc(&all, &[true]).is_err());
    let picture = overlay(&all[3], 8, 200).unwrap();
    assert_eq!(picture.dim(), (256, 256, 3));
    assert!(overlay(&all[0], 8, 200).is_none());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn settings_are_checked() {
    let bad = [
        ScreeningConfig { stride: 0, ..Default::default() },
        ScreeningConfig { window: 4, ..Default::default() },
        ScreeningConfig { min_confidence: 1.5, ..Default::default() },
        ScreeningConfig { max_class_std: f64::NAN, ..Default::default() },
    ];
    for c in bad {
        assert!(Screener::pretrained(c, &Device::Cpu).is_err());
    }
}

/// The shipped classifier on freshly simulated, held-out films (seed never used in
/// training): at least 90 % right.
#[test]
fn shipped_classifier_is_accurate_on_fresh_films() {
    let set = TrainingSet { augmentation: Augmentation::none(), ..TrainingSet::default() };
    let data = set.generate(150, false, 10_000, derive_seed(4242, 1), &NoProgress).unwrap();
    let images = data.images().mapv(f32::from);
    let labels: Vec<usize> = data.samples.iter().map(|s| s.category.class_index().unwrap()).collect();
    let net = screening_classifier(&Device::Cpu).unwrap();
    let mut predictions = vec![];
    for start in (0..labels.len()).step_by(50) {
        let views: Vec<_> = (start..(start + 50).min(labels.len())).map(|i| images.index_axis(Axis(0), i)).collect();
        let p = tensor_to_array2(&net.probabilities(&net.prepare(&views).unwrap()).unwrap()).unwrap().mapv(f64::from);
        predictions.extend(metrics::argmax_rows(p.view()));
    }
    let accuracy = metrics::accuracy(&labels, &predictions).unwrap();
    let confusion = metrics::confusion_matrix(&labels, &predictions, CLASSES.len()).unwrap();
    assert!(accuracy >= 0.9, "accuracy {accuracy} on {} films; confusion\n{confusion}", labels.len());
}
