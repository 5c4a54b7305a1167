"""The instruction decoder: each statement becomes a `Step` (operands.py) whose `fn(sel)`
executes it for the threads `sel` (a slice or an index array) at once. This file holds the
arithmetic, comparisons, moves and conversions; ld/st/cp.async are in mem_ops.py, the
warp-wide instructions in warp_ops.py, control flow and barriers are scheduled by machine.py.

Integer arithmetic wraps, shifts clamp, division by zero is reported. Float arithmetic is
IEEE round-to-nearest-even in f32 and f64 (numpy); f32 fma is computed in f64 and rounded once
more to f32 (the double rounding can differ from a true fma in the last bit, rarely); f64 fma
is exact (rational arithmetic, rounded once), so f64 code reproduces bit for bit; `.approx`
instructions (ex2, rcp, div.full, ...) are computed exactly and rounded, so the interpreter
cannot see their hardware error; `.ftz` flushes subnormal inputs and results; rounding modes
other than .rn are refused."""

from fractions import Fraction

import numpy as np

from . import mem_ops, warp_ops
from .numerics import bf16_round, bf16_to_f32, f16_round, f16_to_f32
from .operands import (BARRIER, BRANCH, DTYPES, EXIT, FLOATS, PLAIN, STORAGE, WIDE, Step,
                       array_of, dest, source, vector)
from .parse import PtxError


# ---- arithmetic ----

def _ftz(x):
    tiny = np.finfo(x.dtype).tiny
    return np.where(np.abs(x) < tiny, np.copysign(x.dtype.type(0), x), x)


def _f64(f):
    return lambda x: f(x.astype(np.float64))


def _fma_f64(x, y, z):
    """x * y + z rounded once to f64 (as fma.rn.f64): exact rationals per element, IEEE
    f64 arithmetic where an operand is not finite."""
    x, y, z = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=np.float64))
                                    for v in (x, y, z)))
    out = x * y + z
    finite = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    for i in zip(*np.nonzero(finite)):
        exact = Fraction(float(x[i])) * Fraction(float(y[i])) + Fraction(float(z[i]))
        try:
            out[i] = float(exact)  # int / int true division: correctly rounded
        except OverflowError:
            out[i] = np.inf if exact > 0 else -np.inf
    return out


_FLOAT_UNARY = {
    "neg": np.negative, "abs": np.abs, "ex2": _f64(np.exp2), "lg2": _f64(np.log2),
    "rcp": _f64(lambda x: 1.0 / x), "sqrt": _f64(np.sqrt),
    "rsqrt": _f64(lambda x: 1.0 / np.sqrt(x)),
    "sin": _f64(np.sin), "cos": _f64(np.cos), "tanh": _f64(np.tanh),
}
_FLOAT_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
                 "min": np.fmin, "max": np.fmax}
_FLOAT_MODS = {"rn", "ftz", "sat", "approx", "full", "NaN"}
_INT_BINARY = {"add": np.add, "sub": np.subtract, "and": np.bitwise_and, "or": np.bitwise_or,
               "xor": np.bitwise_xor, "min": np.minimum, "max": np.maximum}


def _float_op(ins, base, mods, ty, ctx):
    if not set(mods) <= _FLOAT_MODS:
        raise PtxError(f"{ins}: modifiers {sorted(set(mods) - _FLOAT_MODS)} not modelled")
    ftz, sat = "ftz" in mods, "sat" in mods
    dt = DTYPES[ty]
    args = [source(ctx, a, ty) for a in ins.args[1:]]
    put = dest(ctx, ins.args[0], ty)
    if base in ("fma", "mad") and ty == "f64":
        compute = _fma_f64
    elif base in ("fma", "mad"):
        def compute(x, y, z):
            return (x.astype(np.float64) * y + z).astype(dt)
    elif base in _FLOAT_BINARY:
        compute = _FLOAT_BINARY[base]
        if base in ("min", "max") and "NaN" in mods:
            compute = np.minimum if base == "min" else np.maximum
    elif base in _FLOAT_UNARY:
        compute = _FLOAT_UNARY[base]
    else:
        raise PtxError(f"{ins}: not modelled")

    def fn(sel):
        xs = [np.asarray(a(sel), dtype=dt) for a in args]
        if ftz:
            xs = [_ftz(x) for x in xs]
        r = np.asarray(compute(*xs)).astype(dt)
        if ftz:
            r = _ftz(r)
        if sat:
            r = np.where(np.isnan(r), dt(0), np.clip(r, 0, 1)).astype(dt)
        put(sel, r)

    return Step(PLAIN, fn)


def _shift(ins, base, ty, ctx):
    """shl / shr: amounts >= the width give 0 (or the sign, for shr.s*)."""
    dt = np.dtype(DTYPES[ty])
    bits = 8 * dt.itemsize
    a = ins.args
    x, n, put = source(ctx, a[1], ty), source(ctx, a[2], "u32"), dest(ctx, a[0], ty)
    signed = ty.startswith("s")

    def fn(sel):
        v, s = np.asarray(x(sel)), np.asarray(n(sel)).astype(np.uint32)
        s_ok = np.minimum(s, bits - 1).astype(dt)
        if base == "shl":
            r = np.where(s >= bits, dt.type(0), v << s_ok)
        else:
            r = np.where(s >= bits, (v >> dt.type(bits - 1)) if signed else dt.type(0), v >> s_ok)
        put(sel, r)
    return Step(PLAIN, fn)


def _mul(ins, base, mods, ty, ctx):
    """mul / mad .lo (wrapping), .hi (upper half, 16 and 32 bits) and .wide (double width)."""
    dt = np.dtype(DTYPES[ty])
    bits = 8 * dt.itemsize
    mode = mods[0] if len(mods) == 1 and mods[0] in ("lo", "hi", "wide") else None
    if mode is None or (mode == "hi" and bits == 64):
        raise PtxError(f"{ins}: integer {base} needs .lo, .hi (16/32-bit) or .wide")
    a = ins.args
    out_ty = WIDE[ty] if mode == "wide" else ty
    odt = np.dtype(DTYPES[out_ty])
    x, y, put = source(ctx, a[1], ty), source(ctx, a[2], ty), dest(ctx, a[0], out_ty)
    z = source(ctx, a[3], out_ty) if base == "mad" else None
    big = np.int64 if ty.startswith("s") else np.uint64

    def fn(sel):
        u, v = np.asarray(x(sel)), np.asarray(y(sel))
        if mode == "lo":
            r = u * v
        elif mode == "wide":
            r = u.astype(odt) * v.astype(odt)
        else:
            r = ((u.astype(big) * v.astype(big)) >> big(bits)).astype(dt)
        if z is not None:
            r = r + np.asarray(z(sel)).astype(odt)
        put(sel, r)
    return Step(PLAIN, fn)


def _div(ins, base, ty, ctx):
    """div / rem, truncating toward zero for signed types; a zero divisor is an error."""
    dt = np.dtype(DTYPES[ty])
    a = ins.args
    x, y, put = source(ctx, a[1], ty), source(ctx, a[2], ty), dest(ctx, a[0], ty)

    def fn(sel):
        u, v = np.asarray(x(sel)), np.asarray(y(sel))
        if (v == 0).any():
            raise ArithmeticError("integer division by zero")
        if ty.startswith("s"):
            u64, v64 = u.astype(np.int64), v.astype(np.int64)
            q = (np.abs(u64) // np.abs(v64)) * np.sign(u64 * v64)
            r = q if base == "div" else u64 - q * v64
        else:
            r = u // v if base == "div" else u % v
        put(sel, np.asarray(r).astype(dt))
    return Step(PLAIN, fn)


def _int_op(ins, base, mods, ty, ctx):
    if base in ("mul", "mad"):
        return _mul(ins, base, mods, ty, ctx)
    if mods:
        raise PtxError(f"{ins}: modifiers {mods} not modelled")
    if base in ("shl", "shr"):
        return _shift(ins, base, ty, ctx)
    if base in ("div", "rem"):
        return _div(ins, base, ty, ctx)
    a = ins.args
    if base in ("not", "neg", "abs"):
        x, put = source(ctx, a[1], ty), dest(ctx, a[0], ty)
        f = {"not": np.invert, "neg": np.negative, "abs": np.abs}[base]
        return Step(PLAIN, lambda sel: put(sel, f(np.asarray(x(sel)))))
    if base in _INT_BINARY:
        f = _INT_BINARY[base]
        x, y, put = source(ctx, a[1], ty), source(ctx, a[2], ty), dest(ctx, a[0], ty)
        return Step(PLAIN, lambda sel: put(sel, f(x(sel), y(sel))))
    raise PtxError(f"{ins}: not modelled")


def _pred_op(ins, base, ctx):
    a = ins.args
    put = dest(ctx, a[0], "pred")
    srcs = [source(ctx, t, "pred") for t in a[1:]]
    f = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor,
         "not": np.logical_not}.get(base)
    if f is None:
        raise PtxError(f"{ins}: not modelled")
    return Step(PLAIN, lambda sel: put(sel, f(*[s(sel) for s in srcs])))


def arith(ins, parts, ctx):
    base, mods, ty = parts[0], parts[1:-1], parts[-1]
    if ty == "pred":
        return _pred_op(ins, base, ctx)
    if ty in FLOATS:
        return _float_op(ins, base, mods, ty, ctx)
    if ty not in DTYPES:
        raise PtxError(f"{ins}: type .{ty} not modelled")
    return _int_op(ins, base, mods, ty, ctx)


# ---- comparisons, selects, conversions, moves ----

_CMP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
        "gt": np.greater, "ge": np.greater_equal,
        "lo": np.less, "ls": np.less_equal, "hi": np.greater, "hs": np.greater_equal}
_JOIN = {None: None, "and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}


def _float_compare(cmp_):
    """PTX float comparisons: eq..ge are false on a NaN, equ..geu true, num / nan test it."""
    if cmp_ in ("num", "nan"):
        return lambda u, v: (np.isnan(u) | np.isnan(v)) == (cmp_ == "nan")
    if cmp_.endswith("u") and cmp_[:-1] in _CMP:
        f = _CMP[cmp_[:-1]]
        return lambda u, v: f(u, v) | np.isnan(u) | np.isnan(v)
    if cmp_ in _CMP:
        f = _CMP[cmp_]
        return lambda u, v: f(u, v) & ~(np.isnan(u) | np.isnan(v))
    return None


def setp(ins, parts, ctx):
    cmp_, ty = parts[1], parts[-1]
    extra = parts[2:-1]
    combine = next((m for m in extra if m in ("and", "or", "xor")), None)
    ftz = "ftz" in extra
    if set(extra) - {"and", "or", "xor", "ftz"} or "|" in ins.args[0]:
        raise PtxError(f"{ins}: not modelled (modifiers, or a second destination)")
    x, y = source(ctx, ins.args[1], ty), source(ctx, ins.args[2], ty)
    c = source(ctx, ins.args[3], "pred") if combine else None
    put = dest(ctx, ins.args[0], "pred")
    compare = _float_compare(cmp_) if ty in FLOATS else _CMP.get(cmp_)
    if compare is None:
        raise PtxError(f"{ins}: comparison .{cmp_} not modelled")
    join = _JOIN[combine]

    def fn(sel):
        u, v = np.asarray(x(sel)), np.asarray(y(sel))
        if ftz:
            u, v = _ftz(u), _ftz(v)
        r = compare(u, v)
        put(sel, join(r, c(sel)) if join else r)

    return Step(PLAIN, fn)


def selp(ins, parts, ctx):
    ty = parts[-1]
    x, y = source(ctx, ins.args[1], ty), source(ctx, ins.args[2], ty)
    p, put = source(ctx, ins.args[3], "pred"), dest(ctx, ins.args[0], ty)
    return Step(PLAIN, lambda sel: put(sel, np.where(p(sel), x(sel), y(sel))))


_TO_INT = {"rzi": np.trunc, "rni": np.rint, "rmi": np.floor, "rpi": np.ceil}
# cvt.rn.{bf16x2,f16x2}.f32: the rounding of each packed type.
_PACK = {"bf16x2": bf16_round, "f16x2": f16_round}


def cvt(ins, parts, ctx):
    mods, dty, sty = parts[1:-2], parts[-2], parts[-1]
    a = ins.args
    if set(mods) - {"rn", "ftz"} - set(_TO_INT):
        raise PtxError(f"{ins}: modifiers {mods} not modelled")
    if dty in _PACK and sty == "f32":  # d = {16-bit(a) high, 16-bit(b) low}
        hi, lo = source(ctx, a[1], "f32"), source(ctx, a[2], "f32")
        put, round_half = dest(ctx, a[0], "b32"), _PACK[dty]

        def fn(sel):
            put(sel, (round_half(hi(sel)).astype(np.uint32) << np.uint32(16))
                | round_half(lo(sel)).astype(np.uint32))
        return Step(PLAIN, fn)
    if dty == "bf16" and sty == "f32":
        x, put = source(ctx, a[1], "f32"), dest(ctx, a[0], "b16")
        return Step(PLAIN, lambda sel: put(sel, bf16_round(x(sel))))
    if dty == "f32" and sty == "bf16":
        x, put = source(ctx, a[1], "b16"), dest(ctx, a[0], "f32")
        return Step(PLAIN, lambda sel: put(sel, bf16_to_f32(x(sel))))
    if dty == "f32" and sty == "f16":
        x, put = source(ctx, a[1], "b16"), dest(ctx, a[0], "f32")
        return Step(PLAIN, lambda sel: put(sel, f16_to_f32(x(sel))))
    if dty == "f16" and sty == "f32":
        if "rn" not in mods:
            raise PtxError(f"{ins}: f32 -> f16 needs .rn")
        x, put = source(ctx, a[1], "f32"), dest(ctx, a[0], "b16")
        return Step(PLAIN, lambda sel: put(sel, f16_round(x(sel))))
    if dty not in DTYPES or sty not in DTYPES or "pred" in (dty, sty):
        raise PtxError(f"{ins}: not modelled")
    x, put = source(ctx, a[1], sty), dest(ctx, a[0], dty)
    ddt = DTYPES[dty]
    to_int = [_TO_INT[m] for m in mods if m in _TO_INT]
    if sty in FLOATS and dty not in FLOATS:  # rounds, then saturates; NaN -> 0
        if len(to_int) != 1:
            raise PtxError(f"{ins}: float -> int needs .rzi/.rni/.rmi/.rpi")
        f, info = to_int[0], np.iinfo(ddt)

        def fn(sel):
            v = f(np.asarray(x(sel), dtype=np.float64))
            put(sel, np.where(np.isnan(v), 0, np.clip(v, info.min, info.max)).astype(ddt))
        return Step(PLAIN, fn)
    if to_int:  # float -> integral float of the same type (cvt.rni.f64.f64, ...)
        if dty != sty or dty not in FLOATS or len(to_int) != 1:
            raise PtxError(f"{ins}: rounding to an integral float needs one float type")
        return Step(PLAIN, lambda sel: put(sel, to_int[0](np.asarray(x(sel))).astype(ddt)))
    return Step(PLAIN, lambda sel: put(sel, np.asarray(x(sel)).astype(ddt)))


def mov(ins, parts, ctx):
    """mov, including packing `mov.b32 d, {lo, hi}` (the first element in the low bits) and
    unpacking `mov.b32 {lo, hi}, s`."""
    ty = parts[-1]
    d, s = ins.args
    dt = np.dtype(DTYPES[ty])
    if not (s.startswith("{") or d.startswith("{")):
        x, put = source(ctx, s, ty), dest(ctx, d, ty)
        return Step(PLAIN, lambda sel: put(sel, x(sel)))
    pieces = vector(s if s.startswith("{") else d)
    pty = {2: "b16", 4: "b32"}[dt.itemsize // len(pieces)]
    whole = STORAGE[dt.itemsize]
    shifts = [whole(8 * (dt.itemsize // len(pieces)) * i) for i in range(len(pieces))]
    if s.startswith("{"):
        srcs, put = [source(ctx, p, pty) for p in pieces], dest(ctx, d, ty)

        def pack(sel):
            r = whole(0)
            for g, sh in zip(srcs, shifts):
                r = r | (np.asarray(g(sel)).astype(whole) << sh)
            put(sel, np.asarray(r).view(dt))
        return Step(PLAIN, pack)
    x, puts = source(ctx, s, "b" + ty[1:]), [dest(ctx, p, pty) for p in pieces]

    def unpack(sel):
        v = np.asarray(x(sel))
        for put, sh in zip(puts, shifts):
            put(sel, (v >> sh).astype(DTYPES[pty]))
    return Step(PLAIN, unpack)


def cvta(ins, parts, ctx):
    """cvta.to.global / cvta.global: global addresses are the same in every view here."""
    if parts[1:-1] not in (["to", "global"], ["global"]):
        raise PtxError(f"{ins}: only cvta(.to).global is modelled (no generic addressing)")
    x, put = source(ctx, ins.args[1], parts[-1]), dest(ctx, ins.args[0], parts[-1])
    return Step(PLAIN, lambda sel: put(sel, x(sel)))


def _barrier(ins, parts, ctx):
    if parts[:2] == ["bar", "warp"]:
        return warp_ops.warp_sync(ins, ctx)
    if len(ins.args) != 1 or parts[1:] not in (["sync"], ["cta", "sync"], ["sync", "aligned"]):
        raise PtxError(f"{ins}: only `bar.sync id` / `barrier.sync id` (all threads) is modelled")
    return Step(BARRIER)


def decode(ins, ctx):
    """`ins` -> Step, its operands bound to `ctx`'s register arrays."""
    parts = ins.op.split(".")
    base = parts[0]
    if base == "bra":
        if ins.args[0] not in ctx.labels:
            raise PtxError(f"{ins}: unknown label")
        step = Step(BRANCH, target=ctx.labels[ins.args[0]])
    elif base in ("ret", "exit"):
        step = Step(EXIT)
    elif base in ("bar", "barrier"):
        step = _barrier(ins, parts, ctx)
    elif base in ("membar", "fence"):  # memory is sequentially consistent here
        step = Step(PLAIN, lambda sel: None)
    elif base in ("ld", "st"):
        step = mem_ops.ld_st(ins, parts, ctx)
    elif base == "atom":
        step = mem_ops.atom(ins, parts, ctx)
    elif base == "cp":
        step = mem_ops.cp_async(ins, parts, ctx)
    elif base in ("ldmatrix", "mma", "shfl"):
        step = getattr(warp_ops, base)(ins, parts, ctx)
    elif base in ("setp", "selp", "cvt", "mov", "cvta"):
        step = globals()[base](ins, parts, ctx)
    else:
        step = arith(ins, parts, ctx)
    step.instr = ins
    if ins.guard:
        step.guard = (array_of(ctx, ins.guard[0]), ins.guard[1])
    return step
