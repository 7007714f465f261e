#!/usr/bin/env python3
"""Side-by-side timing of nanoml-spm's levelling, row alignment and scar kernels and
Gwyddion 2.62's libgwyprocess (Debian's libgwyddion20-dev) on the same scans.

    apt-get install libgwyddion20-dev
    ../pyenv/bin/python tools/compare/gwyddion.py [--size 1024] [--repeats 10] [--rounds 3]

Writes a film-like scan (islands, tilt, bow, row offsets, scars, noise) as NPY for
`cargo run --release --example compare_gwyddion` and as raw float64 for the C harness
(tools/gwyddion/harness.c, `time` mode, Gwyddion's OpenMP threads enabled), alternates
the two for --rounds rounds and prints medians, ratios and lines for docs/benchmarks.md.
The values themselves are checked by crates/spm/tests/gwyddion_level.rs.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
from _common import report  # noqa: E402
from spm_gwyddion import build  # noqa: E402

PEERS = {
    "level_plane": "gwy_data_field_fit_plane + plane_level",
    "level_poly_5x5": "gwy_data_field_fit_poly (5×5 independent) + subtract_poly",
    "align_median": "find_row_shifts_trimmed_mean(0.5) + subtract_row_shifts",
    "align_median_of_differences": "find_row_shifts_trimmed_diff(0.5) + subtract_row_shifts",
    "mark_scars": "gwy_data_field_mark_scars, both signs (defaults)",
    "laplace_fill_scars": "gwy_data_field_laplace_solve on the scar mask",
}


def scan(size, rng):
    y, x = np.mgrid[0:size, 0:size] / size
    film = (ndi.gaussian_filter(rng.standard_normal((size, size)), 4.0) > 0) * 2.0
    film += 0.3 * x - 0.2 * y + 0.8 * (x - 0.5) ** 2 + np.cumsum(rng.normal(0, 0.05, size))[:, None]
    for _ in range(12):
        i, j = rng.integers(0, size - 2), rng.integers(0, size // 2)
        film[i, j:j + rng.integers(20, size // 2)] += rng.choice([-1.5, 1.5])
    return (film + 0.05 * rng.standard_normal((size, size))) * 1e-9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    root = os.path.normpath(os.path.join(HERE, "..", ".."))
    image = scan(args.size, np.random.default_rng(62))
    name = f"film{args.size}"
    ours_rounds, theirs_rounds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(tmp)
        data = os.path.join(tmp, "npy")
        os.makedirs(data)
        np.save(os.path.join(data, name + ".npy"), image)
        raw = os.path.join(tmp, "scan.f64")
        image.astype("<f8").tofile(raw)
        ours_cmd = ["cargo", "run", "--quiet", "--release", "--example", "compare_gwyddion", "--", data, str(args.repeats)]
        theirs_cmd = [exe, "time", str(args.size), str(args.size), raw, str(args.repeats)]
        for _ in range(args.rounds):
            res = subprocess.run(ours_cmd, cwd=root, check=True, capture_output=True, text=True)
            ours_rounds.append({r["kernel"]: r["median_s"] for r in map(json.loads, res.stdout.splitlines())})
            res = subprocess.run(theirs_cmd, check=True, capture_output=True, text=True)
            theirs_rounds.append(json.loads(res.stdout))
    ours = {k: float(np.median([r[k] for r in ours_rounds])) for k in PEERS}
    theirs = {k: float(np.median([r[k] for r in theirs_rounds])) for k in PEERS}
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libgwyddion20-dev"], capture_output=True, text=True).stdout
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {rustc}; libgwyddion20-dev {version}")
    what = f"{name} ({args.size}×{args.size} float64)"
    report([(name, k, what, f"{peer}, Gwyddion {version}", ours[k], theirs[k]) for k, peer in PEERS.items()])


if __name__ == "__main__":
    sys.exit(main())
