#!/usr/bin/env python3
"""Training and inference throughput of the screening networks: nanoml (candle, CPU)
against PyTorch (CPU) on the same architectures, batch sizes, inputs and thread count,
in one run.

    OMP_NUM_THREADS=2 ../pyenv/bin/python tools/compare/models.py [--repeats 5] [--rounds 3]

Networks (nanoml's layer-for-layer twins; see crates/models/src/{classifier,denoiser}.rs):
  classifier_paper  200×200, batch 32: 2 × [conv3×3 valid + ReLU] ×2 blocks (32, 64),
                    max-pool, dropout, dense 256, dense 5 (36,258,789 parameters)
  classifier_small  100×100, batch 32: 3 blocks of 2 same-padded convs (8, 16, 32),
                    global average pooling, dense 32, dense 5 (19,261 parameters)
  denoiser_paper    200×200, batch 16: conv64-pool-conv32-pool-conv32-up-conv64-up-conv1 (47,425)
  denoiser_small    conv16-pool-conv16-up-conv1 (2,625)
  classifier_paper_64  classifier_paper at 64×64, batch 64
  squeeze_bn_elu    128×128, batch 32: ten 3×3 same convs 32…1024, strides 2,1,2,1,…, each with
                    batch norm and ELU; global average pooling; dense 5
  skip_fcn          256×256, batch 4: the HRTEM encoder-decoder (conv→PReLU→BN layers in
                    conv-residual-conv blocks, 3 max-poolings, bilinear ×2 + 1×1 layer + added
                    skip, ReLU 1×1 score) at 16 base channels; mean squared error
"forward" is inference (eval mode, no gradients); "train" is one step: forward in train
mode, loss (cross-entropy / BCE with logits), backward, Adam. The ratio is nanoml's
images/s over PyTorch's (above 1: nanoml is faster).

Both sides run with the same C allocator settings: nanoml's compare_models calls
nanoml::models::keep_freed_memory() (glibc keeps freed memory for reuse instead of
faulting in fresh pages every step), and this script re-runs itself with the same settings
in GLIBC_TUNABLES for PyTorch. --default-malloc runs both with glibc's defaults instead.
"""
import argparse
import json
import os
import subprocess
import sys

# nanoml::models::memory::GLIBC_TUNABLES, the settings of keep_freed_memory().
TUNABLES = "glibc.malloc.trim_threshold=2147483647:glibc.malloc.mmap_threshold=33554432"
if "--default-malloc" not in sys.argv and os.environ.get("GLIBC_TUNABLES") != TUNABLES:
    # glibc reads its tunables when a process starts: run again with them.
    os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, GLIBC_TUNABLES=TUNABLES))

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import median_seconds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def vgg(side, blocks, padding, dense, global_pool, drop_block, drop_dense):
    layers, ch = [], 1
    for block in blocks:
        for out in block:
            layers += [nn.Conv2d(ch, out, 3, padding=1 if padding == "same" else 0), nn.ReLU()]
            ch = out
            if padding == "valid":
                side -= 2
        layers += [nn.MaxPool2d(2), nn.Dropout(drop_block)]
        side //= 2
    if global_pool:
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        feats = ch
    else:
        layers += [nn.Flatten()]
        feats = ch * side * side
    for width in dense:
        layers += [nn.Linear(feats, width), nn.ReLU(), nn.Dropout(drop_dense)]
        feats = width
    layers += [nn.Linear(feats, 5)]
    return nn.Sequential(*layers)


def autoencoder(enc, dec):
    layers, ch = [], 1
    for out in enc:
        layers += [nn.Conv2d(ch, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        ch = out
    for out in dec:
        layers += [nn.Conv2d(ch, out, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest")]
        ch = out
    layers += [nn.Conv2d(ch, 1, 3, padding=1)]
    return nn.Sequential(*layers)


class SqueezeLike(nn.Module):
    def __init__(self):
        super().__init__()
        layers, ch = [], 1
        for i, out in enumerate([32, 32, 64, 128, 128, 256, 256, 512, 512, 1024]):
            layers += [nn.Conv2d(ch, out, 3, stride=2 if i % 2 == 0 else 1, padding=1),
                       nn.BatchNorm2d(out, eps=1e-3, momentum=0.01), nn.ELU()]
            ch = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch, 5)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def conv_layer(cin, cout, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.PReLU(cout, init=0.01),
                         nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01))


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.first = conv_layer(cin, cout)
        self.res = nn.Sequential(conv_layer(cout, cout), conv_layer(cout, cout), conv_layer(cout, cout))
        self.last = conv_layer(cout, cout)

    def forward(self, x):
        x = self.first(x)
        return self.last(x + self.res(x))


class SkipFcn(nn.Module):
    def __init__(self, base):
        super().__init__()
        widths = [base, 2 * base, 4 * base]
        self.down = nn.ModuleList([Block(c, w) for c, w in zip([1] + widths[:-1], widths)])
        self.bridge = Block(widths[-1], 8 * base)
        ins = [8 * base] + widths[::-1][:-1]
        self.proj = nn.ModuleList([conv_layer(c, w, 1) for c, w in zip(ins, widths[::-1])])
        self.up = nn.ModuleList([Block(w, w) for w in widths[::-1]])
        self.score = nn.Conv2d(base, 1, 1)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bridge(x)
        for proj, block, skip in zip(self.proj, self.up, reversed(skips)):
            x = proj(nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
            x = block(x + skip)
        return torch.relu(self.score(x))


NETWORKS = {
    "classifier_paper": (lambda: vgg(200, [[32, 32], [64, 64]], "valid", [256], False, 0.25, 0.5), 200, 32, "classes"),
    "classifier_paper_64": (lambda: vgg(64, [[32, 32], [64, 64]], "valid", [256], False, 0.25, 0.5), 64, 64, "classes"),
    "classifier_small": (lambda: vgg(100, [[8, 8], [16, 16], [32, 32]], "same", [32], True, 0.1, 0.2), 100, 32, "classes"),
    "denoiser_paper": (lambda: autoencoder([64, 32], [32, 64]), 200, 16, "binary"),
    "denoiser_small": (lambda: autoencoder([16], [16]), 200, 16, "binary"),
    "squeeze_bn_elu": (SqueezeLike, 128, 32, "classes"),
    "skip_fcn": (lambda: SkipFcn(16), 256, 4, "squared"),
}
LOSSES = {"classes": nn.CrossEntropyLoss, "binary": nn.BCEWithLogitsLoss, "squared": nn.MSELoss}


def median_time(f, repeats):
    return median_seconds(lambda _: f(), None, repeats)


def torch_rates(repeats, only):
    out = {}
    for name, (make, side, batch, loss) in NETWORKS.items():
        if only and name != only:
            continue
        torch.manual_seed(0)
        net = make()
        x = torch.rand(batch, 1, side, side)
        y = torch.arange(batch) % 5 if loss == "classes" else (x >= 0.5).float()
        loss_fn = LOSSES[loss]()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-7)

        def forward():
            net.eval()
            with torch.no_grad():
                net(x)

        def train():
            net.train()
            opt.zero_grad()
            loss_fn(net(x), y).backward()
            opt.step()

        out[(name, "forward")] = batch / median_time(forward, repeats)
        out[(name, "train")] = batch / median_time(train, repeats)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=sorted(NETWORKS), help="time one network")
    ap.add_argument("--default-malloc", action="store_true",
                    help="glibc's default allocator settings on both sides (see above)")
    args = ap.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    root = os.path.normpath(os.path.join(HERE, "..", ".."))
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "compare_models", "--", str(args.repeats)]
    if args.only:
        cmd += ["--only", args.only]
    if args.default_malloc:
        cmd += ["--default-malloc"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    ours_rounds, theirs_rounds = [], []
    for _ in range(args.rounds):
        res = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True, env=env)
        ours_rounds.append({(r["network"], r["pass"]): r["images_per_s"] for r in map(json.loads, res.stdout.splitlines())})
        theirs_rounds.append(torch_rates(args.repeats, args.only))
    ours = {k: float(np.median([r[k] for r in ours_rounds])) for k in ours_rounds[0]}
    theirs = {k: float(np.median([r[k] for r in theirs_rounds])) for k in theirs_rounds[0]}
    print(f"PyTorch {torch.__version__} (CPU), {threads} threads; nanoml on candle 0.11.1 (CPU, vendor/candle-core); "
          f"medians of {args.repeats} calls, median over {args.rounds} alternating rounds; "
          f"allocator: {'glibc defaults' if args.default_malloc else 'GLIBC_TUNABLES=' + TUNABLES + ' on both sides'}")
    print(f"{'network':<18} {'pass':<8} {'nanoml img/s':>13} {'PyTorch img/s':>14} {'ratio':>7}")
    lines = []
    for (name, kind), rate in ours.items():
        _, side, batch, _ = NETWORKS[name]
        peer = theirs[(name, kind)]
        print(f"{name:<18} {kind:<8} {rate:>13.1f} {peer:>14.1f} {rate / peer:>6.2f}×")
        what = f"{side}², batch {batch}, {threads} threads, {'inference' if kind == 'forward' else 'forward+backward+Adam'}"
        lines.append(f"| {name} {kind} | {what} | PyTorch {torch.__version__} CPU | {rate:.1f} img/s | {peer:.1f} img/s | {rate / peer:.2f}× |")
    print("\nFor docs/benchmarks.md:")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
