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
