//! AVX-512 bodies of the tiled attention (`tiled.rs`): the score tile, the online-softmax
//! step of one row, and the `P V` accumulation.

// AVX-512 intrinsics are stable since Rust 1.89.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::tiled::{KB, QB};
use crate::cpu::kv_element::KvElement;
use crate::cpu::rowops::avx512::exp16;

/// `scores[r * KB + j] = sum_c q_pack[c * QB + r] * kt[c * KB + j]` for the whole tile.
///
/// # Safety
/// AVX-512 level supported; `q_pack` holds `d * QB`, `kt` `d * KB`, `scores` `QB * KB` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn scores(d: usize, q_pack: *const f32, kt: *const f32, scores: *mut f32) {
    let mut acc = [[_mm512_setzero_ps(); 2]; QB];
    // SAFETY: c < d keeps every read inside q_pack / kt; the stores cover QB * KB floats.
    unsafe {
        for c in 0..d {
            let k0 = _mm512_loadu_ps(kt.add(c * KB));
            let k1 = _mm512_loadu_ps(kt.add(c * KB + 16));
            let qc = q_pack.add(c * QB);
            for (r, acc) in acc.iter_mut().enumerate() {
                let qb = _mm512_set1_ps(*qc.add(r));
                acc[0] = _mm512_fmadd_ps(k0, qb, acc[0]);
                acc[1] = _mm512_fmadd_ps(k1, qb, acc[1]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(scores.add(r * KB), acc[0]);
            _mm512_storeu_ps(scores.add(r * KB + 16), acc[1]);
        }
    }
}

/// One row's online-softmax step over a block: turns `row` (raw `q.k`, `KB` lanes of which
/// the first `keys` are visible) into probabilities relative to the updated running `max`,
/// updates `sum`, and returns the factor that rescales the row's earlier accumulators.
/// Lanes past `keys` and lanes masked with -inf come out as exact zeros.
///
/// # Safety
/// AVX-512 level supported.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn softmax_block(
    row: &mut [f32],
    keys: usize,
    scale: f32,
    mask: Option<&[f32]>,
    max: &mut f32,
    sum: &mut f32,
) -> f32 {
    debug_assert!(row.len() == KB && keys <= KB && keys > 0);
    let lanes = [lane_mask(keys, 0), lane_mask(keys, 16)];
    let minus_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    let scale = _mm512_set1_ps(scale);
    let mut x = [minus_inf; 2];
    for (h, x) in x.iter_mut().enumerate() {
        // SAFETY: row holds KB = 32 floats; the mask is read only in lanes below `keys`,
        // which is its length.
        unsafe {
            let mut s = _mm512_mul_ps(_mm512_loadu_ps(row.as_ptr().add(16 * h)), scale);
            if let Some(m) = mask {
                s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(lanes[h], m.as_ptr().add(16 * h)));
            }
            *x = _mm512_mask_blend_ps(lanes[h], minus_inf, s);
        }
    }
    let block_max = _mm512_reduce_max_ps(_mm512_max_ps(x[0], x[1]));
    if block_max == f32::NEG_INFINITY {
        row.fill(0.0);
        return 1.0;
    }
    let new_max = max.max(block_max);
    let corr = (*max - new_max).exp();
    let shift = _mm512_set1_ps(new_max);
    let mut total = _mm512_setzero_ps();
    for (h, &x) in x.iter().enumerate() {
        let finite = _mm512_cmp_ps_mask::<_CMP_NEQ_OQ>(x, minus_inf);
        // SAFETY: AVX-512 (caller); row holds 32 floats.
        let p = unsafe { _mm512_maskz_mov_ps(finite, exp16(_mm512_sub_ps(x, shift))) };
        total = _mm512_add_ps(total, p);
        // SAFETY: as above.
        unsafe { _mm512_storeu_ps(row.as_mut_ptr().add(16 * h), p) };
    }
    *sum = *sum * corr + _mm512_reduce_add_ps(total);
    *max = new_max;
    corr
}

/// Lanes `from..from + 16` that are below `keys`, as a 16-bit mask.
#[inline]
fn lane_mask(keys: usize, from: usize) -> __mmask16 {
    let n = keys.saturating_sub(from).min(16);
    ((1u32 << n) - 1) as u16
}

/// `acc[r] = acc[r] * corr[r] + sum_j p[r][j] v[j]` for the tile's rows (groups of 4 rows x
/// up to 64 dims in registers); `v` points at the block's first key, key `j` at `j * v_pos`.
///
/// # Safety
/// AVX-512 level supported; `v` is readable at `j * v_pos .. j * v_pos + d` for every
/// `j < keys`; `probs` holds `QB * KB` floats, `acc` `QB * d`.
#[allow(clippy::too_many_arguments)] // the tile's sizes, values and softmax state
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn accumulate_pv<T: KvElement>(
    d: usize,
    rows: usize,
    keys: usize,
    v: *const T,
    v_pos: usize,
    probs: &[f32; QB * KB],
    corr: &[f32; QB],
    acc: &mut [f32],
) {
    debug_assert!(acc.len() == QB * d && keys <= KB);
    for r0 in (0..rows).step_by(4) {
        for c0 in (0..d).step_by(64) {
            let width = (d - c0).min(64);
            let chunk = PvChunk {
                r0,
                c0,
                d,
                keys,
                v,
                v_pos,
                masks: [0, 16, 32, 48].map(|from| lane_mask(width, from)),
            };
            // SAFETY: AVX-512 (caller); the chunk's reads and writes stay within v's keys and
            // acc's rows r0..r0 + 4 <= QB (QB is a multiple of 4), dims c0..c0 + width <= d.
            unsafe {
                match width.div_ceil(16) {
                    4 => chunk.run::<4>(probs, corr, acc),
                    3 => chunk.run::<3>(probs, corr, acc),
                    2 => chunk.run::<2>(probs, corr, acc),
                    _ => chunk.run::<1>(probs, corr, acc),
                }
            }
        }
    }
}

/// 4 rows x `NV` vectors of accumulators of [`accumulate_pv`].
struct PvChunk<T> {
    r0: usize,
    c0: usize,
    d: usize,
    keys: usize,
    v: *const T,
    v_pos: usize,
    masks: [__mmask16; 4],
}

impl<T: KvElement> PvChunk<T> {
    /// # Safety
    /// As [`accumulate_pv`], with `NV` vectors covering this chunk's width.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn run<const NV: usize>(
        &self,
        probs: &[f32; QB * KB],
        corr: &[f32; QB],
        acc: &mut [f32],
    ) {
        const R: usize = 4;
        let mut a = [[_mm512_setzero_ps(); NV]; R];
        // SAFETY: rows r0..r0 + 4 and dims c0 + 16 x + lanes of masks[x] lie inside acc
        // (QB x d) and each value row (caller).
        unsafe {
            for (i, a) in a.iter_mut().enumerate() {
                let f = _mm512_set1_ps(corr[self.r0 + i]);
                let row = acc.as_ptr().add((self.r0 + i) * self.d + self.c0);
                for (x, a) in a.iter_mut().enumerate() {
                    *a = _mm512_mul_ps(f, _mm512_maskz_loadu_ps(self.masks[x], row.add(16 * x)));
                }
            }
            for j in 0..self.keys {
                let vj = self.v.add(j * self.v_pos + self.c0);
                let mut vx = [_mm512_setzero_ps(); NV];
                for (x, vx) in vx.iter_mut().enumerate() {
                    *vx = T::load16(vj.add(16 * x), self.masks[x]);
                }
                for (i, a) in a.iter_mut().enumerate() {
                    let p = _mm512_set1_ps(probs[(self.r0 + i) * KB + j]);
                    for (a, &vx) in a.iter_mut().zip(&vx) {
                        *a = _mm512_fmadd_ps(p, vx, *a);
                    }
                }
            }
            for (i, a) in a.iter().enumerate() {
                let row = acc.as_mut_ptr().add((self.r0 + i) * self.d + self.c0);
                for (x, &a) in a.iter().enumerate() {
                    _mm512_mask_storeu_ps(row.add(16 * x), self.masks[x], a);
                }
            }
        }
    }
}
