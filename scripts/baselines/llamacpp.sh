#!/usr/bin/env bash
# llama.cpp CPU baseline for SmolLM2-135M-Instruct at the precisions iris runs (F32, BF16, F16).
#
# llama.cpp is built from the copy vendored in the PyPI source distribution of
# llama-cpp-python (pinned below), so nothing but PyPI is needed. Steps, each skipped when its
# output is already there:
#
#   1. pip download the sdist into .baselines/download/
#   2. unpack its vendor/llama.cpp into .baselines/llama.cpp/
#   3. pip install cmake and ninja into .baselines/venv/ when they are not on PATH
#   4. build llama-bench and llama-quantize only (CPU backend, -march=native, Release, 2 jobs,
#      niced) into .baselines/build/
#   5. requantize MODELS/gguf/SmolLM2-135M-Instruct.Q4_1.gguf (from scripts/fetch_smollm2.sh)
#      to F32, BF16 and F16 with --allow-requantize: the same Q4_1-rounded weights that
#      `iris convert` writes to the f32 / bf16 folders, stored at those precisions
#   6. unless --setup-only: `llama-bench -t THREADS -p 512 -n 128 -r REPS -o json` on each file,
#      combined into one JSON object on stdout and in --out
#
# Progress goes to stderr; stdout carries only the JSON (or, with --setup-only, one JSON object
# with the paths of llama-bench and the GGUF files).
#
# Usage: bash scripts/baselines/llamacpp.sh [--setup-only] [--reps N] [--threads N]
#                                           [--out FILE] [MODELS_DIR]
#        MODELS_DIR defaults to models-cache/ at the repository root; --out to
#        .baselines/llama-bench.json.
set -euo pipefail

VERSION="0.3.36"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$ROOT/.baselines"
SETUP_ONLY=0
REPS=3
THREADS=2
OUT_JSON="$WORK/llama-bench.json"
MODELS="$ROOT/models-cache"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --setup-only) SETUP_ONLY=1 ;;
        --reps) REPS="$2"; shift ;;
        --threads) THREADS="$2"; shift ;;
        --out) OUT_JSON="$2"; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) MODELS="$1" ;;
    esac
    shift
done
log() { echo "[llamacpp] $*" >&2; }

SRC="$WORK/llama.cpp"
BUILD="$WORK/build"
Q4="$MODELS/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ ! -f "$Q4" ]]; then
    echo "missing $Q4: run scripts/fetch_smollm2.sh first" >&2
    exit 1
fi
mkdir -p "$WORK/download"

# 1. The source distribution. Only this package is built from source: its build requirements
#    (cmake, ninja, scikit-build-core) come as wheels, since pip prepares metadata to download.
SDIST="$WORK/download/llama_cpp_python-$VERSION.tar.gz"
if [[ -f "$SDIST" ]]; then
    log "have $SDIST"
else
    log "downloading llama-cpp-python==$VERSION (source distribution)"
    python3 -m pip download --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" \
        -d "$WORK/download" >&2
fi

# 2. The vendored llama.cpp, without the sdist's git metadata.
if [[ -f "$SRC/CMakeLists.txt" ]]; then
    log "have $SRC"
else
    log "unpacking vendor/llama.cpp"
    rm -rf "$SRC.partial"
    mkdir -p "$SRC.partial"
    tar xzf "$SDIST" -C "$SRC.partial" --strip-components=3 --exclude='*/.git' \
        "llama_cpp_python-$VERSION/vendor/llama.cpp"
    mv "$SRC.partial" "$SRC"
fi

# 3. Build tools.
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
    if [[ ! -x "$WORK/venv/bin/cmake" || ! -x "$WORK/venv/bin/ninja" ]]; then
        log "installing cmake and ninja into $WORK/venv"
        python3 -m venv "$WORK/venv"
        "$WORK/venv/bin/python" -m pip install -q cmake ninja >&2
    fi
    export PATH="$WORK/venv/bin:$PATH"
fi

# 4. Only the two binaries, CPU backend, tuned for this machine.
BENCH="$BUILD/bin/llama-bench"
QUANTIZE="$BUILD/bin/llama-quantize"
if [[ -x "$BENCH" && -x "$QUANTIZE" ]]; then
    log "have $BENCH and $QUANTIZE"
else
    log "configuring llama.cpp"
    # Keeps llama.cpp's build info from reporting the enclosing repository's commit as its own.
    export GIT_CEILING_DIRECTORIES="$ROOT"
    cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >&2
    log "building llama-bench and llama-quantize (2 jobs, nice 19)"
    nice -n 19 cmake --build "$BUILD" -j 2 --target llama-bench llama-quantize >&2
fi

# 5. The same weights at the precisions iris runs.
gguf() { echo "$MODELS/gguf/SmolLM2-135M-Instruct.$1.gguf"; }
for type in F32 BF16 F16; do
    target="$(gguf "$type")"
    if [[ -f "$target" ]]; then
        log "have $target"
    else
        log "requantizing to $type"
        "$QUANTIZE" --allow-requantize "$Q4" "$target.partial" "$type" 2 >&2
        mv "$target.partial" "$target"
    fi
done

if [[ "$SETUP_ONLY" == 1 ]]; then
    printf '{"llama_bench": "%s", "version": "%s", "gguf": {"F32": "%s", "BF16": "%s", "F16": "%s"}}\n' \
        "$BENCH" "$VERSION" "$(gguf F32)" "$(gguf BF16)" "$(gguf F16)"
    exit 0
fi

# 6. One llama-bench run per file, combined.
RAW="$(mktemp -d)"
trap 'rm -rf "$RAW"' EXIT
for type in F32 BF16 F16; do
    log "llama-bench $type: -t $THREADS -p 512 -n 128 -r $REPS"
    "$BENCH" -m "$(gguf "$type")" -t "$THREADS" -p 512 -n 128 -r "$REPS" -o json >"$RAW/$type.json"
done
mkdir -p "$(dirname "$OUT_JSON")"
python3 - "$RAW" "$VERSION" "$THREADS" "$REPS" "$OUT_JSON" <<'PY'
import json, os, sys
raw, version, threads, reps, out = sys.argv[1:]
doc = {"llama_cpp_python_sdist": version, "threads": int(threads), "reps": int(reps), "models": {}}
for t in ("F32", "BF16", "F16"):
    with open(os.path.join(raw, t + ".json")) as f:
        doc["models"][t] = json.load(f)
text = json.dumps(doc, indent=1)
with open(out, "w") as f:
    f.write(text + "\n")
print(text)
PY
log "saved $OUT_JSON"
