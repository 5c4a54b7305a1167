#!/usr/bin/env python3
"""PyTorch CPU kernel baselines at the shapes of `iris bench kernels`, 2 threads, f32 and bf16.

Each row is the median of --runs timed calls after --warmup untimed ones; the JSON on stdout
(and in --out) lists kernel, shape, dtype, median_ms and gflop_s. Kernel and shape strings of
the rows that iris also times are spelled as `iris bench kernels --json` spells them, so the two
can be joined on (kernel, shape):

  matmul   (m, n, k) as F.linear(a[m,k], w[n,k]) = a @ w^T, which is how transformers runs a
           Linear: SmolLM2-135M decode GEMVs (m = 1) and prefill GEMMs (m = 512), the ViT-L MLP
           GEMM (577x4096x1024), 1024^3 and 2048^3. "matmul bf16" here has both operands in bf16;
           iris' "matmul bf16" keeps f32 activations and bf16 weights.
  attention scaled_dot_product_attention, SmolLM2-135M heads (9 query heads, 3 kv heads repeated
           to 9 before the timed call, d 64): causal prefill q512 kv512 and one decode query over
           512 keys; ViT-L (16 heads, 577 tokens, d 64) without a mask. FLOPs count visible
           (query, key) pairs only: 4 per pair and dim, as iris counts them.
  conv2d   patch embeddings: CLIP ViT-L/14-336 (3->1024, kernel = stride = 14, 336x336) and
           SigLIP-base-512 (3->768, kernel = stride = 16, 512x512), one image.

    python3 scripts/baselines/torch_kernels.py [--runs 7] [--warmup 2] [--threads 2] [--out FILE]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

# (m, n, k), the matmul shapes of `iris bench kernels` plus 2048^3.
MATMUL_SHAPES = [
    (1, 576, 576),
    (1, 1536, 576),
    (1, 576, 1536),
    (1, 49152, 576),
    (512, 576, 576),
    (512, 1536, 576),
    (577, 4096, 1024),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
]
DTYPES = [("f32", torch.float32), ("bf16", torch.bfloat16)]


def median_ms(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def row(kernel, shape, dtype, ms, flops):
    return {"kernel": kernel, "shape": shape, "dtype": dtype, "median_ms": ms,
            "gflop_s": flops / (ms * 1e-3) / 1e9}


def matmuls(runs, warmup):
    rows = []
    for m, n, k in MATMUL_SHAPES:
        for name, dtype in DTYPES:
            a = torch.rand(m, k).mul_(2).sub_(1).to(dtype)
            w = torch.rand(n, k).mul_(2).sub_(1).to(dtype)
            ms = median_ms(lambda: F.linear(a, w), runs, warmup)
            rows.append(row(f"matmul {name}", f"{m}x{n}x{k}", name, ms, 2 * m * n * k))
    return rows


def attention_case(kernel, shape, heads, kv_heads, q_len, kv_len, d, causal):
    """Returns (kernel, shape, make(dtype) -> call, flops)."""
    if causal:
        # The last q_len positions of kv_len: query i sees kv_len - q_len + i + 1 keys.
        pairs = sum(kv_len - q_len + i + 1 for i in range(q_len))
    else:
        pairs = q_len * kv_len

    def make(dtype):
        q = torch.randn(1, heads, q_len, d, dtype=dtype)
        k = torch.randn(1, kv_heads, kv_len, d, dtype=dtype).repeat_interleave(heads // kv_heads, dim=1)
        v = torch.randn(1, kv_heads, kv_len, d, dtype=dtype).repeat_interleave(heads // kv_heads, dim=1)
        # is_causal aligns the mask top-left, which is only right for q_len == kv_len; one
        # decode query sees every key, so it needs no mask.
        mask = causal and q_len == kv_len
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=mask)

    return kernel, shape, make, 4 * pairs * d * heads


ATTENTION = [
    attention_case("attention causal", "q512 kv512 h9/3 d64", 9, 3, 512, 512, 64, True),
    attention_case("attention causal", "q1 kv512 h9/3 d64", 9, 3, 1, 512, 64, True),
    attention_case("attention vit", "q577 kv577 h16 d64", 16, 16, 577, 577, 64, False),
]


def attention(runs, warmup):
    rows = []
    for kernel, shape, make, flops in ATTENTION:
        for name, dtype in DTYPES:
            rows.append(row(kernel, shape, name, median_ms(make(dtype), runs, warmup), flops))
    return rows


# (shape label, in channels, out channels, kernel = stride, image side)
CONVS = [
    ("3->1024 k14 s14 336x336", 3, 1024, 14, 336),
    ("3->768 k16 s16 512x512", 3, 768, 16, 512),
]


def convs(runs, warmup):
    rows = []
    for shape, cin, cout, k, side in CONVS:
        patches = (side // k) ** 2
        flops = 2 * patches * cout * cin * k * k
        for name, dtype in DTYPES:
            x = torch.randn(1, cin, side, side, dtype=dtype)
            w = torch.randn(cout, cin, k, k, dtype=dtype)
            b = torch.randn(cout, dtype=dtype)
            ms = median_ms(lambda: F.conv2d(x, w, b, stride=k), runs, warmup)
            rows.append(row("conv2d patch", shape, name, ms, flops))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    with torch.inference_mode():
        for part in (matmuls, attention, convs):
            rows += part(args.runs, args.warmup)
    doc = {"torch": torch.__version__, "threads": torch.get_num_threads(), "runs": args.runs,
           "warmup": args.warmup, "kernels": rows}
    text = json.dumps(doc, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
