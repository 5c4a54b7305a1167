//! Opt-in bf16 dot-product GEMM (AVX512-BF16 `vdpbf16ps`) for bf16 weights: `a` is rounded
//! to bf16 (round to nearest even) while it is packed, each instruction multiplies pairs of
//! bf16 along `k` and accumulates in f32. Rounding the activations changes the results at
//! the half-precision level (NMSE vs the f32 reference ~1e-6, bound `NMSE_HALF` = 1e-4), so
//! it is off by default: set `IRIS_BF16_DOT=1` to use it (the SmolLM2 greedy-token tests
//! assume f32 activations).
//!
//! Layout: `a` is packed in panels of 32 rows as `[k/2][32 rows][2]` bf16 pairs (k padded
//! with a zero to even), `w` in groups of 12 rows as `[k/2][12][2]`. The micro-kernel keeps
//! a 32 x 12 tile of `out^T` in 24 zmm (as the f32 kernel), per pair of `k` two loads of
//! `a`, 12 32-bit broadcasts of `w` pairs and 24 `vdpbf16ps` (twice the flops of an FMA).
//! Tiling over rayon as in `gemm::tiled`.

// AVX-512 intrinsics are stable since Rust 1.89.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;
use std::sync::OnceLock;

use half::bf16;
use rayon::prelude::*;

use super::{CHUNK_GROUPS, COL_GROUPS, ROW_PANELS};
use crate::cpu::isa::{CpuFeatures, Isa};
use crate::cpu::simd::SendPtr;

const MR: usize = 32;
const NR: usize = 12;

/// The environment variable that turns the bf16 dot-product GEMM on.
pub const BF16_DOT_ENV: &str = "IRIS_BF16_DOT";

/// Whether the CPU has the AVX-512 level and AVX512-BF16.
pub fn supported() -> bool {
    Isa::Avx512.is_supported() && CpuFeatures::detect().avx512_bf16
}

/// Whether `IRIS_BF16_DOT=1` asked for it and the CPU [`supported`] it (read once).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        let asked = std::env::var(BF16_DOT_ENV).is_ok_and(|v| v.trim() == "1");
        if asked && !supported() {
            eprintln!("iris: {BF16_DOT_ENV}=1 ignored: this CPU lacks AVX512-BF16");
        }
        asked && supported()
    })
}

/// `out = a @ w^T + bias` with `a` rounded to bf16; `bias` already widened to f32.
/// Panics unless [`supported`]; sizes as `gemm::gemm` (checked by the caller), `k > 0`.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(
    a: &[f32],
    w: &[bf16],
    bias: &[f32],
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    assert!(supported(), "bf16 dot GEMM needs AVX-512 with AVX512-BF16");
    let k2 = k.div_ceil(2);
    let apack = pack_a(a, m, k, k2);
    let row_panels = m.div_ceil(MR);
    let row_tiles = row_panels.div_ceil(ROW_PANELS);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let groups_total = n.div_ceil(NR);
    let mut wpack = vec![0u16; CHUNK_GROUPS.min(groups_total) * NR * 2 * k2];
    for g0 in (0..groups_total).step_by(CHUNK_GROUPS) {
        let groups = CHUNK_GROUPS.min(groups_total - g0);
        wpack[..groups * NR * 2 * k2]
            .par_chunks_mut(NR * 2 * k2)
            .enumerate()
            .for_each(|(g, dst)| pack_w(w, (g0 + g) * NR, n, k, dst));
        let wpack = &wpack;
        let col_tiles = groups.div_ceil(COL_GROUPS);
        (0..row_tiles * col_tiles).into_par_iter().for_each(|t| {
            let (rt, ct) = (t / col_tiles, t % col_tiles);
            let mut tile = [0.0f32; MR * NR];
            let panels = rt * ROW_PANELS..((rt + 1) * ROW_PANELS).min(row_panels);
            for g in ct * COL_GROUPS..((ct + 1) * COL_GROUPS).min(groups) {
                let j0 = (g0 + g) * NR;
                let cols = NR.min(n - j0);
                for panel in panels.clone() {
                    let i0 = panel * MR;
                    // SAFETY: `supported` was asserted; apack holds 2 k2 MR u16 from this
                    // panel's start, wpack 2 k2 NR from this group's start, tile MR NR f32.
                    unsafe {
                        micro(
                            k2,
                            apack.as_ptr().add(panel * MR * 2 * k2),
                            wpack.as_ptr().add(g * NR * 2 * k2),
                            tile.as_mut_ptr(),
                        )
                    };
                    for r in 0..MR.min(m - i0) {
                        // SAFETY: as in `gemm::tiled`: each task writes only its own rows x
                        // columns of `out`, which outlives the parallel loop.
                        let dst = unsafe { out_ptr.get().add((i0 + r) * n + j0) };
                        for c in 0..cols {
                            // SAFETY: see above.
                            unsafe { *dst.add(c) = tile[c * MR + r] + bias[j0 + c] };
                        }
                    }
                }
            }
        });
    }
}

/// `apack[panel][q][r][j] = bf16(a[panel * 32 + r, 2q + j])`, zeros past `m` and `k`.
fn pack_a(a: &[f32], m: usize, k: usize, k2: usize) -> Vec<u16> {
    let panels = m.div_ceil(MR);
    let mut apack = vec![0u16; panels * MR * 2 * k2];
    apack
        .par_chunks_mut(MR * 2 * k2)
        .enumerate()
        .for_each(|(panel, dst)| {
            for r in 0..MR.min(m - panel * MR) {
                let row = &a[(panel * MR + r) * k..][..k];
                for (p, &x) in row.iter().enumerate() {
                    dst[((p / 2) * MR + r) * 2 + p % 2] = bf16::from_f32(x).to_bits();
                }
            }
        });
    apack
}

/// `wpack[q][c][j] = w[j0 + c, 2q + j]`, zeros past `n` and `k`.
fn pack_w(w: &[bf16], j0: usize, n: usize, k: usize, wpack: &mut [u16]) {
    wpack.fill(0);
    for c in 0..NR.min(n - j0) {
        let row = &w[(j0 + c) * k..][..k];
        for (p, x) in row.iter().enumerate() {
            wpack[((p / 2) * NR + c) * 2 + p % 2] = x.to_bits();
        }
    }
}

/// `tile[c * 32 + r] = sum_q sum_j apack[q][r][j] * wpack[q][c][j]`.
///
/// # Safety
/// AVX-512 + AVX512-BF16 supported; `apack` holds `64 k2`, `wpack` `24 k2` u16, `tile` 384 f32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")]
unsafe fn micro(k2: usize, apack: *const u16, wpack: *const u16, tile: *mut f32) {
    let mut acc = [[_mm512_setzero_ps(); 2]; NR];
    // SAFETY: q < k2 keeps every read inside apack / wpack (caller's contract); the
    // transmutes reinterpret 512 bits of bf16 pairs as the bf16 vector type.
    unsafe {
        for q in 0..k2 {
            let ap = apack.add(q * MR * 2);
            let a0: __m512bh = std::mem::transmute(_mm512_loadu_si512(ap as *const _));
            let a1: __m512bh = std::mem::transmute(_mm512_loadu_si512(ap.add(32) as *const _));
            let wp = wpack.add(q * NR * 2) as *const i32;
            for (c, acc) in acc.iter_mut().enumerate() {
                let b: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(wp.add(c).read_unaligned()));
                acc[0] = _mm512_dpbf16_ps(acc[0], a0, b);
                acc[1] = _mm512_dpbf16_ps(acc[1], a1, b);
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(tile.add(c * MR), acc[0]);
            _mm512_storeu_ps(tile.add(c * MR + 16), acc[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION, NMSE_HALF};
    use crate::WeightSlice;

    #[test]
    fn bf16_dot_matches_reference_within_half_precision() {
        if !supported() {
            eprintln!("skipped: no AVX512-BF16");
            return;
        }
        let mut rng = Rng::new(91);
        for (m, n, k) in [
            (1, 1, 1),
            (5, 13, 7),
            (33, 37, 577),
            (67, 25, 1031),
            (130, 577, 64),
        ] {
            let a = rng.vec(m * k, -1.0, 1.0);
            let w: Vec<bf16> = rng
                .vec(n * k, -1.0, 1.0)
                .into_iter()
                .map(bf16::from_f32)
                .collect();
            let bias = rng.vec(n, -1.0, 1.0);
            let mut got = vec![f32::NAN; m * n];
            gemm(&a, &w, &bias, m, n, k, &mut got);
            // Against f32 activations: the half-precision bound.
            let mut want = vec![0.0; m * n];
            let (ws, bs) = (WeightSlice::BF16(&w), Some(WeightSlice::F32(&bias)));
            reference::matmul(&a, ws, bs, m, n, k, &mut want);
            assert_nmse(&format!("bf16 dot {m}x{n}x{k}"), &got, &want, NMSE_HALF);
            // Against the same bf16-rounded activations: f32 accumulation only.
            let ar: Vec<f32> = a.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
            reference::matmul(&ar, ws, bs, m, n, k, &mut want);
            let what = format!("bf16 dot rounded a {m}x{n}x{k}");
            assert_nmse(&what, &got, &want, NMSE_F32_REDUCTION);
        }
    }
}
