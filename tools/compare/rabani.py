#!/usr/bin/env python3
"""Side-by-side timing of nanoml's Rabani kernel and a numba port of the reference kernel.

    python3 -m venv ../pyenv && ../pyenv/bin/pip install numba==0.68.1 numpy
    NUMBA_NUM_THREADS=1 ../pyenv/bin/python tools/compare/rabani.py [--size 128] [--mr 1] [--steps 100]

The reference is pyRabani's `rabani_single` (Gordon et al. 2020) as described in
../shared/notes/rabani.md §1.3, written here afresh in numba with the reference's
structure: float64 particle and liquid arrays, random numbers pre-drawn for each phase
(positions as ceil(L*U) - 1), the Boltzmann factor exp(-dE/kT) evaluated per attempt,
`@njit(fastmath=True)`. Both sides run kT = 0.35, mu = 3.0, C = 0.3, e_nl = 1.5,
e_nn = 2.0, early stopping off, on one thread; the script alternates them for --rounds
rounds and prints the medians, the ratio and a line for docs/benchmarks.md. It also
reports nanoml's batch throughput on 1 and 2 threads (--batch runs of --batch-steps steps).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numba
import numpy as np
from numba import njit


@njit(fastmath=True, cache=False)
def reference_run(kT, mu, MR, C, e_nl, e_nn, L, steps, seed):
    np.random.seed(seed)
    N = L * L
    NP = np.zeros((L, L))
    LQ = np.ones((L, L))
    chosen = np.random.choice(N, int(C * N), replace=False)
    for k in chosen:
        NP[k // L, k % L] = 1.0
        LQ[k // L, k % L] = 0.0
    B = 1.0 / kT
    for _ in range(steps):
        # (a) solvent: N attempts at random sites, randoms drawn up front.
        xs = np.ceil(L * np.random.random(N)) - 1
        ys = np.ceil(L * np.random.random(N)) - 1
        rs = np.random.random(N)
        for i in range(N):
            x = int(xs[i]) % L
            y = int(ys[i]) % L
            if NP[x, y] == 0.0:
                xm, xp, ym, yp = (x - 1) % L, (x + 1) % L, (y - 1) % L, (y + 1) % L
                sL = LQ[xm, y] + LQ[xp, y] + LQ[x, ym] + LQ[x, yp]
                sN = NP[xm, y] + NP[xp, y] + NP[x, ym] + NP[x, yp]
                if LQ[x, y] == 0.0:
                    dE = -sL - e_nl * sN + mu
                    if rs[i] < np.exp(-B * dE):
                        LQ[x, y] = 1.0
                else:
                    dE = sL + e_nl * sN - mu
                    if rs[i] < np.exp(-B * dE):
                        LQ[x, y] = 0.0
        # (b) particles: N*MR attempts at random sites with random directions.
        M = N * MR
        xs = np.ceil(L * np.random.random(M)) - 1
        ys = np.ceil(L * np.random.random(M)) - 1
        rs = np.random.random(M)
        ds = np.ceil(4 * np.random.random(M))
        for i in range(M):
            x = int(xs[i]) % L
            y = int(ys[i]) % L
            if NP[x, y] != 1.0:
                continue
            d = int(ds[i])
            xm, xp, ym, yp = (x - 1) % L, (x + 1) % L, (y - 1) % L, (y + 1) % L
            if d == 1:
                tx, ty = xm, y
            elif d == 2:
                tx, ty = xp, y
            elif d == 3:
                tx, ty = x, ym
            else:
                tx, ty = x, yp
            if LQ[tx, ty] != 1.0:
                continue
            txm, txp, tym, typ = (tx - 1) % L, (tx + 1) % L, (ty - 1) % L, (ty + 1) % L
            # A: neighbours of the source other than the target; B: of the target other
            # than the source (sums of all four minus the swapped cell).
            LA = LQ[xm, y] + LQ[xp, y] + LQ[x, ym] + LQ[x, yp] - 1.0
            NA = NP[xm, y] + NP[xp, y] + NP[x, ym] + NP[x, yp]
            LB = LQ[txm, ty] + LQ[txp, ty] + LQ[tx, tym] + LQ[tx, typ]
            NB = NP[txm, ty] + NP[txp, ty] + NP[tx, tym] + NP[tx, typ] - 1.0
            dE = -(LA - LB) - e_nl * (LB - LA) - e_nl * (NA - NB) - e_nn * (NB - NA)
            if rs[i] < np.exp(-B * dE):
                NP[tx, ty] = 1.0
                NP[x, y] = 0.0
                LQ[x, y] = 1.0
                LQ[tx, ty] = 0.0
    return 2 * NP + LQ


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--mr", type=int, default=1)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batch-steps", type=int, default=400)
    args = ap.parse_args()
    root = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
    L, MR, steps = args.size, args.mr, args.steps
    attempts = steps * L * L * (1 + MR)
    reference_run(0.35, 3.0, MR, 0.3, 1.5, 2.0, L, 2, 0)  # compile
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "compare_rabani", "--",
           str(L), str(MR), str(steps), str(args.repeats), str(args.batch), str(args.batch_steps)]
    ours, theirs, batch1, batch2 = [], [], [], []
    for _ in range(args.rounds):
        res = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True)
        for line in res.stdout.splitlines():
            rec = json.loads(line)
            if rec["measure"] == "single":
                ours.append(rec["ns_per_attempt"])
            elif rec["measure"] == "batch_1":
                batch1.append(rec["sims_per_s"])
            elif rec["measure"] == "batch_2":
                batch2.append(rec["sims_per_s"])
        times = []
        for seed in range(args.repeats):
            t = time.perf_counter()
            out = reference_run(0.35, 3.0, MR, 0.3, 1.5, 2.0, L, steps, seed)
            times.append((time.perf_counter() - t) / attempts * 1e9)
        theirs.append(float(np.median(times)))
    mine, peer = float(np.median(ours)), float(np.median(theirs))
    frac = [float(np.mean(out == v)) for v in (0, 1, 2)]
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {rustc}; python {platform.python_version()}, "
          f"numpy {np.__version__}, numba {numba.__version__}")
    print(f"reference's last film: substrate/liquid/particle fractions {frac[0]:.3f}/{frac[1]:.3f}/{frac[2]:.3f}")
    print(f"single thread, L={L}, MR={MR}, {steps} steps: nanoml {mine:.2f} ns/attempt, "
          f"reference (numba) {peer:.2f} ns/attempt, ratio {peer / mine:.1f}×")
    b1, b2 = float(np.median(batch1)), float(np.median(batch2))
    print(f"nanoml batch of {args.batch} runs of {args.batch_steps} steps: {b1:.1f} sims/s on 1 thread, "
          f"{b2:.1f} on 2 threads ({b2 / b1:.2f}×)")
    print("\nFor docs/benchmarks.md:")
    print(f"| rabani step (per attempted update) | L = {L}, MR = {MR}, kT 0.35, mu 3.0, C 0.3, {steps} steps | "
          f"numba port of pyRabani `rabani_single`, numba {numba.__version__} | {mine:.2f} ns | {peer:.2f} ns | {peer / mine:.1f}× |")


if __name__ == "__main__":
    sys.exit(main())
