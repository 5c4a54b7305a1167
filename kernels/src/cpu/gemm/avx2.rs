//! AVX2 GEMM micro-kernel: a 16 x 6 tile of `out^T` in 12 ymm accumulators; per `p`, two
//! loads of packed `a` (16 rows) and 6 broadcasts of packed `w`, 12 FMAs.

use std::arch::x86_64::*;

use super::Micro;

const MR: usize = 16;
const NR: usize = 6;

pub(super) const MICRO: Micro = Micro {
    mr: MR,
    nr: NR,
    kernel: tile,
};

/// `tile[c * 16 + r] = sum_p apack[p * 16 + r] * wpack[p * 6 + c]`.
///
/// # Safety
/// AVX2 level supported; `apack` holds `16 k`, `wpack` `6 k` and `tile` 96 floats.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile(k: usize, apack: *const f32, wpack: *const f32, tile: *mut f32) {
    let mut acc = [[_mm256_setzero_ps(); 2]; NR];
    // SAFETY: p < k keeps every read inside apack / wpack (caller's contract).
    unsafe {
        for p in 0..k {
            let a0 = _mm256_loadu_ps(apack.add(p * MR));
            let a1 = _mm256_loadu_ps(apack.add(p * MR + 8));
            let wp = wpack.add(p * NR);
            for (c, acc) in acc.iter_mut().enumerate() {
                let b = _mm256_broadcast_ss(&*wp.add(c));
                acc[0] = _mm256_fmadd_ps(a0, b, acc[0]);
                acc[1] = _mm256_fmadd_ps(a1, b, acc[1]);
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(tile.add(c * MR), acc[0]);
            _mm256_storeu_ps(tile.add(c * MR + 8), acc[1]);
        }
    }
}
