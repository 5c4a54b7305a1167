#!/usr/bin/env bash
# Assembles every PTX file under kernels/src/cuda/ptx offline with ptxas for sm_80 and
# sm_90a (no GPU needed), printing registers / shared memory / spills per kernel. Fails on
# any ptxas error or warning (--Werror), and on any spill (--warn-on-spills makes a spill a
# warning, hence an error; the spill line is checked as well in case a ptxas does not warn).
#
# ptxas comes from $PTXAS, PATH, /usr/local/cuda, or the pip wheel nvidia-cuda-nvcc-cu12
# (nvidia/cuda_nvcc/bin/ptxas in site-packages or .whl/nvcc; pip-installed into .whl/nvcc
# when none is found).
#
# Usage: bash scripts/check_ptx.sh [file.ptx ...]
# Default: every module the runtime can load, as `iris kernels --dump-ptx` writes them (so
# generated modules are covered too), falling back to kernels/src/cuda/ptx/*.ptx when the
# CLI cannot be built (IRIS_PTX_FROM_FILES=1 forces the fallback).
set -euo pipefail

cd "$(dirname "$0")/.."
ARCHS=(sm_80 sm_90a)

WHEEL_DIR=.whl/nvcc   # git-ignored; holds the pip wheel when nothing else provides ptxas

find_ptxas() {
    if [[ -n "${PTXAS:-}" && -x "${PTXAS}" ]]; then echo "$PTXAS"; return 0; fi
    if command -v ptxas >/dev/null 2>&1; then command -v ptxas; return 0; fi
    for candidate in /usr/local/cuda/bin/ptxas "$WHEEL_DIR/nvidia/cuda_nvcc/bin/ptxas"; do
        if [[ -x "$candidate" ]]; then echo "$candidate"; return 0; fi
    done
    # An nvidia-cuda-nvcc-cu12 wheel installed in the current Python's site-packages.
    python3 - <<'PY' 2>/dev/null
import os, sys
try:
    import nvidia.cuda_nvcc as m
except ImportError:
    sys.exit(1)
for base in list(getattr(m, "__path__", [])):
    p = os.path.join(base, "bin", "ptxas")
    if os.access(p, os.X_OK):
        print(p)
        sys.exit(0)
sys.exit(1)
PY
}

if ! PTXAS_BIN=$(find_ptxas); then
    # --target keeps the wheel inside the repo (and works where the system Python refuses
    # installs into its own site-packages).
    echo "ptxas not found: pip-installing nvidia-cuda-nvcc-cu12 into $WHEEL_DIR" >&2
    python3 -m pip install --quiet --target "$WHEEL_DIR" nvidia-cuda-nvcc-cu12 >&2
    chmod +x "$WHEEL_DIR/nvidia/cuda_nvcc/bin/ptxas" 2>/dev/null || true
    PTXAS_BIN=$(find_ptxas) || { echo "error: ptxas still not found after pip install" >&2; exit 1; }
fi
echo "ptxas: $PTXAS_BIN ($("$PTXAS_BIN" --version | tail -1))"

if [[ $# -gt 0 ]]; then
    FILES=("$@")
else
    DUMP_DIR=$(mktemp -d)
    trap 'rm -rf "$DUMP_DIR"' EXIT
    if [[ "${IRIS_PTX_FROM_FILES:-0}" != 1 ]] \
        && cargo run --quiet --features cuda -p iris-cli -- kernels --dump-ptx "$DUMP_DIR" >&2; then
        mapfile -t FILES < <(find "$DUMP_DIR" -name '*.ptx' | sort)
    else
        echo "note: assembling kernels/src/cuda/ptx/*.ptx (no module dump)" >&2
        mapfile -t FILES < <(find kernels/src/cuda/ptx -name '*.ptx' | sort)
    fi
fi
if [[ ${#FILES[@]} -eq 0 ]]; then
    echo "error: no .ptx files found" >&2
    exit 1
fi

failed=0
printf '%-28s %-7s %5s %10s %8s %s\n' kernel arch regs smem_bytes spills file
for file in "${FILES[@]}"; do
    for arch in "${ARCHS[@]}"; do
        if ! log=$("$PTXAS_BIN" -arch="$arch" -v --warn-on-spills --warning-as-error "$file" -o /dev/null 2>&1); then
            echo "FAIL: $file for $arch:" >&2
            echo "$log" >&2
            failed=1
            continue
        fi
        # ptxas -v: "Compiling entry function 'k' for 'sm_80'", then
        # "N bytes stack frame, S bytes spill stores, L bytes spill loads",
        # "Used R registers, ... B bytes smem, ...".
        summary=$(awk -v arch="$arch" -v file="$file" '
            /Compiling entry function/ { match($0, /'"'"'[^'"'"']+'"'"'/); kernel = substr($0, RSTART + 1, RLENGTH - 2) }
            /spill stores/ { spills = $5 + $9 }
            /Used [0-9]+ registers/ {
                regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
                smem = 0
                if (match($0, /[0-9]+ bytes smem/)) { smem = substr($0, RSTART, RLENGTH); sub(/ bytes smem/, "", smem) }
                printf "%-28s %-7s %5s %10s %8s %s\n", kernel, arch, regs, smem, spills + 0, file
                if (spills + 0 > 0) bad = 1
            }
            END { exit bad }' <<<"$log") || { echo "FAIL: spills in $file for $arch" >&2; failed=1; }
        if [[ -z "$summary" ]]; then
            echo "FAIL: no entry function in $file for $arch" >&2
            failed=1
        fi
        echo "$summary"
    done
done

if [[ $failed -ne 0 ]]; then
    echo "check_ptx: FAILED" >&2
    exit 1
fi
echo "check_ptx: ${#FILES[@]} files x ${#ARCHS[@]} archs assembled, no warnings, no spills"
