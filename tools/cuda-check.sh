#!/usr/bin/env bash
# Compile nanoml's GPU builds on a machine without a GPU or a CUDA installation.
#
#   bash tools/cuda-check.sh            # check + build the tests of the cuda/cudnn features
#   bash tools/cuda-check.sh --check    # only the clippy step (3), no linking
#
# What it does:
# 1. Sets up a CUDA 13.4 compiler toolchain from PyPI wheels (nvidia-cuda-nvcc, -runtime,
#    -cccl, -crt, nvidia-nvvm: nvcc, headers, libdevice) in target/cuda-toolchain/ (about 350 MB; done
#    once, a no-op when present). Needs python3 with pip and access to PyPI the first time.
# 2. Writes link stubs for the libraries cudarc links (libcuda, libnvrtc, libcurand,
#    libcublas, libcublasLt, libcudnn; libcudart, which candle's kernels need, is the
#    wheel's own): C functions named after every symbol that cudarc's
#    bindings declare, generated from the cudarc sources cargo resolved. The real
#    libraries are not on PyPI in a form that helps (libcuda ships only with the driver;
#    cuBLAS alone is 600 MB) and linking needs nothing but the names.
# 3. `cargo clippy --workspace --all-targets --features cuda -- -D warnings`, and the
#    same with `cudnn`: candle's CUDA kernels are compiled by nvcc (for compute
#    capability 9.0) and every device-dependent code path of nanoml type-checks and lints
#    clean.
# 4. `cargo test --workspace --features cudnn --no-run`: the test binaries and examples
#    link against the stubs. They are NOT run: a stub returns garbage, so running anything
#    that touches CUDA would be meaningless, and there is no GPU here anyway. On a GPU
#    machine, run `cargo test --workspace --features cuda` against the real libraries.
#
# Environment knobs: NANOML_CUDA_TOOLCHAIN (where the toolchain lives),
# CUDA_COMPUTE_CAP (default 90), CUDARC_CUDA_VERSION (default 13040, cudarc's bindings
# for CUDA 13.4, the wheels' version).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-all}
case "$mode" in
    all | --check) ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

say() { printf 'cuda-check: %s\n' "$*"; }

# Pinned so that a run today and a run next year compile with the same nvcc.
wheels=(
    "nvidia-cuda-nvcc==13.4.92"
    "nvidia-nvvm==13.4.92"
    "nvidia-cuda-runtime==13.4.92"
    "nvidia-cuda-crt==13.4.92"
    "nvidia-cuda-cccl==13.3.5.0.6"
)
tag=cuda-13.4.92
toolchain=${NANOML_CUDA_TOOLCHAIN:-$PWD/target/cuda-toolchain/$tag}
cuda=$toolchain/site/nvidia/cu13

if [ ! -f "$toolchain/.complete" ]; then
    python3 -m pip --version >/dev/null 2>&1 || { say "python3 -m pip is not available"; exit 3; }
    say "installing ${wheels[*]} into $toolchain"
    rm -rf "$toolchain"
    mkdir -p "$toolchain"
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --no-deps --target "$toolchain/site" "${wheels[@]}"
    test -x "$cuda/bin/nvcc" || { say "the wheels did not provide $cuda/bin/nvcc"; exit 1; }
    touch "$toolchain/.complete"
fi

export CUDA_ROOT=$cuda CUDA_PATH=$cuda CUDA_HOME=$cuda
export PATH=$cuda/bin:$PATH PIP_ROOT_USER_ACTION=ignore
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040}
say "$(nvcc --version | grep -o 'release [0-9.]*'), compute capability $CUDA_COMPUTE_CAP, cudarc bindings $CUDARC_CUDA_VERSION"

# Link stubs, regenerated when cudarc's version changes. cudarc searches $CUDA_ROOT/lib/stubs.
cudarc_src=$(cargo metadata --format-version 1 --features cudnn 2>/dev/null | python3 -c '
import json, os, sys
pkgs = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"]
print(os.path.dirname(pkgs[0]["manifest_path"]) if pkgs else "")')
[ -n "$cudarc_src" ] || { say "cargo metadata found no cudarc in the cuda build"; exit 1; }
stubs=$cuda/lib/stubs
stamp=$stubs/.from-$(basename "$cudarc_src")
if [ ! -f "$stamp" ]; then
    say "writing link stubs from $(basename "$cudarc_src")"
    rm -rf "$stubs"
    mkdir -p "$stubs"
    for pair in cuda:driver:1 nvrtc:nvrtc:13 curand:curand:10 cublas:cublas:13 cublasLt:cublaslt:13 cudnn:cudnn:9; do
        IFS=: read -r lib module major <<<"$pair"
        {
            echo "/* Link stub for lib$lib: every function cudarc declares, doing nothing. */"
            grep -oP '^pub unsafe fn \K\w+' "$cudarc_src/src/$module/sys/mod.rs" | sort -u | sed 's/.*/void &(void) {}/'
        } >"$stubs/$lib.c"
        test "$(grep -c '^void' "$stubs/$lib.c")" -gt 10 \
            || { say "found no functions for lib$lib in cudarc's $module bindings"; exit 1; }
        cc -shared -fPIC -o "$stubs/lib$lib.so" -Wl,-soname,"lib$lib.so.$major" "$stubs/$lib.c"
    done
    # candle-kernels' fused kernels (libmoe.a, compiled by nvcc) call the CUDA runtime:
    # that one is in the wheels, without its development link name.
    ln -s ../libcudart.so.13 "$stubs/libcudart.so"
    touch "$stamp"
fi

started=$(date +%s)
for feature in cuda cudnn; do
    say "cargo clippy --workspace --all-targets --features $feature -- -D warnings"
    cargo clippy --workspace --all-targets --features "$feature" -- -D warnings
done
if [ "$mode" = all ]; then
    say "cargo test --workspace --features cudnn --no-run (linked against the stubs, not run)"
    cargo test --workspace --features cudnn --no-run
fi
say "passed in $(( $(date +%s) - started )) s"
