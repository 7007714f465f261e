//! The Wulff construction against ASE 3.29's `wulff_construction` on 26 cases
//! (`tools/fixtures/hrtem_wulff.py`): atom counts, shapes (extent, moments, every
//! position of the smaller clusters) and the atoms on each family's outermost layers.
#![allow(clippy::print_stderr)]

use nanoml_hrtem::Element;
use nanoml_hrtem::wulff::{Miller, Rounding, wulff_construction};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    symbol: String,
    surfaces: Vec<Miller>,
    energies: Vec<f64>,
    size: usize,
    rounding: String,
    lattice_constant: Option<f64>,
    atoms: usize,
    extent: [f64; 3],
    moment2: [f64; 3],
    moment4: [f64; 3],
    outer_layer_atoms: Vec<usize>,
    positions_sorted: Option<Vec<[f64; 3]>>,
}

#[test]
fn wulff_clusters_equal_ase() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wulff.json")).unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    assert!(fixture.cases.len() >= 20);
    let mut compared = 0;
    for c in &fixture.cases {
        let rounding = match c.rounding.as_str() {
            "above" => Rounding::Above,
            "below" => Rounding::Below,
            _ => Rounding::Closest,
        };
        let element = Element::from_symbol(&c.symbol).unwrap();
        let got = wulff_construction(element, &c.surfaces, &c.energies, c.size, rounding, c.lattice_constant).unwrap();
        let label = format!("{} {:?} {:?} size {} {}", c.symbol, c.surfaces, c.energies, c.size, c.rounding);
        assert_eq!(got.atoms.len(), c.atoms, "{label}");
        let (lo, hi) = got.atoms.bounds().unwrap();
        for i in 0..3 {
            assert!((hi[i] - lo[i] - c.extent[i]).abs() < 1e-9, "{label}: extent");
            let m2: f64 = got.atoms.positions.iter().map(|p| p[i].powi(2)).sum();
            let m4: f64 = got.atoms.positions.iter().map(|p| p[i].powi(4)).sum();
            assert!((m2 - c.moment2[i]).abs() <= 1e-9 * c.moment2[i].max(1.0), "{label}: second moment");
            assert!((m4 - c.moment4[i]).abs() <= 1e-9 * c.moment4[i].max(1.0), "{label}: fourth moment");
        }
        assert_eq!(got.outer_layer_atoms(&c.surfaces).unwrap(), c.outer_layer_atoms, "{label}: facets");
        if let Some(want) = &c.positions_sorted {
            let mut ours: Vec<[f64; 3]> = got.atoms.positions.clone();
            ours.sort_by(|a, b| {
                a.iter().zip(b).map(|(x, y)| x.total_cmp(y)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
            });
            for (a, b) in ours.iter().zip(want) {
                assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-8), "{label}: {a:?} vs {b:?}");
            }
            compared += 1;
        }
    }
    eprintln!("{} Wulff clusters equal ASE 3.29's ({compared} compared atom by atom)", fixture.cases.len());
}
