//! AVX-512 GEMM micro-kernel: a 32 x 12 tile of `out^T` in 24 zmm accumulators; per `p`,
//! two loads of packed `a` (32 rows) and 12 broadcasts of packed `w`, 24 FMAs.

// AVX-512 intrinsics are stable since Rust 1.89; the workspace's rust-version (1.87) must be
// raised to 1.89 for this file (tracked in the CPU-speed issue).
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::Micro;

const MR: usize = 32;
const NR: usize = 12;

pub(super) const MICRO: Micro = Micro {
    mr: MR,
    nr: NR,
    kernel: tile,
};

/// `tile[c * 32 + r] = sum_p apack[p * 32 + r] * wpack[p * 12 + c]`.
///
/// # Safety
/// AVX-512 level supported; `apack` holds `32 k`, `wpack` `12 k` and `tile` 384 floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn tile(k: usize, apack: *const f32, wpack: *const f32, tile: *mut f32) {
    let mut acc = [[_mm512_setzero_ps(); 2]; NR];
    // SAFETY: p < k keeps every read inside apack / wpack (caller's contract).
    unsafe {
        for p in 0..k {
            let a0 = _mm512_loadu_ps(apack.add(p * MR));
            let a1 = _mm512_loadu_ps(apack.add(p * MR + 16));
            let wp = wpack.add(p * NR);
            for (c, acc) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(*wp.add(c));
                acc[0] = _mm512_fmadd_ps(a0, b, acc[0]);
                acc[1] = _mm512_fmadd_ps(a1, b, acc[1]);
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(tile.add(c * MR), acc[0]);
            _mm512_storeu_ps(tile.add(c * MR + 16), acc[1]);
        }
    }
}
