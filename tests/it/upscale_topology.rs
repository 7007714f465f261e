//! Nearest-neighbour upscaling by an integer factor (how Rabani lattices are brought to the
//! classifier's input size) must not change the topology the labels are computed from.

use nanoml::core::resample::resize_nearest;
use nanoml::morphology::{Connectivity, count_components, euler_number, euler_number_legacy};
use ndarray::Array2;
use proptest::prelude::*;

proptest! {
    #[test]
    fn integer_upscaling_preserves_euler_numbers_and_components(r in 1usize..20, c in 1usize..20, p in 0.0f64..1.0, seed in any::<u64>(), k in 1usize..5) {
        let mut rng = nanoml::core::Xoshiro256PlusPlus::seed_from_u64(seed);
        let m = Array2::from_shape_fn((r, c), |_| rng.bernoulli(p));
        let big = resize_nearest(m.view(), (r * k, c * k)).unwrap();
        for conn in [Connectivity::Four, Connectivity::Eight] {
            prop_assert_eq!(euler_number(&big, conn), euler_number(&m, conn));
            prop_assert_eq!(count_components(&big, conn).unwrap(), count_components(&m, conn).unwrap());
        }
        prop_assert_eq!(euler_number_legacy(&big).unwrap(), euler_number_legacy(&m).unwrap());
    }
}
