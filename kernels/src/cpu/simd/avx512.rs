//! AVX-512 (F + BW + VL) helpers: 16 f32 lanes; bf16 widens by a 16-bit shift, f16 by
//! `vcvtph2ps`; tails use masked loads.

// AVX-512 intrinsics are stable since Rust 1.89; the workspace's rust-version (1.87) must be
// raised to 1.89 for this file (tracked in the CPU-speed issue).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use crate::WeightSlice;

/// 16 f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn load_f32(p: *const f32) -> __m512 {
    // SAFETY: caller guarantees 16 readable f32 at p.
    unsafe { _mm512_loadu_ps(p) }
}

/// The first `n < 16` f32 at p, zeros above.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn load_f32_tail(p: *const f32, n: usize) -> __m512 {
    // SAFETY: masked-off lanes are not read; caller guarantees n readable f32.
    unsafe { _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, p) }
}

/// 16 bf16 widened to f32 (exact: bf16 is the top half of an f32).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn load_bf16(p: *const u16) -> __m512 {
    // SAFETY: caller guarantees 16 readable u16 at p.
    unsafe { bf16_to_f32(_mm256_loadu_si256(p as *const __m256i)) }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn load_bf16_tail(p: *const u16, n: usize) -> __m512 {
    // SAFETY: masked load reads only the first n u16.
    unsafe {
        bf16_to_f32(_mm256_maskz_loadu_epi16(
            ((1u32 << n) - 1) as u16,
            p as *const i16,
        ))
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn bf16_to_f32(v: __m256i) -> __m512 {
    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(v)))
}

/// 16 f16 widened to f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn load_f16(p: *const u16) -> __m512 {
    // SAFETY: caller guarantees 16 readable u16 at p.
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn load_f16_tail(p: *const u16, n: usize) -> __m512 {
    // SAFETY: masked load reads only the first n u16.
    unsafe {
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
            ((1u32 << n) - 1) as u16,
            p as *const i16,
        ))
    }
}

/// Sum of the 16 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn hsum(v: __m512) -> f32 {
    _mm512_reduce_add_ps(v)
}

/// Widens `w[start..start + out.len()]` into `out`.
///
/// # Safety
/// The CPU supports the AVX-512 level and `start + out.len() <= w.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub unsafe fn widen_row(w: WeightSlice, start: usize, out: &mut [f32]) {
    let n = out.len();
    let dst = out.as_mut_ptr();
    let full = n / 16 * 16;
    // SAFETY: every load/store below stays inside start..start+n of w and 0..n of out.
    unsafe {
        match w {
            WeightSlice::F32(s) => out.copy_from_slice(&s[start..start + n]),
            WeightSlice::BF16(s) => {
                let src = s.as_ptr().add(start) as *const u16;
                for p in (0..full).step_by(16) {
                    _mm512_storeu_ps(dst.add(p), load_bf16(src.add(p)));
                }
                if full < n {
                    let v = load_bf16_tail(src.add(full), n - full);
                    _mm512_mask_storeu_ps(dst.add(full), ((1u32 << (n - full)) - 1) as u16, v);
                }
            }
            WeightSlice::F16(s) => {
                let src = s.as_ptr().add(start) as *const u16;
                for p in (0..full).step_by(16) {
                    _mm512_storeu_ps(dst.add(p), load_f16(src.add(p)));
                }
                if full < n {
                    let v = load_f16_tail(src.add(full), n - full);
                    _mm512_mask_storeu_ps(dst.add(full), ((1u32 << (n - full)) - 1) as u16, v);
                }
            }
        }
    }
}
