//! Invariants of the particles under random surface energies and sizes.

use nanoml_hrtem::Element;
use nanoml_hrtem::truth::columns;
use nanoml_hrtem::wulff::{Rounding, wulff_construction};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// `Above` gives at least the requested atoms and `Below` at most; the particle is
    /// centrosymmetric (every family comes with its opposite planes); zone-axis rotations
    /// keep every distance; columns hold every atom once.
    #[test]
    fn wulff_particles_behave(g100 in 0.5f64..2.0, g110 in 0.5f64..2.0, g111 in 0.5f64..2.0, size in 10usize..800) {
        let surfaces = [[1, 0, 0], [1, 1, 0], [1, 1, 1]];
        let energies = [g100, g110, g111];
        let above = wulff_construction(Element::AU, &surfaces, &energies, size, Rounding::Above, None).unwrap();
        let below = wulff_construction(Element::AU, &surfaces, &energies, size, Rounding::Below, None).unwrap();
        prop_assert!(above.atoms.len() >= size);
        prop_assert!(below.atoms.len() <= size);
        let key = |p: &[f64; 3]| p.map(|c| (c * 1e6).round() as i64);
        let set: std::collections::HashSet<[i64; 3]> = above.atoms.positions.iter().map(key).collect();
        for p in &above.atoms.positions {
            prop_assert!(set.contains(&key(&p.map(|c| -c))), "{p:?} has no inverse");
        }
        for axis in [[0, 1, 1], [1, 1, 1], [1, 2, 0]] {
            let turned = above.atoms.oriented(axis).unwrap();
            let (p, q) = (above.atoms.positions[0], above.atoms.positions[above.atoms.len() - 1]);
            let (tp, tq) = (turned.positions[0], turned.positions[turned.len() - 1]);
            let d = |a: [f64; 3], b: [f64; 3]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
            prop_assert!((d(p, q) - d(tp, tq)).abs() < 1e-9);
            let cols = columns(&turned, 1.0).unwrap();
            prop_assert_eq!(cols.iter().map(|c| c.height).sum::<usize>(), above.atoms.len());
        }
    }
}
