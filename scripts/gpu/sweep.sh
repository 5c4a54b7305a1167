#!/usr/bin/env bash
# Times the kernel variants the CUDA backend chooses between, in one call:
# - every tile variant of the tensor-core GEMM (IRIS_GEMM_TILE) and the per-shape choice at
#   every matmul shape of `iris bench kernels --device cuda`, next to PyTorch (cuBLAS):
#   $OUT/gemm_sweep.md, one row per shape, one column per variant (us; the fastest in bold).
#   What gemm_mma::gemm_tile_for picks is tuned from this table;
# - the flash attention kernels with 4 and with 8 warps per CTA (IRIS_FLASH_WARPS) and the
#   per-launch choice at the attention shapes: $OUT/flash_warps.md.
#
# Before the call, here: bash scripts/gpu/build.sh
# Device call: run(command="bash scripts/gpu/sweep.sh", carry=[".gpu.tgz"], timeout_s=300)
set -uo pipefail
cd "$(dirname "$0")/../.."
bash scripts/gpu/unpack.sh || exit 1

IRIS=.gpu/bin/iris
DIR=${OUT:-/tmp/iris-gemm-sweep}
mkdir -p "$DIR/sweep"
VARIANTS=(128x128x32_s3 128x128x64_s3 128x256x64_s3 256x128x64_s3 64x128x64_s3 64x128x64_s4
    64x64x64_s3 64x64x64_s4)

status=0
# Runs `iris bench kernels` once per value of the environment variable $1 (and once unset:
# the choice per shape, saved as `chosen`), keeping the cases whose key contains $2, into
# sweep/$3<value>.json.
time_each() {
    local var=$1 filter=$2 prefix=$3 value
    shift 3
    for v in "$@" chosen; do
        value=$v
        if [[ $v == chosen ]]; then value=""; fi
        if ! env "$var=$value" timeout 120 "$IRIS" bench kernels --device cuda --json \
            --filter "$filter" >"$DIR/sweep/$prefix$v.json" 2>"$DIR/sweep/$prefix$v.err"; then
            echo "== $var=$v: failed"; cat "$DIR/sweep/$prefix$v.err"; status=1
        fi
    done
}
time_each IRIS_GEMM_TILE matmul "" "${VARIANTS[@]}"
time_each IRIS_FLASH_WARPS "attention b" flash_ 4 8
timeout 120 python3 scripts/gpu/bench_kernels.py time --filter matmul \
    --out "$DIR/sweep/torch.json" || status=1

python3 - "$DIR" "${VARIANTS[@]}" <<'PY'
import json, os, sys
folder, variants = sys.argv[1], sys.argv[2:]


def rows(name):
    """{shape: record} of one run's JSON (empty when it failed)."""
    try:
        with open(os.path.join(folder, "sweep", name + ".json")) as f:
            return {r["shape"]: r for r in json.load(f).get("kernels", [])}
    except (OSError, ValueError):
        return {}


def us(record):
    return None if record is None else record.get("median_us")


def write(name, lines):
    text = "\n".join(lines) + "\n"
    with open(os.path.join(folder, name), "w") as f:
        f.write(text)
    print(text)


cols = variants + ["chosen", "torch"]
data = {c: {shape: us(r) for shape, r in rows(c).items() if r["kernel"] == "matmul"}
        for c in cols}
out = ["| shape | " + " | ".join(cols) + " | best / PyTorch |", "|---" * (len(cols) + 2) + "|"]
for shape in list(data["chosen"]) or list(data["torch"]):
    vals = {c: data[c].get(shape) for c in cols}
    tiles = [vals[v] for v in variants if vals[v] is not None]
    best = min(tiles) if tiles else None
    cells = []
    for c in cols:
        v = vals[c]
        text = "" if v is None else f"{v:.1f}"
        cells.append(f"**{text}**" if v is not None and v == best and c in variants else text)
    ratio = f"{best / vals['torch']:.2f}" if best and vals["torch"] else ""
    out.append(f"| {shape} | " + " | ".join(cells) + f" | {ratio} |")
write("gemm_sweep.md", out)

flash = {"4 warps": rows("flash_4"), "8 warps": rows("flash_8"), "chosen": rows("flash_chosen")}
out = ["| attention | " + " | ".join(f"{c} us" for c in flash) + " | chosen TFLOP/s |",
       "|---" * (len(flash) + 2) + "|"]
for shape in list(flash["chosen"]) or list(flash["4 warps"]):
    cells = ["" if us(flash[c].get(shape)) is None else f"{us(flash[c][shape]):.1f}"
             for c in flash]
    rate = flash["chosen"].get(shape, {}).get("tflop_s")
    out.append(f"| {shape} | " + " | ".join(cells) + f" | {'' if rate is None else f'{rate:.0f}'} |")
write("flash_warps.md", out)
PY
exit $status
