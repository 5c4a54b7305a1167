"""Warp-wide instructions: ldmatrix, mma.sync m16n8k16 (bf16 or f16 in, f32 accumulate), shfl.sync
and bar.warp.sync. The scheduler runs them only when all 32 lanes of the warp are converged
at the instruction (anything else is reported as divergence), and passes the warp's slice.

The fragment layouts are the project's reading of the PTX ISA ("Matrix fragments for
mma.m16n8k16" and "ldmatrix"); lane = 4 g + t (g = lane >> 2, t = lane & 3):
  ldmatrix .x1/.x2/.x4: lanes 8 i .. 8 i + 7 give the row addresses of 8x8 matrix i (16-byte
    rows, 16-byte aligned); lane receives in register i the pair (row g, cols 2t, 2t+1) of
    matrix i, the lower column in the low half; .trans: the pair (rows 2t, 2t+1; col g).
  mma A (16x16, row): register r holds (row g + 8 (r & 1), cols 2t + 8 (r >> 1) + {0, 1}).
  mma B (16x8, col):  register r holds (k 2t + 8 r + {0, 1}; n g).
  mma C, D (16x8 f32): register i holds (row g + 8 (i >> 1), col 2t + (i & 1)).
The product is formed exactly in f64 (bf16 products are exact) plus C, then rounded to f32;
the tensor core's internal order and truncation are not modelled."""

import numpy as np

from .numerics import bf16_to_f32, f16_to_f32
from .parse import PtxError
from .operands import PLAIN, Step, address, dest, immediate, source, vector

LANE = np.arange(32)
G, T = LANE >> 2, LANE & 3

# Fragment index maps (see the module header): [register, lane, half] -> (row, col).
A_ROW = np.array([[[g + 8 * (r & 1)] * 2 for g in G] for r in range(4)])
A_COL = np.array([[[2 * t + 8 * (r >> 1), 2 * t + 8 * (r >> 1) + 1] for t in T] for r in range(4)])
B_ROW = np.array([[[2 * t + 8 * r, 2 * t + 8 * r + 1] for t in T] for r in range(2)])
B_COL = np.array([[[g, g] for g in G] for r in range(2)])
C_ROW = np.array([G + 8 * (i >> 1) for i in range(4)])
C_COL = np.array([2 * T + (i & 1) for i in range(4)])


def _covers(rows, cols, shape):
    seen = np.zeros(shape, dtype=int)
    np.add.at(seen, (rows, cols), 1)
    return (seen == 1).all()


assert _covers(A_ROW, A_COL, (16, 16))
assert _covers(B_ROW, B_COL, (16, 8)) and _covers(C_ROW, C_COL, (16, 8))


def _halves(regs, ty):
    """(n, 32) uint32 registers -> (n, 32, 2) f64 of the 16-bit (`ty`: bf16 or f16) halves,
    low half first."""
    halves = np.ascontiguousarray(regs).view(np.uint16).reshape(len(regs), 32, 2)
    widen = bf16_to_f32 if ty == "bf16" else f16_to_f32
    return widen(halves).astype(np.float64)


def mma(ins, parts, ctx):
    ty = parts[7] if len(parts) > 7 else ""
    if ty not in ("bf16", "f16") or parts[1:] != ["sync", "aligned", "m16n8k16", "row", "col",
                                                   "f32", ty, ty, "f32"]:
        raise PtxError(f"{ins}: only mma.sync.aligned.m16n8k16.row.col.f32.{{bf16,f16}}.{{bf16,f16}}.f32")
    d, a, b, c = (vector(x) for x in ins.args)
    if (len(d), len(a), len(b), len(c)) != (4, 4, 2, 4):
        raise PtxError(f"{ins}: wrong fragment sizes")
    get_a = [source(ctx, r, "b32") for r in a]
    get_b = [source(ctx, r, "b32") for r in b]
    get_c = [source(ctx, r, "f32") for r in c]
    puts = [dest(ctx, r, "f32") for r in d]

    def fn(sel):
        am = np.empty((16, 16))
        am[A_ROW, A_COL] = _halves(np.stack([g(sel) for g in get_a]), ty)
        bm = np.empty((16, 8))
        bm[B_ROW, B_COL] = _halves(np.stack([g(sel) for g in get_b]), ty)
        cm = np.empty((16, 8))
        cm[C_ROW, C_COL] = np.stack([np.broadcast_to(g(sel), (32,)) for g in get_c])
        dm = (am @ bm + cm).astype(np.float32)
        for i, put in enumerate(puts):
            put(sel, dm[C_ROW[i], C_COL[i]])

    return Step(PLAIN, fn, collective=True)


def ldmatrix(ins, parts, ctx):
    mods = parts[1:]
    num = next((int(m[1:]) for m in mods if m in ("x1", "x2", "x4")), None)
    if num is None or "m8n8" not in mods or "shared" not in mods or mods[-1] != "b16":
        raise PtxError(f"{ins}: only ldmatrix.sync.aligned.m8n8.x{{1,2,4}}[.trans].shared.b16")
    trans = "trans" in mods
    puts = [dest(ctx, r, "b32") for r in vector(ins.args[0])]
    if len(puts) != num:
        raise PtxError(f"{ins}: .x{num} needs {num} registers")
    at = address(ctx, ins.args[1])
    rows, cols = (2 * T, G) if trans else (G, 2 * T)
    step = (1, 0) if trans else (0, 1)

    def fn(sel):
        addrs = np.broadcast_to(at(sel), (32,))[: 8 * num].astype(np.int64)
        mats = ctx.smem.load(addrs, 16, ctx.ids[sel][: 8 * num]).view(np.uint16).reshape(num, 8, 8)
        for i, put in enumerate(puts):
            lo = mats[i, rows, cols].astype(np.uint32)
            hi = mats[i, rows + step[0], cols + step[1]].astype(np.uint32)
            put(sel, lo | (hi << np.uint32(16)))

    return Step(PLAIN, fn, collective=True)


def shfl(ins, parts, ctx):
    if len(parts) != 4 or parts[1] != "sync" or parts[3] != "b32" or "|" in ins.args[0]:
        raise PtxError(f"{ins}: only shfl.sync.{{up,down,bfly,idx}}.b32 d, a, b, c, mask")
    mode = parts[2]
    x, put = source(ctx, ins.args[1], "b32"), dest(ctx, ins.args[0], "b32")
    gb, gc = source(ctx, ins.args[2], "u32"), source(ctx, ins.args[3], "u32")
    if int(immediate(ins.args[4], "u32")) != 0xFFFFFFFF:
        raise PtxError(f"{ins}: only the full member mask is modelled")

    def fn(sel):
        # The PTX ISA's shfl.sync pseudo-code: c packs the segment mask (bits 8..12) and the
        # clamp lane (bits 0..4); an out-of-range source lane returns the lane's own value.
        b = np.broadcast_to(np.asarray(gb(sel), dtype=np.int64), (32,)) & 31
        c = np.broadcast_to(np.asarray(gc(sel), dtype=np.int64), (32,))
        seg = (c >> 8) & 31
        max_lane = (LANE & seg) | (c & 31 & ~seg)
        min_lane = LANE & seg
        if mode == "up":
            j, ok = LANE - b, LANE - b >= max_lane
        elif mode == "down":
            j, ok = LANE + b, LANE + b <= max_lane
        elif mode == "bfly":
            j, ok = LANE ^ b, (LANE ^ b) <= max_lane
        elif mode == "idx":
            j = min_lane | (b & ~seg)
            ok = j <= max_lane
        else:
            raise PtxError(f"{ins}: mode .{mode}")
        put(sel, np.asarray(x(sel))[np.where(ok, j, LANE)])

    return Step(PLAIN, fn, collective=True)


def warp_sync(ins, ctx):
    if int(immediate(ins.args[0], "u32")) != 0xFFFFFFFF:
        raise PtxError(f"{ins}: only bar.warp.sync 0xffffffff is modelled")

    def fn(sel):
        ctx.smem.warp_epoch[ctx.ids[sel][0] >> 5] += 1  # orders the lanes' shared accesses

    return Step(PLAIN, fn, collective=True)
