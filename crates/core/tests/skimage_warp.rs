//! Parity of `warp_affine` with `skimage.transform.warp(order=1)` in the modes `constant`
//! (zero padding), `wrap` (periodic) and `edge`; fixtures from `tools/fixtures/core.py`.

use nanoml_core::warp::{Affine2, Padding, warp_affine};
use ndarray::Array2;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    angle: f64,
    scale: [f64; 2],
    shear: f64,
    translation: [f64; 2],
    shape: [usize; 2],
    image: Vec<f64>,
    forward: Vec<f64>,
    zero: Vec<f64>,
    periodic: Vec<f64>,
    edge: Vec<f64>,
}

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[test]
fn composed_transform_equals_the_reference_matrix() {
    let f: Fixture = serde_json::from_str(include_str!("fixtures/skimage_warp.json")).unwrap();
    for c in &f.cases {
        let t = Affine2::rotation(c.angle)
            .then(Affine2::scale(c.scale[0], c.scale[1]))
            .then(Affine2::shear(c.shear, 0.0))
            .then(Affine2::translation(c.translation[0], c.translation[1]));
        let flat: Vec<f64> = t.matrix.iter().flatten().copied().collect();
        for (a, b) in flat.iter().zip(&c.forward) {
            assert!((a - b).abs() < 1e-12, "{flat:?} vs {:?}", c.forward);
        }
    }
}

#[test]
fn warps_match_scikit_image_in_every_padding_mode() {
    let f: Fixture = serde_json::from_str(include_str!("fixtures/skimage_warp.json")).unwrap();
    for c in &f.cases {
        let img =
            Array2::from_shape_vec((c.shape[0], c.shape[1]), c.image.iter().map(|&v| v as f32).collect()).unwrap();
        let m = &c.forward;
        let t = Affine2 { matrix: [[m[0], m[1], m[2]], [m[3], m[4], m[5]]] };
        for (padding, want) in [(Padding::Zero, &c.zero), (Padding::Periodic, &c.periodic), (Padding::Edge, &c.edge)] {
            let out = warp_affine(img.view(), &t, (c.shape[0], c.shape[1]), padding).unwrap();
            for (i, (a, b)) in out.iter().zip(want).enumerate() {
                assert!((f64::from(*a) - b).abs() < 2e-5, "angle {} {padding:?} pixel {i}: {a} vs {b}", c.angle);
            }
        }
    }
}
