"""Memory instructions: ld/st on .param, .global and .shared (scalar, .v2, .v4),
atom.global.cas.b32 and cp.async with its groups. The memory model itself (checks, poison,
races, when copies land) is memory.py."""

import re

import numpy as np

from .operands import CACHE_MODS, DTYPES, PLAIN, Step, address, dest, source, vector
from .parse import PtxError


_SPACES = ("global", "shared", "param", "local", "const")


def ld_st(ins, parts, ctx):
    base, ty, mods = parts[0], parts[-1], parts[1:-1]
    spaces = [m for m in mods if m in _SPACES]
    vec = [int(m[1:]) for m in mods if re.fullmatch(r"v[248]", m)]
    unknown = [m for m in mods if m not in CACHE_MODS and m not in _SPACES
               and not re.fullmatch(r"v[248]", m)]
    if len(spaces) != 1 or spaces[0] in ("local", "const") or unknown:
        raise PtxError(f"{ins}: only ld/st .global/.shared and ld.param are modelled")
    space, nvec = spaces[0], (vec[0] if vec else 1)
    dt = np.dtype(DTYPES[ty])
    nbytes = dt.itemsize * nvec
    if space == "param":
        if base != "ld":
            raise PtxError(f"{ins}: st.param not modelled")
        name = ins.args[1].strip("[] ")
        put = dest(ctx, ins.args[0], ty)
        return Step(PLAIN, lambda sel: put(sel, ctx.param(name, ty)))
    shared = space == "shared"
    regs = ins.args[0] if base == "ld" else ins.args[1]
    regs = vector(regs) if nvec > 1 else [regs]
    if len(regs) != nvec:
        raise PtxError(f"{ins}: .v{nvec} needs {nvec} registers")
    if base == "ld":
        at = address(ctx, ins.args[1])
        puts = [dest(ctx, r, ty) for r in regs]

        def load(sel):
            ids = ctx.ids[sel]
            addrs = np.broadcast_to(at(sel), (len(ids),))
            raw = ctx.smem.load(addrs, nbytes, ids) if shared else ctx.gmem.load(addrs, nbytes)
            raw = raw.view(dt)
            for i, put in enumerate(puts):
                put(sel, raw[:, i])
        return Step(PLAIN, load)
    at = address(ctx, ins.args[0])
    srcs = [source(ctx, r, ty) for r in regs]

    def store(sel):
        ids = ctx.ids[sel]
        n = len(ids)
        cols = [np.broadcast_to(np.asarray(s(sel), dtype=dt), (n,)) for s in srcs]
        data = np.ascontiguousarray(np.stack(cols, axis=1)).view(np.uint8)
        addrs = np.broadcast_to(at(sel), (n,))
        if shared:
            ctx.smem.store(addrs, data, ids)
        else:
            ctx.gmem.store(addrs, data)
    return Step(PLAIN, store)


def atom(ins, parts, ctx):
    """atom.global.cas.b32 d, [a], b, c: d = old word; the word becomes c where it was b. The
    active threads go one after another, in thread order."""
    mods = [m for m in parts[1:] if m not in CACHE_MODS]
    if mods != ["global", "cas", "b32"] or len(ins.args) != 4:
        raise PtxError(f"{ins}: only atom.global.cas.b32 d, [a], b, c is modelled")
    at = address(ctx, ins.args[1])
    compare, value = source(ctx, ins.args[2], "b32"), source(ctx, ins.args[3], "b32")
    put = dest(ctx, ins.args[0], "b32")

    def fn(sel):
        n = len(ctx.ids[sel])
        addrs = np.broadcast_to(at(sel), (n,))
        cmp_ = np.broadcast_to(np.asarray(compare(sel), dtype=np.uint32), (n,))
        new = np.broadcast_to(np.asarray(value(sel), dtype=np.uint32), (n,))
        old = np.empty(n, dtype=np.uint32)
        for t in range(n):
            old[t] = ctx.gmem.atomic_cas(addrs[t], cmp_[t], new[t])
        put(sel, old)
    return Step(PLAIN, fn)


def cp_async(ins, parts, ctx):
    """cp.async.{ca,cg}.shared.global [dst], [src], cp-size[, src-size] (bytes past src-size
    are zero-filled), cp.async.commit_group, cp.async.wait_group N, cp.async.wait_all."""
    what = parts[2] if len(parts) > 2 else ""
    if what == "commit_group":
        return Step(PLAIN, lambda sel: ctx.copies.commit(ctx.ids[sel]))
    if what == "wait_group":
        allowed = int(ins.args[0])
        return Step(PLAIN, lambda sel: ctx.copies.wait(ctx.smem, ctx.ids[sel], allowed))
    if what == "wait_all":
        def wait_all(sel):
            ctx.copies.commit(ctx.ids[sel])
            ctx.copies.wait(ctx.smem, ctx.ids[sel], 0)
        return Step(PLAIN, wait_all)
    size = int(ins.args[2]) if len(ins.args) in (3, 4) and ins.args[2].isdigit() else 0
    if parts[1:] not in (["async", "cg", "shared", "global"], ["async", "ca", "shared", "global"]) \
            or size not in ((16,) if what == "cg" else (4, 8, 16)):
        raise PtxError(f"{ins}: only cp.async.{{ca,cg}}.shared.global [dst], [src], size"
                       "[, src_size] is modelled")
    dst, src = address(ctx, ins.args[0]), address(ctx, ins.args[1])
    src_size = source(ctx, ins.args[3], "u32") if len(ins.args) == 4 else None

    def copy(sel):
        ids = ctx.ids[sel]
        n = len(ids)
        s = np.broadcast_to(src(sel), (n,))
        have = np.broadcast_to(np.asarray(src_size(sel) if src_size else size), (n,))
        have = have.astype(np.int64)
        if (have > size).any():
            raise PtxError("cp.async src-size larger than cp-size")
        if (s[have > 0] % np.uint64(size)).any():
            raise PtxError(f"cp.async source not aligned to {size} bytes")
        data = np.zeros((n, size), dtype=np.uint8)
        full = have == size
        if full.any():
            data[full] = ctx.gmem.load(s[full], size)
        for i in np.nonzero((have > 0) & ~full)[0]:  # partial copies: rare, byte by byte
            for b in range(have[i]):
                data[i, b] = ctx.gmem.load(s[i:i + 1] + np.uint64(b), 1)[0, 0]
        ctx.copies.issue(ctx.smem, ids, np.broadcast_to(dst(sel), (n,)).astype(np.int64), data)
    return Step(PLAIN, copy)
