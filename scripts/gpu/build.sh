#!/usr/bin/env bash
# Builds, here (no CUDA needed), the binaries the GPU machine runs, and puts them, stripped,
# in .gpu/ (git-ignored):
#   .gpu/cuda_*     tests/cuda_*.rs: every CUDA kernel and graph against the CPU reference
#                   (scripts/gpu/run_cuda_tests.sh runs every executable directly in .gpu/)
#   .gpu/bin/iris   the release `iris` with `--features cuda`, for scripts/gpu/bench_kernels.sh;
#                   in a subfolder so run_cuda_tests.sh does not take it for a test binary
#   .gpu/bin/BUILD  the commit it was built from (with "+dirty" for uncommitted changes)
# and packs them into .gpu.tgz (git-ignored), which travels instead: the binaries are about
# 43 MB and a device call carries at most 64 MiB with the working tree, compressed they are
# about 12 MB. The device machine has no Rust toolchain; name .gpu.tgz in the device call's
# `carry`; every device script unpacks it first (scripts/gpu/unpack.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT_DIR=${IRIS_GPU_DIR:-.gpu} # another folder only to try this script without touching .gpu
TESTS=(cuda_ops cuda_executor cuda_gemm cuda_attention cuda_graph cuda_smollm2)
# .gpu.tgz travels with the device call, beside the working tree (about 28 MB): 64 MiB in all.
MAX_BYTES=$((32 << 20))

# Reads cargo's JSON messages on stdin and prints the executable built for target $1.
executable() {
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == sys.argv[1]:
        print(msg["executable"])
' "$1" | tail -1
}

rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR/bin"
for test in "${TESTS[@]}"; do
    exe=$(cargo test --release --features cuda --no-run --test "$test" --message-format=json \
        | executable "$test")
    if [[ -z "$exe" || ! -x "$exe" ]]; then
        echo "error: no executable built for test $test" >&2
        exit 1
    fi
    cp "$exe" "$OUT_DIR/$test"
    strip "$OUT_DIR/$test"
done

exe=$(cargo build --release -p iris-cli --features cuda --bin iris --message-format=json \
    | executable iris)
if [[ -z "$exe" || ! -x "$exe" ]]; then
    echo "error: no executable built for the iris binary" >&2
    exit 1
fi
cp "$exe" "$OUT_DIR/bin/iris"
strip "$OUT_DIR/bin/iris"
dirty=""
if [[ -n $(git status --porcelain) ]]; then
    dirty="+dirty"
fi
echo "$(git rev-parse --short HEAD)$dirty, built $(date -u '+%Y-%m-%d %H:%M UTC')" \
    >"$OUT_DIR/bin/BUILD"

ls -lR "$OUT_DIR"
echo "total: $(du -sb "$OUT_DIR" | cut -f1) bytes"
tar czf "$OUT_DIR.tgz" "$OUT_DIR"
packed=$(stat -c %s "$OUT_DIR.tgz")
echo "packed: $OUT_DIR.tgz, $packed bytes"
if (( packed > MAX_BYTES )); then
    echo "error: $OUT_DIR.tgz holds $packed bytes; with the working tree that passes the 64 MiB" \
        "a device call carries" >&2
    exit 1
fi
