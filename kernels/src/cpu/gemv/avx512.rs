//! AVX-512 GEMV rows: `R` rows of `w` x `M` rows of `x` accumulated in `R * M` zmm over `k`
//! (16 lanes, masked tail), reduced once per output.

// AVX-512 intrinsics are stable since Rust 1.89; the workspace's rust-version (1.87) must be
// raised to 1.89 for this file (tracked in the CPU-speed issue).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::{bias_at, R};
use crate::cpu::simd::avx512::{
    hsum, load_bf16, load_bf16_tail, load_f16, load_f16_tail, load_f32, load_f32_tail,
};
use crate::WeightSlice;

macro_rules! dot_rows {
    ($name:ident, $t:ty, $load:ident, $load_tail:ident) => {
        /// `dots[i][r] = sum_p x[i * k + p] * w[r * k + p]`.
        ///
        /// # Safety
        /// AVX-512 level; `x` holds `M k` floats, `w` `RR k` elements.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
        unsafe fn $name<const RR: usize, const M: usize>(
            x: *const f32,
            w: *const $t,
            k: usize,
        ) -> [[f32; RR]; M] {
            let mut acc = [[_mm512_setzero_ps(); RR]; M];
            let full = k / 16 * 16;
            // SAFETY: p + 16 <= full <= k (and the masked tail reads k - full elements).
            unsafe {
                let mut p = 0;
                while p < full {
                    let mut wv = [_mm512_setzero_ps(); RR];
                    for (r, v) in wv.iter_mut().enumerate() {
                        *v = $load(w.add(r * k + p));
                    }
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let xv = load_f32(x.add(i * k + p));
                        for (a, &v) in acc.iter_mut().zip(&wv) {
                            *a = _mm512_fmadd_ps(xv, v, *a);
                        }
                    }
                    p += 16;
                }
                if full < k {
                    let t = k - full;
                    let mut wv = [_mm512_setzero_ps(); RR];
                    for (r, v) in wv.iter_mut().enumerate() {
                        *v = $load_tail(w.add(r * k + full), t);
                    }
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let xv = load_f32_tail(x.add(i * k + full), t);
                        for (a, &v) in acc.iter_mut().zip(&wv) {
                            *a = _mm512_fmadd_ps(xv, v, *a);
                        }
                    }
                }
                let mut dots = [[0.0f32; RR]; M];
                for (d, a) in dots.iter_mut().zip(&acc) {
                    for (d, &a) in d.iter_mut().zip(a) {
                        *d = hsum(a);
                    }
                }
                dots
            }
        }
    };
}

dot_rows!(dot_f32, f32, load_f32, load_f32_tail);
dot_rows!(dot_bf16, u16, load_bf16, load_bf16_tail);
dot_rows!(dot_f16, u16, load_f16, load_f16_tail);

/// Dots of `x` rows with rows `j .. j + RR` of `w` (elements from `j * k`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn dots<const RR: usize, const M: usize>(
    x: *const f32,
    w: WeightSlice,
    j: usize,
    k: usize,
) -> [[f32; RR]; M] {
    // SAFETY: forwarded contract: rows j..j+RR exist in w.
    unsafe {
        match w {
            WeightSlice::F32(s) => dot_f32::<RR, M>(x, s.as_ptr().add(j * k), k),
            WeightSlice::BF16(s) => dot_bf16::<RR, M>(x, s.as_ptr().add(j * k) as *const u16, k),
            WeightSlice::F16(s) => dot_f16::<RR, M>(x, s.as_ptr().add(j * k) as *const u16, k),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_m<const M: usize>(
    x: *const f32,
    k: usize,
    w: WeightSlice,
    j0: usize,
    j1: usize,
    bias: Option<WeightSlice>,
    out: *mut f32,
    n: usize,
) {
    // SAFETY: rows j < j1 <= n of w exist; out's contract is the caller's.
    unsafe {
        let mut j = j0;
        while j + R <= j1 {
            let d = dots::<R, M>(x, w, j, k);
            for (i, d) in d.iter().enumerate() {
                for (r, &v) in d.iter().enumerate() {
                    *out.add(i * n + j + r) = v + bias_at(bias, j + r);
                }
            }
            j += R;
        }
        while j < j1 {
            let d = dots::<1, M>(x, w, j, k);
            for (i, d) in d.iter().enumerate() {
                *out.add(i * n + j) = d[0] + bias_at(bias, j);
            }
            j += 1;
        }
    }
}

/// Rows `j0..j1` of `out` for `m <= 4` rows of `x`.
///
/// # Safety
/// AVX-512 level; `x` is `[m, k]`, `w` `[n, k]`, `bias` `[n]`, `j1 <= n`, and
/// `out + i * n + j` is writable for `i < m`, `j0 <= j < j1`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn rows(
    x: &[f32],
    m: usize,
    k: usize,
    w: WeightSlice,
    j0: usize,
    j1: usize,
    bias: Option<WeightSlice>,
    out: *mut f32,
    n: usize,
) {
    let x = x.as_ptr();
    // SAFETY: forwarded contract.
    unsafe {
        match m {
            1 => rows_m::<1>(x, k, w, j0, j1, bias, out, n),
            2 => rows_m::<2>(x, k, w, j0, j1, bias, out, n),
            3 => rows_m::<3>(x, k, w, j0, j1, bias, out, n),
            4 => rows_m::<4>(x, k, w, j0, j1, bias, out, n),
            _ => unreachable!("gemv rows: m = {m} > 4"),
        }
    }
}
