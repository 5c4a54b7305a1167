//! f32 GEMM in the `nn.Linear` convention, `out[m, n] = a[m, k] @ w[n, k]^T + bias[n]`, with
//! `w`/`bias` f32, bf16 or f16 read straight from their (possibly memory-mapped) storage.
//! Same contract as `cpu::reference::matmul`, f32 accumulation.
//!
//! Entry points take the [`Isa`] to run: [`matmul`] picks GEMV (`m <= GEMV_MAX_M`, decode) or
//! the tiled GEMM; [`gemm`] is the tiled path alone (any `m`).
//!
//! Tiled path (AVX-512 / AVX2): the micro-kernel keeps a `MR x NR` tile of `out^T` in
//! registers: `MR` rows of `a` across the vector lanes (2 registers) and `NR` rows of `w`
//! broadcast one element at a time, one FMA per (register, w row) per `p`.
//! - `a` is packed once per call, transposed into panels `[k][MR]` (zero-padded rows);
//! - `w` is packed once per call (in column chunks of `CHUNK_GROUPS` groups, in parallel),
//!   `NR` rows at a time, widened to f32 and interleaved `[k][NR]` (bf16: 16-bit shift,
//!   f16: `vcvtph2ps`), zero-padded past `n`;
//! - the work is split over rayon into tiles of up to `ROW_PANELS` a-panels x `COL_GROUPS`
//!   w-groups; inside a tile each packed w group (L1/L2) is reused over the tile's a panels
//!   (L2). The full `k` is reduced in registers, so each output is written once.
//!
//! `packed` is the faster AVX-512 GEMM over weights packed once (the runtime keeps the packed
//! copy); this per-call path serves AVX2 and callers without a packed copy.
//! Opt-in (`IRIS_BF16_DOT=1`, bf16 weights, AVX512-BF16): bf16 compute, see `bf16_dot`.
//!
//! | variant | tile (MR x NR) | 2048^3 f32, 2 threads (2-core AMD EPYC VM, idle) |
//! |---|---|---|
//! | scalar  | plain loop | not timed at this size |
//! | avx2    | 16 x 6     | not timed here |
//! | avx512  | 32 x 12    | 335 GFLOP/s (the packed GEMM: 394) |

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub mod bf16_dot;
#[cfg(target_arch = "x86_64")]
pub mod packed;
#[cfg(target_arch = "x86_64")]
mod packed_a;
#[cfg(target_arch = "x86_64")]
mod packed_avx2;
#[cfg(target_arch = "x86_64")]
mod packed_avx512;
#[cfg(target_arch = "x86_64")]
pub mod packed_gemv;
#[cfg(target_arch = "x86_64")]
mod packed_gemv_avx2;
mod scalar;

use rayon::prelude::*;

use crate::cpu::gemv;
use crate::cpu::isa::Isa;
use crate::cpu::simd::{widen_into, SendPtr};
use crate::WeightSlice;

/// Rows of `a` at or below which [`matmul`] takes the GEMV path.
pub const GEMV_MAX_M: usize = 4;
/// a panels (of MR rows) per parallel tile.
const ROW_PANELS: usize = 4;
/// w groups (of NR rows) per parallel tile.
const COL_GROUPS: usize = 8;
/// w groups packed at once (bounds the packed copy of `w`).
const CHUNK_GROUPS: usize = 384;

/// A register-blocked micro-kernel: `tile[c * mr + r] = sum_p apack[p * mr + r] *
/// wpack[p * nr + c]` for `r < mr`, `c < nr`.
#[derive(Clone, Copy)]
struct Micro {
    mr: usize,
    nr: usize,
    kernel: unsafe fn(usize, *const f32, *const f32, *mut f32),
}

fn check(
    a: &[f32],
    w: &WeightSlice,
    bias: &Option<WeightSlice>,
    m: usize,
    n: usize,
    k: usize,
    out: &[f32],
) {
    assert_eq!(a.len(), m * k, "matmul: a must be [m = {m}, k = {k}]");
    assert_eq!(w.len(), n * k, "matmul: w must be [n = {n}, k = {k}]");
    assert_eq!(out.len(), m * n, "matmul: out must be [m = {m}, n = {n}]");
    if let Some(b) = bias {
        assert_eq!(b.len(), n, "matmul: bias must hold n = {n} elements");
    }
}

/// `out = a @ w^T + bias` at `isa`: GEMV for `m <= GEMV_MAX_M`, tiled GEMM above.
/// Panics if the CPU lacks `isa` or the slice lengths disagree with the sizes.
#[allow(clippy::too_many_arguments)] // the matmul contract: operands and sizes
pub fn matmul(
    isa: Isa,
    a: &[f32],
    w: WeightSlice,
    bias: Option<WeightSlice>,
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    if m <= GEMV_MAX_M {
        gemv::gemv(isa, a, w, bias, m, n, k, out)
    } else {
        gemm(isa, a, w, bias, m, n, k, out)
    }
}

/// The tiled GEMM at `isa` for any `m` (the scalar level is the plain loop).
#[allow(clippy::too_many_arguments)] // the matmul contract: operands and sizes
pub fn gemm(
    isa: Isa,
    a: &[f32],
    w: WeightSlice,
    bias: Option<WeightSlice>,
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    isa.assert_supported();
    check(a, &w, &bias, m, n, k, out);
    if m == 0 || n == 0 {
        return;
    }
    let mut bias_f32 = vec![0.0f32; n];
    if let Some(b) = bias {
        widen_into(isa, b, 0, &mut bias_f32);
    }
    if k == 0 {
        for row in out.chunks_mut(n) {
            row.copy_from_slice(&bias_f32);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let (Isa::Avx512, WeightSlice::BF16(_)) = (isa, w) {
        if bf16_dot::enabled() {
            // Callers without a packed copy (the runtime keeps one per weight) pack here.
            let packed = packed::PackedWeights::pack(w, n, k).expect("bf16 weights pack");
            let dot = packed::Precision::Bf16Dot;
            return packed::gemm(isa, a, &packed, &bias_f32, m, dot, out);
        }
    }
    let micro = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512::MICRO,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2::MICRO,
        _ => return scalar::gemm(a, w, &bias_f32, m, n, k, out),
    };
    tiled(isa, micro, a, w, &bias_f32, m, n, k, out);
}

/// Packs `a` into zero-padded transposed panels: `apack[panel][p][r] = a[panel * mr + r, p]`.
fn pack_a(a: &[f32], m: usize, k: usize, mr: usize) -> Vec<f32> {
    let panels = m.div_ceil(mr);
    let mut apack = vec![0.0f32; panels * mr * k];
    apack
        .par_chunks_mut(mr * k)
        .enumerate()
        .for_each(|(panel, dst)| {
            for r in 0..mr.min(m - panel * mr) {
                let row = &a[(panel * mr + r) * k..][..k];
                for (p, &x) in row.iter().enumerate() {
                    dst[p * mr + r] = x;
                }
            }
        });
    apack
}

/// Packs rows `j0..j0 + nr` of `w` (zeros past `n`) widened and interleaved:
/// `wpack[p * nr + c] = w[j0 + c, p]`. `row` is scratch of `k` floats.
#[allow(clippy::too_many_arguments)]
fn pack_w(
    isa: Isa,
    w: WeightSlice,
    j0: usize,
    n: usize,
    k: usize,
    nr: usize,
    row: &mut [f32],
    wpack: &mut [f32],
) {
    for c in 0..nr {
        if j0 + c < n {
            widen_into(isa, w, (j0 + c) * k, row);
            for (p, &x) in row.iter().enumerate() {
                wpack[p * nr + c] = x;
            }
        } else {
            for p in 0..k {
                wpack[p * nr + c] = 0.0;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn tiled(
    isa: Isa,
    micro: Micro,
    a: &[f32],
    w: WeightSlice,
    bias: &[f32],
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    let Micro { mr, nr, kernel } = micro;
    let apack = pack_a(a, m, k, mr);
    let row_panels = m.div_ceil(mr);
    let row_tiles = row_panels.div_ceil(ROW_PANELS);
    let out_ptr = SendPtr(out.as_mut_ptr());
    // Columns in chunks of CHUNK_GROUPS w groups: each chunk's w is packed once (in
    // parallel), then shared by every tile; this bounds the packed copy to
    // CHUNK_GROUPS * nr * k floats.
    let groups_total = n.div_ceil(nr);
    let mut wpack = vec![0.0f32; CHUNK_GROUPS.min(groups_total) * nr * k];
    for g0 in (0..groups_total).step_by(CHUNK_GROUPS) {
        let groups = CHUNK_GROUPS.min(groups_total - g0);
        wpack[..groups * nr * k]
            .par_chunks_mut(nr * k)
            .enumerate()
            .for_each_init(
                || vec![0.0f32; k],
                |row, (g, dst)| pack_w(isa, w, (g0 + g) * nr, n, k, nr, row, dst),
            );
        let wpack = &wpack;
        let col_tiles = groups.div_ceil(COL_GROUPS);
        (0..row_tiles * col_tiles).into_par_iter().for_each(|t| {
            let (rt, ct) = (t / col_tiles, t % col_tiles);
            let mut tile = vec![0.0f32; mr * nr];
            let panels = rt * ROW_PANELS..((rt + 1) * ROW_PANELS).min(row_panels);
            for g in ct * COL_GROUPS..((ct + 1) * COL_GROUPS).min(groups) {
                let j0 = (g0 + g) * nr;
                let cols = nr.min(n - j0);
                for panel in panels.clone() {
                    let i0 = panel * mr;
                    // SAFETY: `micro` is the kernel of `isa`, which `gemm` checked is
                    // supported; apack holds k * mr floats from this panel's start, wpack
                    // k * nr from this group's start, tile mr * nr.
                    unsafe {
                        (kernel)(
                            k,
                            apack.as_ptr().add(panel * mr * k),
                            wpack.as_ptr().add(g * nr * k),
                            tile.as_mut_ptr(),
                        )
                    };
                    for r in 0..mr.min(m - i0) {
                        // SAFETY: (i0 + r, j0 + c) with i0 + r < m and j0 + c < n lies in
                        // `out`; each (row tile, col tile) task writes only its own rows x
                        // columns, so no two tasks write the same element; `out` outlives
                        // the parallel loop.
                        let dst = unsafe { out_ptr.get().add((i0 + r) * n + j0) };
                        for c in 0..cols {
                            // SAFETY: see above.
                            unsafe { *dst.add(c) = tile[c * mr + r] + bias[j0 + c] };
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};
    use half::{bf16, f16};

    /// Every available ISA, f32/bf16/f16 weights, odd sizes: the fast paths against the
    /// reference given the same (rounded) weights.
    type MatmulFn =
        fn(Isa, &[f32], WeightSlice, Option<WeightSlice>, usize, usize, usize, &mut [f32]);

    fn check_all(sizes: &[(usize, usize, usize)], f: MatmulFn, what: &str) {
        let mut rng = Rng::new(81);
        for &(m, n, k) in sizes {
            let a = rng.vec(m * k, -1.0, 1.0);
            let w = rng.vec(n * k, -1.0, 1.0);
            let b = rng.vec(n, -1.0, 1.0);
            let wb: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
            let wh: Vec<f16> = w.iter().map(|&x| f16::from_f32(x)).collect();
            let bb: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
            let cases: [(WeightSlice, Option<WeightSlice>); 4] = [
                (WeightSlice::F32(&w), Some(WeightSlice::F32(&b))),
                (WeightSlice::F32(&w), None),
                (WeightSlice::BF16(&wb), Some(WeightSlice::BF16(&bb))),
                (WeightSlice::F16(&wh), None),
            ];
            for (wt, bias) in cases {
                let mut want = vec![0.0f32; m * n];
                reference::matmul(&a, wt, bias, m, n, k, &mut want);
                for isa in Isa::available() {
                    let mut got = vec![f32::NAN; m * n];
                    f(isa, &a, wt, bias, m, n, k, &mut got);
                    let label = format!(
                        "{what} {isa} {m}x{n}x{k} {:?} bias={}",
                        std::mem::discriminant(&wt),
                        bias.is_some()
                    );
                    assert_nmse(&label, &got, &want, NMSE_F32_REDUCTION);
                }
            }
        }
    }

    const MS: [usize; 7] = [1, 2, 3, 4, 5, 17, 67];

    #[test]
    fn gemm_matches_reference_for_every_isa() {
        let mut sizes = Vec::new();
        for m in MS {
            for (n, k) in [(1, 7), (7, 33), (33, 1), (13, 577), (37, 1031)] {
                sizes.push((m, n, k));
            }
        }
        sizes.push((67, 577, 33));
        sizes.push((200, 101, 65));
        check_all(&sizes, gemm, "gemm");
    }

    #[test]
    fn matmul_dispatch_matches_reference_for_every_isa() {
        let sizes: Vec<_> = MS.iter().map(|&m| (m, 1031, 577)).collect();
        check_all(&sizes, matmul, "matmul");
    }

    #[test]
    fn empty_sizes_and_k_zero() {
        for isa in Isa::available() {
            let b = [1.5f32, -2.0, 3.0];
            for m in [2, 6] {
                let mut out = vec![0.0; m * 3];
                matmul(
                    isa,
                    &[],
                    WeightSlice::F32(&[]),
                    Some(WeightSlice::F32(&b)),
                    m,
                    3,
                    0,
                    &mut out,
                );
                assert!(out.chunks(3).all(|r| r == b), "{isa} m={m}");
            }
            let mut out: Vec<f32> = vec![];
            matmul(isa, &[], WeightSlice::F32(&[]), None, 0, 0, 5, &mut out);
        }
    }
}
