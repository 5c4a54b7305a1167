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
for v in "${VARIANTS[@]}" chosen; do
    tile=$v
    if [[ $v == chosen ]]; then tile=""; fi
    if ! IRIS_GEMM_TILE=$tile timeout 120 "$IRIS" bench kernels --device cuda --json \
        --filter matmul >"$DIR/sweep/$v.json" 2>"$DIR/sweep/$v.err"; then
        echo "== $v: failed"; cat "$DIR/sweep/$v.err"; status=1
    fi
done
timeout 120 python3 scripts/gpu/bench_kernels.py time --filter matmul \
    --out "$DIR/sweep/torch.json" || status=1

python3 - "$DIR" "${VARIANTS[@]}" <<'PY'
import json, os, sys
folder, variants = sys.argv[1], sys.argv[2:]
def rows(name):
    try:
        with open(os.path.join(folder, "sweep", name + ".json")) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    return {r["shape"]: r.get("median_us") for r in doc.get("kernels", []) if r["kernel"] == "matmul"}
cols = variants + ["chosen", "torch"]
data = {c: rows(c) for c in cols}
shapes = list(data["chosen"]) or list(data["torch"])
out = ["| shape | " + " | ".join(cols) + " | best / PyTorch |", "|---" * (len(cols) + 2) + "|"]
for shape in shapes:
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
text = "\n".join(out) + "\n"
with open(os.path.join(folder, "gemm_sweep.md"), "w") as f:
    f.write(text)
print(text)
PY
for w in 4 8 chosen; do
    warps=$w
    if [[ $w == chosen ]]; then warps=""; fi
    if ! IRIS_FLASH_WARPS=$warps timeout 120 "$IRIS" bench kernels --device cuda --json \
        --filter "attention b" >"$DIR/sweep/flash_$w.json" 2>"$DIR/sweep/flash_$w.err"; then
        echo "== flash $w warps: failed"; cat "$DIR/sweep/flash_$w.err"; status=1
    fi
done
python3 - "$DIR" <<'PY'
import json, os, sys
folder = sys.argv[1]
def rows(name):
    try:
        with open(os.path.join(folder, "sweep", name + ".json")) as f:
            return {r["shape"]: r for r in json.load(f).get("kernels", [])}
    except (OSError, ValueError):
        return {}
cols = {"4 warps": rows("flash_4"), "8 warps": rows("flash_8"), "chosen": rows("flash_chosen")}
shapes = list(cols["chosen"]) or list(cols["4 warps"])
out = ["| attention | " + " | ".join(f"{c} us" for c in cols) + " | chosen TFLOP/s |",
       "|---" * (len(cols) + 2) + "|"]
for shape in shapes:
    cells = [f"{cols[c][shape]['median_us']:.1f}" if shape in cols[c] and
             cols[c][shape].get("median_us") is not None else "" for c in cols]
    rate = cols["chosen"].get(shape, {}).get("tflop_s")
    out.append(f"| {shape} | " + " | ".join(cells) + f" | {'' if rate is None else f'{rate:.0f}'} |")
text = "\n".join(out) + "\n"
with open(os.path.join(folder, "flash_warps.md"), "w") as f:
    f.write(text)
print(text)
PY
exit $status
