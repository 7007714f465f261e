//! The screening code's preprocessing against a numpy/scikit-image rendering of it
//! (`tools/fixtures/spm_screening.py`; versions in the fixture's `meta`).

use nanoml_core::io::npy;
use nanoml_spm::screening::{
    NoiseRule, align_rows_median_of_differences_binned, flatten_separable, noisy_rows, normalize_min_max,
    preprocess_pyrabani,
};
use nanoml_spm::threshold::threshold_multiotsu;
use ndarray::Array2;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    scans: Vec<Scan>,
}

#[derive(Deserialize)]
struct Scan {
    name: String,
    noise: Noise,
    thresholds: Vec<String>,
    binary: String,
}

#[derive(Deserialize)]
struct Noise {
    single_valued: Vec<usize>,
    outliers: Vec<usize>,
    noisy: bool,
}

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn preprocessing_matches_the_reference_chain() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pyrabani_screening");
    let fixture: Fixture =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/pyrabani_screening.json")).unwrap()).unwrap();
    assert_eq!(fixture.scans.len(), 5);
    for scan in &fixture.scans {
        let load = |what: &str| -> Array2<f64> { npy::read(format!("{dir}/{}_{what}.npy", scan.name)).unwrap() };
        let (input, aligned_ref, levelled_ref) = (load("input"), load("aligned"), load("levelled"));
        let aligned = align_rows_median_of_differences_binned(&normalize_min_max(&input).unwrap(), 1000).unwrap();
        let d = max_abs_diff(&aligned, &aligned_ref);
        assert!(d < 1e-12, "{}: aligned differs by {d}", scan.name);
        let noise = noisy_rows(&aligned, NoiseRule::PyRabani);
        assert_eq!(
            (&noise.single_valued, &noise.outliers, noise.noisy),
            (&scan.noise.single_valued, &scan.noise.outliers, scan.noise.noisy),
            "{}",
            scan.name
        );
        let levelled = normalize_min_max(&flatten_separable(&aligned, 5).unwrap()).unwrap();
        let d = max_abs_diff(&levelled, &levelled_ref);
        assert!(d < 1e-9, "{}: levelled differs by {d}", scan.name);
        // Thresholds and the binary image from the reference's levelled image are exact;
        // from ours (equal to 1e-9) a pixel within 1e-9 of a bin edge could move.
        let want: Vec<f64> = scan.thresholds.iter().map(|t| t.parse().unwrap()).collect();
        assert_eq!(threshold_multiotsu(&levelled_ref, 3, 1000).unwrap(), want, "{}", scan.name);
        let ours = threshold_multiotsu(&levelled, 3, 1000).unwrap();
        assert_eq!(ours, want, "{}: thresholds from our levelled image", scan.name);
        let binary: String = levelled.iter().map(|&v| if v > ours[0] { '1' } else { '0' }).collect();
        assert_eq!(binary, scan.binary, "{}", scan.name);
        // The whole chain: the noisy scan is rejected, the others pass with these results.
        match preprocess_pyrabani(&input).unwrap() {
            Ok(p) => {
                assert!(!scan.noise.noisy, "{} should have been rejected", scan.name);
                assert_eq!(p.thresholds, want);
            }
            Err(rejection) => assert!(scan.noise.noisy, "{} rejected: {rejection:?}", scan.name),
        }
    }
}
