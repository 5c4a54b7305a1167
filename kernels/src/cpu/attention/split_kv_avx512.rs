//! AVX-512 body of split-KV attention: the online softmax of the query rows that share one
//! kv head (the GQA group, times the query rows of the call) over one chunk of keys.
//!
//! Every block of `BLOCK` keys is read from memory once for all of those rows: their scores
//! (one dot product per row and key) and probabilities (vector `exp`) first, then `P V` with
//! each accumulator vector kept in a register across the block's keys (two chains), so the
//! loads of `V` are not serialised behind a store per key.

// AVX-512 intrinsics are stable since Rust 1.89.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::split_kv::{BLOCK, MAX_ROWS};
use super::split_kv_scores::{block_scores, ROW_GROUP};
use crate::cpu::kv_element::KvElement;
use crate::cpu::rowops::avx512::exp16;

/// The keys of one (batch, kv head): key `j` at `k[j * pos..]`, `v[j * pos..]`, f32 or
/// f16 (widened as they are loaded).
pub(super) struct Keys<'a, T> {
    pub k: &'a [T],
    pub v: &'a [T],
    pub pos: usize,
    pub scale: f32,
}

/// One query row's share of a chunk: it sees keys `first..end` (`end` may be at or before
/// `first`: nothing visible). On return `acc = sum_j e^(s_j - max) v_j` (zeros if nothing
/// was visible) and `max`, `sum` = `sum_j e^(s_j - max)` (`-inf`, 0 if nothing was).
#[derive(Default)]
pub(super) struct RowPart<'a> {
    pub q: &'a [f32],
    pub mask: Option<&'a [f32]>,
    pub end: usize,
    pub acc: &'a mut [f32],
    pub max: f32,
    pub sum: f32,
}

/// Runs `rows` (at most `MAX_ROWS`, all of head dim `acc.len()`) over keys from `first`.
///
/// # Safety
/// The CPU supports the AVX-512 level.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn partial_rows<T: KvElement>(
    keys: &Keys<T>,
    first: usize,
    rows: &mut [RowPart],
) {
    assert!(rows.len() <= MAX_ROWS, "split-KV: too many rows per pass");
    for row in rows.iter_mut() {
        row.acc.fill(0.0);
        row.max = f32::NEG_INFINITY;
        row.sum = 0.0;
    }
    let last = rows.iter().map(|r| r.end).max().unwrap_or(0);
    let mut probs = [[0.0f32; BLOCK]; MAX_ROWS];
    let mut start = first;
    let d = rows.first().map_or(0, |r| r.acc.len());
    while start < last {
        let n = BLOCK.min(last - start);
        // SAFETY: AVX-512 per this function's contract.
        unsafe { prefetch_block(keys, start, n, d) };
        // SAFETY: keys start..start + n are inside `keys` (start + n <= last <= every
        // row's end, which the caller keeps within the keys); AVX-512 per this function's
        // contract.
        unsafe { block_scores(keys, rows, start, n, &mut probs) };
        for (row, p) in rows.iter_mut().zip(probs.iter_mut()) {
            // SAFETY: AVX-512 per this function's contract.
            unsafe { block_probs(row, start, &mut p[..n]) };
        }
        // SAFETY: AVX-512 per this function's contract.
        unsafe { add_pv(keys, start, n, rows, &probs) };
        start += n;
    }
}

/// Asks for the block's key and value rows up front. Scores and `P V` read them a 16-lane
/// slice at a time across the block's keys, a stride the hardware prefetchers follow late:
/// the first loads waited on memory for most of the kernel's time. Asking for the values
/// cut attention at 1,000 cached tokens (SmolLM2) from about 2.5 to 1.9 ms a step; the keys
/// too, once scores went slice by slice, cut a cold 2048-key f16 call on one thread from
/// about 125 to 80 us (against 260 us without). Asking for the next block instead measured
/// 5-8% slower.
///
/// # Safety
/// The CPU supports the AVX-512 level.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn prefetch_block<T>(keys: &Keys<T>, start: usize, n: usize, d: usize) {
    for j in start..start + n {
        for rows in [keys.k, keys.v] {
            let row = &rows[j * keys.pos..][..d];
            for line in row.chunks(64 / size_of::<T>()) {
                // A prefetch of an address inside `k` or `v` (it never faults).
                _mm_prefetch::<_MM_HINT_T0>(line.as_ptr() as *const i8);
            }
        }
    }
}

/// From the block's scores `p` (keys `start..start + p.len()`): the mask added, keys past
/// `row.end` set to `-inf`, the online-softmax rescale of `row`, and `p = e^(s - max)`.
///
/// # Safety
/// The CPU supports the AVX-512 level.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn block_probs(row: &mut RowPart, start: usize, p: &mut [f32]) {
    let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut maxes = neg_inf;
    for (i, chunk) in (0..p.len()).step_by(16).zip(p.chunks_mut(16)) {
        let j = start + i;
        let lanes = ((1u32 << chunk.len()) - 1) as u16;
        let visible = lanes & ((1u32 << row.end.saturating_sub(j).min(16)) - 1) as u16;
        // SAFETY: the masked loads and store touch lanes below the chunk's length, and the
        // mask's lanes below `row.end <= mask.len()` only.
        unsafe {
            let mut x = _mm512_maskz_loadu_ps(lanes, chunk.as_ptr());
            if let Some(m) = row.mask {
                x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(visible, m.as_ptr().add(j)));
            }
            x = _mm512_mask_mov_ps(neg_inf, visible, x);
            _mm512_mask_storeu_ps(chunk.as_mut_ptr(), lanes, x);
            maxes = _mm512_max_ps(maxes, x);
        }
    }
    let block_max = _mm512_reduce_max_ps(maxes);
    if block_max == f32::NEG_INFINITY {
        p.fill(0.0);
        return;
    }
    if block_max > row.max {
        let corr = (row.max - block_max).exp();
        row.sum *= corr;
        scale(row.acc, corr);
        row.max = block_max;
    }
    // SAFETY: AVX-512 per this function's contract.
    row.sum += unsafe { exp_block(p, row.max) };
}

/// `acc_r += sum_j p[r][j] v_j` over the block's `n` keys, one 16-lane slice of the head
/// dim at a time, in registers. Each slice of a value is loaded (and widened) once for up
/// to `ROW_GROUP` rows, whose accumulators form independent chains.
///
/// # Safety
/// The CPU supports the AVX-512 level.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn add_pv<T: KvElement>(
    keys: &Keys<T>,
    start: usize,
    n: usize,
    rows: &mut [RowPart],
    probs: &[[f32; BLOCK]; MAX_ROWS],
) {
    let Some(d) = rows.first().map(|r| r.acc.len()) else {
        return;
    };
    if n == 0 {
        return;
    }
    assert!(keys.v.len() >= start * keys.pos + (n - 1) * keys.pos + d);
    for (group, p) in rows.chunks_mut(ROW_GROUP).zip(probs.chunks(ROW_GROUP)) {
        // SAFETY: keys start..start + n of `v` are in bounds (asserted above); AVX-512 per
        // this function's contract.
        unsafe {
            match group.len() {
                1 => add_pv_rows::<T, 1>(keys, start, n, group, p),
                2 => add_pv_rows::<T, 2>(keys, start, n, group, p),
                _ => add_pv_rows::<T, ROW_GROUP>(keys, start, n, group, p),
            }
        }
    }
}

/// [`add_pv`] for `R` rows.
///
/// # Safety
/// The CPU supports the AVX-512 level; value rows `start..start + n` lie inside `keys.v`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn add_pv_rows<T: KvElement, const R: usize>(
    keys: &Keys<T>,
    start: usize,
    n: usize,
    rows: &mut [RowPart],
    p: &[[f32; BLOCK]],
) {
    let d = rows[0].acc.len();
    let v = keys.v[start * keys.pos..].as_ptr();
    for c in (0..d).step_by(16) {
        let lanes = ((1u32 << (d - c).min(16)) - 1) as u16;
        // SAFETY: lanes below `d - c` of value row `j < n` and of each accumulator are in
        // bounds (caller's contract).
        unsafe {
            let mut even: [__m512; R] =
                std::array::from_fn(|r| _mm512_maskz_loadu_ps(lanes, rows[r].acc.as_ptr().add(c)));
            let mut odd = [_mm512_setzero_ps(); R];
            let mut j = 0;
            while j + 2 <= n {
                let v0 = T::load16(v.add(j * keys.pos + c), lanes);
                let v1 = T::load16(v.add((j + 1) * keys.pos + c), lanes);
                for r in 0..R {
                    even[r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r][j]), v0, even[r]);
                    odd[r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r][j + 1]), v1, odd[r]);
                }
                j += 2;
            }
            if j < n {
                let v0 = T::load16(v.add(j * keys.pos + c), lanes);
                for r in 0..R {
                    even[r] = _mm512_fmadd_ps(_mm512_set1_ps(p[r][j]), v0, even[r]);
                }
            }
            for r in 0..R {
                let out = rows[r].acc.as_mut_ptr().add(c);
                _mm512_mask_storeu_ps(out, lanes, _mm512_add_ps(even[r], odd[r]));
            }
        }
    }
}

/// `s = e^(s - max)` in place (exactly 0 where `s` is `-inf`); returns their sum.
///
/// # Safety
/// The CPU supports the AVX-512 level.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn exp_block(s: &mut [f32], max: f32) -> f32 {
    let shift = _mm512_set1_ps(max);
    let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut total = _mm512_setzero_ps();
    for chunk in s.chunks_mut(16) {
        let lanes = ((1u32 << chunk.len()) - 1) as u16;
        // SAFETY: the masked load/store touch the chunk's `len` lanes only; AVX-512 per
        // this function's contract.
        unsafe {
            let x = _mm512_mask_loadu_ps(neg_inf, lanes, chunk.as_ptr());
            let finite = _mm512_cmp_ps_mask::<_CMP_NEQ_OQ>(x, neg_inf);
            let p = _mm512_maskz_mov_ps(finite, exp16(_mm512_sub_ps(x, shift)));
            _mm512_mask_storeu_ps(chunk.as_mut_ptr(), lanes, p);
            total = _mm512_add_ps(total, p);
        }
    }
    _mm512_reduce_add_ps(total)
}

/// `y *= a`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn scale(y: &mut [f32], a: f32) {
    let av = _mm512_set1_ps(a);
    for chunk in y.chunks_mut(16) {
        let lanes = ((1u32 << chunk.len()) - 1) as u16;
        // SAFETY: the masked load and store touch the chunk's lanes only.
        unsafe {
            let p = chunk.as_mut_ptr();
            _mm512_mask_storeu_ps(p, lanes, _mm512_mul_ps(av, _mm512_maskz_loadu_ps(lanes, p)));
        }
    }
}
