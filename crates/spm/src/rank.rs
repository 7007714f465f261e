//! Order statistics for the row alignments: medians, k-th ranks and trimmed means, either
//! exact or as Debian's Gwyddion 2.62 computes them.
//!
//! Gwyddion's median is the element of rank `n/2` (0-based): the *upper* median for even
//! `n`, never an average. Its selection routine in libgwyddion 2.62 (`gwy_math_kth_rank`,
//! a median-of-three quickselect that finishes small partitions with special cases) has a
//! slip in the case "second largest of the partition": it orders the last two values the
//! wrong way round, so whenever the partition left at the end is searched for its
//! second-largest value, the answer can be the largest or any other value of that
//! partition instead. On large rows the partition holds neighbours of the true median and
//! the error is a neighbouring rank; on a four-pixel row the "median" can be the maximum.
//! Later Gwyddion releases fixed the slip. [`Ranks::Gwyddion262`] reproduces that
//! selection step for step (so row shifts equal libgwyddion 2.62's bit for bit, checked
//! against the library in `tests/gwyddion_level.rs`); [`Ranks::Exact`] gives true rank
//! statistics and is the default everywhere.

/// How medians, k-th ranks and trimmed means are selected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ranks {
    /// True order statistics (what current Gwyddion and any textbook give).
    #[default]
    Exact,
    /// libgwyddion 2.62's selection, slip included: bit-for-bit parity with Debian
    /// bookworm's Gwyddion.
    Gwyddion262,
}

impl Ranks {
    /// The value of rank `k` (0-based, ascending) of `v`; `v` is reordered. `None` when
    /// `k` is out of range. NaNs rank above everything with `Exact`.
    pub fn kth_rank(self, v: &mut [f64], k: usize) -> Option<f64> {
        (k < v.len()).then(|| self.kth(v, k))
    }

    /// Gwyddion's median, the value of rank `n/2` (the upper median for even `n`); `v`
    /// is reordered. `None` for an empty slice.
    pub fn median_of(self, v: &mut [f64]) -> Option<f64> {
        (!v.is_empty()).then(|| self.median(v))
    }

    /// The rank `k < v.len()`.
    pub(crate) fn kth(self, v: &mut [f64], k: usize) -> f64 {
        match self {
            Ranks::Exact => *v.select_nth_unstable_by(k, f64::total_cmp).1,
            Ranks::Gwyddion262 => kth_rank_262(v, k),
        }
    }

    /// The element of rank `n/2`.
    pub(crate) fn median(self, v: &mut [f64]) -> f64 {
        let k = v.len() / 2;
        self.kth(v, k)
    }

    /// The mean of the values of ranks `[low, n − high)`; `v` is reordered. Like
    /// `gwy_math_trimmed_mean`, the kept block is found by selection and summed in the
    /// order the selection leaves it. `None` unless `low + high < n`.
    pub fn trimmed_mean(self, v: &mut [f64], low: usize, high: usize) -> Option<f64> {
        (low + high < v.len()).then(|| self.trimmed(v, low, high))
    }

    /// [`Self::trimmed_mean`] for `low + high < n`.
    pub(crate) fn trimmed(self, v: &mut [f64], low: usize, high: usize) -> f64 {
        let n = v.len();
        debug_assert!(low + high < n);
        let kept = n - low - high;
        match (low, high) {
            (0, 0) => {}
            (0, _) => {
                self.kth(v, kept);
            }
            (_, 0) => {
                self.kth(v, low - 1);
            }
            _ => self.two_ranks(v, low - 1, n - high),
        }
        v[low..low + kept].iter().sum::<f64>() / kept as f64
    }

    /// Places the values of ranks `k0 < k1` (and everything between them) as
    /// `gwy_math_kth_ranks` does for two ranks: the rank nearer the middle first, then
    /// the other within the part that holds it.
    fn two_ranks(self, v: &mut [f64], k0: usize, k1: usize) {
        let n = v.len();
        let mid = n / 2;
        if k0.abs_diff(mid) <= k1.abs_diff(mid) {
            self.kth(v, k0);
            let rest = &mut v[k0 + 1..];
            self.kth(rest, k1 - k0 - 1);
        } else {
            self.kth(v, k1);
            self.kth(&mut v[..k1], k0);
        }
    }
}

/// libgwyddion 2.62's quickselect: median-of-three pivot moved to the front, a sentinel
/// partition scan, and [`small_partition_262`] once the partition or the rank nears an
/// end.
fn kth_rank_262(v: &mut [f64], k: usize) -> f64 {
    let (mut lo, mut hi) = (0usize, v.len() - 1);
    loop {
        if hi <= lo + 2 || k <= lo + 2 || k + 2 >= hi {
            if hi < lo {
                // The pivot landed exactly on `k` and the partition above it is empty.
                return v[lo];
            }
            return small_partition_262(&mut v[lo..=hi], k - lo);
        }
        let middle = (lo + hi) / 2;
        order(v, middle, hi);
        order(v, lo, hi);
        order(v, middle, lo);
        // The median of the three is at `lo`, the smallest at `lo + 1` after this swap,
        // the largest at `hi`: sentinels for both scans.
        v.swap(middle, lo + 1);
        let pivot = v[lo];
        let (mut up, mut down) = (lo + 1, hi);
        loop {
            up += 1;
            while pivot > v[up] {
                up += 1;
            }
            down -= 1;
            while v[down] > pivot {
                down -= 1;
            }
            if down < up {
                break;
            }
            v.swap(up, down);
        }
        v[lo] = v[down];
        v[down] = pivot;
        if down <= k {
            lo = down;
        }
        if down >= k {
            hi = down - 1;
        }
    }
}

/// Swaps `v[i]` and `v[j]` when `v[j] < v[i]`.
fn order(v: &mut [f64], i: usize, j: usize) {
    if v[j] < v[i] {
        v.swap(i, j);
    }
}

/// Sorts three values in place with 2.62's comparisons.
fn order_three(v: &mut [f64]) {
    order(v, 0, 1);
    if v[2] < v[1] {
        v.swap(1, 2);
        order(v, 0, 1);
    }
}

/// The end game of 2.62's selection on a small partition or a rank near one of its ends:
/// the one, two or three smallest (or largest) values kept in order at the front (or
/// back) while the rest is swept. The "second largest" case starts with its two values
/// in the wrong order — the 2.62 slip.
fn small_partition_262(v: &mut [f64], k: usize) -> f64 {
    let n = v.len();
    if n == 1 {
        return v[0];
    }
    if n == 2 {
        order(v, 0, 1);
        return v[k];
    }
    if n == 3 && k == 1 {
        order_three(v);
        return v[1];
    }
    if k == 0 {
        let mut a = v[0];
        for i in 1..n {
            let c = v[i];
            if c < a {
                v[i] = a;
                a = c;
                v[0] = a;
            }
        }
        return a;
    }
    if k == n - 1 {
        let mut a = v[n - 1];
        for i in 0..n - 1 {
            let c = v[i];
            if c > a {
                v[i] = a;
                a = c;
                v[n - 1] = a;
            }
        }
        return a;
    }
    if k == 1 {
        order(v, 0, 1);
        let (mut a, mut b) = (v[0], v[1]);
        for i in 2..n {
            let c = v[i];
            if c < b {
                v[i] = b;
                if c < a {
                    (b, a) = (a, c);
                } else {
                    b = c;
                }
                (v[0], v[1]) = (a, b);
            }
        }
        return b;
    }
    if k == n - 2 {
        // Should order (n − 2, n − 1); 2.62 orders them the other way round.
        order(v, n - 1, n - 2);
        let (mut a, mut b) = (v[n - 1], v[n - 2]);
        for i in 0..n - 2 {
            let c = v[i];
            if c > b {
                v[i] = b;
                if c > a {
                    (b, a) = (a, c);
                } else {
                    b = c;
                }
                (v[n - 2], v[n - 1]) = (b, a);
            }
        }
        return b;
    }
    if k == 2 {
        order_three(v);
        let (mut a, mut b, mut c) = (v[0], v[1], v[2]);
        for i in 3..n {
            let d = v[i];
            if d < c {
                v[i] = c;
                if d < b {
                    c = b;
                    if d < a {
                        (b, a) = (a, d);
                    } else {
                        b = d;
                    }
                } else {
                    c = d;
                }
                (v[0], v[1], v[2]) = (a, b, c);
            }
        }
        return c;
    }
    if k == n - 3 {
        order_three(&mut v[n - 3..]);
        let (mut a, mut b, mut c) = (v[n - 1], v[n - 2], v[n - 3]);
        for i in 0..n - 3 {
            let d = v[i];
            if d > c {
                v[i] = c;
                if d > b {
                    c = b;
                    if d > a {
                        (b, a) = (a, d);
                    } else {
                        b = d;
                    }
                } else {
                    c = d;
                }
                (v[n - 3], v[n - 2], v[n - 1]) = (c, b, a);
            }
        }
        return c;
    }
    // Not reached from `kth_rank_262` (its calls always hit one of the cases above).
    *v.select_nth_unstable_by(k, f64::total_cmp).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_262_slip_on_four_values() {
        // libgwyddion 2.62's gwy_math_median on these rows (checked against the library).
        assert_eq!(Ranks::Gwyddion262.median(&mut [4.21, 0.27, 0.59, 9.26]), 9.26);
        assert_eq!(Ranks::Gwyddion262.median(&mut [4.26, 7.36, 3.68, 4.29]), 3.68);
        assert_eq!(Ranks::Gwyddion262.median(&mut [8.86, 9.15, 3.35, 4.92]), 8.86);
        assert_eq!(Ranks::Exact.median(&mut [4.21, 0.27, 0.59, 9.26]), 4.21);
    }

    proptest! {
        /// Outside the slip the replica is a correct selection: every rank except the
        /// "second largest of a partition" cases comes out right, and the values are only
        /// ever permuted.
        #[test]
        fn replica_permutes_and_mostly_selects(v in prop::collection::vec(-100i32..100, 1..80), k in 0usize..80) {
            let k = k % v.len();
            let mut a: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
            let mut sorted = a.clone();
            sorted.sort_by(f64::total_cmp);
            let got = Ranks::Gwyddion262.kth(&mut a, k);
            let mut after = a.clone();
            after.sort_by(f64::total_cmp);
            prop_assert_eq!(&after, &sorted);
            prop_assert!(sorted.contains(&got));
            let n = a.len();
            if n <= 3 || k <= 1 || k + 1 == n || (k == 2 && n != 4) {
                prop_assert_eq!(got, sorted[k]);
            }
        }

        #[test]
        fn exact_trimmed_mean_is_the_mean_of_the_kept_ranks(v in prop::collection::vec(-1000i32..1000, 1..60), low in 0usize..30, high in 0usize..30) {
            let n = v.len();
            prop_assume!(low + high < n);
            let mut a: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
            let mut sorted = a.clone();
            sorted.sort_by(f64::total_cmp);
            let want = sorted[low..n - high].iter().sum::<f64>() / (n - low - high) as f64;
            let got = Ranks::Exact.trimmed(&mut a, low, high);
            prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0));
        }
    }
}
