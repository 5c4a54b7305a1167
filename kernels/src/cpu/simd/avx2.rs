//! AVX2 + FMA + F16C helpers: 8 f32 lanes; bf16 widens by a 16-bit shift, f16 by
//! `vcvtph2ps`. No masked loads: callers handle tails with scalar code.

use std::arch::x86_64::*;

use crate::WeightSlice;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn load_f32(p: *const f32) -> __m256 {
    // SAFETY: caller guarantees 8 readable f32 at p.
    unsafe { _mm256_loadu_ps(p) }
}

/// 8 bf16 widened to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn load_bf16(p: *const u16) -> __m256 {
    // SAFETY: caller guarantees 8 readable u16 at p.
    unsafe {
        let v = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v))
    }
}

/// 8 f16 widened to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn load_f16(p: *const u16) -> __m256 {
    // SAFETY: caller guarantees 8 readable u16 at p.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Widens `w[start..start + out.len()]` into `out`.
///
/// # Safety
/// The CPU supports the AVX2 level and `start + out.len() <= w.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn widen_row(w: WeightSlice, start: usize, out: &mut [f32]) {
    let n = out.len();
    let full = n / 8 * 8;
    let dst = out.as_mut_ptr();
    // SAFETY: every load/store below stays inside start..start+n of w and 0..n of out.
    unsafe {
        match w {
            WeightSlice::F32(s) => out.copy_from_slice(&s[start..start + n]),
            WeightSlice::BF16(s) => {
                let src = s.as_ptr().add(start) as *const u16;
                for p in (0..full).step_by(8) {
                    _mm256_storeu_ps(dst.add(p), load_bf16(src.add(p)));
                }
            }
            WeightSlice::F16(s) => {
                let src = s.as_ptr().add(start) as *const u16;
                for p in (0..full).step_by(8) {
                    _mm256_storeu_ps(dst.add(p), load_f16(src.add(p)));
                }
            }
        }
    }
    for (p, o) in out.iter_mut().enumerate().skip(full) {
        *o = w.get(start + p);
    }
}
