//! AVX-512 primitives of the flash attention row: dot, axpy and scale over `head_dim`
//! (16 lanes, masked tail).

// AVX-512 intrinsics are stable since Rust 1.89; the workspace's rust-version (1.87) must be
// raised to 1.89 for this file (tracked in the CPU-speed issue).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::{flash_row, Row, BLOCK};

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as u16
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut p = 0;
    // SAFETY: every access is below n (masked for the tail).
    unsafe {
        while p + 32 <= n {
            acc0 = _mm512_fmadd_ps(
                _mm512_loadu_ps(a.as_ptr().add(p)),
                _mm512_loadu_ps(b.as_ptr().add(p)),
                acc0,
            );
            acc1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(a.as_ptr().add(p + 16)),
                _mm512_loadu_ps(b.as_ptr().add(p + 16)),
                acc1,
            );
            p += 32;
        }
        while p < n {
            let m = mask((n - p).min(16));
            let x = _mm512_maskz_loadu_ps(m, a.as_ptr().add(p));
            let y = _mm512_maskz_loadu_ps(m, b.as_ptr().add(p));
            acc0 = _mm512_fmadd_ps(x, y, acc0);
            p += 16;
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    let n = y.len().min(x.len());
    let av = _mm512_set1_ps(a);
    let mut p = 0;
    // SAFETY: every access is below n (masked for the tail).
    unsafe {
        while p < n {
            let m = mask((n - p).min(16));
            let yp = y.as_mut_ptr().add(p);
            let r = _mm512_fmadd_ps(
                av,
                _mm512_maskz_loadu_ps(m, x.as_ptr().add(p)),
                _mm512_maskz_loadu_ps(m, yp),
            );
            _mm512_mask_storeu_ps(yp, m, r);
            p += 16;
        }
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn scale(y: &mut [f32], a: f32) {
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

/// One query row (see `flash_row!`).
///
/// # Safety
/// The CPU supports the AVX-512 level.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn row(row: &Row, out: &mut [f32], scores: &mut [f32]) {
    debug_assert!(scores.len() >= BLOCK);
    flash_row!(row, out, scores, dot, axpy, scale)
}
