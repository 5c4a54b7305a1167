//! The activations' side of the packed GEMM (`packed.rs`): `a` packed per call into the
//! layouts its micro-kernels read, in the calling thread's reusable buffers.

use std::cell::RefCell;

use rayon::prelude::*;

use super::packed::MR;
use super::packed_avx512 as simd;

thread_local! {
    /// The caller thread's packed `a`, reused across calls so a prefill does not fault in
    /// fresh pages for every matmul.
    static A_PACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The same for the bf16 pairs of the dot-product kernel.
    static A_PACK_BF16: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

/// Packs `a` (`[m, k]`) into zero-padded panels `[panel][kp][MR]` (`kp >= k`, columns past
/// `k` zero) in the calling thread's reusable buffer and runs `f` on it.
pub(super) fn with_packed_a<R>(a: &[f32], m: usize, kp: usize, f: impl FnOnce(&[f32]) -> R) -> R {
    A_PACK.with(|cell| {
        let mut buf = cell.borrow_mut();
        let k_in = a.len() / m;
        let len = m.div_ceil(MR) * kp * MR;
        buf.clear();
        buf.resize(len, 0.0);
        buf.par_chunks_mut(kp * MR)
            .enumerate()
            .for_each(|(panel, dst)| {
                for r in 0..MR.min(m - panel * MR) {
                    let row = &a[(panel * MR + r) * k_in..][..k_in];
                    for (d, &x) in dst[r..].iter_mut().step_by(MR).zip(row) {
                        *d = x;
                    }
                }
            });
        f(&buf)
    })
}

/// Rounds `a` to bf16 (nearest even) row-major with rows of `kp = k` rounded up to even and
/// `m` rounded up to whole panels (zeros past `m` and `k`), in the calling thread's reusable
/// buffer, and runs `f` on it. Needs AVX512-BF16 (`vcvtne2ps2bf16`).
pub(super) fn with_packed_a_bf16<R>(
    a: &[f32],
    m: usize,
    k: usize,
    f: impl FnOnce(&[u16]) -> R,
) -> R {
    A_PACK_BF16.with(|cell| {
        let mut buf = cell.borrow_mut();
        let kp = k.next_multiple_of(2);
        // Only the padding needs zeros (every other element is written below), so the
        // buffer is not cleared: a full memset on one thread was 0.7% of a profile of the
        // bf16 GEMMs at model shapes.
        let len = m.div_ceil(MR) * MR * kp;
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf[..len]
            .par_chunks_mut(MR * kp)
            .enumerate()
            .for_each(|(panel, dst)| {
                let rows = MR.min(m - panel * MR);
                for r in 0..rows {
                    let row = &a[(panel * MR + r) * k..][..k];
                    // SAFETY: AVX512-BF16 (the caller's precision check); the row's kp >= k
                    // u16 lie inside this panel's chunk.
                    unsafe { simd::round_row_bf16(row, dst.as_mut_ptr().add(r * kp)) }
                    // The odd column's pair partner meets a zero weight: it must be finite.
                    dst[r * kp + k..(r + 1) * kp].fill(0);
                }
                dst[rows * kp..].fill(0);
            });
        f(&buf)
    })
}
