//! AVX-512 primitives of the split-KV attention row (`split_kv_avx512.rs`): dot and scale
//! over `head_dim` (16 lanes, masked tail); keys of any KV-cache element type.

// AVX-512 intrinsics are stable since Rust 1.89.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use crate::cpu::kv_element::KvElement;

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as u16
}

/// `a . b` with `b` widened to f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) fn dot<T: KvElement>(a: &[f32], b: &[T]) -> f32 {
    let n = a.len().min(b.len());
    let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut p = 0;
    // SAFETY: every access is below n (masked for the tail).
    unsafe {
        while p + 32 <= n {
            acc0 = _mm512_fmadd_ps(
                _mm512_loadu_ps(a.as_ptr().add(p)),
                T::load16(b.as_ptr().add(p), u16::MAX),
                acc0,
            );
            acc1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(a.as_ptr().add(p + 16)),
                T::load16(b.as_ptr().add(p + 16), u16::MAX),
                acc1,
            );
            p += 32;
        }
        while p < n {
            let m = mask((n - p).min(16));
            let x = _mm512_maskz_loadu_ps(m, a.as_ptr().add(p));
            let y = T::load16(b.as_ptr().add(p), m);
            acc0 = _mm512_fmadd_ps(x, y, acc0);
            p += 16;
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) fn scale(y: &mut [f32], a: f32) {
    let n = y.len();
    let av = _mm512_set1_ps(a);
    let mut p = 0;
    // SAFETY: every access is below n (masked for the tail).
    unsafe {
        while p < n {
            let m = mask((n - p).min(16));
            let yp = y.as_mut_ptr().add(p);
            _mm512_mask_storeu_ps(yp, m, _mm512_mul_ps(av, _mm512_maskz_loadu_ps(m, yp)));
            p += 16;
        }
    }
}
