#!/usr/bin/env python3
"""PyTorch CPU timings of the real-size vision towers in bf16 (and optionally f32), 2 threads.

The towers and the timed call are those of scripts/check_real_size_towers.py (random weights):

  clip-vit-l-14-336   LLaVA-1.5's CLIP ViT-L/14 at 336 px, one image, feature layer -2
  siglip-base-512     SmolVLM-256M's SigLIP base at 512 px, two tiles

Each (tower, dtype, attention) row is the median of --runs calls of transformers'
`get_image_features` after one warm-up call; weights and pixels are cast to the dtype. Nothing
is saved and iris is not run: `check_real_size_towers.py --bf16` times iris next to PyTorch
with eager attention; this adds PyTorch's sdpa attention, which is its faster path.

    python3 scripts/baselines/torch_towers.py [--dtypes bf16,f32] [--attn eager,sdpa]
                                              [--runs 3] [--towers clip-vit-l-14-336,...] [--out FILE]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from check_real_size_towers import clip_l_336, features, siglip_base_512  # noqa: E402

TOWERS = {"clip-vit-l-14-336": clip_l_336, "siglip-base-512": siglip_base_512}
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def time_tower(model, pixels, runs):
    features(model, pixels)  # warm-up: oneDNN primitive creation, allocator
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = features(model, pixels)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, list(out.shape)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", default="bf16", help="comma-separated: bf16, f32")
    parser.add_argument("--attn", default="eager,sdpa", help="comma-separated attention implementations")
    parser.add_argument("--towers", default=",".join(TOWERS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.towers.split(","):
        torch.manual_seed(0)
        model, pixels = TOWERS[name]()
        model.eval()
        for dtype_name in args.dtypes.split(","):
            model = model.to(DTYPES[dtype_name])
            x = pixels.to(DTYPES[dtype_name])
            for attn in args.attn.split(","):
                model.set_attn_implementation(attn)
                ms, shape = time_tower(model, x, args.runs)
                row = {"tower": name, "dtype": dtype_name, "attn": attn, "median_ms": ms,
                       "images": pixels.shape[0], "image_features": shape}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        del model
    doc = {"torch": torch.__version__, "threads": torch.get_num_threads(), "runs": args.runs, "towers": rows}
    text = json.dumps(doc, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
