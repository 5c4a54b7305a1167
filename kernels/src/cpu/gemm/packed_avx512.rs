//! AVX-512 micro-kernels of the packed GEMM (`packed.rs`): a 12 x 32 tile of `out` in 24 zmm
//! (12 rows of `a` broadcast, 32 columns of packed `w` in two vectors; the bf16 dot GEMM also
//! has a 6 x 64 one for large row tiles), then a masked write-back that adds the bias (first
//! `k` block) or the partial sums already in `out`.

// AVX-512 intrinsics are stable since Rust 1.89.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::packed::{MR, NR};

/// Where and how a tile is written.
pub(super) struct Dst {
    /// Element (row 0, column 0) of the tile in `out`.
    pub out: *mut f32,
    /// Row stride of `out`.
    pub ld: usize,
    pub rows: usize,
    pub cols: usize,
    /// `cols` bias values to add (first `k` block only).
    pub bias: Option<*const f32>,
    /// Add to what `out` holds (later `k` blocks).
    pub accumulate: bool,
}

type Acc = [[__m512; 2]; MR];

/// The FMA tile over `kc` steps: `acc[r] += a[p * MR + r] * (the two weight vectors that
/// `$load(p)` returns)`, then [`store`]. One body for the f32 and f16 kernels, expanded inside
/// each `#[target_feature]` function so the loads inline; call it in an `unsafe` block.
macro_rules! fma_tile {
    ($kc:expr, $a:expr, $dst:expr, $load:expr) => {{
        let mut acc: Acc = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..$kc {
            let (w0, w1) = $load(p);
            let ap = $a.add(p * MR);
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*ap.add(r));
                acc[0] = _mm512_fmadd_ps(x, w0, acc[0]);
                acc[1] = _mm512_fmadd_ps(x, w1, acc[1]);
            }
        }
        store(&acc, $dst);
    }};
}

/// `acc[r] += sum_p a[p * MR + r] * w[p * NR ..][..32]` over `kc` steps, f32 weights.
///
/// # Safety
/// AVX-512 level supported; `a` holds `kc * MR`, `w` `kc * NR` floats; `dst` as [`store`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn tile_f32(kc: usize, a: *const f32, w: *const f32, dst: &Dst) {
    // SAFETY: p < kc keeps every read inside a / w (caller's contract).
    unsafe {
        fma_tile!(kc, a, dst, |p: usize| (
            _mm512_loadu_ps(w.add(p * NR)),
            _mm512_loadu_ps(w.add(p * NR + 16))
        ))
    }
}

/// As [`tile_f32`] with f16 weights `[k][32]`, widened exactly by `vcvtph2ps`.
///
/// # Safety
/// AVX-512 level supported; `a` holds `kc * MR` floats, `w` `kc * NR` u16; `dst` as [`store`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn tile_f16(kc: usize, a: *const f32, w: *const u16, dst: &Dst) {
    // SAFETY: p < kc keeps every read inside a / w (caller's contract).
    unsafe {
        fma_tile!(kc, a, dst, |p: usize| (
            _mm512_cvtph_ps(_mm256_loadu_si256(w.add(p * NR) as *const _)),
            _mm512_cvtph_ps(_mm256_loadu_si256(w.add(p * NR + 16) as *const _))
        ))
    }
}

/// As [`tile_f32`] with bf16 weights in pairs `[q][32][2]` (`k2` pairs), widened exactly:
/// the even element of a pair is its low half shifted up, the odd one its high half.
///
/// # Safety
/// AVX-512 level supported; `a` holds `2 k2 MR` floats, `w` `2 k2 NR` u16; `dst` as [`store`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn tile_bf16(k2: usize, a: *const f32, w: *const u16, dst: &Dst) {
    let mut acc: Acc = [[_mm512_setzero_ps(); 2]; MR];
    let high = _mm512_set1_epi32(0xffff_0000u32 as i32);
    // SAFETY: q < k2 keeps every read inside a / w (caller's contract).
    unsafe {
        for q in 0..k2 {
            let x0 = _mm512_loadu_si512(w.add(q * 2 * NR) as *const _);
            let x1 = _mm512_loadu_si512(w.add(q * 2 * NR + NR) as *const _);
            let even = [
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(x0)),
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(x1)),
            ];
            let odd = [
                _mm512_castsi512_ps(_mm512_and_si512(x0, high)),
                _mm512_castsi512_ps(_mm512_and_si512(x1, high)),
            ];
            let ae = a.add(2 * q * MR);
            let ao = ae.add(MR);
            for (r, acc) in acc.iter_mut().enumerate() {
                let xe = _mm512_set1_ps(*ae.add(r));
                acc[0] = _mm512_fmadd_ps(xe, even[0], acc[0]);
                acc[1] = _mm512_fmadd_ps(xe, even[1], acc[1]);
                let xo = _mm512_set1_ps(*ao.add(r));
                acc[0] = _mm512_fmadd_ps(xo, odd[0], acc[0]);
                acc[1] = _mm512_fmadd_ps(xo, odd[1], acc[1]);
            }
        }
        store(&acc, dst);
    }
}

/// bf16 dot-product tile: `a` is bf16 row-major (row `r` at `r * lda` pairs, pair `q` =
/// elements `2q`, `2q + 1`), `w` pairs `[q][32][2]`; each `vdpbf16ps` multiplies a pair of each
/// and adds both products in f32. Reading `a` row-major (12 broadcasts from 12 rows) spares a
/// transposing pack of the activations, which cost as much as a tenth of a vision tower.
///
/// # Safety
/// AVX-512 and AVX512-BF16 supported; `a` holds `MR` rows of at least `k2` pairs at stride
/// `lda` pairs, `w` `2 k2 NR` u16; `dst` as [`store`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")]
pub(super) unsafe fn tile_bf16_dot(k2: usize, a: *const u16, lda: usize, w: *const u16, dst: &Dst) {
    let mut acc: Acc = [[_mm512_setzero_ps(); 2]; MR];
    let a = a as *const i32;
    // SAFETY: q < k2 keeps every read inside a's rows / w (caller's contract); the
    // transmutes reinterpret 512 bits of bf16 pairs as the bf16 vector type.
    unsafe {
        for q in 0..k2 {
            let w0: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(w.add(q * 2 * NR) as *const _));
            let w1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(w.add(q * 2 * NR + NR) as *const _));
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair = a.add(r * lda + q).read_unaligned();
                let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                acc[0] = _mm512_dpbf16_ps(acc[0], x, w0);
                acc[1] = _mm512_dpbf16_ps(acc[1], x, w1);
            }
        }
        store(&acc, dst);
    }
}

/// Half rows (6) of `tile_bf16_dot` over two column groups (64 columns) at once: per pair
/// step 4 weight vectors and 6 broadcasts feed 24 `vdpbf16ps`, against 2 and 12 in the
/// 12 x 32 tile, so `a` is read half as often and `w` twice as often.
///
/// # Safety
/// As [`tile_bf16_dot`] for 6 rows of `a` and two groups `w0`, `w1` (each `2 k2 NR` u16);
/// `dst0` / `dst1` as [`store`] with at most 6 rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")]
pub(super) unsafe fn tile_bf16_dot_6x64(
    k2: usize,
    a: *const u16,
    lda: usize,
    (w0, w1): (*const u16, *const u16),
    (dst0, dst1): (&Dst, &Dst),
) {
    const HR: usize = 6;
    let mut acc = [[_mm512_setzero_ps(); 4]; HR];
    let a = a as *const i32;
    // SAFETY: q < k2 keeps every read inside a's rows / w0 / w1 (caller's contract).
    unsafe {
        for q in 0..k2 {
            let ws = [w0, w1].map(|w| w.add(q * 2 * NR));
            let ws: [__m512bh; 4] = [ws[0], ws[0].add(NR), ws[1], ws[1].add(NR)].map(|p| {
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p as *const _))
            });
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair = a.add(r * lda + q).read_unaligned();
                let x = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair));
                for (acc, w) in acc.iter_mut().zip(ws) {
                    *acc = _mm512_dpbf16_ps(*acc, x, w);
                }
            }
        }
        let mut half: Acc = [[_mm512_setzero_ps(); 2]; MR];
        for (h, dst) in [dst0, dst1].into_iter().enumerate() {
            for (r, acc) in acc.iter().enumerate() {
                half[r] = [acc[2 * h], acc[2 * h + 1]];
            }
            store(&half, dst);
        }
    }
}

/// Rounds `row` to bf16 (nearest even) into `dst` (`row.len()` u16, contiguous).
///
/// # Safety
/// AVX-512 and AVX512-BF16 supported; `dst` is writable for `row.len()` u16.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")]
pub(super) unsafe fn round_row_bf16(row: &[f32], dst: *mut u16) {
    let k = row.len();
    let mut p = 0;
    while p < k {
        let n = (k - p).min(32);
        let lo = ((1u32 << n.min(16)) - 1) as u16;
        let hi = ((1u32 << n.saturating_sub(16).min(16)) - 1) as u16;
        // SAFETY: the masked loads read, and the masked store writes, only elements below k.
        unsafe {
            let a = _mm512_maskz_loadu_ps(lo, row.as_ptr().add(p));
            let b = _mm512_maskz_loadu_ps(hi, row.as_ptr().add(p + 16));
            let packed: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(b, a));
            let mask = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
            _mm512_mask_storeu_epi16(dst.add(p) as *mut _, mask, packed);
        }
        p += 32;
    }
}

/// Writes the tile's `rows x cols` corner: `out = acc (+ bias)` or `out += acc`.
///
/// # Safety
/// AVX-512 level supported; `dst.out + r * ld + c` is valid for reads and writes for every
/// `r < rows`, `c < cols`, and `dst.bias` (if any) for `cols` reads.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn store(acc: &Acc, dst: &Dst) {
    let masks = [
        ((1u32 << dst.cols.min(16)) - 1) as u16,
        ((1u32 << dst.cols.saturating_sub(16).min(16)) - 1) as u16,
    ];
    // SAFETY: only lanes below `cols` and rows below `rows` are touched (caller's contract).
    unsafe {
        let bias = dst
            .bias
            .map(|b| [0, 1].map(|h| _mm512_maskz_loadu_ps(masks[h], b.wrapping_add(16 * h))));
        for (r, acc) in acc.iter().enumerate().take(dst.rows) {
            let row = dst.out.add(r * dst.ld);
            for h in 0..2 {
                // Past `cols` the mask is empty: the address may lie beyond `out`, so it is
                // formed without the in-bounds promise of `add`.
                let p = row.wrapping_add(16 * h);
                let mut v = acc[h];
                if dst.accumulate {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[h], p));
                } else if let Some(b) = bias {
                    v = _mm512_add_ps(v, b[h]);
                }
                _mm512_mask_storeu_ps(p, masks[h], v);
            }
        }
    }
}
