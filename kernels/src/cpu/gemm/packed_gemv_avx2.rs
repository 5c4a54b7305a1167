//! AVX2 kernels of the packed GEMV (`packed_gemv.rs`), for CPUs without AVX-512: one group
//! of 32 columns as two passes of 16 (AVX2 has 16 vector registers). Each pass reads its own
//! cache line of every `k` step, so the group is still read from memory once. Each row keeps
//! four accumulator chains (two `k` steps, or a bf16 pair's two elements, x two vectors):
//! with two, a weight in cache ran FMA-latency bound. The row count is a const parameter so
//! the accumulators of a single-row decode stay in registers. Each pass prefetches its own
//! cache line of the steps `PREFETCH_AHEAD` bytes on, as the AVX-512 kernels do: SmolLM2
//! bf16 decode at `IRIS_ISA=avx2` went from a median 103.7 to 110.4 tok/s (5 alternated
//! rounds on the AVX-512 machine).

use std::arch::x86_64::*;

use super::packed::NR;
use super::packed_gemv::{prefetch_ahead, Group};

/// Columns per pass (two 8-lane vectors).
const HALF: usize = 16;

/// Per row: chains 0 and 1 cover the pass's two vectors for even steps (or elements), 2 and
/// 3 for odd ones.
type Acc<const M: usize> = [[__m256; 4]; M];

/// The passes over a group's columns `c0..c0 + 16` that hold any of its `cols`.
fn halves(g: &Group) -> impl Iterator<Item = usize> {
    let cols = g.cols;
    [0, HALF].into_iter().filter(move |&c0| c0 < cols)
}

// `by_rows!` covers 1 to 4 rows.
const _: () = assert!(super::packed_gemv::MAX_M == 4);

/// Runs `$run::<M>(g, w)` with `M` = the group's row count (1 to 4).
macro_rules! by_rows {
    ($run:ident, $g:expr, $w:expr) => {
        match $g.m {
            1 => $run::<1>($g, $w),
            2 => $run::<2>($g, $w),
            3 => $run::<3>($g, $w),
            _ => $run::<4>($g, $w),
        }
    };
}

/// `acc[r] += x[r][p] * (the two weight vectors `$load(p)` returns)` over `p < k`, two steps
/// at a time into separate chains, then [`store`]. `$at(p)` is where step `p`'s loads start
/// (prefetched ahead, one cache line per step). Expanded inside each `#[target_feature]`
/// function so the loads inline; call it in an `unsafe` block.
macro_rules! gemv_half {
    ($g:expr, $c0:expr, $m:expr, $at:expr, $load:expr) => {{
        let g: &Group = $g;
        let mut acc: Acc<$m> = [[_mm256_setzero_ps(); 4]; $m];
        let (x, k) = (g.x.as_ptr(), g.k);
        let mut p = 0;
        while p + 2 <= k {
            prefetch_ahead($at(p) as *const u8, 64);
            prefetch_ahead($at(p + 1) as *const u8, 64);
            let ((w0, w1), (w2, w3)) = ($load(p), $load(p + 1));
            for (r, acc) in acc.iter_mut().enumerate() {
                let a0 = _mm256_broadcast_ss(&*x.add(r * k + p));
                let a1 = _mm256_broadcast_ss(&*x.add(r * k + p + 1));
                acc[0] = _mm256_fmadd_ps(a0, w0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a0, w1, acc[1]);
                acc[2] = _mm256_fmadd_ps(a1, w2, acc[2]);
                acc[3] = _mm256_fmadd_ps(a1, w3, acc[3]);
            }
            p += 2;
        }
        if p < k {
            let (w0, w1) = $load(p);
            for (r, acc) in acc.iter_mut().enumerate() {
                let a0 = _mm256_broadcast_ss(&*x.add(r * k + p));
                acc[0] = _mm256_fmadd_ps(a0, w0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a0, w1, acc[1]);
            }
        }
        store(g, &acc, $c0);
    }};
}

/// f32 weights `[k][32]`.
///
/// # Safety
/// AVX2 and FMA supported; `w` holds `k * 32` floats; the group's `out` as in `gemv`.
pub(super) unsafe fn run_f32(g: &Group, w: *const f32) {
    // SAFETY: forwarded.
    unsafe { by_rows!(f32_rows, g, w) }
}

/// # Safety
/// As [`run_f32`], with `M` = the group's rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_rows<const M: usize>(g: &Group, w: *const f32) {
    for c0 in halves(g) {
        // SAFETY: p < k keeps reads inside w and each row of x (caller's contract).
        unsafe {
            gemv_half!(
                g,
                c0,
                M,
                |p: usize| w.wrapping_add(p * NR + c0),
                |p: usize| (
                    _mm256_loadu_ps(w.add(p * NR + c0)),
                    _mm256_loadu_ps(w.add(p * NR + c0 + 8))
                )
            )
        }
    }
}

/// f16 weights `[k][32]`, widened exactly by `vcvtph2ps`.
///
/// # Safety
/// AVX2, FMA and F16C supported; `w` holds `k * 32` u16; the group's `out` as in `gemv`.
pub(super) unsafe fn run_f16(g: &Group, w: *const u16) {
    // SAFETY: forwarded.
    unsafe { by_rows!(f16_rows, g, w) }
}

/// # Safety
/// As [`run_f16`], with `M` = the group's rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_rows<const M: usize>(g: &Group, w: *const u16) {
    for c0 in halves(g) {
        // SAFETY: p < k keeps reads inside w and each row of x (caller's contract).
        unsafe {
            gemv_half!(
                g,
                c0,
                M,
                |p: usize| w.wrapping_add(p * NR + c0),
                |p: usize| (
                    _mm256_cvtph_ps(_mm_loadu_si128(w.add(p * NR + c0) as *const _)),
                    _mm256_cvtph_ps(_mm_loadu_si128(w.add(p * NR + c0 + 8) as *const _))
                )
            )
        }
    }
}

/// bf16 weights in pairs `[q][32][2]`: the even element of a pair is its low half shifted
/// up, the odd one its high half (a zero past an odd `k`, whose activation is not read).
///
/// # Safety
/// AVX2 and FMA supported; `w` holds `ceil(k / 2) * 64` u16; the group's `out` as in `gemv`.
pub(super) unsafe fn run_bf16(g: &Group, w: *const u16) {
    // SAFETY: forwarded.
    unsafe { by_rows!(bf16_rows, g, w) }
}

/// # Safety
/// As [`run_bf16`], with `M` = the group's rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_rows<const M: usize>(g: &Group, w: *const u16) {
    let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
    let (x, k) = (g.x.as_ptr(), g.k);
    for c0 in halves(g) {
        let mut acc: Acc<M> = [[_mm256_setzero_ps(); 4]; M];
        // SAFETY: q < ceil(k / 2) keeps reads inside w; the odd element only for q < k / 2,
        // so reads of x stay inside each row (caller's contract).
        unsafe {
            for q in 0..k.div_ceil(2) {
                let pairs = w.add(q * 2 * NR + 2 * c0);
                prefetch_ahead(pairs as *const u8, 64);
                let x0 = _mm256_loadu_si256(pairs as *const _);
                let x1 = _mm256_loadu_si256(pairs.add(16) as *const _);
                let even0 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(x0));
                let even1 = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(x1));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a = _mm256_broadcast_ss(&*x.add(r * k + 2 * q));
                    acc[0] = _mm256_fmadd_ps(a, even0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(a, even1, acc[1]);
                }
                if 2 * q + 1 < k {
                    let odd0 = _mm256_castsi256_ps(_mm256_and_si256(x0, high));
                    let odd1 = _mm256_castsi256_ps(_mm256_and_si256(x1, high));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let a = _mm256_broadcast_ss(&*x.add(r * k + 2 * q + 1));
                        acc[2] = _mm256_fmadd_ps(a, odd0, acc[2]);
                        acc[3] = _mm256_fmadd_ps(a, odd1, acc[3]);
                    }
                }
            }
            store(g, &acc, c0);
        }
    }
}

/// `out[r, c0 + c] = acc (both chains) + bias` for the `M` rows and columns below the
/// group's `cols`.
///
/// # Safety
/// AVX2 supported; the group's `out` as in `gemv`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store<const M: usize>(g: &Group, acc: &Acc<M>, c0: usize) {
    let masks = [0, 8].map(|h| {
        let n = g.cols.saturating_sub(c0 + h).min(8) as i32;
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    });
    // SAFETY: lanes below `cols` of rows below `m` (caller's contract); bias holds 32.
    unsafe {
        for (r, acc) in acc.iter().enumerate() {
            let row = g.out.add(r * g.ld + c0);
            for h in 0..2 {
                let b = _mm256_loadu_ps(g.bias.as_ptr().add(c0 + 8 * h));
                let v = _mm256_add_ps(_mm256_add_ps(acc[h], acc[h + 2]), b);
                // Past `cols` the mask is empty and the address may lie beyond `out`.
                _mm256_maskstore_ps(row.wrapping_add(8 * h), masks[h], v);
            }
        }
    }
}
