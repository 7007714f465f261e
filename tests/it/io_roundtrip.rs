//! Masks and label images survive NPY and PNG files unchanged.

use nanoml::core::io::{npy, png};
use nanoml::morphology::{Connectivity, label};
use ndarray::Array2;

#[test]
fn mask_and_labels_roundtrip_through_npy_and_png() {
    let dir = std::env::temp_dir().join(format!("nanoml-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = nanoml::core::Xoshiro256PlusPlus::seed_from_u64(9);
    let mask = Array2::from_shape_fn((37, 53), |_| rng.bernoulli(0.4));
    npy::write(dir.join("mask.npy"), &mask).unwrap();
    let back: Array2<bool> = npy::read(dir.join("mask.npy")).unwrap();
    assert_eq!(back, mask);

    let labels = label(&back, Connectivity::Eight).unwrap();
    assert!(labels.count < 65536);
    let as_u16 = labels.image.mapv(|l| l as u16);
    png::write_gray16(dir.join("labels.png"), &as_u16).unwrap();
    assert_eq!(png::read_gray(dir.join("labels.png")).unwrap(), png::GrayImage::U16(as_u16));
    std::fs::remove_dir_all(&dir).unwrap();
}
