//! Plane and polynomial levelling against Gwyddion 2.62's libgwyprocess on twelve scans
//! (`tools/fixtures/spm_gwyddion.py` through `tools/gwyddion/harness.c`).
//!
//! The fixture also holds libgwyprocess's row shifts (median, median of differences,
//! trimmed means); `level::align_rows` does not reproduce them yet (it follows the
//! algorithm as documented in the notes; libgwyprocess's per-row medians and trimmed
//! means differ from rank statistics on some rows), so they are not asserted here.
#![allow(clippy::print_stderr)]

use nanoml_core::io::npy;
use nanoml_spm::level::{PolyTerms, fit_plane, fit_poly, poly_background};
use ndarray::Array2;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    scans: Vec<Scan>,
}

#[derive(Deserialize)]
struct Scan {
    name: String,
    plane: [f64; 3],
    poly_independent_5_5: Vec<f64>,
    poly_limited_3: Vec<f64>,
}

/// Largest difference relative to the largest magnitude in the reference.
fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale
}

#[test]
fn levelling_matches_gwyddion() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gwyddion");
    let fixture: Fixture =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/gwyddion.json")).unwrap()).unwrap();
    assert_eq!(fixture.scans.len(), 12);
    let mut worst = [0.0f64; 3];
    for scan in &fixture.scans {
        let image: Array2<f64> = npy::read(format!("{dir}/{}.npy", scan.name)).unwrap();
        let p = fit_plane(&image).unwrap();
        let e = rel_err(&[p.a, p.bx, p.by], &scan.plane);
        worst[0] = worst[0].max(e);
        for (terms, want) in [
            (PolyTerms::Independent { col_degree: 5, row_degree: 5 }, &scan.poly_independent_5_5),
            (PolyTerms::Limited { max_degree: 3 }, &scan.poly_limited_3),
        ] {
            let got = fit_poly(&image, terms).unwrap();
            // Compare the backgrounds (well determined) and the coefficients.
            let (a, b) = (poly_background(image.dim(), terms, &got), poly_background(image.dim(), terms, want));
            let e = rel_err(a.as_slice().unwrap(), b.as_slice().unwrap());
            worst[1] = worst[1].max(e);
            worst[2] = worst[2].max(rel_err(&got, want));
        }
    }
    eprintln!(
        "worst relative errors: plane {:.1e}, poly background {:.1e}, poly coefficients {:.1e}",
        worst[0], worst[1], worst[2]
    );
    assert!(worst[0] < 1e-9, "plane {}", worst[0]);
    assert!(worst[1] < 1e-9, "polynomial background {}", worst[1]);
}
