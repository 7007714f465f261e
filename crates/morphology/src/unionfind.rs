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
