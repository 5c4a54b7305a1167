#!/usr/bin/env bash
# The one device script: on the GPU machine, runs the prebuilt test binaries in .gpu/ (from
# scripts/gpu/build.sh) one test at a time with output shown, after printing the GPU(s).
# The log is tee'd to $OUT/cuda_tests.log when $OUT is set (the device tool brings $OUT back).
# Extra arguments go to every test binary (e.g. a test-name filter). IRIS_REQUIRE_CUDA=1 makes
# the tests fail, not skip, when the backend cannot start. Each binary is stopped after
# IRIS_TEST_TIMEOUT seconds (default 120), so one hung kernel cannot eat the device call.
#
# Device call: run(command="bash scripts/gpu/run_cuda_tests.sh", carry=[".gpu.tgz"], timeout_s=300)
set -uo pipefail
cd "$(dirname "$0")/../.."
bash scripts/gpu/unpack.sh || exit 1

LOG=/dev/null
if [[ -n "${OUT:-}" ]]; then
    mkdir -p "$OUT"
    LOG="$OUT/cuda_tests.log"
fi

{
    echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
    nvidia-smi -L || echo "nvidia-smi failed"
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader || true
    status=0
    found=0
    for bin in .gpu/*; do
        [[ -f "$bin" && -x "$bin" ]] || continue
        found=1
        echo "== $bin $*"
        start=$(date +%s%N)
        IRIS_REQUIRE_CUDA=1 timeout "${IRIS_TEST_TIMEOUT:-120}" "$bin" --nocapture --test-threads=1 "$@"
        rc=$?
        if (( rc != 0 )); then
            status=1
            if (( rc == 124 )); then echo "== $bin stopped after ${IRIS_TEST_TIMEOUT:-120} s"; fi
        fi
        echo "== $bin took $(( ($(date +%s%N) - start) / 1000000 )) ms"
    done
    if [[ $found -eq 0 ]]; then
        echo "no test binaries in .gpu/: run scripts/gpu/build.sh first and carry .gpu.tgz"
        status=1
    fi
    echo "== overall: $([[ $status -eq 0 ]] && echo PASS || echo FAIL)"
    exit $status
} 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
