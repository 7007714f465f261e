#!/usr/bin/env python3
"""Side-by-side timing of nanoml-morphology and scikit-image on the same masks, in one run.

    python3 -m venv ../pyenv && ../pyenv/bin/pip install scikit-image==0.26.0 numpy
    ../pyenv/bin/python tools/compare/morphology.py [--size 1024] [--repeats 30]

Writes the masks as NPY files to a temporary folder, runs
`cargo run --release --example compare_morphology` on them, times the scikit-image
functions on the very same arrays (median of --repeats calls after one warm-up, one
thread), alternating the two sides for --rounds rounds, and prints a table of the
medians (median over rounds of the per-round medians) and ratios (how many times faster
nanoml is) plus lines ready for docs/benchmarks.md. Correctness is checked separately by
the fixture tests.
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
from skimage import measure

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import median_seconds, report  # noqa: E402

KERNELS = {
    "euler_number_2": ("skimage.measure.euler_number(connectivity=2)", lambda m: measure.euler_number(m, connectivity=2)),
    "euler_number_1": ("skimage.measure.euler_number(connectivity=1)", lambda m: measure.euler_number(m, connectivity=1)),
    "perimeter_4": ("skimage.measure.perimeter(neighborhood=4)", lambda m: measure.perimeter(m, neighborhood=4)),
    "perimeter_crofton_4": ("skimage.measure.perimeter_crofton(directions=4)", lambda m: measure.perimeter_crofton(m, directions=4)),
    "label_2": ("skimage.measure.label(connectivity=2)", lambda m: measure.label(m, connectivity=2)),
    "label_1": ("skimage.measure.label(connectivity=1)", lambda m: measure.label(m, connectivity=1)),
}


def masks(size):
    rng = np.random.default_rng(7)
    out = {}
    for p in (0.3, 0.5):
        out[f"random{size}_p{int(p * 100)}"] = rng.random((size, size)) < p
    # A film-like mask: smoothed noise at its median, structures ~10 px across.
    field = ndi.gaussian_filter(rng.standard_normal((size, size)), 4.0)
    out[f"blobs{size}"] = field > np.median(field)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternate nanoml and scikit-image this many times; report the median of the round medians")
    args = ap.parse_args()
    root = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
    data = masks(args.size)
    ours_rounds, theirs_rounds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, m in data.items():
            np.save(os.path.join(tmp, name + ".npy"), m)
        cmd = ["cargo", "run", "--quiet", "--release", "--example", "compare_morphology", "--", tmp, str(args.repeats)]
        # Rounds alternate the two sides so that drifts in machine load hit both alike.
        for _ in range(args.rounds):
            res = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True)
            ours_round = {}
            for line in res.stdout.splitlines():
                rec = json.loads(line)
                ours_round[(rec["file"], rec["kernel"])] = rec["median_s"]
            ours_rounds.append(ours_round)
            theirs_rounds.append({(name, kernel): median_seconds(f, m, args.repeats)
                                  for name, m in data.items() for kernel, (_, f) in KERNELS.items()})
    ours = {k: float(np.median([r[k] for r in ours_rounds])) for k in ours_rounds[0]}
    theirs_all = {k: float(np.median([r[k] for r in theirs_rounds])) for k in theirs_rounds[0]}
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {rustc}; "
          f"python {platform.python_version()}, numpy {np.__version__}, scikit-image {skimage.__version__}")
    print(f"{'mask':<16} {'kernel':<22} {'nanoml':>12} {'scikit-image':>14} {'ratio':>8}")
    report([(name, kernel, f"{name} ({args.size}×{args.size} bool)", f"{peer}, scikit-image {skimage.__version__}",
              ours[(name, kernel)], theirs_all[(name, kernel)]) for name in data for kernel, (peer, _) in KERNELS.items()])


if __name__ == "__main__":
    sys.exit(main())
