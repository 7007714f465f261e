//! Bad input gives typed errors, never panics: NaN and ±inf pixels, empty images,
//! polynomial degrees the data cannot support, unknown channels, impossible parameters.

use nanoml_spm::align::{RowAlignment, align_rows};
use nanoml_spm::level::{PolyTerms, fit_plane, fit_poly, level_plane, level_poly};
use nanoml_spm::scars::{ScarParams, laplace_fill, mark_scars, remove_scars};
use nanoml_spm::screening::{
    align_rows_median_of_differences_binned, flatten_separable, normalize_min_max, polynomial_fit_values,
    preprocess_pyrabani,
};
use nanoml_spm::synth::{Artefacts, apply};
use nanoml_spm::threshold::{histogram, threshold_multiotsu, threshold_multiotsu_histogram, threshold_otsu};
use nanoml_spm::{Error, SpmImage};
use ndarray::{Array1, Array2};

fn ok<T>(r: Result<T, Error>) -> Result<(), Error> {
    r.map(|_| ())
}

/// Every image-level operation on `image`, each as `Err` or `Ok` (never a panic).
fn all_ops(image: &Array2<f64>) -> Vec<(&'static str, Result<(), Error>)> {
    let terms = PolyTerms::Independent { col_degree: 2, row_degree: 2 };
    let mut out: Vec<(&'static str, Result<(), Error>)> = vec![
        ("fit_plane", ok(fit_plane(image))),
        ("level_plane", ok(level_plane(image))),
        ("fit_poly", ok(fit_poly(image, terms))),
        ("level_poly", ok(level_poly(image, terms))),
        ("mark_scars", ok(mark_scars(image, &ScarParams::default()))),
        ("remove_scars", ok(remove_scars(image, &ScarParams::default()))),
        ("normalize_min_max", ok(normalize_min_max(image))),
        ("align_binned", ok(align_rows_median_of_differences_binned(image, 1000))),
        ("flatten_separable", ok(flatten_separable(image, 2))),
        ("preprocess_pyrabani", ok(preprocess_pyrabani(image))),
        ("histogram", ok(histogram(image, 256))),
        ("multiotsu", ok(threshold_multiotsu(image, 3, 256))),
        ("otsu", ok(threshold_otsu(image, 256))),
        ("laplace_fill", ok(laplace_fill(image, &image.mapv(|_| false)))),
    ];
    for (name, method) in [
        ("align median", RowAlignment::Median),
        ("align median of differences", RowAlignment::MedianOfDifferences),
        ("align trimmed mean", RowAlignment::TrimmedMean(0.05)),
        ("align modus", RowAlignment::Modus),
        ("align polynomial", RowAlignment::Polynomial(2)),
    ] {
        out.push((name, ok(align_rows(image, method))));
    }
    out
}

#[test]
fn non_finite_pixels_are_errors_everywhere() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut image = Array2::from_shape_fn((16, 20), |(i, j)| (i * j) as f64 * 0.1);
        image[[7, 3]] = bad;
        for (name, result) in all_ops(&image) {
            match result {
                Err(Error::InvalidParameter { .. } | Error::Unsuitable { .. }) => {}
                other => panic!("{name} with a {bad} pixel gave {other:?}"),
            }
        }
    }
}

#[test]
fn empty_images_are_errors_everywhere() {
    for shape in [(0, 0), (0, 5), (5, 0)] {
        let image = Array2::<f64>::zeros(shape);
        for (name, result) in all_ops(&image) {
            assert!(result.is_err(), "{name} on a {shape:?} image gave {result:?}");
        }
    }
}

#[test]
fn degrees_beyond_the_data_are_errors() {
    let image = Array2::from_shape_fn((4, 5), |(i, j)| (i + 2 * j) as f64);
    // 6 × 6 terms on 20 pixels.
    let too_many = PolyTerms::Independent { col_degree: 5, row_degree: 5 };
    assert!(matches!(fit_poly(&image, too_many), Err(Error::InvalidParameter { .. })));
    assert!(fit_poly(&Array2::from_elem((1, 9), 1.0), PolyTerms::Limited { max_degree: 1 }).is_err());
    assert!(matches!(align_rows(&image, RowAlignment::Polynomial(5)), Err(Error::InvalidParameter { .. })));
    assert!(matches!(align_rows(&image, RowAlignment::Polynomial(6)), Err(Error::InvalidParameter { .. })));
    assert!(polynomial_fit_values(Array1::from(vec![1.0, 2.0, 3.0]).view(), 3).is_err());
    assert!(flatten_separable(&image, 4).is_err());
    assert!(threshold_multiotsu(&image, 33, 256).is_err());
    assert!(threshold_multiotsu(&image, 3, 0).is_err());
    assert!(threshold_multiotsu_histogram(&[1.0, f64::NAN, 2.0], None, 2).is_err());
    assert!(mark_scars(&image, &ScarParams { threshold_low: -1.0, ..ScarParams::default() }).is_err());
    assert!(laplace_fill(&image, &Array2::from_elem((4, 5), true)).is_err());
    assert!(laplace_fill(&image, &Array2::from_elem((5, 4), false)).is_err());
    let bad_synth = Artefacts { white_noise: f64::NAN, ..Artefacts::default() };
    assert!(apply(&image, &bad_synth, 1).is_err());
}

#[test]
fn unknown_channels_are_errors_that_list_the_channels() {
    let image = SpmImage::from_heights("HeightTrace", "m", Array2::zeros((2, 2)));
    let err = image.channel("Phase").unwrap_err();
    assert!(err.to_string().contains("HeightTrace"), "{err}");
}
