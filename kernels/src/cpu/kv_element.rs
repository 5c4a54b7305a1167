//! Element types of a KV cache: f32 (exact) or f16, which halves the cache's memory and the
//! bytes a decode step reads from it (llama.cpp's default). Values are rounded to f16 (to
//! nearest even) once, when written; attention widens them exactly to f32 and computes in
//! f32.

// AVX-512 intrinsics are stable since Rust 1.89.
#![allow(clippy::incompatible_msrv)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use half::f16;
use half::slice::HalfFloatSliceExt;

/// A KV-cache element.
pub trait KvElement: Copy + Default + Send + Sync + 'static {
    /// The element nearest `x` (f16: round to nearest even, as `half::f16::from_f32`).
    fn from_f32(x: f32) -> Self;
    /// The element's exact f32 value.
    fn to_f32(self) -> f32;
    /// `dst[i] = from_f32(src[i])`, vectorised where the CPU allows (same rounding).
    /// Panics if the lengths differ.
    fn store_row(src: &[f32], dst: &mut [Self]);
    /// The elements of `lanes` at `p`, widened to f32; other lanes are zero.
    ///
    /// # Safety
    /// The CPU supports AVX-512F and F16C; `p.add(i)` is readable for every set bit `i`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(p: *const Self, lanes: u16) -> __m512;
    /// The 8 elements at `p`, widened to f32.
    ///
    /// # Safety
    /// The CPU supports AVX2 and F16C; `p.add(i)` is readable for `i < 8`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> __m256;
}

impl KvElement for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn store_row(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn load16(p: *const f32, lanes: u16) -> __m512 {
        // SAFETY: masked lanes are not read; the set ones are readable (caller's contract).
        unsafe { _mm512_maskz_loadu_ps(lanes, p) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f32) -> __m256 {
        // SAFETY: 8 readable elements (caller's contract).
        unsafe { _mm256_loadu_ps(p) }
    }
}

impl KvElement for f16 {
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn store_row(src: &[f32], dst: &mut [f16]) {
        dst.convert_from_f32_slice(src);
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn load16(p: *const f16, lanes: u16) -> __m512 {
        // SAFETY: masked lanes are not read (AVX512-BW masked 16-bit load); the set ones are
        // readable (caller's contract).
        unsafe { _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, p as *const i16)) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: 8 readable elements (16 bytes; caller's contract).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::isa::Isa;
    use crate::testing::Rng;

    /// The vectorised row conversion rounds as the scalar one, including ties, subnormals,
    /// overflow to infinity and NaN; widening is exact.
    #[test]
    fn row_conversions_match_the_scalar_ones() {
        let mut rng = Rng::new(211);
        let mut src = rng.vec(1037, -70000.0, 70000.0);
        src.extend(rng.vec(101, -1e-6, 1e-6));
        src.extend([
            1.0 + 1.0 / 2048.0,
            65520.0,
            -65520.0,
            f32::NAN,
            f32::INFINITY,
            -0.0,
        ]);
        let mut half = vec![f16::ZERO; src.len()];
        f16::store_row(&src, &mut half);
        for (&x, &h) in src.iter().zip(&half) {
            let want = <f16 as KvElement>::from_f32(x);
            assert!(
                h.to_bits() == want.to_bits() || (h.is_nan() && want.is_nan()),
                "{x} -> {h} (want {want})"
            );
        }
        for (&x, &h) in src.iter().zip(&half) {
            let back = KvElement::to_f32(h);
            if x.is_finite() && x.abs() <= 65504.0 {
                assert!(
                    (back - x).abs() <= x.abs() * 2f32.powi(-11) + 2f32.powi(-24),
                    "{x}"
                );
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn load16_widens_the_set_lanes_only() {
        if !Isa::Avx512.is_supported() {
            eprintln!("skipped: no AVX-512");
            return;
        }
        let mut rng = Rng::new(212);
        let src: Vec<f16> = rng
            .vec(16, -3.0, 3.0)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let lanes = 0b0101_1111_0000_1011u16;
        let mut got = [0.0f32; 16];
        // SAFETY: AVX-512 checked above; all 16 elements are readable.
        unsafe { _mm512_storeu_ps(got.as_mut_ptr(), f16::load16(src.as_ptr(), lanes)) };
        for (i, (&g, &s)) in got.iter().zip(&src).enumerate() {
            let want = if lanes >> i & 1 == 1 { s.to_f32() } else { 0.0 };
            assert_eq!(g, want, "lane {i}");
        }
    }
}
