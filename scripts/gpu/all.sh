#!/usr/bin/env bash
# Every GPU check and timing in one device call, within a time budget, so a lease's few
# minutes go to one call:
#
#   run(command="bash scripts/gpu/all.sh", carry=[".gpu.tgz"], timeout_s=540)
#
# Phases, in order (name some to run only those: `bash scripts/gpu/all.sh tests llava`):
#   tests    scripts/gpu/run_cuda_tests.sh   every CUDA kernel and graph against the CPU
#   kernels  scripts/gpu/bench_kernels.sh    each CUDA op timed against PyTorch
#   sweep    scripts/gpu/sweep.sh            GEMM tile variants and flash warps, each timed
#   llava    scripts/gpu/llava7b.sh          LLaVA-1.5-7B shape end to end, iris and PyTorch
# Each phase writes into its own folder; after each, all of them are packed again into
# $OUT/results.tgz, so a call stopped at its limit still brings back the phases that ended.
# (The device call brings back at most 8 files, and the phases write more.)
# ALL_BUDGET_S (default 480) bounds the whole; the llava phase gets what is left, and is
# skipped with under 150 s.
#
# Before the call, here: bash scripts/gpu/build.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
bash scripts/gpu/unpack.sh || exit 1

FINAL=${OUT:-/tmp/iris-gpu-all}
mkdir -p "$FINAL"
WORK=$(mktemp -d)
BUDGET_S=${ALL_BUDGET_S:-480}
PHASES=("$@")
if [[ ${#PHASES[@]} -eq 0 ]]; then
    PHASES=(tests kernels llava)
fi

say() { echo "#### [${SECONDS}s] $*"; }

pack() {
    tar czf "$FINAL/results.tgz.part" -C "$WORK" . && mv "$FINAL/results.tgz.part" "$FINAL/results.tgz"
}

overall=0
for phase in "${PHASES[@]}"; do
    mkdir -p "$WORK/$phase"
    case $phase in
    tests)
        say "tests"
        OUT="$WORK/tests" IRIS_TEST_TIMEOUT=60 timeout 170 bash scripts/gpu/run_cuda_tests.sh
        ;;
    kernels)
        say "kernels"
        OUT="$WORK/kernels" BENCH_SIDE_S=80 timeout 200 bash scripts/gpu/bench_kernels.sh
        ;;
    sweep)
        say "sweep"
        OUT="$WORK/sweep" timeout 240 bash scripts/gpu/sweep.sh
        ;;
    llava)
        left=$((BUDGET_S - SECONDS))
        if ((left < 150)); then
            say "llava skipped: $left s left of $BUDGET_S"
            false
        else
            say "llava ($left s)"
            OUT="$WORK/llava" LLAVA7B_BUDGET_S=$((left - 10)) timeout "$left" bash scripts/gpu/llava7b.sh
        fi
        ;;
    *)
        say "unknown phase $phase (tests, kernels, sweep, llava)"
        false
        ;;
    esac
    rc=$?
    say "$phase: exit $rc"
    if ((rc != 0)); then overall=1; fi
    pack
done
say "done: $([[ $overall -eq 0 ]] && echo PASS || echo FAIL); results in $FINAL/results.tgz"
exit $overall
