//! GEMM over weights packed once (AVX-512; AVX2 in `packed_avx2.rs`): `out[m, n] = a[m, k] @
//! w[n, k]^T + bias[n]`, the contract of `cpu::reference::matmul`, for prefill and vision
//! shapes.
//!
//! The per-call path in `mod.rs` re-packs (and widens) the whole weight on every call, which
//! cost a quarter of a prefill. Here [`PackedWeights::pack`] lays a weight out once, when
//! the runtime compiles a graph that reads it, in the order the micro-kernels read it; the
//! runtime keeps it beside the mapped file. The AVX2 kernels take the same layout, each
//! 12 x 32 tile as four 6 x 16 register tiles (at 85% of this machine's AVX2 FMA peak at
//! 512x576x576, `iris bench kernels --isa avx2`). Layout: columns (rows of `w`) in groups of `NR` = 32, each group `[k][32]`
//! (f32, or f16 widened by `vcvtph2ps` in the kernel) or `[k/2][32][2]` bf16 pairs (k padded
//! to even with zeros), zeros past `n`.
//! The bf16 pair order serves both kernels: the FMA kernel splits a pair into two f32
//! vectors with a shift and a mask; `vdpbf16ps` consumes it as is.
//!
//! Micro-kernel: `MR` = 12 rows of `a` (broadcast) x 32 columns (2 zmm) = 24 accumulators.
//! (The packing of `a` lives in `packed_a.rs`.)
//! `a` is packed per call into panels `[k][12]` (f32), or rounded to bf16 row-major (bf16 dot,
//! whose kernel broadcasts pairs from 12 rows), zeros
//! past `m`. Work is split over rayon into tiles of up to 40 panels x `COL_GROUPS`
//! groups; inside a tile `k` runs in blocks (256 deep for f32, 512 for bf16 weights widened
//! to f32) so a group's block (32 KiB) stays in L1 while the tile's `a` panels (up to 480
//! rows) stream from L2, and each block of `w` is read from memory once per row tile. The
//! bf16 dot kernel, twice as fast per step, takes `k` whole up to 4096 (`KC_BF16_DOT`).
//! Results go to `out` with the bias in the first block, accumulated in later ones, masked
//! at the edges.
//!
//! Precision: f32, bf16 and f16 weights with f32 activations are exact f32 FMA (NMSE vs the
//! reference ~1e-14). [`Precision::Bf16Dot`] (bf16 weights, AVX512-BF16) rounds `a` to bf16
//! and runs `vdpbf16ps` at twice the FMA rate: bf16 compute, as PyTorch's bf16 matmul.
//!
//! Measured (`iris bench kernels`, 2 threads, 2-core AMD EPYC VM with AVX512-BF16, idle,
//! probed FMA peak 530 GFLOP/s; PyTorch in the same run, see BENCHMARKS.md), GFLOP/s:
//!
//! | kernel | 512x1536x576 | 577x4096x1024 | 2048^3 |
//! |---|---|---|---|
//! | per-call GEMM (`mod.rs`), f32 weights | 373 | 314 | 335 |
//! | packed, f32 weights | 442 | 407 | 394 |
//! | packed, bf16 weights (f32 compute) | 451 | 427 | 429 |
//! | packed, bf16 dot | 872 | 776 | 791 |
//! | PyTorch f32 (MKL) / bf16 (oneDNN) | 204 / 917 | 193 / 712 | 206 / 927 |

use rayon::prelude::*;

use super::packed_a::{with_packed_a, with_packed_a_bf16};
use super::packed_avx2 as avx2;
use super::packed_avx512 as simd;
use crate::cpu::isa::{CpuFeatures, Isa};
use crate::cpu::simd::SendPtr;
use crate::WeightSlice;

/// Rows of `a` per micro-tile (broadcast).
pub(super) const MR: usize = 12;
/// Columns per micro-tile and packed group (two 16-lane vectors).
pub(crate) const NR: usize = 32;
/// Depth of a `k` block over f32 weights: a group's block (`KC x 32` f32, 32 KiB) stays in L1.
const KC: usize = 256;
/// Depth of a `k` block over bf16 weights (the same 32 KiB; fewer passes over `out`).
const KC_BF16: usize = 512;
/// Depth of a `k` block of the bf16 dot kernel: the whole of `k` up to 4096, so `out` is
/// written once. Its weight block (256 KiB at 4096) streams from L2, which the kernel's rate
/// allows; with 512-deep blocks the read-add-write of `out` between blocks took 5% of a
/// 2048^3 GEMM, and whole-`k` blocks ran 2048^3 and 577x4096x1024 8-11% faster and k = 576
/// (one block, not 512 + 64) 5-9% faster (medians of 6 alternated runs).
const KC_BF16_DOT: usize = 4096;
/// Bytes of a row tile's bf16 `a` (one `k` block) past which the bf16 dot GEMM takes 6 x 64
/// micro-tiles instead of 12 x 32 (a core's L2 is 1 MiB on the benchmark machine). There,
/// alternated rounds (`iris bench kernels`, `IRIS_BF16_DOT=1`) gave 2048^3 (1.7 MB of `a`
/// per tile) a median 950 against 923 GFLOP/s; at the k = 576 and 577x4096x1024 shapes
/// (0.3-0.6 MB) it was 0.4-2% slower, so they keep 12 x 32. The vision towers, whose fc2
/// GEMMs (k = 4096 / 3072) take it, measured the same within noise (medians of five
/// alternated runs, bf16 compute: CLIP-L/14-336 542 against 553 ms, SigLIP-512 750 against
/// 741 ms).
const WIDE_DOT_A_BYTES: usize = 1 << 20;
/// Most `a` panels per parallel tile: a tile's `a` block (`KC` deep) stays in L2.
const MAX_ROW_PANELS: usize = 40;
/// Column groups per parallel tile.
const COL_GROUPS: usize = 4;

/// A weight `w[n, k]` laid out for the packed GEMM.
pub struct PackedWeights {
    n: usize,
    k: usize,
    pub(super) data: PackedData,
}

pub(super) enum PackedData {
    /// `[group][k][32]`.
    F32(Vec<f32>),
    /// `[group][k/2][32][2]` bf16 bits.
    Bf16(Vec<u16>),
    /// `[group][k][32]` f16 bits (widened with `vcvtph2ps` in the kernels).
    F16(Vec<u16>),
}

/// `w` (`[n, k]`) as groups of 32 columns `[group][k][32]` of `convert(x)`, zeros past `n`:
/// the layout of the f32 and f16 kernels.
fn pack_columns<T: Copy + Sync, U: Copy + Default + Send>(
    w: &[T],
    n: usize,
    k: usize,
    convert: impl Fn(T) -> U + Sync,
) -> Vec<U> {
    let mut data = vec![U::default(); n.div_ceil(NR) * k * NR];
    if k > 0 {
        data.par_chunks_mut(k * NR)
            .enumerate()
            .for_each(|(g, dst)| {
                for c in 0..NR.min(n - g * NR) {
                    let row = &w[(g * NR + c) * k..][..k];
                    for (p, &x) in row.iter().enumerate() {
                        dst[p * NR + c] = convert(x);
                    }
                }
            });
    }
    data
}

/// How the packed GEMM computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// f32 activations, f32 FMA (bf16 weights widened exactly).
    F32,
    /// `a` rounded to bf16, `vdpbf16ps` with f32 accumulation (bf16 weights only).
    Bf16Dot,
}

impl PackedWeights {
    /// Whether the packed GEMM and GEMV run at `isa` on this CPU (AVX-512 or AVX2).
    pub fn supported(isa: Isa) -> bool {
        matches!(isa, Isa::Avx512 | Isa::Avx2) && isa.is_supported()
    }

    /// Packs `w` (`n * k` elements, row-major `[n, k]`), f32, bf16 or f16. (`Option` for
    /// dtypes a later kernel may not take; every current one packs.)
    pub fn pack(w: WeightSlice, n: usize, k: usize) -> Option<Self> {
        assert_eq!(w.len(), n * k, "pack: w must be [n = {n}, k = {k}]");
        let groups = n.div_ceil(NR);
        let data = match w {
            WeightSlice::F32(w) => PackedData::F32(pack_columns(w, n, k, |x| x)),
            WeightSlice::BF16(w) => {
                let k2 = k.div_ceil(2);
                let mut data = vec![0u16; groups * k2 * NR * 2];
                if k > 0 {
                    data.par_chunks_mut(k2 * NR * 2)
                        .enumerate()
                        .for_each(|(g, dst)| {
                            for c in 0..NR.min(n - g * NR) {
                                let row = &w[(g * NR + c) * k..][..k];
                                for (p, x) in row.iter().enumerate() {
                                    dst[((p / 2) * NR + c) * 2 + p % 2] = x.to_bits();
                                }
                            }
                        });
                }
                PackedData::Bf16(data)
            }
            WeightSlice::F16(w) => PackedData::F16(pack_columns(w, n, k, |x| x.to_bits())),
        };
        Some(PackedWeights { n, k, data })
    }

    /// Rows of the original weight (`n`).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Columns of the original weight (`k`).
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match &self.data {
            PackedData::F32(d) => d.len() * 4,
            PackedData::Bf16(d) | PackedData::F16(d) => d.len() * 2,
        }
    }

    /// Whether `precision` can run on these weights on this CPU.
    pub fn allows(&self, precision: Precision) -> bool {
        match precision {
            Precision::F32 => true,
            Precision::Bf16Dot => {
                matches!(self.data, PackedData::Bf16(_)) && CpuFeatures::detect().avx512_bf16
            }
        }
    }
}

/// `out = a @ w^T + bias` over packed weights with the kernels of `isa`. `bias` is `n` f32
/// values or empty. Panics unless [`PackedWeights::supported`]`(isa)` (and, for
/// [`Precision::Bf16Dot`], AVX-512 with AVX512-BF16), if the precision does not fit the
/// weights, or if the slice lengths disagree with the sizes.
#[allow(clippy::too_many_arguments)] // the matmul contract plus the ISA and precision
pub fn gemm(
    isa: Isa,
    a: &[f32],
    w: &PackedWeights,
    bias: &[f32],
    m: usize,
    precision: Precision,
    out: &mut [f32],
) {
    let (n, k) = (w.n, w.k);
    assert!(
        PackedWeights::supported(isa),
        "packed GEMM needs AVX-512 or AVX2, not {isa}"
    );
    assert!(
        w.allows(precision) && (precision == Precision::F32 || isa == Isa::Avx512),
        "packed GEMM: {precision:?} unavailable at {isa}"
    );
    assert_eq!(a.len(), m * k, "packed GEMM: a must be [m = {m}, k = {k}]");
    assert_eq!(
        out.len(),
        m * n,
        "packed GEMM: out must be [m = {m}, n = {n}]"
    );
    assert!(
        bias.is_empty() || bias.len() == n,
        "packed GEMM: bias must hold n = {n}"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in out.chunks_mut(n) {
            row.iter_mut()
                .enumerate()
                .for_each(|(j, o)| *o = bias.get(j).copied().unwrap_or(0.0));
        }
        return;
    }
    let panels = m.div_ceil(MR);
    let groups = n.div_ceil(NR);
    // Row tiles as even as MAX_ROW_PANELS allows: every W block is read from memory once per
    // row tile, then reused over the tile's panels.
    let row_panels = panels.div_ceil(panels.div_ceil(MAX_ROW_PANELS));
    let row_tiles = panels.div_ceil(row_panels);
    let col_tiles = groups.div_ceil(COL_GROUPS);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let job = Job {
        m,
        n,
        k,
        bias,
        row_panels,
        out: out_ptr,
        kernels: Kernels::at(isa),
    };
    match (&w.data, precision) {
        (PackedData::F32(wd), _) => with_packed_a(a, m, k, |apack| {
            (0..row_tiles * col_tiles).into_par_iter().for_each(|t| {
                // SAFETY: the ISA asserted above; tiles are disjoint (see `Job::tile`).
                unsafe { job.tile(t, col_tiles, apack, KernelKind::F32(wd)) }
            })
        }),
        (PackedData::Bf16(wd), Precision::F32) => {
            with_packed_a(a, m, k.next_multiple_of(2), |apack| {
                (0..row_tiles * col_tiles).into_par_iter().for_each(|t| {
                    // SAFETY: as above.
                    unsafe { job.tile(t, col_tiles, apack, KernelKind::Bf16Fma(wd)) }
                })
            })
        }
        (PackedData::F16(wd), _) => with_packed_a(a, m, k, |apack| {
            (0..row_tiles * col_tiles).into_par_iter().for_each(|t| {
                // SAFETY: as above.
                unsafe { job.tile(t, col_tiles, apack, KernelKind::F16(wd)) }
            })
        }),
        (PackedData::Bf16(wd), Precision::Bf16Dot) => with_packed_a_bf16(a, m, k, |apack| {
            (0..row_tiles * col_tiles).into_par_iter().for_each(|t| {
                // SAFETY: AVX-512 and AVX512-BF16 asserted above (`allows`); as above.
                unsafe { job.tile_dot(t, col_tiles, apack, wd) }
            })
        }),
    }
}

/// The packed operand of a tile's kernel.
#[derive(Clone, Copy)]
enum KernelKind<'a> {
    F32(&'a [f32]),
    Bf16Fma(&'a [u16]),
    F16(&'a [u16]),
}

/// The micro-kernels of one ISA level (all take the same packed operands).
struct Kernels {
    f32: unsafe fn(usize, *const f32, *const f32, &simd::Dst),
    f16: unsafe fn(usize, *const f32, *const u16, &simd::Dst),
    bf16: unsafe fn(usize, *const f32, *const u16, &simd::Dst),
}

impl Kernels {
    /// The kernels of `isa` (AVX-512, else AVX2).
    fn at(isa: Isa) -> Self {
        if isa == Isa::Avx512 {
            Kernels {
                f32: simd::tile_f32,
                f16: simd::tile_f16,
                bf16: simd::tile_bf16,
            }
        } else {
            Kernels {
                f32: avx2::tile_f32,
                f16: avx2::tile_f16,
                bf16: avx2::tile_bf16,
            }
        }
    }
}

struct Job<'a> {
    m: usize,
    n: usize,
    k: usize,
    bias: &'a [f32],
    /// `a` panels per parallel tile.
    row_panels: usize,
    out: SendPtr,
    kernels: Kernels,
}

impl Job<'_> {
    /// Runs parallel tile `t`: its row panels x column groups, over every `k` block.
    ///
    /// # Safety
    /// The CPU supports the ISA of `self.kernels`; `apack` is `a` packed as `[panel][kp][MR]`
    /// (kp = k, or k rounded up to even for bf16 weights); each tile writes only its own rows
    /// x columns of `out`.
    unsafe fn tile(&self, t: usize, col_tiles: usize, apack: &[f32], kind: KernelKind) {
        let (rt, ct) = (t / col_tiles, t % col_tiles);
        let kp = match kind {
            KernelKind::F32(_) | KernelKind::F16(_) => self.k,
            KernelKind::Bf16Fma(_) => self.k.next_multiple_of(2),
        };
        let panels = self.panels(rt);
        let groups = ct * COL_GROUPS..(ct * COL_GROUPS + COL_GROUPS).min(self.n.div_ceil(NR));
        let depth = match kind {
            KernelKind::F32(_) => KC,
            KernelKind::Bf16Fma(_) | KernelKind::F16(_) => KC_BF16,
        };
        for k0 in (0..kp).step_by(depth) {
            let kc = depth.min(kp - k0);
            for g in groups.clone() {
                for panel in panels.clone() {
                    let dst = self.dst(panel, g, k0);
                    let a = apack[panel * kp * MR + k0 * MR..].as_ptr();
                    // SAFETY: a holds kc * MR floats from here; w kc * NR elements of this
                    // group from k0; dst as `Job::dst` (disjoint per tile).
                    unsafe {
                        let kernels = &self.kernels;
                        match kind {
                            KernelKind::F32(w) => {
                                (kernels.f32)(kc, a, w[(g * self.k + k0) * NR..].as_ptr(), &dst)
                            }
                            KernelKind::Bf16Fma(w) => {
                                (kernels.bf16)(kc / 2, a, w[(g * kp + k0) * NR..].as_ptr(), &dst)
                            }
                            KernelKind::F16(w) => {
                                (kernels.f16)(kc, a, w[(g * self.k + k0) * NR..].as_ptr(), &dst)
                            }
                        }
                    }
                }
            }
        }
    }

    /// As [`Job::tile`] for the bf16 dot kernel: `apack` is `a` rounded to bf16, row-major
    /// (rows of `k` rounded up to even, whole panels). Row tiles whose `a` block passes
    /// [`WIDE_DOT_A_BYTES`] take the 6 x 64 micro-tiles ([`Job::dot_block_wide`]).
    ///
    /// # Safety
    /// AVX-512 and AVX512-BF16 supported; as [`Job::tile`].
    unsafe fn tile_dot(&self, t: usize, col_tiles: usize, apack: &[u16], w: &[u16]) {
        let (rt, ct) = (t / col_tiles, t % col_tiles);
        let kp = self.k.next_multiple_of(2);
        let panels = self.panels(rt);
        let groups = ct * COL_GROUPS..(ct * COL_GROUPS + COL_GROUPS).min(self.n.div_ceil(NR));
        let wide = self.row_panels * MR * KC_BF16_DOT.min(kp) * 2 > WIDE_DOT_A_BYTES;
        for k0 in (0..kp).step_by(KC_BF16_DOT) {
            let kc = KC_BF16_DOT.min(kp - k0);
            if wide {
                // SAFETY: forwarded.
                unsafe { self.dot_block_wide(panels.clone(), groups.clone(), (k0, kc), apack, w) };
                continue;
            }
            for g in groups.clone() {
                for panel in panels.clone() {
                    let dst = self.dst(panel, g, k0);
                    // SAFETY: apack holds this panel's MR rows of kp u16 (kc from k0), w kc
                    // * NR of this group from k0; dst as `Job::dst`.
                    unsafe {
                        simd::tile_bf16_dot(
                            kc / 2,
                            apack[panel * MR * kp + k0..].as_ptr(),
                            kp / 2,
                            w[(g * kp + k0) * NR..].as_ptr(),
                            &dst,
                        )
                    }
                }
            }
        }
    }

    /// The `k` block `k0..k0 + kc` of a dot tile in 6 x 64 micro-tiles (pairs of groups, half
    /// panels), for row tiles whose `a` does not stay in L2: it reads `a` half as often as the
    /// 12 x 32 tile, and `w`, which stays in L2 over the tile's panels, twice as often.
    ///
    /// # Safety
    /// As `tile_dot`.
    unsafe fn dot_block_wide(
        &self,
        panels: std::ops::Range<usize>,
        groups: std::ops::Range<usize>,
        (k0, kc): (usize, usize),
        apack: &[u16],
        w: &[u16],
    ) {
        let kp = self.k.next_multiple_of(2);
        for g in groups.clone().step_by(2) {
            // A lone last group runs as its own pair, with nothing stored for the second.
            let (g1, pair) = if g + 1 < groups.end {
                (g + 1, true)
            } else {
                (g, false)
            };
            for panel in panels.clone() {
                for half in 0..2 {
                    let rows = MR.min(self.m - panel * MR).saturating_sub(6 * half).min(6);
                    if rows == 0 {
                        continue;
                    }
                    let half_dst = |group: usize, rows: usize| {
                        let mut dst = self.dst(panel, group, k0);
                        dst.out = dst.out.wrapping_add(6 * half * self.n);
                        dst.rows = rows;
                        dst
                    };
                    let (d0, d1) = (half_dst(g, rows), half_dst(g1, if pair { rows } else { 0 }));
                    // SAFETY: as in `tile_dot`, for rows 6 half.. of the panel and groups g, g1.
                    unsafe {
                        simd::tile_bf16_dot_6x64(
                            kc / 2,
                            apack[(panel * MR + 6 * half) * kp + k0..].as_ptr(),
                            kp / 2,
                            (
                                w[(g * kp + k0) * NR..].as_ptr(),
                                w[(g1 * kp + k0) * NR..].as_ptr(),
                            ),
                            (&d0, &d1),
                        )
                    }
                }
            }
        }
    }

    /// The `a` panels of row tile `rt`.
    fn panels(&self, rt: usize) -> std::ops::Range<usize> {
        let start = rt * self.row_panels;
        start..(start + self.row_panels).min(self.m.div_ceil(MR))
    }

    /// Where micro-tile (panel, group) lands in `out`, and how.
    fn dst(&self, panel: usize, g: usize, k0: usize) -> simd::Dst {
        let (i0, j0) = (panel * MR, g * NR);
        simd::Dst {
            // SAFETY (of the later writes): rows i0..i0 + rows < m, columns j0..j0 + cols <
            // n lie in `out`; every (panel, group) belongs to exactly one tile, so no two
            // tasks write the same element, and `out` outlives the parallel loop.
            out: self.out.get().wrapping_add(i0 * self.n + j0),
            ld: self.n,
            rows: MR.min(self.m - i0),
            cols: NR.min(self.n - j0),
            bias: (k0 == 0 && !self.bias.is_empty()).then(|| self.bias[j0..].as_ptr()),
            accumulate: k0 > 0,
        }
    }
}

#[cfg(test)]
#[path = "packed_tests.rs"]
mod tests;
