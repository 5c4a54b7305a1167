#!/usr/bin/env bash
# Builds, here (no CUDA needed), the test binaries the GPU machine runs, and puts them,
# stripped, in .gpu/ (git-ignored) for scripts/gpu/run_cuda_tests.sh:
#   .gpu/cuda_ops   tests/cuda_ops.rs: every CUDA kernel against the CPU reference
# The device machine has no Rust toolchain; name .gpu in the device call's `carry`.
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT_DIR=.gpu
TESTS=(cuda_ops)

rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"
for test in "${TESTS[@]}"; do
    # The JSON messages name the test executable cargo built.
    exe=$(cargo test --release --features cuda --no-run --test "$test" --message-format=json \
        | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == sys.argv[1]:
        print(msg["executable"])
' "$test" | tail -1)
    if [[ -z "$exe" || ! -x "$exe" ]]; then
        echo "error: no executable built for test $test" >&2
        exit 1
    fi
    cp "$exe" "$OUT_DIR/$test"
    strip "$OUT_DIR/$test"
done
ls -l "$OUT_DIR"
du -ch "$OUT_DIR"/* | tail -1
