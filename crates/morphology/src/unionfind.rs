//! The union–find shared by the run and band labellings, and the split of their arrays
//! into per-strip parts.
//!
//! Invariant: `parent[i] <= i`. The root of a set is its smallest index (its earliest run
//! in raster order), which lets one ascending pass flatten the forest.

/// Root of `i`, halving the path on the way.
pub(crate) fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let p = parent[i as usize];
        parent[i as usize] = parent[p as usize];
        i = p;
    }
    i
}

/// Joins the sets of `a` and `b`; the smaller root becomes the root.
///
/// Rem's algorithm with splicing (see Patwary, Blair & Manne, "Experiments on union-find
/// algorithms for the disjoint-set data structure", 2010): the two paths are climbed
/// together, always from the node with the larger parent, whose parent is redirected to
/// the other's (splicing); it stops as soon as both have the same parent, which on
/// labelling workloads (most unions join runs already in one set) is often at once.
/// Parents only ever decrease, so `parent[i] <= i` and the root stays the set's smallest
/// index.
#[inline]
pub(crate) fn union(parent: &mut [u32], a: u32, b: u32) {
    let (mut x, mut y) = (a as usize, b as usize);
    loop {
        let (px, py) = (parent[x], parent[y]);
        if px == py {
            return;
        }
        if px > py {
            if px as usize == x {
                parent[x] = py;
                return;
            }
            parent[x] = py;
            x = px as usize;
        } else {
            if py as usize == y {
                parent[y] = px;
                return;
            }
            parent[y] = px;
            y = py as usize;
        }
    }
}

/// One strip's share of the run arrays: its row (or band) range and its slices of
/// `start`, `end` and `parent`.
pub(crate) type StripJob<'a> = (std::ops::Range<usize>, &'a mut [u32], &'a mut [u32], &'a mut [u32]);

/// Splits `start`, `end` and `parent` into consecutive disjoint parts, one per strip of
/// `bounds`, sized by the offsets `first[row]` of each row's (or band's) first run.
pub(crate) fn split_for_strips<'a>(
    bounds: &[std::ops::Range<usize>],
    first: &[usize],
    start: &'a mut [u32],
    end: &'a mut [u32],
    parent: &'a mut [u32],
) -> Vec<StripJob<'a>> {
    let mut jobs = Vec::with_capacity(bounds.len());
    let (mut s_rest, mut e_rest, mut p_rest) = (start, end, parent);
    for b in bounds {
        let n = first[b.end] - first[b.start];
        let (s_now, s_next) = std::mem::take(&mut s_rest).split_at_mut(n);
        let (e_now, e_next) = std::mem::take(&mut e_rest).split_at_mut(n);
        let (p_now, p_next) = std::mem::take(&mut p_rest).split_at_mut(n);
        (s_rest, e_rest, p_rest) = (s_next, e_next, p_next);
        jobs.push((b.clone(), s_now, e_now, p_now));
    }
    jobs
}

/// Offsets of each group's first element from the group sizes (a leading 0, then the
/// running sums), and `strips` nearly equal ranges of groups (at least one, at most one
/// per group).
pub(crate) fn offsets_and_strips(sizes: &[usize], strips: usize) -> (Vec<usize>, Vec<std::ops::Range<usize>>) {
    let mut offsets = Vec::with_capacity(sizes.len() + 1);
    offsets.push(0);
    for n in sizes {
        offsets.push(offsets.last().copied().unwrap_or(0) + n);
    }
    let groups = sizes.len();
    let strips = strips.clamp(1, groups.max(1));
    let bounds = (0..strips).map(|i| i * groups / strips..(i + 1) * groups / strips).collect();
    (offsets, bounds)
}

/// Flag that [`number_roots`] sets on a root's entry, whose other bits then hold its label.
const LABELLED: u32 = 1 << 31;

/// Numbers the roots of the forest 1, 2, … in index order (in parallel over chunks) and
/// returns how many there are. Afterwards a root's entry holds its label with the flag
/// [`LABELLED`] set and the other entries are unchanged, so that [`label_of`] can resolve
/// any index. Indices must stay below 2^31 (the callers' masks have fewer than 2^32 pixels
/// and at most one run per two of them).
fn number_roots(parent: &mut [u32]) -> usize {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    let is_root = |c: usize, j: usize, p: u32| p as usize == c * CHUNK + j;
    let roots: Vec<u32> = parent
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(c, ch)| ch.iter().enumerate().map(|(j, &p)| u32::from(is_root(c, j, p))).sum())
        .collect();
    let mut before = Vec::with_capacity(roots.len());
    let mut total = 0u32;
    for n in roots {
        before.push(total);
        total += n;
    }
    parent.par_chunks_mut(CHUNK).zip(before).enumerate().for_each(|(c, (ch, mut next))| {
        for (j, p) in ch.iter_mut().enumerate() {
            // Branch-free: on noise, roots and other runs alternate unpredictably.
            let root = is_root(c, j, *p);
            next += u32::from(root);
            *p = if root { LABELLED | next } else { *p };
        }
    });
    total as usize
}

/// Label of index `i` after [`number_roots`]: its root's.
#[inline]
fn label_of(parent: &[u32], mut i: u32) -> u32 {
    loop {
        let p = parent[i as usize];
        if p & LABELLED != 0 {
            return p & !LABELLED;
        }
        i = p;
    }
}

/// Label of every index (1, 2, … for the roots in index order, each other index its
/// root's), and the number of roots; `parent` is left as [`number_roots`] leaves it.
///
/// Labels are resolved here once, in parallel over chunks and free of branches, rather
/// than by climbing to the root for every run while the label image is written: on noisy
/// masks roots and other runs alternate unpredictably, and the climbs' mispredictions
/// cost about a third of the image write.
pub(crate) fn resolve_labels(parent: &mut [u32]) -> (Vec<u32>, usize) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    let count = number_roots(parent);
    // Zero marks "not known yet": labels start at 1.
    let mut labels = vec![0u32; parent.len()];
    let parent = &*parent;
    labels.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| resolve_chunk(c * CHUNK, out, parent));
    (labels, count)
}

/// Labels the indices `first..first + out.len()` into `out` (zeroed). A root's entry holds
/// its label; an index whose parent lies earlier in the chunk copies the parent's label
/// (final by then, as `parent[i] <= i`); the few whose parent lies in an earlier chunk
/// climb to their root.
fn resolve_chunk(first: usize, out: &mut [u32], parent: &[u32]) {
    for j in 0..out.len() {
        let p = parent[first + j];
        let root = p & LABELLED != 0;
        // A root's entry, and a parent in an earlier chunk, give a huge local index after
        // wrapping, which reads this entry itself, still zero. Loading for roots too and
        // or-ing their label in keeps the loop free of branches (a select would become one).
        let local = (p as usize).wrapping_sub(first).min(j);
        let mut label = out[local] | (p & !LABELLED & u32::from(root).wrapping_neg());
        if label == 0 {
            label = label_of(parent, p);
        }
        out[j] = label;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// Forests several chunks long, with unions that reach across chunks (as the
        /// seams between strips and large components make them), resolve to the labels
        /// of a plain root climb, roots numbered in index order.
        #[test]
        fn resolved_labels_equal_root_climbs(n in 1usize..70_000, unions in 0usize..40_000, reach in 1usize..70_000, seed in any::<u64>()) {
            let mut rng = nanoml_core::rng::Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut parent: Vec<u32> = (0..n as u32).collect();
            for _ in 0..unions {
                let a = rng.index(n);
                    let b = a.saturating_sub(rng.below(reach as u64) as usize);
                union(&mut parent, a as u32, b as u32);
            }
            let mut expected_root_label = vec![0u32; n];
            let mut next = 0;
            let mut expected = Vec::with_capacity(n);
            for i in 0..n {
                let mut r = i;
                while parent[r] as usize != r {
                    r = parent[r] as usize;
                }
                if r == i {
                    next += 1;
                    expected_root_label[i] = next;
                }
                expected.push(expected_root_label[r]);
            }
            let (labels, count) = resolve_labels(&mut parent);
            prop_assert_eq!(count, next as usize);
            prop_assert_eq!(labels, expected);
        }
    }
}
