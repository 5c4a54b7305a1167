//! AVX-512 scores of split-KV attention: `scale * q_r . k_j` for a block of keys and the
//! query rows of one pass.
//!
//! One dot product per (row, key) ends in a horizontal sum, and those sums (eight dependent
//! shuffles and adds each) and the loads of each key once per row were most of the kernel
//! once an f16 cache halved its memory traffic. Here each key is loaded (and widened) once
//! for up to `ROW_GROUP` rows, eight keys' products stay in registers, and one transposing
//! reduction turns the eight accumulators of a row into a vector of eight scores.

// AVX-512 intrinsics are stable since Rust 1.89.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::split_kv::{BLOCK, MAX_ROWS};
use super::split_kv_avx512::{Keys, RowPart};
use crate::cpu::kv_element::KvElement;

/// Rows computed together: their score accumulators take `ROW_GROUP x KEYS` zmm, and `P V`
/// keeps two chains of accumulators per row.
pub(super) const ROW_GROUP: usize = 3;
/// Keys per register block.
const KEYS: usize = 8;

/// `probs[r][i] = scale * q_r . k_(start + i)` for `i < n` and every row of `rows`
/// (at most `MAX_ROWS`, all of head dim `q.len()`).
///
/// # Safety
/// The CPU supports the AVX-512 level; keys `start..start + n` lie inside `keys`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn block_scores<T: KvElement>(
    keys: &Keys<T>,
    rows: &[RowPart],
    start: usize,
    n: usize,
    probs: &mut [[f32; BLOCK]; MAX_ROWS],
) {
    assert!(
        n <= BLOCK && rows.len() <= MAX_ROWS,
        "split-KV scores: block too large"
    );
    let Some(d) = rows.first().map(|r| r.q.len()) else {
        return;
    };
    assert!(n == 0 || keys.k.len() >= (start + n - 1) * keys.pos + d);
    for (group, out) in rows.chunks(ROW_GROUP).zip(probs.chunks_mut(ROW_GROUP)) {
        for i0 in (0..n).step_by(KEYS) {
            let count = KEYS.min(n - i0);
            // SAFETY: keys `start + i0 .. + count` are inside `keys` (asserted above);
            // AVX-512 per this function's contract.
            unsafe {
                match group.len() {
                    1 => scores::<T, 1>(keys, group, start + i0, count, i0, out),
                    2 => scores::<T, 2>(keys, group, start + i0, count, i0, out),
                    _ => scores::<T, ROW_GROUP>(keys, group, start + i0, count, i0, out),
                }
            }
        }
    }
}

/// Scores of `count <= KEYS` keys from `first` for the `R` rows of `rows`, into
/// `out[r][at..at + count]`.
///
/// # Safety
/// The CPU supports the AVX-512 level; keys `first..first + count` lie inside `keys`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
// Indexed loops over the constant-size accumulator arrays: iterator chains (a zip over the
// rows) compiled to code that ran this kernel about 10% slower.
#[allow(clippy::needless_range_loop)]
unsafe fn scores<T: KvElement, const R: usize>(
    keys: &Keys<T>,
    rows: &[RowPart],
    first: usize,
    count: usize,
    at: usize,
    out: &mut [[f32; BLOCK]],
) {
    let d = rows[0].q.len();
    let mut acc = [[_mm512_setzero_ps(); KEYS]; R];
    // Past `count`, the last key is read again and its scores dropped: no read leaves the
    // block's keys.
    let key = |i: usize| keys.k[(first + i.min(count - 1)) * keys.pos..].as_ptr();
    for c in (0..d).step_by(16) {
        let lanes = ((1u32 << (d - c).min(16)) - 1) as u16;
        // SAFETY: lanes below `d - c` of each row's q and of each key row (`key` stays
        // inside the block) are in bounds.
        unsafe {
            let q: [__m512; R] =
                std::array::from_fn(|r| _mm512_maskz_loadu_ps(lanes, rows[r].q.as_ptr().add(c)));
            for i in 0..KEYS {
                let k = T::load16(key(i).add(c), lanes);
                for r in 0..R {
                    acc[r][i] = _mm512_fmadd_ps(k, q[r], acc[r][i]);
                }
            }
        }
    }
    let scale = _mm256_set1_ps(keys.scale);
    let keep = ((1u32 << count) - 1) as u8;
    for (acc, out) in acc.iter().zip(out.iter_mut()) {
        let s = _mm256_mul_ps(sum_lanes(acc), scale);
        // SAFETY: lanes below `count <= BLOCK - at` of `out[at..]` are in bounds.
        unsafe { _mm256_mask_storeu_ps(out.as_mut_ptr().add(at), keep, s) };
    }
}

/// The lane sums of eight vectors, in order: halves, quarters, then pairs and singles
/// within 128-bit lanes are added across vectors, so each step's shuffles serve two or
/// more sums (24 instructions for eight sums).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn sum_lanes(v: &[__m512; KEYS]) -> __m256 {
    // Key 2i in lanes 0-7 and key 2i + 1 in lanes 8-15, eight partial sums each.
    let halves: [__m512; 4] = std::array::from_fn(|i| {
        let (x, y) = (v[2 * i], v[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y),
        )
    });
    // Keys 4i..4i + 4 in the four 128-bit lanes, four partial sums each.
    let quarters: [__m512; 2] = std::array::from_fn(|i| {
        let (x, y) = (halves[2 * i], halves[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
        )
    });
    // 128-bit lane j: key j at elements 0 and 2, key 4 + j at 1 and 3.
    let (x, y) = (quarters[0], quarters[1]);
    let pairs = _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y));
    // 128-bit lane j: key j at element 0, key 4 + j at element 1.
    let sums = _mm512_add_ps(pairs, _mm512_shuffle_ps::<0b01_00_11_10>(pairs, pairs));
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_castps512_ps256(_mm512_permutexvar_ps(order, sums))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::isa::Isa;
    use crate::testing::Rng;

    #[test]
    fn sum_lanes_gives_each_vectors_sum_in_order() {
        if !Isa::Avx512.is_supported() {
            eprintln!("skipped: no AVX-512");
            return;
        }
        let mut rng = Rng::new(301);
        let data = rng.vec(KEYS * 16, -4.0, 4.0);
        // SAFETY: AVX-512 checked above; each load reads 16 of the 128 values.
        let got = unsafe {
            let v: [__m512; KEYS] =
                std::array::from_fn(|i| _mm512_loadu_ps(data[16 * i..].as_ptr()));
            let mut out = [0.0f32; KEYS];
            _mm256_storeu_ps(out.as_mut_ptr(), sum_lanes(&v));
            out
        };
        for (i, &g) in got.iter().enumerate() {
            let want: f64 = data[16 * i..16 * i + 16].iter().map(|&x| x as f64).sum();
            assert!((g as f64 - want).abs() < 1e-4, "vector {i}: {g} vs {want}");
        }
    }
}
