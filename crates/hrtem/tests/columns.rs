//! Column heights of Wulff particles in the two zone axes against the table in
//! ../shared/notes/hrtem.md §2 (ASE particles, columns by single linkage at 1 Å), and the
//! height map's peaks.

use nanoml_hrtem::Element;
use nanoml_hrtem::truth::{class_maps, columns, height_map};
use nanoml_hrtem::wulff::{Rounding, wulff_construction};

#[test]
fn column_counts_and_heights_match_the_notes() {
    // (requested, atoms, [001] columns, max height, [011] columns, max height)
    let table = [
        (100, 165, 57, 5, 41, 6),
        (300, 423, 109, 7, 81, 8),
        (500, 617, 145, 9, 105, 9),
        (1000, 1163, 221, 11, 161, 11),
        (1500, 1523, 261, 11, 193, 12),
        (2000, 2461, 361, 13, 265, 14),
    ];
    let surfaces = [[1, 0, 0], [1, 1, 0], [1, 1, 1]];
    for (size, atoms, c001, h001, c011, h011) in table {
        let np = wulff_construction(Element::AU, &surfaces, &[6.0, 2.0, 4.0], size, Rounding::Above, None).unwrap();
        assert_eq!(np.atoms.len(), atoms);
        for (axis, n_cols, max_h) in [([0, 0, 1], c001, h001), ([0, 1, 1], c011, h011)] {
            let cols = columns(&np.atoms.oriented(axis).unwrap(), 1.0).unwrap();
            assert_eq!(cols.len(), n_cols, "size {size} {axis:?}");
            assert_eq!(cols.iter().map(|c| c.height).max(), Some(max_h), "size {size} {axis:?}");
            assert_eq!(cols.iter().map(|c| c.height).sum::<usize>(), atoms);
        }
    }
}

#[test]
fn height_map_peaks_are_column_heights() {
    let np = wulff_construction(
        Element::AU,
        &[[1, 0, 0], [1, 1, 0], [1, 1, 1]],
        &[6.0, 2.0, 4.0],
        300,
        Rounding::Above,
        None,
    )
    .unwrap();
    let s = 0.2;
    let placed = np.atoms.oriented([0, 0, 1]).unwrap().centered_in([40.0, 40.0, 40.0]).unwrap();
    let map = height_map(&placed, (200, 200), s, 2.0).unwrap();
    for c in columns(&placed, 1.0).unwrap() {
        let (i, j) = ((c.x / s).round() as usize, (c.y / s).round() as usize);
        // Columns sit on pixels only up to rounding; neighbours 2.04 Å away add < 1e-3 each.
        let off = ((c.x / s - i as f64).powi(2) + (c.y / s - j as f64).powi(2)) / 8.0;
        let want = c.height as f64 * (-off).exp();
        assert!((f64::from(map[[i, j]]) - want).abs() < 0.02 * c.height as f64, "{c:?}: {}", map[[i, j]]);
    }
    let classes = class_maps(&placed, (200, 200), s, 7.0, 15, 1.0).unwrap();
    assert_eq!(classes.dim(), (16, 200, 200));
    assert!((classes[[0, 0, 0]] - 1.0).abs() < 1e-6); // background far from the particle
    assert!(height_map(&placed, (0, 10), s, 2.0).is_err());
    assert!(height_map(&placed, (10, 10), -1.0, 2.0).is_err());
}
