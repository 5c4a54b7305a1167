//! AVX2 kernels of the packed GEMV (`packed_gemv.rs`), for CPUs without AVX-512: one group
//! of 32 columns as two passes of 16 (AVX2's 16 registers hold `MAX_M` rows x two 8-lane
//! accumulators, the weights and a broadcast). Each pass reads its own cache line of every
//! `k` step, so the group is still read from memory once.

use std::arch::x86_64::*;

use super::packed::NR;
use super::packed_gemv::{Group, MAX_M};

/// Columns per pass (two 8-lane vectors).
const HALF: usize = 16;

type Acc = [[__m256; 2]; MAX_M];

/// The passes over a group's columns `c0..c0 + 16` that hold any of its `cols`.
fn halves(g: &Group) -> impl Iterator<Item = usize> {
    let cols = g.cols;
    [0, HALF].into_iter().filter(move |&c0| c0 < cols)
}

/// `acc[r] += x[r][p] * (the two weight vectors `$load(p)` returns)` for `p < k`, then
/// [`store`]. Expanded inside each `#[target_feature]` function so the loads inline; call it
/// in an `unsafe` block.
macro_rules! gemv_half {
    ($group:expr, $c0:expr, $load:expr) => {{
        let g: &Group = $group;
        let mut acc: Acc = [[_mm256_setzero_ps(); 2]; MAX_M];
        let x = g.x.as_ptr();
        for p in 0..g.k {
            let (w0, w1) = $load(p);
            for (r, acc) in acc.iter_mut().enumerate().take(g.m) {
                let a = _mm256_broadcast_ss(&*x.add(r * g.k + p));
                acc[0] = _mm256_fmadd_ps(a, w0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a, w1, acc[1]);
            }
        }
        store(g, &acc, $c0);
    }};
}

/// f32 weights `[k][32]`.
///
/// # Safety
/// AVX2 and FMA supported; `w` holds `k * 32` floats; the group's `out` as in `gemv`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn run_f32(g: &Group, w: *const f32) {
    for c0 in halves(g) {
        // SAFETY: p < k keeps reads inside w and each row of x (caller's contract).
        unsafe {
            gemv_half!(g, c0, |p: usize| (
                _mm256_loadu_ps(w.add(p * NR + c0)),
                _mm256_loadu_ps(w.add(p * NR + c0 + 8))
            ))
        }
    }
}

/// f16 weights `[k][32]`, widened exactly by `vcvtph2ps`.
///
/// # Safety
/// AVX2, FMA and F16C supported; `w` holds `k * 32` u16; the group's `out` as in `gemv`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn run_f16(g: &Group, w: *const u16) {
    for c0 in halves(g) {
        // SAFETY: p < k keeps reads inside w and each row of x (caller's contract).
        unsafe {
            gemv_half!(g, c0, |p: usize| (
                _mm256_cvtph_ps(_mm_loadu_si128(w.add(p * NR + c0) as *const _)),
                _mm256_cvtph_ps(_mm_loadu_si128(w.add(p * NR + c0 + 8) as *const _))
            ))
        }
    }
}

/// bf16 weights in pairs `[q][32][2]`: the even element of a pair is its low half shifted
/// up, the odd one its high half (a zero past an odd `k`, whose activation is not read).
///
/// # Safety
/// AVX2 and FMA supported; `w` holds `ceil(k / 2) * 64` u16; the group's `out` as in `gemv`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn run_bf16(g: &Group, w: *const u16) {
    let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
    let x = g.x.as_ptr();
    let k2 = g.k / 2;
    for c0 in halves(g) {
        let mut acc: Acc = [[_mm256_setzero_ps(); 2]; MAX_M];
        // SAFETY: q < ceil(k / 2) keeps reads inside w; the odd element only for q < k2,
        // so reads of x stay inside each row (caller's contract).
        unsafe {
            for q in 0..g.k.div_ceil(2) {
                let pairs = w.add(q * 2 * NR + 2 * c0);
                let x0 = _mm256_loadu_si256(pairs as *const _);
                let x1 = _mm256_loadu_si256(pairs.add(16) as *const _);
                let even0 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(x0));
                let even1 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(x1));
                for (r, acc) in acc.iter_mut().enumerate().take(g.m) {
                    let a = _mm256_broadcast_ss(&*x.add(r * g.k + 2 * q));
                    acc[0] = _mm256_fmadd_ps(a, even0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(a, even1, acc[1]);
                }
                if q < k2 {
                    let odd0 = _mm256_castsi256_ps(_mm256_and_si256(x0, high));
                    let odd1 = _mm256_castsi256_ps(_mm256_and_si256(x1, high));
                    for (r, acc) in acc.iter_mut().enumerate().take(g.m) {
                        let a = _mm256_broadcast_ss(&*x.add(r * g.k + 2 * q + 1));
                        acc[0] = _mm256_fmadd_ps(a, odd0, acc[0]);
                        acc[1] = _mm256_fmadd_ps(a, odd1, acc[1]);
                    }
                }
            }
            store(g, &acc, c0);
        }
    }
}

/// `out[r, c0 + c] = acc + bias` for `r < m` and columns below the group's `cols`.
///
/// # Safety
/// AVX2 supported; the group's `out` as in `gemv`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store(g: &Group, acc: &Acc, c0: usize) {
    let masks = [0, 8].map(|h| {
        let n = g.cols.saturating_sub(c0 + h).min(8) as i32;
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    });
    // SAFETY: lanes below `cols` of rows below `m` (caller's contract); bias holds 32.
    unsafe {
        for (r, acc) in acc.iter().enumerate().take(g.m) {
            let row = g.out.add(r * g.ld + c0);
            for h in 0..2 {
                let b = _mm256_loadu_ps(g.bias.as_ptr().add(c0 + 8 * h));
                _mm256_maskstore_ps(row.add(8 * h), masks[h], _mm256_add_ps(acc[h], b));
            }
        }
    }
}
