//! Parity of resampling with `skimage.transform.resize(order=0|1, anti_aliasing=False,
//! mode="edge")`, fixtures from `tools/fixtures/core.py`.

use nanoml_core::resample::{resize_bilinear, resize_nearest};
use ndarray::Array2;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    shape_in: [usize; 2],
    shape_out: [usize; 2],
    image: Vec<f64>,
    order0: Vec<f64>,
    order1: Vec<f64>,
}

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

fn cases() -> Vec<Case> {
    let f: Fixture = serde_json::from_str(include_str!("fixtures/skimage_resize.json")).expect("fixture parses");
    f.cases
}

#[test]
fn bilinear_matches_scikit_image_order_1() {
    for c in cases() {
        let img = Array2::from_shape_vec((c.shape_in[0], c.shape_in[1]), c.image.clone()).unwrap();
        let out = resize_bilinear(img.view(), (c.shape_out[0], c.shape_out[1])).unwrap();
        for (a, b) in out.iter().zip(&c.order1) {
            assert!((a - b).abs() < 1e-12, "{:?} -> {:?}: {a} vs {b}", c.shape_in, c.shape_out);
        }
    }
}

#[test]
fn nearest_matches_scikit_image_order_0() {
    for c in cases() {
        let img = Array2::from_shape_vec((c.shape_in[0], c.shape_in[1]), c.image.clone()).unwrap();
        let out = resize_nearest(img.view(), (c.shape_out[0], c.shape_out[1])).unwrap();
        let same = out.iter().zip(&c.order0).filter(|(a, b)| a == b).count();
        assert_eq!(same, out.len(), "{:?} -> {:?}", c.shape_in, c.shape_out);
    }
}
