//! Parity with scikit-image 0.26 on the fixtures written by `tools/fixtures/morphology.py`.

use nanoml_morphology::*;
use ndarray::Array2;
use serde::Deserialize;

#[derive(Deserialize)]
struct Props {
    label: u32,
    area: u64,
    eccentricity: f64,
    equivalent_diameter: f64,
}

#[derive(Deserialize)]
struct Normalised {
    sia: f64,
    sip: f64,
    sie: f64,
    h0: usize,
    h1: usize,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    shape: [usize; 2],
    mask: Vec<String>,
    euler_1: i64,
    euler_2: i64,
    euler_legacy: Option<i64>,
    area: u64,
    perimeter_4: f64,
    perimeter_8: f64,
    crofton_2: f64,
    crofton_4: f64,
    labels_4: Vec<u32>,
    labels_8: Vec<u32>,
    props_8: Vec<Props>,
    whole_mask_props: Option<Props>,
    closing_3: Vec<String>,
    normalised_stats: Option<Normalised>,
}

#[derive(Deserialize)]
struct Fixture {
    versions: std::collections::BTreeMap<String, String>,
    cases: Vec<Case>,
}

fn fixture() -> Fixture {
    let text = include_str!("fixtures/skimage_morphology.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn parse_mask(shape: [usize; 2], rows: &[String]) -> Array2<bool> {
    let flat: Vec<bool> = rows.iter().flat_map(|r| r.bytes().map(|b| b == b'1')).collect();
    Array2::from_shape_vec((shape[0], shape[1]), flat).expect("mask shape")
}

fn cases() -> Vec<(Case, Array2<bool>)> {
    fixture()
        .cases
        .into_iter()
        .map(|c| {
            let m = parse_mask(c.shape, &c.mask);
            (c, m)
        })
        .collect()
}

/// Eccentricity is √(1 − λ₂/λ₁): near 0 the square root amplifies rounding of the
/// eigenvalues, so compare its square.
fn same_eccentricity(a: f64, b: f64) -> bool {
    (a * a - b * b).abs() < 1e-9
}

#[test]
fn fixture_is_from_scikit_image_0_26_and_has_enough_cases() {
    let f = fixture();
    assert!(f.versions["scikit-image"].starts_with("0.26"), "{:?}", f.versions);
    assert!(f.cases.len() >= 60);
}

#[test]
fn euler_numbers_match_exactly() {
    for (c, m) in cases() {
        assert_eq!(euler_number(&m, Connectivity::Four), c.euler_1, "{}: connectivity 1", c.name);
        assert_eq!(euler_number(&m, Connectivity::Eight), c.euler_2, "{}: connectivity 2", c.name);
        if let Some(legacy) = c.euler_legacy {
            assert_eq!(euler_number_legacy(&m).unwrap(), legacy, "{}: legacy", c.name);
        }
    }
}

#[test]
fn areas_and_perimeters_match() {
    for (c, m) in cases() {
        assert_eq!(area(&m), c.area, "{}", c.name);
        assert!((perimeter(&m, Neighbourhood::Four) - c.perimeter_4).abs() < 1e-9, "{}: perimeter 4", c.name);
        assert!((perimeter(&m, Neighbourhood::Eight) - c.perimeter_8).abs() < 1e-9, "{}: perimeter 8", c.name);
        assert!((perimeter_crofton(&m, CroftonDirections::Two) - c.crofton_2).abs() < 1e-9, "{}: crofton 2", c.name);
        assert!((perimeter_crofton(&m, CroftonDirections::Four) - c.crofton_4).abs() < 1e-9, "{}: crofton 4", c.name);
    }
}

#[test]
fn label_images_match_including_numbering() {
    for (c, m) in cases() {
        for (conn, want) in [(Connectivity::Four, &c.labels_4), (Connectivity::Eight, &c.labels_8)] {
            let got = label(&m, conn).unwrap();
            assert_eq!(got.image.iter().copied().collect::<Vec<_>>(), *want, "{}: {conn:?}", c.name);
            assert_eq!(got.count as u32, want.iter().copied().max().unwrap_or(0));
        }
    }
}

/// Area, eccentricity and equivalent diameter of one region agree with scikit-image.
fn assert_props_match(case: &str, got: &RegionProps, want: &Props) {
    assert_eq!(got.area, want.area, "{case}");
    assert!(
        same_eccentricity(got.eccentricity, want.eccentricity),
        "{case}: {} vs {}",
        got.eccentricity,
        want.eccentricity
    );
    assert!((got.equivalent_diameter - want.equivalent_diameter).abs() < 1e-12, "{case}");
}

#[test]
fn region_properties_match() {
    for (c, m) in cases() {
        let props = region_props(&label(&m, Connectivity::Eight).unwrap());
        assert_eq!(props.len(), c.props_8.len(), "{}", c.name);
        for (p, want) in props.iter().zip(&c.props_8) {
            assert_eq!(p.label, want.label, "{}", c.name);
            assert_props_match(&c.name, p, want);
        }
        match (mask_region_props(&m), &c.whole_mask_props) {
            (None, None) => {}
            (Some(p), Some(want)) => assert_props_match(&c.name, &p, want),
            (got, want) => panic!("{}: {got:?} vs {}", c.name, want.is_some()),
        }
    }
}

#[test]
fn closing_matches() {
    for (c, m) in cases() {
        assert_eq!(closing_square(&m, 3).unwrap(), parse_mask(c.shape, &c.closing_3), "{}", c.name);
    }
}

#[test]
fn scale_invariant_statistics_match() {
    let mut defined = 0;
    for (c, m) in cases() {
        match (scale_invariant_stats(&m), &c.normalised_stats) {
            (Ok(s), Some(w)) => {
                defined += 1;
                assert_eq!((s.foreground_components, s.background_components), (w.h0, w.h1), "{}", c.name);
                assert!((s.sia - w.sia).abs() < 1e-12, "{}: SIA", c.name);
                assert!((s.sip - w.sip).abs() < 1e-9, "{}: SIP {} vs {}", c.name, s.sip, w.sip);
                assert!((s.sie - w.sie).abs() < 1e-12, "{}: SIE", c.name);
            }
            (Err(Error::Undefined { .. }), None) => {}
            (got, want) => panic!("{}: {got:?} vs defined={}", c.name, want.is_some()),
        }
    }
    assert!(defined >= 30, "only {defined} defined cases");
}
