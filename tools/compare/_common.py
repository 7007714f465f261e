"""Helpers shared by the comparison scripts."""
import time

import numpy as np


def median_seconds(f, m, repeats):
    """Median wall time of `repeats` calls of f(m), after one warm-up call."""
    f(m)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(m)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def fmt(s):
    """Seconds as ms or µs."""
    return f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


def report(rows):
    """Prints one aligned line per comparison and then the docs/benchmarks.md lines.

    rows: (label, kernel, input description, peer with version, nanoml seconds, peer
    seconds); the ratio is peer / nanoml (how many times faster nanoml is)."""
    lines = []
    for label, kernel, what, peer, ours, theirs in rows:
        print(f"{label:<16} {kernel:<28} {fmt(ours):>12} {fmt(theirs):>12} {theirs / ours:>7.1f}×")
        lines.append(f"| {kernel} | {what} | {peer} | {fmt(ours)} | {fmt(theirs)} | {theirs / ours:.1f}× |")
    print("\nFor docs/benchmarks.md:")
    print("\n".join(lines))
