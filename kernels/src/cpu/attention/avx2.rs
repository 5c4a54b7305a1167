//! AVX2 primitives of the flash attention row: dot, axpy and scale over `head_dim`
//! (8 lanes, scalar tail), with keys and values f32 or f16 (widened by F16C as loaded).

use std::arch::x86_64::*;

use super::{flash_row, Row, BLOCK};
use crate::cpu::kv_element::KvElement;
use crate::cpu::simd::avx2::hsum;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot<T: KvElement>(a: &[f32], b: &[T]) -> f32 {
    let n = a.len().min(b.len());
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut p = 0;
    // SAFETY: every vector access ends at or below n.
    let mut s = unsafe {
        while p + 16 <= n {
            acc0 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(p)),
                T::load8(b.as_ptr().add(p)),
                acc0,
            );
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(p + 8)),
                T::load8(b.as_ptr().add(p + 8)),
                acc1,
            );
            p += 16;
        }
        if p + 8 <= n {
            acc0 = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.as_ptr().add(p)),
                T::load8(b.as_ptr().add(p)),
                acc0,
            );
            p += 8;
        }
        hsum(_mm256_add_ps(acc0, acc1))
    };
    for i in p..n {
        s += a[i] * b[i].to_f32();
    }
    s
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn axpy<T: KvElement>(y: &mut [f32], a: f32, x: &[T]) {
    let n = y.len().min(x.len());
    let av = _mm256_set1_ps(a);
    let mut p = 0;
    // SAFETY: every vector access ends at or below n.
    unsafe {
        while p + 8 <= n {
            let yp = y.as_mut_ptr().add(p);
            _mm256_storeu_ps(
                yp,
                _mm256_fmadd_ps(av, T::load8(x.as_ptr().add(p)), _mm256_loadu_ps(yp)),
            );
            p += 8;
        }
    }
    for i in p..n {
        y[i] += a * x[i].to_f32();
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale(y: &mut [f32], a: f32) {
    let n = y.len();
    let av = _mm256_set1_ps(a);
    let mut p = 0;
    // SAFETY: every vector access ends at or below n.
    unsafe {
        while p + 8 <= n {
            let yp = y.as_mut_ptr().add(p);
            _mm256_storeu_ps(yp, _mm256_mul_ps(av, _mm256_loadu_ps(yp)));
            p += 8;
        }
    }
    for v in &mut y[p..] {
        *v *= a;
    }
}

/// One query row (see `flash_row!`).
///
/// # Safety
/// The CPU supports the AVX2 level.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn row<T: KvElement>(row: &Row<T>, out: &mut [f32], scores: &mut [f32]) {
    debug_assert!(scores.len() >= BLOCK);
    flash_row!(row, out, scores, dot, axpy, scale)
}
