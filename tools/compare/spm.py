#!/usr/bin/env python3
"""Side-by-side timing of nanoml-spm's thresholds and scikit-image on the same images.

    ../pyenv/bin/python tools/compare/spm.py [--size 1024] [--repeats 20] [--rounds 3]

Writes float64 images as NPY files to a temporary folder (a levelled AFM-like height map:
smoothed noise on three terraces, and uniform noise), runs
`cargo run --release --example compare_spm` on them, times scikit-image on the very same
arrays (median of --repeats calls after a warm-up, one thread), alternating the two sides
for --rounds rounds, and prints medians, ratios and lines for docs/benchmarks.md. The
thresholds themselves are checked by the fixture tests.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np
import scipy.ndimage as ndi
import skimage
from skimage.filters import threshold_multiotsu, threshold_otsu

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
from _common import median_seconds, report  # noqa: E402
from spm_screening import is_noisy, median_align, normalise, poly_flatten  # noqa: E402

def _flat_binarisation(b):
    for lines in (b, b.T):
        _, counts = np.unique(lines, axis=0, return_counts=True)
        if counts.max() >= 0.8 * lines.shape[0]:
            return True
    return False


def screening_chain(image):
    """pyRabani's chain (Filters/screening.py), every step run whatever the verdicts."""
    aligned = median_align(normalise(image))
    noisy = is_noisy(aligned)["noisy"]
    levelled = normalise(poly_flatten(aligned, 5))
    t = threshold_multiotsu(levelled, nbins=1000)
    binary = levelled > t[0]
    flat = _flat_binarisation(binary)
    windows = np.lib.stride_tricks.sliding_window_view(binary, (200, 200))[::8, ::8]
    return windows.shape[0] * windows.shape[1] + int(noisy) + int(flat)


KERNELS = {
    "multiotsu_3_256": ("skimage.filters.threshold_multiotsu(classes=3, nbins=256)", lambda m: threshold_multiotsu(m, classes=3, nbins=256)),
    "multiotsu_3_1000": ("skimage.filters.threshold_multiotsu(classes=3, nbins=1000)", lambda m: threshold_multiotsu(m, classes=3, nbins=1000)),
    "multiotsu_4_256": ("skimage.filters.threshold_multiotsu(classes=4, nbins=256)", lambda m: threshold_multiotsu(m, classes=4, nbins=256)),
    "otsu_256": ("skimage.filters.threshold_otsu(nbins=256)", lambda m: threshold_otsu(m, nbins=256)),
    "screening_chain": ("pyRabani's screening chain in numpy/scipy/scikit-image (align, noise rows, degree-5 background, multi-Otsu, windows)", screening_chain),
}


def images(size):
    rng = np.random.default_rng(11)
    terraces = np.repeat(np.arange(3), size // 3 + 1)[:size][:, None] * 1.0
    film = terraces + ndi.gaussian_filter(rng.standard_normal((size, size)), 3.0) * 2.0
    return {f"afm{size}": film * 1e-9, f"noise{size}": rng.random((size, size))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    root = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
    data = images(args.size)
    ours_rounds, theirs_rounds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, m in data.items():
            np.save(os.path.join(tmp, name + ".npy"), m)
        cmd = ["cargo", "run", "--quiet", "--release", "--example", "compare_spm", "--", tmp, str(args.repeats)]
        for _ in range(args.rounds):
            res = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True)
            ours_rounds.append({(r["file"], r["kernel"]): r["median_s"] for r in map(json.loads, res.stdout.splitlines())})
            theirs_rounds.append({(name, k): median_seconds(f, m, args.repeats) for name, m in data.items() for k, (_, f) in KERNELS.items()})
    ours = {k: float(np.median([r[k] for r in ours_rounds])) for k in ours_rounds[0]}
    theirs = {k: float(np.median([r[k] for r in theirs_rounds])) for k in theirs_rounds[0]}
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {rustc}; python {platform.python_version()}, "
          f"numpy {np.__version__}, scikit-image {skimage.__version__}")
    report([(name, kernel, f"{name} ({args.size}×{args.size} float64)", f"{peer}, scikit-image {skimage.__version__}",
              ours[(name, kernel)], theirs[(name, kernel)]) for name in data for kernel, (peer, _) in KERNELS.items()])


if __name__ == "__main__":
    sys.exit(main())
