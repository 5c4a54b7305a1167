#!/usr/bin/env bash
# SmolLM2-135M-Instruct's greedy text on the GPU against transformers (tests/cuda_smollm2.rs).
# The GPU machine cannot download, and its Q4_1 GGUF (98 MB) is larger than what one device
# call carries, so it travels in parts over consecutive calls to the same warm machine:
#
#   here:   bash scripts/gpu/smollm2.sh split      # .smol/part0..2 (git-ignored), ~33 MB each
#   device: run(command="bash scripts/gpu/smollm2.sh keep", carry=[".smol/part0"])   # and 1
#   device: run(command="bash scripts/gpu/smollm2.sh test", carry=[".smol/part2"])
#
# The working tree travels with every call too (about 26 MB), so a part and .gpu do not fit
# one call: the calls follow one that carried .gpu.tgz (scripts/gpu/all.sh), whose unpacked
# .gpu/ stays on the warm machine. `keep` copies the carried part to /root/smol-parts (which outlives the call while the machine
# stays warm); `test` joins the parts, checks the GGUF's SHA-256 against the one `split`
# recorded, converts it to f32 safetensors with the carried iris and runs the CUDA test with
# IRIS_REQUIRE_CUDA=1 and IRIS_REQUIRE_SMOLLM2=1 (a missing device or model fails).
set -euo pipefail
cd "$(dirname "$0")/../.."

GGUF_HERE=models-cache/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
PARTS=/root/smol-parts

case "${1:-}" in
split)
    [[ -f $GGUF_HERE ]] || bash scripts/fetch_smollm2.sh
    rm -rf .smol && mkdir -p .smol/part0 .smol/part1 .smol/part2
    split -n 3 -d -a 1 "$GGUF_HERE" .smol/chunk
    for i in 0 1 2; do mv ".smol/chunk$i" ".smol/part$i/q4_1.gguf.$i"; done
    sha256sum "$GGUF_HERE" | cut -d' ' -f1 >.smol/part2/SHA256
    du -sh .smol/part*
    ;;
keep)
    mkdir -p "$PARTS"
    cp .smol/part*/q4_1.gguf.* "$PARTS"/
    ls -la "$PARTS"
    ;;
test)
    bash scripts/gpu/unpack.sh
    mkdir -p "$PARTS"
    cp .smol/part*/q4_1.gguf.* "$PARTS"/
    gguf=/root/smollm2.q4_1.gguf
    cat "$PARTS"/q4_1.gguf.0 "$PARTS"/q4_1.gguf.1 "$PARTS"/q4_1.gguf.2 >"$gguf"
    want=$(cat .smol/part2/SHA256)
    got=$(sha256sum "$gguf" | cut -d' ' -f1)
    if [[ "$want" != "$got" ]]; then
        echo "error: the joined GGUF's SHA-256 is $got, not $want (a part is missing or stale)"
        exit 1
    fi
    models=/root/smol-models
    .gpu/bin/iris convert --gguf "$gguf" --out "$models/SmolLM2-135M-Instruct" --dtype f32 --force
    IRIS_MODELS_DIR=$models IRIS_REQUIRE_CUDA=1 IRIS_REQUIRE_SMOLLM2=1 \
        .gpu/cuda_smollm2 --nocapture --test-threads=1
    ;;
*)
    echo "usage: $0 split | keep | test" >&2
    exit 2
    ;;
esac
