"""Bit-level number formats shared by the interpreter and the references: f32 <-> bits,
bf16 rounding (round to nearest even, as cvt.rn.bf16x2.f32), and the NMSE metric."""

import numpy as np

# NMSE thresholds, as the project's kernel tests use them (kernels/src/testing.rs).
NMSE_F32_ELEMENTWISE = 1e-10
NMSE_F32_REDUCTION = 1e-7
NMSE_HALF = 1e-4

# The canonical NaN cvt writes for a NaN input (a plain round-to-nearest-even on the bits would
# turn some NaNs into infinities or -0 and hide the poison the checker relies on).
BF16_CANONICAL_NAN = 0x7FFF


def f32_bits(x):
    """f32 values -> uint32 bit patterns."""
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def bits_f32(u):
    """uint32 bit patterns -> f32 values."""
    return np.asarray(u, dtype=np.uint32).view(np.float32)


def bf16_round(x):
    """f32 values -> bf16 bit patterns (uint16), round to nearest even, NaN -> canonical NaN."""
    u = f32_bits(x).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    return np.where(nan, np.uint16(BF16_CANONICAL_NAN), rounded)


def bf16_to_f32(h):
    """bf16 bit patterns -> f32 values (exact)."""
    return (np.asarray(h, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_bf16(x):
    """f32 values rounded to the nearest bf16, as f32."""
    return bf16_to_f32(bf16_round(x))


def nmse(actual, expected):
    """sum (a - e)^2 / sum e^2 in f64; infinite when `actual` holds a NaN or an infinity."""
    a = np.asarray(actual, dtype=np.float64).ravel()
    e = np.asarray(expected, dtype=np.float64).ravel()
    if not np.isfinite(a).all():
        return float("inf")
    return float(((a - e) ** 2).sum() / max((e**2).sum(), 1e-300))


def f16_to_f32(h):
    """IEEE f16 bit patterns -> f32 values (exact, as cvt.f32.f16)."""
    return np.asarray(h, dtype=np.uint16).view(np.float16).astype(np.float32)


def f16_round(x):
    """f32 values -> IEEE f16 bit patterns (uint16), round to nearest even (overflow to inf),
    as cvt.rn.f16x2.f32."""
    return np.asarray(x, dtype=np.float32).astype(np.float16).view(np.uint16)
