"""Cases for the tensor-core matmul family: cast_f32_bf16, pad_bf16, gemm_bf16_mma and
gemv_bf16, and the f16 twins cast_f32_f16, gemm_f16_mma and gemv_f16, launched as the backend
launches them (kernels/src/cuda/gemm_mma/mod.rs).

The matmul references are f64 products of exactly the 16-bit values the kernel reads, so only
the f32 summation order differs: NMSE stays near 1e-15 and the bound is 1e-10 (tighter than
the project's 1e-7 for f32 matmul, so that even a few wrong elements fail)."""

import re

import numpy as np

from .harness import Case, elementwise_blocks, exact, Result
from .machine import launch
from .memory import GlobalMemory
from .numerics import bf16_round, bf16_to_f32, f16_round, f16_to_f32, nmse

NMSE_SAME_INPUTS = 1e-10


# 16-bit type -> (round f32 to its bit patterns, widen bit patterns to f32).
HALF = {"bf16": (bf16_round, bf16_to_f32), "f16": (f16_round, f16_to_f32)}


def _round8(k):
    return (k + 7) // 8 * 8


def cast(rows, k, skew, blocks=None, seed=0, ty="bf16"):
    kernel = f"cast_f32_{ty}"
    round_half = HALF[ty][0]

    def run(src):
        rng = np.random.default_rng(seed)
        ld = _round8(k)
        x = rng.uniform(-3, 3, (rows, k)).astype(np.float32)
        g = GlobalMemory()
        px, pd = g.put(x, "src", skew=skew), g.alloc(rows * ld * 2, "dst")
        grid = blocks or elementwise_blocks(rows * ld // 8)
        launch(src.text(kernel), kernel, (grid, 1, 1), 256,
               dict(src=px, dst=pd, rows=rows, k=k, ld=ld), g)
        want = np.zeros((rows, ld), np.uint16)
        want[:, :k] = round_half(x)
        return exact(g.get(pd, np.uint16, rows * ld).reshape(rows, ld), want)
    return Case(f"{kernel} {rows}x{k} skew={skew} blocks={blocks or 'auto'}", run, [kernel])


def pad(rows, k, skew, seed=0):
    def run(src):
        rng = np.random.default_rng(seed)
        ld = _round8(k)
        w = bf16_round(rng.uniform(-3, 3, (rows, k)))
        g = GlobalMemory()
        pw, pd = g.put(w, "src", skew=skew), g.alloc(rows * ld * 2, "dst")
        launch(src.text("pad_bf16"), "pad_bf16", (elementwise_blocks(rows * ld // 8), 1, 1), 256,
               dict(src=pw, dst=pd, rows=rows, k=k, ld=ld), g)
        want = np.zeros((rows, ld), np.uint16)
        want[:, :k] = w
        return exact(g.get(pd, np.uint16, rows * ld).reshape(rows, ld), want)
    return Case(f"pad_bf16 {rows}x{k} skew={skew}", run, ["pad_bf16"])


def _bias(kind, n, rng, g):
    """(pointer, reference values, 16-bit flag) for bias kind none / f32 / bf16 / f16."""
    b = rng.uniform(-1, 1, n).astype(np.float32)
    if kind in HALF:
        round_half, widen = HALF[kind]
        h = round_half(b)
        return g.put(h, "bias"), widen(h).astype(np.float64), 1
    if kind == "f32":
        return g.put(b, "bias"), b.astype(np.float64), 0
    return 0, np.zeros(n), 0


def _half_rows(rng, rows, k, ld, ty="bf16"):
    """Random 16-bit rows of k values zero-padded to ld, as the cast and pad kernels leave
    them."""
    out = np.zeros((rows, ld), np.uint16)
    out[:, :k] = HALF[ty][0](rng.uniform(-1, 1, (rows, k)))
    return out


DEFAULT_TILE = "128x128x32_s3"


def tile_shape(src, tile, ty="bf16"):
    """(bm, bn, threads, dynamic shared bytes) of variant `tile` (e.g. "64x128x64_s3"), read from
    the entry list in the module's header, as the generator wrote it."""
    kernel = f"gemm_{ty}_mma_{tile}"
    m = re.search(rf"^//\s+{kernel}: (\d+) x (\d+) x \d+, (\d+) x (\d+) warps of \d+ x \d+, "
                  rf"\d+ stages, (\d+) bytes of (static|dynamic) shared memory$",
                  src.text(f"gemm_{ty}_mma"), re.M)
    if not m:
        raise ValueError(f"{kernel} is not in the entry list of gemm_{ty}_mma.ptx")
    bm, bn, wm, wn, smem = (int(m.group(i)) for i in range(1, 6))
    return bm, bn, 32 * wm * wn, smem if m.group(6) == "dynamic" else 0


def gemm(m, n, k, bias, lda=None, warp_order="parity", cp_async="late", seed=0, tile=DEFAULT_TILE,
         ty="bf16", out_skew=0):
    """out_skew: bytes past 256-byte alignment of out (4: rows of an even N still start only
    4-byte aligned, so the paired stores must not be taken)."""
    lda = lda or _round8(k)
    module = f"gemm_{ty}_mma"
    kernel = f"{module}_{tile}"
    widen = HALF[ty][1]

    def run(src):
        bm, bn, threads, dynamic = tile_shape(src, tile, ty)
        rng = np.random.default_rng(seed)
        ldw = _round8(k)
        a, w = _half_rows(rng, m, k, lda, ty), _half_rows(rng, n, k, ldw, ty)
        g = GlobalMemory()
        pa, pw = g.put(a, "a"), g.put(w, "w")
        pb, bref, bf = _bias(bias, n, rng, g)
        po = g.alloc(m * n * 4, "out", skew=out_skew)
        tiles = ((m + bm - 1) // bm) * ((n + bn - 1) // bn)
        launch(src.text(module), kernel, (tiles, 1, 1), threads,
               {"a": pa, "w": pw, "bias": pb, "out": po, "m": m, "n": n, "k": k, "lda": lda,
                "ldw": ldw, f"bias_{ty}": bf},
               g, warp_order=warp_order, cp_async=cp_async, dynamic_shared=dynamic)
        got = g.get(po, np.float32, m * n).reshape(m, n)
        a64, w64 = (widen(x[:, :k]).astype(np.float64) for x in (a, w))
        want = a64 @ w64.T + bref
        return Result("nmse", nmse(got, want), NMSE_SAME_INPUTS)
    return Case(f"{kernel} {m}x{n}x{k} lda={lda} bias={bias} warps={warp_order} "
                f"cp.async={cp_async} out-skew={out_skew}", run, [module],
                cost=((m + 127) // 128) * ((n + 127) // 128) * (k // 32 + 3))


def gemv(m, n, k, bias, skew=0, ldw=None, warp_order="parity", seed=0, ty="bf16"):
    ldw = ldw or _round8(k)
    kernel = f"gemv_{ty}"
    round_half, widen = HALF[ty]

    def run(src):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        w = _half_rows(rng, n, k, ldw, ty)
        g = GlobalMemory()
        px, pw = g.put(x, "x", skew=skew), g.put(w, "w")
        pb, bref, bf = _bias(bias, n, rng, g)
        po = g.alloc(m * n * 4, "out")
        launch(src.text(kernel), kernel, ((n + 15) // 16, 1, 1), 256,
               {"x": px, "w": pw, "bias": pb, "out": po, "m": m, "n": n, "k": k, "ldw": ldw,
                f"bias_{ty}": bf}, g, warp_order=warp_order)
        got = g.get(po, np.float32, m * n).reshape(m, n)
        xr = widen(round_half(x)).astype(np.float64)
        want = xr @ widen(w[:, :k]).astype(np.float64).T + bref
        return Result("nmse", nmse(got, want), NMSE_SAME_INPUTS)
    return Case(f"{kernel} {m}x{n}x{k} ldw={ldw} bias={bias} x-skew={skew} warps={warp_order}",
                run, [kernel], cost=(n + 15) // 16 * (k // 1024 + 1))


def cases():
    return [
        cast(1, 1, skew=0),
        cast(3, 13, skew=4),                 # misaligned rows: the scalar path everywhere
        cast(4, 12, skew=0),                 # aligned rows, the second chunk partial
        cast(5, 24, skew=0),                 # aligned rows: float4 loads
        cast(70, 44, skew=0, blocks=3),      # grid-stride loop
        pad(3, 13, skew=2),
        pad(9, 21, skew=6),
        pad(2, 16, skew=0),
        gemm(9, 7, 24, "none"),
        gemm(130, 136, 40, "bf16", warp_order="reverse"),  # 2 x 2 tiles, ragged M and N
        gemm(17, 130, 13, "f32"),            # K % 8 != 0: zero-padded chunk
        gemm(20, 9, 0, "bf16"),              # K = 0: out = bias
        gemm(40, 140, 203, "f32", cp_async="early"),       # 7 K tiles through 3 stages
        gemm(130, 20, 100, "bf16", cp_async="early", warp_order="reverse"),
        gemm(33, 20, 19, "none", lda=40, warp_order="reverse"),  # lda wider than K
        gemm(33, 20, 72, "none"),            # the self-test's case
        gemm(257, 130, 97, "bf16"),          # 3 x 2 tiles, 4 K tiles, ragged everywhere
        gemm(128 * 9 + 5, 140, 16, "none"),  # 10 x 2 tiles: the short last group of 8 tile rows
        gemm(300, 260, 300, "f32", cp_async="early"),      # 3 x 3 tiles, 10 K tiles
        gemm(17, 130, 24, "none", out_skew=4),  # even N, out 4-byte aligned: single stores
        # The other tile shapes: several tiles with ragged edges, more K tiles than stages,
        # K % 8 != 0, K = 0, odd N (scalar stores) and even N (paired stores), both biases.
        *[case for tile in ("128x128x64_s3", "128x256x64_s3", "256x128x64_s3", "64x128x64_s3",
                            "64x128x64_s4", "64x64x64_s3", "64x64x64_s4")
          for case in (
              gemm(9, 7, 24, "none", tile=tile),
              gemm(20, 9, 0, "bf16", tile=tile),
              gemm(150, 270, 333, "f32", cp_async="early", tile=tile),
              gemm(270, 150, 97, "bf16", warp_order="reverse", tile=tile),
              gemm(64 * 9 + 3, 66, 70, "none", lda=80, tile=tile),  # a short last group
              gemm(70, 130, 40, "f32", tile=tile, out_skew=4),  # even N, out 4-byte aligned
          )],
        gemv(1, 7, 24, "none"),
        gemv(3, 20, 13, "bf16", skew=4, ldw=24),
        gemv(8, 17, 1100, "f32", warp_order="reverse"),     # two passes of the K loop
        gemv(5, 33, 300, "bf16", skew=8),
        gemv(8, 40, 37, "f32", ldw=48, warp_order="reverse"),
        gemv(4, 16, 4099, "none", skew=4),   # five passes, unaligned x rows
        gemv(8, 100, 2000, "bf16", warp_order="reverse"),
        gemv(2, 16, 0, "f32"),
        # The f16 twins: the same kernels with f16 operands and an f16 bias.
        cast(3, 13, skew=4, ty="f16"),
        cast(70, 44, skew=0, blocks=3, ty="f16"),
        gemm(130, 136, 40, "f16", warp_order="reverse", ty="f16"),
        gemm(17, 130, 13, "f32", ty="f16"),
        gemm(300, 260, 300, "f16", cp_async="early", tile="64x128x64_s3", ty="f16"),
        gemm(270, 150, 97, "none", tile="128x128x64_s3", ty="f16"),
        *[gemm(150, 270, 72, "f16", tile=tile, ty="f16")
          for tile in ("128x256x64_s3", "256x128x64_s3", "64x128x64_s4", "64x64x64_s3",
                       "64x64x64_s4")],
        gemv(3, 20, 13, "f16", skew=4, ldw=24, ty="f16"),
        gemv(8, 100, 2000, "f32", warp_order="reverse", ty="f16"),
    ]
