//! Property tests of the topological invariants.

use nanoml_morphology::*;
use ndarray::{Array2, Axis, s};
use proptest::prelude::*;

fn random_mask(rows: usize, cols: usize, p: f64, seed: u64) -> Array2<bool> {
    let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.bernoulli(p))
}

fn rot90(m: &Array2<bool>) -> Array2<bool> {
    let mut t = m.t().to_owned();
    t.invert_axis(Axis(0));
    t
}

fn mask_strategy() -> impl Strategy<Value = Array2<bool>> {
    (0usize..24, 0usize..24, 0.0f64..1.0, any::<u64>()).prop_map(|(r, c, p, s)| random_mask(r, c, p, s))
}

/// Every rigid symmetry of the square lattice, as owned arrays.
fn symmetries(m: &Array2<bool>) -> Vec<Array2<bool>> {
    let r1 = rot90(m);
    let r2 = rot90(&r1);
    let r3 = rot90(&r2);
    let mut flip_r = m.clone();
    flip_r.invert_axis(Axis(0));
    let mut flip_c = m.clone();
    flip_c.invert_axis(Axis(1));
    vec![r1, r2, r3, flip_r, flip_c, m.t().to_owned()]
}

proptest! {
    #[test]
    fn euler_area_and_perimeters_are_invariant_under_lattice_symmetries(m in mask_strategy()) {
        for t in symmetries(&m) {
            for conn in [Connectivity::Four, Connectivity::Eight] {
                prop_assert_eq!(euler_number(&t, conn), euler_number(&m, conn));
                prop_assert_eq!(euler_number_periodic(&t, conn), euler_number_periodic(&m, conn));
                prop_assert_eq!(count_components(&t, conn).unwrap(), count_components(&m, conn).unwrap());
            }
            prop_assert_eq!(euler_number_legacy(&t).unwrap(), euler_number_legacy(&m).unwrap());
            prop_assert_eq!(area(&t), area(&m));
            prop_assert!((perimeter(&t, Neighbourhood::Four) - perimeter(&m, Neighbourhood::Four)).abs() < 1e-9);
            prop_assert!((perimeter_crofton(&t, CroftonDirections::Four) - perimeter_crofton(&m, CroftonDirections::Four)).abs() < 1e-9);
        }
    }

    #[test]
    fn k_separated_disks_have_euler_number_k(k in 1usize..12, radius in 1.0f64..6.0, seed in any::<u64>()) {
        // Disks on a grid of cells wide enough that they never touch.
        let cell = (2.0 * radius).ceil() as usize + 3;
        let per_row = 4;
        let rows = k.div_ceil(per_row);
        let mut m = Array2::from_elem((rows * cell, per_row * cell), false);
        let mut rng = nanoml_core::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut cells: Vec<usize> = (0..rows * per_row).collect();
        rng.shuffle(&mut cells);
        for &i in &cells[..k] {
            let (cy, cx) = ((i / per_row * cell + cell / 2) as f64, (i % per_row * cell + cell / 2) as f64);
            for ((r, c), v) in m.indexed_iter_mut() {
                if (r as f64 - cy).hypot(c as f64 - cx) <= radius {
                    *v = true;
                }
            }
        }
        for conn in [Connectivity::Four, Connectivity::Eight] {
            prop_assert_eq!(euler_number(&m, conn), k as i64);
            prop_assert_eq!(label(&m, conn).unwrap().count, k);
        }
        prop_assert_eq!(euler_number_periodic(&m, Connectivity::Eight), k as i64);
    }

    #[test]
    fn euler_is_additive_over_far_apart_parts(a in mask_strategy(), b in mask_strategy(), gap in 1usize..4, vertical in any::<bool>()) {
        let (ra, ca) = a.dim();
        let (rb, cb) = b.dim();
        let shape = if vertical { (ra + gap + rb, ca.max(cb)) } else { (ra.max(rb), ca + gap + cb) };
        let mut m = Array2::from_elem(shape, false);
        m.slice_mut(s![..ra, ..ca]).assign(&a);
        if vertical {
            m.slice_mut(s![ra + gap.., ..cb]).assign(&b);
        } else {
            m.slice_mut(s![..rb, ca + gap..]).assign(&b);
        }
        for conn in [Connectivity::Four, Connectivity::Eight] {
            prop_assert_eq!(euler_number(&m, conn), euler_number(&a, conn) + euler_number(&b, conn));
        }
    }

    #[test]
    fn torus_wrapping_stripes_have_euler_number_zero(n in 2usize..40, period in 2usize..8, width in 1usize..8, diagonal in any::<bool>(), horizontal in any::<bool>()) {
        prop_assume!(width < period);
        let size = n * period; // stripes close up on the torus
        let m = Array2::from_shape_fn((size, size), |(r, c)| {
            let t = if diagonal { r + c } else if horizontal { r } else { c };
            t % period < width
        });
        // Every stripe is an annulus around the torus: χ = 0 each. Diagonal stripes stay
        // apart under 8-connectivity only when the background between them is at least
        // two pixels wide, and hold together under 4-connectivity only when they are.
        if !diagonal || period - width >= 2 {
            prop_assert_eq!(euler_number_periodic(&m, Connectivity::Eight), 0);
            prop_assert_eq!(label_periodic(&m, Connectivity::Eight).unwrap().count, n);
        }
        if !diagonal || width >= 2 {
            prop_assert_eq!(euler_number_periodic(&m, Connectivity::Four), 0);
            prop_assert_eq!(label_periodic(&m, Connectivity::Four).unwrap().count, n);
        }
        let mf = minkowski_functionals_periodic(&m, Connectivity::Four, Spacing::default()).unwrap();
        prop_assert_eq!(mf.euler, euler_number_periodic(&m, Connectivity::Four));
    }

    #[test]
    fn nothing_panics_on_any_mask(m in mask_strategy(), window in 0usize..30, stride in 0usize..30) {
        for conn in [Connectivity::Four, Connectivity::Eight] {
            let _ = euler_number(&m, conn);
            let _ = euler_number_periodic(&m, conn);
            let _ = label(&m, conn);
            let _ = label_periodic(&m, conn);
            let _ = count_holes(&m, conn);
            let _ = minkowski_functionals(&m, conn, Spacing::default());
            let _ = minkowski_functionals_periodic(&m, conn, Spacing::default());
        }
        let _ = euler_number_legacy(&m);
        let _ = perimeter(&m, Neighbourhood::Eight);
        let _ = perimeter_crofton(&m, CroftonDirections::Two);
        let _ = closing_square(&m, 3);
        let _ = scale_invariant_stats(&m);
        let _ = mask_region_props(&m);
        let params = HomogeneityParams { window, stride, ..Default::default() };
        let _ = homogeneity(&m, &params);
        let _ = scale_invariance(&m, &[window], stride, 3, 1);
    }
}

#[test]
fn periodic_euler_of_a_checkerboard_on_the_torus() {
    // 1-px checkerboard on an even torus: with 8-connectivity all squares touch at corners
    // and form one connected net whose complement is n²/2 4-connected single pixels, so χ
    // = V − E + F = n²/2 − 2·n²/2 + 0 = −n²/2 (cf. the n²/2 holes of a torus-net).
    let n = 8;
    let m = Array2::from_shape_fn((n, n), |(r, c)| (r + c) % 2 == 0);
    assert_eq!(euler_number_periodic(&m, Connectivity::Eight), -((n * n / 2) as i64));
    assert_eq!(euler_number_periodic(&m, Connectivity::Four), (n * n / 2) as i64);
}

proptest! {
    #[test]
    fn strided_and_reversed_views_give_the_same_results_as_owned_copies(m in mask_strategy()) {
        let mut reversed = m.view();
        reversed.invert_axis(Axis(1));
        for view in [m.t(), reversed, m.slice(s![..;2, ..])] {
            let owned = view.to_owned();
            for conn in [Connectivity::Four, Connectivity::Eight] {
                prop_assert_eq!(label(&view, conn).unwrap(), label(&owned, conn).unwrap());
                prop_assert_eq!(euler_number(&view, conn), euler_number(&owned, conn));
            }
            prop_assert_eq!(perimeter(&view, Neighbourhood::Four), perimeter(&owned, Neighbourhood::Four));
            prop_assert_eq!(area(&view), area(&owned));
            prop_assert_eq!(euler_number_legacy(&view).unwrap(), euler_number_legacy(&owned).unwrap());
        }
    }
}
