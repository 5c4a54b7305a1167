//! Exact (erf) GELU, vectorized: `gelu(x) = 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2)`,
//! the contract of `reference::gelu_erf` (torch `gelu`, approximate="none"; the LLaVA
//! projector's activation). The scalar level is the reference.
//!
//! With `a = |x| / sqrt 2` and `e = erfc(a)`, `gelu(x) = 0.5 x e` for `x < 0` and
//! `0.5 x (2 - e)` otherwise, so only `erfc` on `[0, inf)` is needed and the negative side
//! keeps its relative accuracy. `erfc(a) = t exp(-a^2 + P(u))` with `t = 1 / (1 + a / 2)`,
//! `u = 2.4 t - 1.4` (t in [1/6, 1] for a in [0, 10] maps to u in [-1, 1]) and `P` a
//! degree-9 polynomial fitted (least squares on Chebyshev nodes, then reweighted towards
//! minimax) to `ln(erfc(a) / t) + a^2`, max error 4.5e-8. Rounding is kept to f32 level:
//! `a^2 = x^2 / 2` is formed exactly as hi + lo (FMA), and `P - hi` as a two-sum, so the
//! exponent's rounding error is folded back as `e (1 + err)` instead of being amplified by
//! `exp`. Measured against the f64 reference: at most ~6 ulp, RMS ~1.5 ulp, over
//! x in [-13, 13]. Below x = -13 the true result is under 1e-37 and is returned as -0
//! (above 13 as x): AVX2's exp stops at the smallest normal f32.
//!
//! Blocks are split over rayon for large inputs (577 x 4096 in the projector); a small call
//! stays on the calling thread. Criterion `rowops/*/gelu_erf/577x4096` (2-core AMD EPYC
//! VM, load ~4): scalar (the f64 series / continued-fraction reference) 463 ms, avx2
//! 3.4 ms, avx512 2.1 ms.

use rayon::prelude::*;

use super::{MAX_LANES, PAR_MIN};
use crate::cpu::isa::Isa;
use crate::cpu::reference;

/// `P(u)`, lowest degree first.
const ERFC_POLY: [f32; 10] = [
    -0.558_595_4,
    0.570_307_1,
    0.015_747_217,
    -0.029_469_885,
    -0.001_062_959_4,
    0.003_705_797,
    -0.000_226_687_51,
    -0.000_532_029_3,
    7.309_255e-5,
    5.382_444_2e-5,
];
/// `u = U_SCALE t + U_SHIFT`.
const U_SCALE: f32 = 2.4;
const U_SHIFT: f32 = -1.4;
/// `|x|` beyond which the erfc term is dropped (see the header).
const FLUSH_X: f32 = 13.0;

type Body = unsafe fn(*const f32, *mut f32, usize);

fn body(isa: Isa) -> Option<(Body, usize)> {
    isa.assert_supported();
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some((avx512::gelu_erf, 16)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some((avx2::gelu_erf, 8)),
        _ => None,
    }
}

/// `out = gelu_erf(x)` elementwise.
pub fn gelu_erf(isa: Isa, x: &[f32], out: &mut [f32]) {
    let Some((body, lanes)) = body(isa) else {
        return reference::gelu_erf(x, out);
    };
    assert_eq!(x.len(), out.len(), "gelu_erf: x and out lengths differ");
    let run = |(out, x): (&mut [f32], &[f32])| {
        let n = x.len();
        let full = n / lanes * lanes;
        // SAFETY: `body` belongs to a level the CPU supports (`body` checked it); it reads
        // and writes exactly `full` (a multiple of the lanes) elements, inside both slices.
        unsafe { body(x.as_ptr(), out.as_mut_ptr(), full) };
        if full < n {
            let (mut tx, mut to) = ([0.0f32; MAX_LANES], [0.0f32; MAX_LANES]);
            tx[..n - full].copy_from_slice(&x[full..]);
            // SAFETY: as above, on buffers of MAX_LANES >= lanes elements.
            unsafe { body(tx.as_ptr(), to.as_mut_ptr(), lanes) };
            out[full..].copy_from_slice(&to[..n - full]);
        }
    };
    if x.len() < PAR_MIN {
        return run((out, x));
    }
    let chunk = (x.len() / rayon::current_num_threads().max(1)).div_ceil(64) * 64;
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(run);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::f32::consts::FRAC_1_SQRT_2;

    use super::{ERFC_POLY, FLUSH_X, U_SCALE, U_SHIFT};
    use crate::cpu::rowops::avx512::exp16;

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn gelu16(x: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let half = _mm512_set1_ps(0.5);
        let ax = _mm512_abs_ps(x);
        let flush = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(ax, _mm512_set1_ps(FLUSH_X));
        let a = _mm512_mul_ps(ax, _mm512_set1_ps(FRAC_1_SQRT_2));
        let t = _mm512_div_ps(one, _mm512_fmadd_ps(a, half, one));
        let u = _mm512_fmadd_ps(t, _mm512_set1_ps(U_SCALE), _mm512_set1_ps(U_SHIFT));
        let mut p = _mm512_set1_ps(ERFC_POLY[9]);
        for &c in ERFC_POLY[..9].iter().rev() {
            p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(c));
        }
        // a^2 = hi + lo exactly; s + err = p - hi exactly.
        let x2 = _mm512_mul_ps(x, x);
        let hi = _mm512_mul_ps(x2, half);
        let lo = _mm512_mul_ps(_mm512_fmsub_ps(x, x, x2), half);
        let s = _mm512_sub_ps(p, hi);
        let bb = _mm512_sub_ps(s, p);
        let err = _mm512_sub_ps(
            _mm512_sub_ps(p, _mm512_sub_ps(s, bb)),
            _mm512_add_ps(hi, bb),
        );
        let e = _mm512_mul_ps(t, exp16(s));
        let e = _mm512_fmadd_ps(e, _mm512_sub_ps(err, lo), e);
        let e = _mm512_mask_blend_ps(flush, e, _mm512_setzero_ps());
        let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
        let factor = _mm512_mask_blend_ps(negative, _mm512_sub_ps(_mm512_set1_ps(2.0), e), e);
        _mm512_mul_ps(_mm512_mul_ps(x, half), factor)
    }

    /// `out = gelu_erf(x)` over `n` elements, `n` a multiple of 16.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub(super) unsafe fn gelu_erf(x: *const f32, out: *mut f32, n: usize) {
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n elements readable at x and writable at out (caller).
            unsafe { _mm512_storeu_ps(out.add(i), gelu16(_mm512_loadu_ps(x.add(i)))) }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::f32::consts::FRAC_1_SQRT_2;

    use super::{ERFC_POLY, FLUSH_X, U_SCALE, U_SHIFT};
    use crate::cpu::rowops::avx2::exp8;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn gelu8(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let half = _mm256_set1_ps(0.5);
        let ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
        let keep = _mm256_cmp_ps::<_CMP_LE_OQ>(ax, _mm256_set1_ps(FLUSH_X));
        let a = _mm256_mul_ps(ax, _mm256_set1_ps(FRAC_1_SQRT_2));
        let t = _mm256_div_ps(one, _mm256_fmadd_ps(a, half, one));
        let u = _mm256_fmadd_ps(t, _mm256_set1_ps(U_SCALE), _mm256_set1_ps(U_SHIFT));
        let mut p = _mm256_set1_ps(ERFC_POLY[9]);
        for &c in ERFC_POLY[..9].iter().rev() {
            p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(c));
        }
        // a^2 = hi + lo exactly; s + err = p - hi exactly.
        let x2 = _mm256_mul_ps(x, x);
        let hi = _mm256_mul_ps(x2, half);
        let lo = _mm256_mul_ps(_mm256_fmsub_ps(x, x, x2), half);
        let s = _mm256_sub_ps(p, hi);
        let bb = _mm256_sub_ps(s, p);
        let err = _mm256_sub_ps(
            _mm256_sub_ps(p, _mm256_sub_ps(s, bb)),
            _mm256_add_ps(hi, bb),
        );
        let e = _mm256_mul_ps(t, exp8(s));
        let e = _mm256_fmadd_ps(e, _mm256_sub_ps(err, lo), e);
        // NaN lanes fail `keep` too; the product with x below keeps them NaN.
        let e = _mm256_and_ps(e, keep);
        let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
        let factor = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(2.0), e), e, negative);
        _mm256_mul_ps(_mm256_mul_ps(x, half), factor)
    }

    /// `out = gelu_erf(x)` over `n` elements, `n` a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn gelu_erf(x: *const f32, out: *mut f32, n: usize) {
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n elements readable at x and writable at out (caller).
            unsafe { _mm256_storeu_ps(out.add(i), gelu8(_mm256_loadu_ps(x.add(i)))) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_ELEMENTWISE};

    #[test]
    fn matches_the_reference_at_every_isa() {
        let mut rng = Rng::new(83);
        for n in [1usize, 7, 15, 17, 33, 1031, 40_003] {
            let x = rng.vec(n, -8.0, 8.0);
            let mut want = vec![0.0; n];
            reference::gelu_erf(&x, &mut want);
            for isa in Isa::available() {
                let mut got = vec![f32::NAN; n];
                gelu_erf(isa, &x, &mut got);
                let what = format!("{isa} gelu_erf n={n}");
                assert_nmse(&what, &got, &want, NMSE_F32_ELEMENTWISE);
                // f32 rounding level, far inside the elementwise bound.
                assert_nmse(&what, &got, &want, 1e-13);
            }
        }
    }

    #[test]
    fn relative_error_is_a_few_ulp_where_the_result_is_normal() {
        // Every 1/1024 over [-13, 13]: the negative side too, where gelu is tiny.
        let x: Vec<f32> = (-13 * 1024..=13 * 1024)
            .map(|i| i as f32 / 1024.0)
            .collect();
        let mut want = vec![0.0; x.len()];
        reference::gelu_erf(&x, &mut want);
        for isa in Isa::available() {
            let mut got = vec![f32::NAN; x.len()];
            gelu_erf(isa, &x, &mut got);
            for i in 0..x.len() {
                if want[i].abs() < f32::MIN_POSITIVE {
                    assert!(got[i].abs() < 1e-37, "{isa} gelu({}) = {}", x[i], got[i]);
                    continue;
                }
                let rel = ((got[i] as f64 - want[i] as f64) / want[i] as f64).abs();
                assert!(
                    rel < 8.0 * f32::EPSILON as f64,
                    "{isa} gelu({}) = {} want {} ({:.1} ulp)",
                    x[i],
                    got[i],
                    want[i],
                    rel / f32::EPSILON as f64
                );
            }
        }
    }

    #[test]
    fn special_values() {
        let x = [
            -100.0,
            100.0,
            -1e30,
            1e30,
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NAN,
        ];
        for isa in Isa::available() {
            let mut got = [1.0f32; 8];
            gelu_erf(isa, &x, &mut got);
            assert_eq!(got[..5], [-0.0, 100.0, -0.0, 1e30, 0.0], "{isa}");
            assert!(got[5] == 0.0 && got[5].is_sign_negative(), "{isa}");
            assert_eq!(got[6], f32::INFINITY, "{isa}");
            assert!(got[7].is_nan(), "{isa}");
        }
    }
}
