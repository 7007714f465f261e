//! Multi-Otsu and Otsu thresholds equal scikit-image's on the fixture images
//! (`tools/fixtures/spm_otsu.py`; versions in the fixture's `meta`).

use nanoml_spm::threshold::{threshold_multiotsu, threshold_multiotsu_histogram, threshold_otsu};
use ndarray::Array2;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
struct Fixture {
    images: HashMap<String, Image>,
    cases: Vec<Case>,
    histograms: Vec<Hist>,
}

#[derive(Deserialize)]
struct Image {
    dtype: String,
    shape: [usize; 2],
    values: Vec<String>,
}

#[derive(Deserialize)]
struct Case {
    image: String,
    classes: usize,
    nbins: usize,
    thresholds: Option<Vec<String>>,
    otsu: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Hist {
    counts: Vec<f64>,
    classes: usize,
    thresholds: Vec<f64>,
}

fn parse<T: std::str::FromStr>(image: &Image) -> Array2<T>
where
    T::Err: std::fmt::Debug,
{
    let v: Vec<T> = image.values.iter().map(|s| s.parse().unwrap()).collect();
    Array2::from_shape_vec((image.shape[0], image.shape[1]), v).unwrap()
}

/// The image in its own dtype.
fn load(image: &Image) -> Dyn {
    match image.dtype.as_str() {
        "float64" => Dyn::F64(parse(image)),
        "float32" => Dyn::F32(parse(image)),
        "uint8" => Dyn::U8(parse(image)),
        "int16" => Dyn::I16(parse(image)),
        "uint16" => Dyn::U16(parse(image)),
        other => panic!("dtype {other}"),
    }
}

enum Dyn {
    F64(Array2<f64>),
    F32(Array2<f32>),
    U8(Array2<u8>),
    I16(Array2<i16>),
    U16(Array2<u16>),
}

fn multi(img: &Dyn, classes: usize, nbins: usize) -> Result<Vec<f64>, nanoml_spm::Error> {
    match img {
        Dyn::F64(a) => threshold_multiotsu(a, classes, nbins),
        Dyn::F32(a) => threshold_multiotsu(a, classes, nbins),
        Dyn::U8(a) => threshold_multiotsu(a, classes, nbins),
        Dyn::I16(a) => threshold_multiotsu(a, classes, nbins),
        Dyn::U16(a) => threshold_multiotsu(a, classes, nbins),
    }
}

fn otsu(img: &Dyn, nbins: usize) -> f64 {
    match img {
        Dyn::F64(a) => threshold_otsu(a, nbins),
        Dyn::F32(a) => threshold_otsu(a, nbins),
        Dyn::U8(a) => threshold_otsu(a, nbins),
        Dyn::I16(a) => threshold_otsu(a, nbins),
        Dyn::U16(a) => threshold_otsu(a, nbins),
    }
    .unwrap()
}

#[test]
fn thresholds_equal_scikit_image() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/skimage_otsu.json")).unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    let images: HashMap<&str, Dyn> = fixture.images.iter().map(|(name, image)| (name.as_str(), load(image))).collect();
    let (mut multi_cases, mut otsu_cases) = (0, 0);
    for case in &fixture.cases {
        let img = &images[case.image.as_str()];
        let single = fixture.images[&case.image].dtype == "float32";
        // Expected values as the image's precision prints them.
        let expected =
            |s: &String| if single { f64::from(s.parse::<f32>().unwrap()) } else { s.parse::<f64>().unwrap() };
        if let Some(o) = &case.otsu {
            assert_eq!(otsu(img, case.nbins), expected(o), "otsu on {}", case.image);
            otsu_cases += 1;
            continue;
        }
        let got = multi(img, case.classes, case.nbins);
        match (&case.thresholds, &case.error) {
            (Some(t), _) => {
                let want: Vec<f64> = t.iter().map(expected).collect();
                assert_eq!(got.unwrap(), want, "{} classes {} nbins {}", case.image, case.classes, case.nbins);
            }
            (None, Some(_)) => assert!(got.is_err(), "{} classes {}: expected an error", case.image, case.classes),
            (None, None) => unreachable!(),
        }
        multi_cases += 1;
    }
    assert!(multi_cases >= 60 && otsu_cases == 11, "{multi_cases} multi-Otsu, {otsu_cases} Otsu cases");
    for h in &fixture.histograms {
        assert_eq!(threshold_multiotsu_histogram(&h.counts, None, h.classes).unwrap(), h.thresholds, "{:?}", h.counts);
    }
}
