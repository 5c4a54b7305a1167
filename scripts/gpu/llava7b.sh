#!/usr/bin/env bash
# LLaVA-1.5-7B shape end to end on the GPU machine, iris next to PyTorch, in one device call:
#
#   run(command="bash scripts/gpu/llava7b.sh", carry=[".gpu.tgz"], timeout_s=600)
#
# Needs .gpu/bin/iris: the iris binary built with `--features cuda` by scripts/gpu/build.sh
# here (no CUDA needed to build; set IRIS=path to use another). The device machine has Python
# with torch and transformers but no internet: the checkpoint is made there.
#
# Steps (each logged with its elapsed seconds):
#   1. the GPU, and a quick check on the tiny Llama fixture: greedy tokens on the CPU, on CUDA
#      with the decode step as a replayed CUDA graph, and with IRIS_CUDA_GRAPH=0;
#   2. scripts/gpu/llava7b.py build: random bf16 LLaVA-1.5-7B on the GPU, PyTorch timings of
#      the in-memory model (vision + projector, TTFT of 576 image + 24 text tokens, 128 greedy
#      tokens with a synchronize per token), then the checkpoint saved to a scratch folder
#      (/dev/shm when it has room, else local disk);
#   3. `iris bench e2e --device cuda --dtype bf16` on that folder with a photo (600 prompt
#      tokens, 128 new, 1 warm-up + 2 runs), bounded so the table is always written;
#   4. if time is left: decode with and without the CUDA graph on a text prompt;
#   5. if time is left: the text run with the weights converted to f16 (`--dtype f16`);
#   6. the table, $OUT/llava7b.md. Also in $OUT: llava7b.log, torch.json, iris*.json;
#   7. if time is left: a per-op profile of one run (IRIS_PROFILE=1) in $OUT/profile.txt.
# The whole call is meant to fit in about 8 minutes (LLAVA7B_BUDGET_S, default 540 s).
#
# LLAVA7B_DEVICE=cpu is a smoke test of this script on a machine without a GPU: the tiny
# model of llava7b.py --tiny, and every iris run on the CPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${IRIS:-}" ]]; then bash scripts/gpu/unpack.sh || exit 1; fi

OUT=${OUT:-/tmp/llava7b-out}
mkdir -p "$OUT"
BUDGET_S=${LLAVA7B_BUDGET_S:-540}
DEVICE=${LLAVA7B_DEVICE:-cuda}
IMAGE=fixtures/images/photo_640x480.png
export PYTHONUNBUFFERED=1

say() { echo "== [${SECONDS}s] $*"; }
left() { echo $((BUDGET_S - SECONDS)); }

IRIS=${IRIS:-.gpu/bin/iris}

main() {
    if [[ ! -x "$IRIS" ]]; then
        echo "error: no iris binary at $IRIS: run scripts/gpu/build.sh here and carry .gpu.tgz"
        return 1
    fi
    build_args=()
    need_gb=20 # 14 GB of bf16 weights
    if [[ "$DEVICE" == cpu ]]; then
        build_args=(--tiny --device cpu)
        need_gb=1
    fi

    say "GPU"
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,memory.used --format=csv,noheader \
        || echo "nvidia-smi failed"
    "$IRIS" --version
    cat "$(dirname "$IRIS")/BUILD" 2>/dev/null || true

    say "tiny-llama greedy: cpu, cuda (graph), cuda (IRIS_CUDA_GRAPH=0)"
    tiny=(bench e2e --model fixtures/tiny-llama --prompt-tokens 16 --gen-tokens 32 --runs 1 --warmup 1 --json)
    "$IRIS" "${tiny[@]}" --device cpu > "$OUT/tiny_cpu.json"
    "$IRIS" "${tiny[@]}" --device "$DEVICE" > "$OUT/tiny_cuda.json"
    IRIS_CUDA_GRAPH=0 "$IRIS" "${tiny[@]}" --device "$DEVICE" > "$OUT/tiny_cuda_nograph.json"
    python3 scripts/gpu/llava7b.py tokens "$OUT/tiny_cpu.json" "$OUT/tiny_cuda.json" "$OUT/tiny_cuda_nograph.json"

    CKPT=""
    for dir in /dev/shm /tmp "$PWD/.gpu"; do
        avail=$(df --output=avail -B1 "$dir" 2>/dev/null | tail -1)
        if [[ -n "$avail" && "$avail" -gt $((need_gb * 1024 * 1024 * 1024)) ]]; then
            CKPT="$dir/llava7b-random-bf16"
            break
        fi
    done
    if [[ -z "$CKPT" ]]; then
        echo "error: no scratch folder with $need_gb GB free for the checkpoint"
        return 1
    fi
    rm -rf "$CKPT"
    trap 'rm -rf "$CKPT"' EXIT

    say "build + PyTorch timings + save to $CKPT"
    if ! python3 scripts/gpu/llava7b.py build --out "$CKPT" --results "$OUT/torch.json" "${build_args[@]}"; then
        echo "error: the PyTorch build failed; no table"
        return 1
    fi
    du -sh "$CKPT"
    # 576 image tokens + 24 text tokens for the 7B model, as PyTorch timed it.
    prompt_tokens=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["prompt_tokens"])' \
        "$OUT/torch.json")

    say "iris bench e2e (time left: $(left) s)"
    limit=$(( $(left) - 20 ))
    if (( limit < 60 )); then limit=60; fi
    timeout "$limit" "$IRIS" bench e2e --device "$DEVICE" --dtype bf16 --model "$CKPT" --image "$IMAGE" \
        --prompt-tokens "$prompt_tokens" --gen-tokens 128 --runs 2 --warmup 1 --json > "$OUT/iris.json"
    status=$?
    if (( status != 0 )); then
        why="exit $status"
        if (( status == 124 )); then why="stopped after $limit s (timeout)"; fi
        echo "{\"error\": \"iris bench e2e failed: $why (see llava7b.log)\"}" > "$OUT/iris.json"
    fi
    cat "$OUT/iris.json"

    # The text-prompt runs below: the same workload, with the weights' dtype added per run.
    text=(bench e2e --device "$DEVICE" --model "$CKPT" --prompt-tokens 24 --gen-tokens 64 --runs 1
          --warmup 1 --json)
    graph_args=()
    if (( $(left) > 90 )); then
        say "decode with and without the CUDA graph (text prompt)"
        limit=$(( ($(left) - 20) / 2 ))
        if timeout "$limit" "$IRIS" "${text[@]}" --dtype bf16 > "$OUT/iris_graph_on.json" \
            && IRIS_CUDA_GRAPH=0 timeout "$limit" "$IRIS" "${text[@]}" --dtype bf16 \
                > "$OUT/iris_graph_off.json"; then
            graph_args=(--graph-on "$OUT/iris_graph_on.json" --graph-off "$OUT/iris_graph_off.json")
        fi
    fi

    f16_args=()
    if (( $(left) > 100 )); then
        say "the text run with the weights converted to f16 at load (the f16 kernels)"
        if timeout $(( $(left) - 60 )) "$IRIS" "${text[@]}" --dtype f16 > "$OUT/iris_f16.json"; then
            f16_args=(--f16 "$OUT/iris_f16.json")
        fi
    fi

    say "table"
    python3 scripts/gpu/llava7b.py table --torch "$OUT/torch.json" --iris "$OUT/iris.json" \
        --out "$OUT/llava7b.md" "${graph_args[@]}" "${f16_args[@]}"

    if (( $(left) > 60 )); then
        say "per-op profile (IRIS_PROFILE=1: one synchronize per op, so slower than above)"
        IRIS_PROFILE=1 timeout $(( $(left) - 20 )) "$IRIS" bench e2e --device "$DEVICE" --dtype bf16 \
            --model "$CKPT" --image "$IMAGE" --prompt-tokens "$prompt_tokens" --gen-tokens 8 \
            --runs 1 --warmup 1 --json > /dev/null 2> "$OUT/profile.txt" \
            || echo "the profiled run failed (see profile.txt)"
        grep -A 12 "^profile of" "$OUT/profile.txt" || true
    fi
    say "done"
}

main 2>&1 | tee "$OUT/llava7b.log"
exit "${PIPESTATUS[0]}"
