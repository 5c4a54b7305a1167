//! AVX2 micro-kernels of the packed GEMM (`packed.rs`), for CPUs without AVX-512: the same
//! packed operands (`a` panels `[k][12]`, weight groups `[k][32]` f32 / f16 or bf16 pairs
//! `[q][32][2]`) and the same `Dst` contract as `packed_avx512.rs`. AVX2 has 16 vector
//! registers, so each 12 x 32 tile runs as four 6 x 16 register tiles (12 accumulators, two
//! weight vectors and a broadcast), each over the whole `k` block.

use std::arch::x86_64::*;

use super::packed::{MR, NR};
use super::packed_avx512::Dst;

/// Rows of a register tile (half a panel).
const ROWS: usize = 6;
/// Columns of a register tile (half a group, two 8-lane vectors).
const COLS: usize = 16;

type Acc = [[__m256; 2]; ROWS];

/// The register tiles of a 12 x 32 tile that hold any of `dst`'s rows and columns:
/// (first row, first column).
fn quarters(dst: &Dst) -> impl Iterator<Item = (usize, usize)> + '_ {
    [(0, 0), (0, COLS), (ROWS, 0), (ROWS, COLS)]
        .into_iter()
        .filter(|&(r0, c0)| r0 < dst.rows && c0 < dst.cols)
}

/// `acc[r] += a[p * MR + r] * (the two weight vectors `$load(p)` returns)` over `kc` steps,
/// `a` at the register tile's first row. Expanded inside each `#[target_feature]` function
/// so the loads inline; call it in an `unsafe` block.
macro_rules! fma_quarter {
    ($kc:expr, $a:expr, $load:expr) => {{
        let mut acc: Acc = [[_mm256_setzero_ps(); 2]; ROWS];
        for p in 0..$kc {
            let (w0, w1) = $load(p);
            let ap = $a.add(p * MR);
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*ap.add(r));
                acc[0] = _mm256_fmadd_ps(x, w0, acc[0]);
                acc[1] = _mm256_fmadd_ps(x, w1, acc[1]);
            }
        }
        acc
    }};
}

/// The 12 x 32 tile over `kc` steps of f32 weights `[k][32]`.
///
/// # Safety
/// AVX2 and FMA supported; `a` holds `kc * MR`, `w` `kc * NR` floats; `dst` as [`store`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile_f32(kc: usize, a: *const f32, w: *const f32, dst: &Dst) {
    for (r0, c0) in quarters(dst) {
        // SAFETY: p < kc keeps every read inside a / w (caller's contract).
        unsafe {
            let acc = fma_quarter!(kc, a.add(r0), |p: usize| (
                _mm256_loadu_ps(w.add(p * NR + c0)),
                _mm256_loadu_ps(w.add(p * NR + c0 + 8))
            ));
            store(&acc, dst, r0, c0);
        }
    }
}

/// As [`tile_f32`] with f16 weights `[k][32]`, widened exactly by `vcvtph2ps`.
///
/// # Safety
/// AVX2, FMA and F16C supported; `a` holds `kc * MR` floats, `w` `kc * NR` u16; `dst` as
/// [`store`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile_f16(kc: usize, a: *const f32, w: *const u16, dst: &Dst) {
    for (r0, c0) in quarters(dst) {
        // SAFETY: p < kc keeps every read inside a / w (caller's contract).
        unsafe {
            let acc = fma_quarter!(kc, a.add(r0), |p: usize| (
                _mm256_cvtph_ps(_mm_loadu_si128(w.add(p * NR + c0) as *const _)),
                _mm256_cvtph_ps(_mm_loadu_si128(w.add(p * NR + c0 + 8) as *const _))
            ));
            store(&acc, dst, r0, c0);
        }
    }
}

/// As [`tile_f32`] with bf16 weights in pairs `[q][32][2]` (`k2` pairs), widened exactly:
/// the even element of a pair is its low half shifted up, the odd one its high half.
///
/// # Safety
/// AVX2 and FMA supported; `a` holds `2 k2 MR` floats, `w` `2 k2 NR` u16; `dst` as
/// [`store`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn tile_bf16(k2: usize, a: *const f32, w: *const u16, dst: &Dst) {
    let high = _mm256_set1_epi32(0xffff_0000u32 as i32);
    for (r0, c0) in quarters(dst) {
        let mut acc: Acc = [[_mm256_setzero_ps(); 2]; ROWS];
        // SAFETY: q < k2 keeps every read inside a / w (caller's contract).
        unsafe {
            for q in 0..k2 {
                let pairs = w.add(q * 2 * NR + 2 * c0);
                let x0 = _mm256_loadu_si256(pairs as *const _);
                let x1 = _mm256_loadu_si256(pairs.add(16) as *const _);
                let even = [
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(x0)),
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(x1)),
                ];
                let ae = a.add(2 * q * MR + r0);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*ae.add(r));
                    acc[0] = _mm256_fmadd_ps(x, even[0], acc[0]);
                    acc[1] = _mm256_fmadd_ps(x, even[1], acc[1]);
                }
                let odd = [
                    _mm256_castsi256_ps(_mm256_and_si256(x0, high)),
                    _mm256_castsi256_ps(_mm256_and_si256(x1, high)),
                ];
                let ao = ae.add(MR);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*ao.add(r));
                    acc[0] = _mm256_fmadd_ps(x, odd[0], acc[0]);
                    acc[1] = _mm256_fmadd_ps(x, odd[1], acc[1]);
                }
            }
            store(&acc, dst, r0, c0);
        }
    }
}

/// Lanes `0..n` set (`n <= 8`), for masked loads and stores.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn lanes(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Writes the register tile at (`r0`, `c0`) of the 12 x 32 tile: `out = acc (+ bias)` or
/// `out += acc`, rows below `dst.rows` and columns below `dst.cols` only.
///
/// # Safety
/// AVX2 supported; `dst.out + r * ld + c` is valid for reads and writes for every
/// `r < rows`, `c < cols`, and `dst.bias` (if any) for `cols` reads.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store(acc: &Acc, dst: &Dst, r0: usize, c0: usize) {
    let masks = [0, 8].map(|h| lanes(dst.cols.saturating_sub(c0 + h).min(8)));
    // SAFETY: only lanes below `cols` and rows below `rows` are touched (caller's contract).
    unsafe {
        let bias = dst
            .bias
            .map(|b| [0, 1].map(|h| _mm256_maskload_ps(b.wrapping_add(c0 + 8 * h), masks[h])));
        for (r, acc) in acc.iter().enumerate().take(dst.rows - r0) {
            let row = dst.out.add((r0 + r) * dst.ld + c0);
            for h in 0..2 {
                // Past `cols` the mask is empty: the address may lie beyond `out`, so it is
                // formed without the in-bounds promise of `add`.
                let p = row.wrapping_add(8 * h);
                let mut v = acc[h];
                if dst.accumulate {
                    v = _mm256_add_ps(v, _mm256_maskload_ps(p, masks[h]));
                } else if let Some(b) = bias {
                    v = _mm256_add_ps(v, b[h]);
                }
                _mm256_maskstore_ps(p, masks[h], v);
            }
        }
    }
}
