#!/usr/bin/env python3
"""Side-by-side timing of nanoml-hrtem and abTEM 1.0.11 on the same particle and grids.

    ../pyenv/bin/pip install abtem==1.0.11 ase==3.29.0
    OMP_NUM_THREADS=2 ../pyenv/bin/python tools/compare/hrtem.py [--repeats 5] [--rounds 3]

The 1163-atom Au Wulff particle (energies 6/2/4 for {100}/{110}/{111}, rounding 'above')
turned 45° about x ([011] along the beam), centred in a 66.6 × 66.6 × 33 Å box (the
setup of ../shared/notes/hrtem.md §8); 300 keV plane wave, Lobato potentials, infinite
projection, 33 slices of 1 Å, float32, at 256², 512² and 1024² points (potential +
multislice, the exit wave computed); at 256² also one CTF image, and one recorded image:
nanoml draws a new random microscope each time (CTF, blur, dose noise, MTF), abTEM
applies a CTF, takes the intensity, blurs it and adds Poisson noise with a new seed
(it has no MTF step, so nanoml does more work there). Alternates `cargo run --release --example compare_hrtem`
and abTEM for --rounds rounds and prints medians, ratios and lines for
docs/benchmarks.md. The values are checked by crates/hrtem/tests/abtem_parity.rs.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import abtem
import numpy as np
from ase.cluster import wulff_construction

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import report  # noqa: E402


def particle():
    atoms = wulff_construction("Au", [(1, 0, 0), (1, 1, 0), (1, 1, 1)], [6.0, 2.0, 4.0], 1000, "fcc", rounding="above")
    atoms.rotate(45, "x")
    assert np.ptp(atoms.positions[:, 2]) < 33.0
    atoms.cell = [66.6, 66.6, 33.0]
    atoms.center()
    return atoms


def median_seconds(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def abtem_times(atoms, repeats):
    out = {}
    for n in (256, 512, 1024):
        def run(n=n):
            potential = abtem.Potential(atoms, gpts=n, slice_thickness=1.0, parametrization="lobato", projection="infinite")
            return abtem.PlaneWave(energy=300e3).multislice(potential).compute(progress_bar=False)
        out[("potential_multislice", n)] = median_seconds(run, repeats)
        if n == 256:
            exit_wave = run()
            ctf = abtem.CTF(defocus=100.0, Cs=20e4, focal_spread=30.0, energy=300e3)
            out[("ctf_image", n)] = median_seconds(lambda: exit_wave.apply_ctf(ctf).intensity().compute(progress_bar=False), repeats * 4)
            seeds = iter(range(1, 10**6))

            def record():
                image = exit_wave.apply_ctf(ctf).intensity().gaussian_filter(0.5)
                return image.poisson_noise(dose_per_area=1e4, seed=next(seeds)).compute(progress_bar=False)
            out[("record", n)] = median_seconds(record, repeats * 20)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    root = os.path.normpath(os.path.join(HERE, "..", ".."))
    abtem.config.set({"device": "cpu", "fft": "fftw"})
    atoms = particle()
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "compare_hrtem", "--", str(args.repeats)]
    ours_rounds, theirs_rounds = [], []
    for _ in range(args.rounds):
        res = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True)
        ours_rounds.append({(r["kernel"], r["gpts"]): r["median_s"] for r in map(json.loads, res.stdout.splitlines())})
        theirs_rounds.append(abtem_times(atoms, args.repeats))
    ours = {k: float(np.median([r[k] for r in ours_rounds])) for k in ours_rounds[0]}
    theirs = {k: float(np.median([r[k] for r in theirs_rounds])) for k in theirs_rounds[0]}
    print(f"{len(atoms)} atoms; abTEM {abtem.__version__} (FFTW), {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    peers = {
        "potential_multislice": "abtem.Potential(infinite, lobato, 1 Å) + PlaneWave.multislice",
        "ctf_image": "Waves.apply_ctf(CTF).intensity()",
        "record": "apply_ctf → intensity → gaussian_filter → poisson_noise (no MTF)",
    }
    rows = []
    for (kernel, n) in ours:
        slices = int(np.ceil(atoms.cell[2, 2]))
        what = f"Au Wulff 1163 atoms [011], 66.6 Å box, {n}², {slices} slices"
        if kernel == "record":
            what += "; nanoml: new random microscope (CTF, blur, dose, MTF) per image"
        rows.append((f"{kernel} {n}", kernel, what, f"{peers[kernel]}, abTEM {abtem.__version__}", ours[(kernel, n)], theirs[(kernel, n)]))
    report(rows)


if __name__ == "__main__":
    sys.exit(main())
