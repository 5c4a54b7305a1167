#!/usr/bin/env bash
# The kernel benchmark's one device script: on the GPU machine, times the CUDA backend's ops
# with the prebuilt iris (.gpu/bin/iris, `iris bench kernels --device cuda --json`) and
# PyTorch's at the same shapes (scripts/gpu/bench_kernels.py time), in the same call, then
# writes the joined markdown table to $OUT/cuda_kernels.md and stdout, with both JSON files
# and iris's stderr beside it. About 1-2 minutes; each side is cut off after BENCH_SIDE_S
# seconds (default 150).
#
# Before the device call, here: bash scripts/gpu/build.sh   (builds .gpu/bin/iris, stripped)
# Device call: run(command="bash scripts/gpu/bench_kernels.sh", carry=[".gpu.tgz"], timeout_s=420)
# An optional argument keeps only the cases whose `kernel shape` contains it, on both sides:
#   bash scripts/gpu/bench_kernels.sh matmul
# The table's numbers go into BENCHMARKS.md, section "CUDA kernels (H100)".
set -uo pipefail
cd "$(dirname "$0")/../.."
bash scripts/gpu/unpack.sh || exit 1

IRIS=.gpu/bin/iris
DIR=${OUT:-/tmp/iris-bench-kernels}
mkdir -p "$DIR"
FILTER=()
if [[ $# -gt 0 ]]; then
    FILTER=(--filter "$1")
fi

if [[ ! -x $IRIS ]]; then
    echo "no $IRIS: run scripts/gpu/build.sh first and name .gpu.tgz in the device call's carry"
    exit 1
fi

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.max.sm \
    --format=csv,noheader || echo "nvidia-smi failed"
echo "== iris: $("$IRIS" --version) ($(cat .gpu/bin/BUILD 2>/dev/null || echo 'no BUILD file'))"

start=$(date +%s)
timeout "${BENCH_SIDE_S:-150}" "$IRIS" bench kernels --device cuda --json "${FILTER[@]}" \
    >"$DIR/iris_kernels.json" 2>"$DIR/iris_kernels.err"
iris_rc=$?
echo "== iris: exit $iris_rc after $(( $(date +%s) - start )) s"
cat "$DIR/iris_kernels.err"

start=$(date +%s)
timeout "${BENCH_SIDE_S:-150}" python3 scripts/gpu/bench_kernels.py time "${FILTER[@]}" \
    --out "$DIR/torch_kernels.json"
torch_rc=$?
echo "== PyTorch: exit $torch_rc after $(( $(date +%s) - start )) s"

echo
python3 scripts/gpu/bench_kernels.py table "$DIR/iris_kernels.json" "$DIR/torch_kernels.json" \
    --build .gpu/bin/BUILD --out "$DIR/cuda_kernels.md"
table_rc=$?

echo "== iris exit $iris_rc, PyTorch exit $torch_rc, table exit $table_rc; files in $DIR"
[[ $iris_rc -eq 0 && $torch_rc -eq 0 && $table_rc -eq 0 ]]
