//! AVX-512 row-op bodies: 16 f32 lanes. Every function processes `n` elements with `n` a
//! multiple of 16 (the caller in `rowops` pads the tail); pointers are unaligned.

// AVX-512 intrinsics are stable since Rust 1.89 (see `simd::avx512`).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

const L: usize = 16;

/// `exp` of 16 lanes: `x = n ln2 + r`, |r| <= ln2/2, Cephes' degree-6 polynomial for
/// `e^r` (~1 ulp), then `vscalefps` multiplies by `2^n` (overflow to inf, underflow to 0).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-104.0)),
        _mm512_set1_ps(89.0),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let y = _mm512_fmadd_ps(
        p,
        _mm512_mul_ps(r, r),
        _mm512_add_ps(r, _mm512_set1_ps(1.0)),
    );
    _mm512_scalef_ps(y, n)
}

/// `out = exp(x)`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn exp(x: *const f32, out: *mut f32, n: usize) {
    for i in (0..n).step_by(L) {
        // SAFETY: i + 16 <= n elements readable at x and writable at out (caller).
        unsafe { _mm512_storeu_ps(out.add(i), exp16(_mm512_loadu_ps(x.add(i)))) }
    }
}

/// `out = gate * up / (1 + exp(-gate))` (silu(gate) * up).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn silu_mul(gate: *const f32, up: *const f32, out: *mut f32, n: usize) {
    let one = _mm512_set1_ps(1.0);
    let sign = _mm512_set1_ps(-0.0);
    for i in (0..n).step_by(L) {
        // SAFETY: as `exp`.
        unsafe {
            let g = _mm512_loadu_ps(gate.add(i));
            let u = _mm512_loadu_ps(up.add(i));
            let e = exp16(_mm512_xor_ps(g, sign));
            let v = _mm512_div_ps(_mm512_mul_ps(g, u), _mm512_add_ps(one, e));
            _mm512_storeu_ps(out.add(i), v);
        }
    }
}

/// `out = a + b`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn add(a: *const f32, b: *const f32, out: *mut f32, n: usize) {
    for i in (0..n).step_by(L) {
        // SAFETY: as `exp`.
        unsafe {
            let v = _mm512_add_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
            _mm512_storeu_ps(out.add(i), v);
        }
    }
}

/// `out = a * b`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn mul(a: *const f32, b: *const f32, out: *mut f32, n: usize) {
    for i in (0..n).step_by(L) {
        // SAFETY: as `exp`.
        unsafe {
            let v = _mm512_mul_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)));
            _mm512_storeu_ps(out.add(i), v);
        }
    }
}

/// `out = x * s`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn scale(x: *const f32, s: f32, out: *mut f32, n: usize) {
    let s = _mm512_set1_ps(s);
    for i in (0..n).step_by(L) {
        // SAFETY: as `exp`.
        unsafe { _mm512_storeu_ps(out.add(i), _mm512_mul_ps(_mm512_loadu_ps(x.add(i)), s)) }
    }
}

/// `out = x * s * w`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn scale_mul(x: *const f32, s: f32, w: *const f32, out: *mut f32, n: usize) {
    let s = _mm512_set1_ps(s);
    for i in (0..n).step_by(L) {
        // SAFETY: as `exp`, plus n readable at w.
        unsafe {
            let v = _mm512_mul_ps(_mm512_loadu_ps(x.add(i)), s);
            _mm512_storeu_ps(out.add(i), _mm512_mul_ps(v, _mm512_loadu_ps(w.add(i))));
        }
    }
}

/// `sum x^2` (two independent accumulators, f32).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn sum_sq(x: *const f32, n: usize) -> f32 {
    let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    while i + 2 * L <= n {
        // SAFETY: i + 32 <= n readable at x (caller).
        unsafe {
            let a = _mm512_loadu_ps(x.add(i));
            let b = _mm512_loadu_ps(x.add(i + L));
            s0 = _mm512_fmadd_ps(a, a, s0);
            s1 = _mm512_fmadd_ps(b, b, s1);
        }
        i += 2 * L;
    }
    if i < n {
        // SAFETY: n is a multiple of 16, so one full vector remains.
        let a = unsafe { _mm512_loadu_ps(x.add(i)) };
        s0 = _mm512_fmadd_ps(a, a, s0);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(s0, s1))
}

/// RoPE rotation of one head's halves: `o1 = x1 c - x2 s`, `o2 = x2 c + x1 s`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn rotate(
    x1: *const f32,
    x2: *const f32,
    c: *const f32,
    s: *const f32,
    o1: *mut f32,
    o2: *mut f32,
    n: usize,
) {
    for i in (0..n).step_by(L) {
        // SAFETY: n elements readable / writable at every pointer (caller).
        unsafe {
            let (a, b) = (_mm512_loadu_ps(x1.add(i)), _mm512_loadu_ps(x2.add(i)));
            let (c, s) = (_mm512_loadu_ps(c.add(i)), _mm512_loadu_ps(s.add(i)));
            _mm512_storeu_ps(o1.add(i), _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
            _mm512_storeu_ps(o2.add(i), _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)));
        }
    }
}
