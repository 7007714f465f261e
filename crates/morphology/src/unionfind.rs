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
pub(crate) fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra < rb {
        parent[rb as usize] = ra;
    } else if rb < ra {
        parent[ra as usize] = rb;
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

/// Final labels `1..=count` of all elements of a union–find forest (`parent[i] <= i`,
/// flattened in place on the way)
/// whose elements are grouped in consecutive ranges (the runs of a row, of a band), with
/// `group_start[g]..group_start[g + 1]` the range of group `g`.
///
/// A component belongs to the group of its root (its first element). Components are
/// numbered group by group; within a group, first those whose element met first in the
/// group satisfies `early(group, element)`, in the order of that element, then the rest in the order of
/// their roots. Groups are processed in parallel; the result does not depend on threads.
pub(crate) fn number_components(
    parent: &mut [u32],
    group_start: &[usize],
    early: impl Fn(usize, usize) -> bool + Sync,
) -> (Vec<u32>, usize) {
    use rayon::prelude::*;
    let n = parent.len();
    // Flatten: parents never exceed their index, so one ascending pass suffices.
    for i in 0..n {
        let p = parent[i] as usize;
        parent[i] = parent[p];
    }
    let roots: &[u32] = parent;
    // Ordinal of each root within its group.
    let mut ordinal = vec![0u32; n];
    let groups = group_start.len().saturating_sub(1);
    let mut parts = Vec::with_capacity(groups);
    let mut rest = &mut ordinal[..];
    for g in 0..groups {
        let (now, next) = std::mem::take(&mut rest).split_at_mut(group_start[g + 1] - group_start[g]);
        parts.push((group_start[g]..group_start[g + 1], now));
        rest = next;
    }
    let roots_ref = roots;
    let counts: Vec<u32> = parts
        .par_iter_mut()
        .enumerate()
        .map(|(g, (range, ord))| {
            let base = range.start;
            let mut count = 0u32;
            for pass_early in [true, false] {
                for i in range.clone() {
                    let r = roots_ref[i] as usize;
                    if r >= base && ord[r - base] == 0 && (!pass_early || early(g, i)) {
                        count += 1;
                        ord[r - base] = count;
                    }
                }
            }
            count
        })
        .collect();
    let mut offset = Vec::with_capacity(groups);
    let mut total = 0u32;
    for c in &counts {
        offset.push(total);
        total += c;
    }
    parts.par_iter_mut().zip(&offset).for_each(|((_, ord), &off)| {
        for o in ord.iter_mut().filter(|o| **o != 0) {
            *o += off;
        }
    });
    let labels: Vec<u32> = roots.par_iter().with_min_len(4096).map(|&r| ordinal[r as usize]).collect();
    (labels, total as usize)
}
