//! Seed policy and the portable random-number generator every nanoml crate uses.
//!
//! # Policy
//!
//! * Every stochastic function takes an explicit `seed: u64`; nothing reads a global or
//!   thread-local generator.
//! * Work that is split into tasks (rayon over samples, a parameter grid × repeats, …) gives
//!   task `i` its own generator seeded with [`derive_seed`]`(seed, i)`. Results therefore do
//!   not depend on the number of threads or on the order in which tasks run.
//! * The generator is [`Xoshiro256PlusPlus`] (Blackman & Vigna 2019), named after its
//!   algorithm so that a given seed yields the same stream on every platform and in every
//!   future version of nanoml. It is seeded from a `u64` through [`SplitMix64`], exactly as
//!   the reference implementation recommends (and as `rand_xoshiro`'s `seed_from_u64` does,
//!   which the tests check).
//!
//! ```
//! use nanoml_core::rng::{derive_seed, Xoshiro256PlusPlus};
//! let seed = 42;
//! let streams: Vec<f64> = (0..4)
//!     .map(|task| Xoshiro256PlusPlus::seed_from_u64(derive_seed(seed, task)).uniform())
//!     .collect();
//! assert!(streams.iter().all(|x| (0.0..1.0).contains(x)));
//! ```

/// Golden-ratio increment of SplitMix64 (⌊2⁶⁴/φ⌋, odd).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function (Steele, Lea & Flood 2014): a bijective 64-bit mixer.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed of task `index` derived from a master `seed`.
///
/// It is the `index + 1`-th output of a [`SplitMix64`] generator started at `seed`, computed
/// in O(1): distinct indices give statistically independent seeds, and the same
/// `(seed, index)` always gives the same value.
///
/// ```
/// use nanoml_core::rng::{derive_seed, SplitMix64};
/// let mut sm = SplitMix64::new(7);
/// sm.next_u64();
/// assert_eq!(derive_seed(7, 1), sm.next_u64());
/// ```
#[inline]
pub fn derive_seed(seed: u64, index: u64) -> u64 {
    mix64(seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// Seed for a nested task, e.g. `(grid point, repeat)`: `derive_seed` applied level by level.
///
/// ```
/// use nanoml_core::rng::{derive_seed, derive_seed_path};
/// assert_eq!(derive_seed_path(1, &[3, 5]), derive_seed(derive_seed(1, 3), 5));
/// ```
pub fn derive_seed_path(seed: u64, path: &[u64]) -> u64 {
    path.iter().fold(seed, |s, &i| derive_seed(s, i))
}

/// SplitMix64: a tiny generator used to expand one `u64` seed into generator states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose first output is `mix64(seed + γ)`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }
}

/// Xoshiro256++ (Blackman & Vigna, "Scrambled linear pseudorandom number generators",
/// ACM TOMS 2021): 256 bits of state, period 2²⁵⁶ − 1, fast and portable.
///
/// All derived draws ([`uniform`](Self::uniform), [`below`](Self::below),
/// [`normal`](Self::normal), …) are defined here in terms of [`next_u64`](Self::next_u64), so
/// their streams are part of nanoml's reproducibility contract too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xoshiro256PlusPlus {
    s: [u64; 4],
}

impl Xoshiro256PlusPlus {
    /// A generator whose state is four consecutive outputs of [`SplitMix64::new`]`(seed)`.
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        let s = [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()];
        Self::from_state(s)
    }

    /// A generator with the given raw state. The all-zero state, which the algorithm cannot
    /// leave, is replaced by the state of `seed_from_u64(0)`.
    pub fn from_state(s: [u64; 4]) -> Self {
        if s == [0; 4] { Self::seed_from_u64(0) } else { Xoshiro256PlusPlus { s } }
    }

    /// The raw state, e.g. to checkpoint a long simulation.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Next 32 random bits (the upper half of [`next_u64`](Self::next_u64)).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform `f64` in `[0, 1)` with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform `f32` in `[0, 1)` with 24 random bits.
    #[inline]
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform `f64` in `[low, high)`.
    #[inline]
    pub fn uniform_in(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// Uniform integer in `0..n`, without modulo bias (Lemire 2019). Returns 0 when `n == 0`.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Uniform index in `0..n` (see [`below`](Self::below)).
    #[inline]
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    #[inline]
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal deviate by the Box–Muller transform (two uniforms per call, the
    /// sine branch discarded so that each call consumes exactly two `u64`).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Shuffles `items` in place (Fisher–Yates, from the back).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_xoshiro::rand_core::{Rng, SeedableRng};

    #[test]
    fn splitmix_matches_rand_xoshiro() {
        let mut ours = SplitMix64::new(1234567);
        let mut theirs = rand_xoshiro::SplitMix64::seed_from_u64(1234567);
        for _ in 0..100 {
            assert_eq!(ours.next_u64(), theirs.next_u64());
        }
    }

    #[test]
    fn xoshiro256pp_matches_rand_xoshiro_for_many_seeds() {
        for seed in [0u64, 1, 42, u64::MAX, 0xDEAD_BEEF] {
            let mut ours = Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut theirs = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
            for _ in 0..1000 {
                assert_eq!(ours.next_u64(), theirs.next_u64());
            }
        }
    }

    #[test]
    fn xoshiro256pp_reference_vector_from_state_1_2_3_4() {
        // First outputs of the reference C implementation for s = {1, 2, 3, 4}.
        let mut rng = Xoshiro256PlusPlus::from_state([1, 2, 3, 4]);
        let expected = [41943041u64, 58720359, 3588806011781223, 3591011842654386];
        for e in expected {
            assert_eq!(rng.next_u64(), e);
        }
    }

    #[test]
    fn derived_seeds_differ_and_are_reproducible() {
        let a: Vec<u64> = (0..1000).map(|i| derive_seed(9, i)).collect();
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), a.len());
        assert_eq!(a[17], derive_seed(9, 17));
        assert_ne!(derive_seed(9, 0), derive_seed(10, 0));
    }

    #[test]
    fn below_is_unbiased_for_small_n() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[rng.index(3)] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
    }

    #[test]
    fn uniform_stays_in_unit_interval_and_shuffle_permutes() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        for _ in 0..10_000 {
            let u = rng.uniform();
            assert!((0.0..1.0).contains(&u));
            let f = rng.uniform_f32();
            assert!((0.0..1.0).contains(&f));
        }
        let mut v: Vec<u32> = (0..100).collect();
        rng.shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }
}
