//! Vectorized softmax over the last axis, the contract of `reference::softmax`: per row
//! `exp(x - max) / sum`; a `-inf` entry gives 0, an all-`-inf` row gives zeros, a NaN or a
//! `+inf` entry makes its row NaN.
//!
//! Three passes per row: the max (with a NaN check), `e = exp(x - max)` with the vector exp
//! of this module stored into `out` while the lanes sum it in f32, then `out *= 1 / sum`.
//! The row tail is padded with `-inf` (neutral for the max, 0 after exp). Rows are split over
//! rayon when the input is large; a decode-sized row stays on the calling thread.
//! Accuracy: a few ulp per element (exp ~1 ulp, the f32 sum ~1e-7 relative, one product).
//! AVX2's exp stops at the smallest normal f32, so there an `exp(x - max)` below it is
//! written as 0 (the reference gives a subnormal or 0: an absolute difference < 1.2e-38).
//!
//! Criterion `rowops/*/softmax/512x576` (2-core AMD EPYC VM, load ~4): scalar (the f64
//! reference) 2.9 ms, avx2 328 us, avx512 104 us.

use rayon::prelude::*;

use super::{bodies, Bodies, MAX_LANES, PAR_MIN};
use crate::cpu::isa::Isa;
use crate::cpu::reference;

type MaxNan = unsafe fn(*const f32, usize) -> (f32, bool);
type ExpSum = unsafe fn(*const f32, f32, *mut f32, usize) -> f32;

/// The loop bodies of one level: `rows` for `scale`, plus the two softmax passes.
#[derive(Clone, Copy)]
struct Kernels {
    rows: Bodies,
    /// `(max, any NaN)` over `n` elements.
    max_nan: MaxNan,
    /// `out = exp(x - shift)` over `n` elements; returns the sum of `out`.
    exp_sum: ExpSum,
}

/// The bodies of `isa`, or `None` for the scalar level. Panics if the CPU lacks `isa`.
fn kernels(isa: Isa) -> Option<Kernels> {
    let rows = bodies(isa)?;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(Kernels {
            rows,
            max_nan: avx512::max_nan,
            exp_sum: avx512::exp_sum,
        }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(Kernels {
            rows,
            max_nan: avx2::max_nan,
            exp_sum: avx2::exp_sum,
        }),
        _ => None,
    }
}

/// Row-wise softmax of `x` (`[rows, cols]`) into `out`; the scalar level is the reference.
pub fn softmax(isa: Isa, x: &[f32], cols: usize, out: &mut [f32]) {
    let Some(k) = kernels(isa) else {
        return reference::softmax(x, cols, out);
    };
    assert_eq!(x.len(), out.len(), "softmax: x and out lengths differ");
    if x.is_empty() {
        return;
    }
    assert!(
        x.len().checked_rem(cols) == Some(0),
        "softmax: x.len() = {} is not a multiple of cols = {cols}",
        x.len()
    );
    let row = |(o, x): (&mut [f32], &[f32])| softmax_row(k, x, o);
    if x.len() < PAR_MIN {
        out.chunks_mut(cols).zip(x.chunks(cols)).for_each(row);
    } else {
        out.par_chunks_mut(cols)
            .zip(x.par_chunks(cols))
            .for_each(row);
    }
}

fn softmax_row(k: Kernels, x: &[f32], out: &mut [f32]) {
    let (n, lanes) = (x.len(), k.rows.lanes);
    let full = n / lanes * lanes;
    let mut tail = [f32::NEG_INFINITY; MAX_LANES];
    tail[..n - full].copy_from_slice(&x[full..]);
    // SAFETY: the bodies belong to a level the CPU supports (`kernels` checked it); they
    // read `full` (a multiple of the lanes) elements of x and `lanes` of `tail`.
    let (mut max, mut nan) = unsafe { (k.max_nan)(x.as_ptr(), full) };
    if full < n {
        // SAFETY: as above.
        let (m, t) = unsafe { (k.max_nan)(tail.as_ptr(), lanes) };
        (max, nan) = (max.max(m), nan || t);
    }
    // A +inf entry gives inf - inf = NaN in its own term, and so in the sum.
    if nan || max == f32::INFINITY {
        out.fill(f32::NAN);
        return;
    }
    if max == f32::NEG_INFINITY {
        out.fill(0.0);
        return;
    }
    let o = out.as_mut_ptr();
    // SAFETY: as above; `out` holds n >= full elements.
    let mut sum = unsafe { (k.exp_sum)(x.as_ptr(), max, o, full) };
    if full < n {
        let mut e = [0.0f32; MAX_LANES];
        // SAFETY: as above, on buffers of MAX_LANES >= lanes elements.
        sum += unsafe { (k.exp_sum)(tail.as_ptr(), max, e.as_mut_ptr(), lanes) };
        out[full..].copy_from_slice(&e[..n - full]);
    }
    let inv = 1.0 / sum;
    // SAFETY: as above; `scale` reads each element before writing it, so in place is fine.
    unsafe { (k.rows.scale)(o, inv, o, full) };
    for v in &mut out[full..] {
        *v *= inv;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use crate::cpu::rowops::avx512::exp16;

    const L: usize = 16;

    /// `(max, any NaN)` over `n` elements, `n` a multiple of 16.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub(super) unsafe fn max_nan(x: *const f32, n: usize) -> (f32, bool) {
        let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut nan: __mmask16 = 0;
        for i in (0..n).step_by(L) {
            // SAFETY: i + 16 <= n elements readable at x (caller).
            let v = unsafe { _mm512_loadu_ps(x.add(i)) };
            nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            max = _mm512_max_ps(v, max);
        }
        (_mm512_reduce_max_ps(max), nan != 0)
    }

    /// `out = exp(x - shift)` over `n` elements (a multiple of 16); returns their sum.
    /// `exp16` clamps at -104, where `vscalefps` already rounds to 0, so `-inf` gives 0.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub(super) unsafe fn exp_sum(x: *const f32, shift: f32, out: *mut f32, n: usize) -> f32 {
        let shift = _mm512_set1_ps(shift);
        let mut sum = _mm512_setzero_ps();
        for i in (0..n).step_by(L) {
            // SAFETY: i + 16 <= n elements readable at x and writable at out (caller).
            unsafe {
                let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x.add(i)), shift));
                _mm512_storeu_ps(out.add(i), e);
                sum = _mm512_add_ps(sum, e);
            }
        }
        _mm512_reduce_add_ps(sum)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::cpu::rowops::avx2::exp8;
    use crate::cpu::simd::avx2::hsum;

    const L: usize = 8;
    /// Below this `exp8` returns its floor (the smallest normal f32), not the true value.
    const EXP_FLOOR: f32 = -87.336_55;

    /// `(max, any NaN)` over `n` elements, `n` a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn max_nan(x: *const f32, n: usize) -> (f32, bool) {
        let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut nan = _mm256_setzero_ps();
        for i in (0..n).step_by(L) {
            // SAFETY: i + 8 <= n elements readable at x (caller).
            let v = unsafe { _mm256_loadu_ps(x.add(i)) };
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            max = _mm256_max_ps(v, max);
        }
        let h = _mm_max_ps(_mm256_castps256_ps128(max), _mm256_extractf128_ps::<1>(max));
        let h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_max_ss(h, _mm_movehdup_ps(h));
        (_mm_cvtss_f32(h), _mm256_movemask_ps(nan) != 0)
    }

    /// `out = exp(x - shift)` over `n` elements (a multiple of 8), 0 below `EXP_FLOOR`;
    /// returns their sum.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn exp_sum(x: *const f32, shift: f32, out: *mut f32, n: usize) -> f32 {
        let shift = _mm256_set1_ps(shift);
        let floor = _mm256_set1_ps(EXP_FLOOR);
        let mut sum = _mm256_setzero_ps();
        for i in (0..n).step_by(L) {
            // SAFETY: i + 8 <= n elements readable at x and writable at out (caller).
            unsafe {
                let d = _mm256_sub_ps(_mm256_loadu_ps(x.add(i)), shift);
                let keep = _mm256_cmp_ps::<_CMP_GE_OQ>(d, floor);
                let e = _mm256_and_ps(exp8(d), keep);
                _mm256_storeu_ps(out.add(i), e);
                sum = _mm256_add_ps(sum, e);
            }
        }
        // SAFETY: AVX2 is enabled in this function.
        unsafe { hsum(sum) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};

    #[test]
    fn matches_the_reference_at_every_isa() {
        let mut rng = Rng::new(81);
        for (rows, cols) in [
            (1, 1),
            (3, 7),
            (5, 17),
            (2, 33),
            (9, 577),
            (64, 1031),
            (3, 4099),
        ] {
            let mut x = rng.vec(rows * cols, -30.0, 30.0);
            // Masked entries as attention masks write them.
            for (i, v) in x.iter_mut().enumerate() {
                if i % 5 == 2 && cols > 1 {
                    *v = f32::NEG_INFINITY;
                }
            }
            let mut want = vec![0.0; x.len()];
            reference::softmax(&x, cols, &mut want);
            for isa in Isa::available() {
                let mut got = vec![f32::NAN; x.len()];
                softmax(isa, &x, cols, &mut got);
                let what = format!("{isa} softmax {rows}x{cols}");
                assert_nmse(&what, &got, &want, NMSE_F32_REDUCTION);
                // Well inside the bound: a few ulp per element.
                assert_nmse(&what, &got, &want, 1e-12);
            }
        }
    }

    #[test]
    fn special_rows_follow_the_reference() {
        let (ninf, inf, nan) = (f32::NEG_INFINITY, f32::INFINITY, f32::NAN);
        for isa in Isa::available() {
            // 19 columns: one full AVX-512 vector plus a tail, two AVX2 vectors plus a tail.
            let cols = 19;
            let mut x = vec![ninf; 5 * cols];
            x[3] = 0.0; // row 0: one finite entry at 3 -> exactly one 1.0
            x[cols + 17] = 2.0; // row 1: one finite entry in the tail
            x[cols + 2] = 2.0;
            // row 2: all -inf -> zeros
            x[3 * cols + 18] = nan; // row 3: NaN in the tail -> all NaN
            x[4 * cols] = inf; // row 4: +inf -> all NaN
            let mut got = vec![7.0f32; x.len()];
            softmax(isa, &x, cols, &mut got);
            let row = |r: usize| &got[r * cols..(r + 1) * cols];
            let mut want0 = vec![0.0f32; cols];
            want0[3] = 1.0;
            assert_eq!(row(0), want0.as_slice(), "{isa}");
            let mut want1 = vec![0.0f32; cols];
            (want1[2], want1[17]) = (0.5, 0.5);
            assert_eq!(row(1), want1.as_slice(), "{isa}");
            assert!(row(2).iter().all(|&v| v == 0.0), "{isa}");
            assert!(row(3).iter().all(|v| v.is_nan()), "{isa}");
            assert!(row(4).iter().all(|v| v.is_nan()), "{isa}");
        }
    }
}
