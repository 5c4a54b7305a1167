"""Operands: registers as numpy arrays over a CTA's threads holding raw bits (pred: bool;
16, 32, 64 bits: uint16, uint32, uint64), read through a view of the instruction's type (so
`add.f32` on a `.b32` register works as on the hardware); constants; addresses; and `Step`,
what the decoder makes of a statement."""

import re

import numpy as np

from .parse import PtxError

PLAIN, BRANCH, EXIT, BARRIER = range(4)
DTYPES = {
    "pred": np.bool_, "b8": np.uint8, "u8": np.uint8, "s8": np.int8,
    "b16": np.uint16, "u16": np.uint16, "s16": np.int16, "bf16": np.uint16,
    "b32": np.uint32, "u32": np.uint32, "s32": np.int32, "f32": np.float32, "bf16x2": np.uint32,
    "b64": np.uint64, "u64": np.uint64, "s64": np.int64, "f64": np.float64,
}
STORAGE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
FLOATS = ("f32", "f64")
WIDE = {"u16": "u32", "s16": "s32", "u32": "u64", "s32": "s64"}
# Modifiers that change nothing in a sequentially consistent, cache-less model.
CACHE_MODS = {"nc", "ca", "cg", "cs", "lu", "cv", "wb", "wt", "weak", "volatile", "relaxed",
              "acquire", "release", "cta", "gpu", "sys", "uni", "aligned", "sync"}


class Step:
    """A decoded statement: `kind` (PLAIN, BRANCH, EXIT, BARRIER), `fn(sel)` for PLAIN,
    `target` (instruction index) for BRANCH, `collective` for warp-wide instructions that
    need the whole warp converged (their `fn` gets the warp's slice)."""

    __slots__ = ("kind", "fn", "target", "collective", "instr", "guard")

    def __init__(self, kind, fn=None, target=None, collective=False):
        self.kind, self.fn, self.target, self.collective = kind, fn, target, collective
        self.instr = self.guard = None


def is_reg(tok):
    return tok.startswith("%")


def vector(tok):
    """The registers of a `{%a, %b, ...}` operand."""
    if not (tok.startswith("{") and tok.endswith("}")):
        raise PtxError(f"expected a {{vector}} operand, got `{tok}`")
    return [t.strip() for t in tok[1:-1].split(",")]


def array_of(ctx, tok):
    """The register array of `tok` in `ctx` (a Runner)."""
    try:
        return ctx.regs[tok]
    except KeyError:
        raise PtxError(f"undeclared register {tok}") from None


def immediate(tok, ty, ctx=None):
    """A constant operand as a numpy scalar of `ty` (hex floats 0fXXXXXXXX / 0dX..., integers in
    any base, shared variable names as their address)."""
    dt = np.dtype(DTYPES[ty])
    if ctx is not None and tok in ctx.shared:
        return dt.type(ctx.shared[tok])
    m = re.fullmatch(r"0([fFdD])([0-9a-fA-F]+)", tok)
    if m:  # a float's bit pattern
        bits = int(m.group(2), 16)
        if ty not in FLOATS:
            return np.array(bits, dtype=STORAGE[dt.itemsize]).view(dt)[()]
        if m.group(1) in "fF":
            return dt.type(np.uint32(bits).view(np.float32))
        return dt.type(np.uint64(bits).view(np.float64))
    try:
        value = int(tok.rstrip("Uu"), 0)
    except ValueError:
        if ty in FLOATS:
            return dt.type(float(tok))
        raise PtxError(f"bad operand `{tok}`") from None
    if ty in FLOATS:
        return dt.type(value)
    if ty == "pred":
        return np.bool_(value)
    bits = value & ((1 << (8 * dt.itemsize)) - 1)
    return np.array(bits, dtype=STORAGE[dt.itemsize]).view(dt)[()]


def source(ctx, tok, ty):
    """Reader of a source operand: `fn(sel)` -> values of type `ty` (an array or a scalar)."""
    dt = np.dtype(DTYPES[ty])
    if tok.startswith("!%") and ty == "pred":
        arr = array_of(ctx, tok[1:])
        return lambda sel: ~arr[sel]
    if is_reg(tok):
        arr = array_of(ctx, tok)
        if arr.dtype.itemsize != dt.itemsize:
            raise PtxError(f"{tok} has {8 * arr.dtype.itemsize} bits, used as .{ty}")
        if arr.dtype == dt:
            return lambda sel: arr[sel]
        return lambda sel: arr[sel].view(dt)
    value = immediate(tok, ty, ctx)
    return lambda sel: value


def dest(ctx, tok, ty):
    """Writer of a destination register: `fn(sel, values)` stores `values` as `ty` bits."""
    arr = array_of(ctx, tok)
    dt = np.dtype(DTYPES[ty])
    if arr.dtype.itemsize != dt.itemsize:
        raise PtxError(f"{tok} has {8 * arr.dtype.itemsize} bits, written as .{ty}")
    storage = arr.dtype

    def put(sel, v):
        arr[sel] = np.asarray(v).astype(dt, copy=False).view(storage)

    return put


def address(ctx, tok):
    """Reader of an address operand `[%r]`, `[%r+imm]`, `[name]`, `[name+imm]`: uint64 array or
    scalar (a shared variable name is its offset)."""
    m = re.fullmatch(r"\[\s*(%?[\w.$]+)\s*(?:([+-])\s*(-?\d+|0x[0-9a-fA-F]+))?\s*\]", tok)
    if not m:
        raise PtxError(f"address operand not modelled: `{tok}`")
    off = int(m.group(3), 0) * (-1 if m.group(2) == "-" else 1) if m.group(2) else 0
    base = m.group(1)
    if is_reg(base):
        arr = array_of(ctx, base)
        off64 = np.uint64(off % (1 << 64))
        return lambda sel: arr[sel].astype(np.uint64) + off64
    if base in ctx.shared:
        return lambda sel: np.uint64(ctx.shared[base] + off)
    raise PtxError(f"address base `{base}` is neither a register nor a shared variable")


