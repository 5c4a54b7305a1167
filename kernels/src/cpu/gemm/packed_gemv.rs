//! GEMV over packed weights (AVX-512; AVX2 in `packed_gemv_avx2.rs`), for decode (`m <= 4`): `out[m, n] = x[m, k] @ w[n, k]^T
//! + bias[n]` reading the copy `PackedWeights::pack` made for the prefill GEMM, so a weight
//! used by both is resident once (the original mapped pages are not touched again) and is
//! streamed linearly: each group of 32 columns is one contiguous run of `k x 32` values.
//!
//! Per group: the `m` rows of `x` are broadcast, 32 columns are two vectors; bf16 pairs are
//! split into their even and odd elements, each with its own accumulators (four chains per
//! row, so a single-row decode is not bound by FMA latency). Groups are split over the
//! spinning team (`cpu::team`) when the matrix is large enough. No allocation.
//!
//! The AVX-512 kernels ask for the weight stream [`PREFETCH_AHEAD`] bytes ahead of their
//! loads, as non-temporal prefetches. On the 2-core AVX-512 machine the benchmarks run on, that
//! took SmolLM2 bf16 decode from a median 148.8 to 170.2 tok/s (6 alternated rounds; 1024
//! and 4096 bytes ahead did as well, a T0 hint less well): with only two cores streaming,
//! the hardware prefetchers alone leave memory bandwidth unused.

// AVX-512 intrinsics are stable since Rust 1.89.
#![allow(clippy::incompatible_msrv)]

use std::arch::x86_64::*;

use super::packed::{PackedData, PackedWeights, NR};
use super::packed_gemv_avx2 as avx2;
use crate::cpu::isa::Isa;
use crate::cpu::simd::SendPtr;
use crate::cpu::team;
use crate::WeightSlice;

/// Most rows of `x`.
pub const MAX_M: usize = 4;
/// Multiply-adds (`n k`) below which the call stays on the calling thread.
const PAR_MIN_MACS: usize = 1 << 16;
/// Most column groups per parallel task.
const GROUPS_PER_TASK: usize = 4;
/// How far ahead of its loads the GEMV prefetches the weight stream, in bytes. A
/// task's groups are contiguous, so the prefetch runs on into its next group; past its
/// last one it asks for a few lines it will not read (a prefetch never faults).
const PREFETCH_AHEAD: usize = 2048;

/// Asks for the cache lines of `bytes` bytes from `PREFETCH_AHEAD` past `at`, non-temporal:
/// a weight line is read once per decode step.
#[inline]
#[target_feature(enable = "sse")]
pub(super) fn prefetch_ahead(at: *const u8, bytes: usize) {
    let mut line = 0;
    while line < bytes {
        // The address is only hinted, never dereferenced, so it may lie past the weight.
        _mm_prefetch::<_MM_HINT_NTA>(at.wrapping_add(PREFETCH_AHEAD + line) as *const i8);
        line += 64;
    }
}

/// `out = x @ w^T + bias` for `m <= MAX_M` rows with the kernels of `isa`. Panics unless
/// [`PackedWeights::supported`]`(isa)`, or if the sizes disagree.
pub fn gemv(
    isa: Isa,
    x: &[f32],
    w: &PackedWeights,
    bias: Option<WeightSlice>,
    m: usize,
    out: &mut [f32],
) {
    let (n, k) = (w.rows(), w.cols());
    assert!(
        PackedWeights::supported(isa),
        "packed GEMV needs AVX-512 or AVX2, not {isa}"
    );
    assert!(m <= MAX_M, "packed GEMV: m = {m} > {MAX_M}");
    assert_eq!(x.len(), m * k, "packed GEMV: x must be [m = {m}, k = {k}]");
    assert_eq!(
        out.len(),
        m * n,
        "packed GEMV: out must be [m = {m}, n = {n}]"
    );
    if let Some(b) = &bias {
        assert_eq!(b.len(), n, "packed GEMV: bias must hold n = {n} elements");
    }
    if m == 0 || n == 0 {
        return;
    }
    let groups = n.div_ceil(NR);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let run = |g: usize| {
        let cols = NR.min(n - g * NR);
        let mut b = [0.0f32; NR];
        if let Some(bias) = bias {
            for (c, b) in b.iter_mut().enumerate().take(cols) {
                *b = bias.get(g * NR + c);
            }
        }
        let job = Group {
            x,
            m,
            k,
            bias: &b,
            cols,
            // SAFETY (of the writes in `run_*`): columns g*32..g*32 + cols of the m rows lie
            // in `out`; each group is run once, so no two tasks write the same element, and
            // `out` outlives the parallel loop.
            out: out_ptr.get().wrapping_add(g * NR),
            ld: n,
        };
        // SAFETY: the ISA asserted above; the group's packed data is `k x 32` (f32) or
        // `k2 x 32 x 2` (bf16) values from its start.
        unsafe {
            match (&w.data, isa) {
                (PackedData::F32(d), Isa::Avx512) => job.run_f32(d[g * k * NR..].as_ptr()),
                (PackedData::Bf16(d), Isa::Avx512) => {
                    job.run_bf16(d[g * k.div_ceil(2) * 2 * NR..].as_ptr())
                }
                (PackedData::F16(d), Isa::Avx512) => job.run_f16(d[g * k * NR..].as_ptr()),
                (PackedData::F32(d), _) => avx2::run_f32(&job, d[g * k * NR..].as_ptr()),
                (PackedData::Bf16(d), _) => {
                    avx2::run_bf16(&job, d[g * k.div_ceil(2) * 2 * NR..].as_ptr())
                }
                (PackedData::F16(d), _) => avx2::run_f16(&job, d[g * k * NR..].as_ptr()),
            }
        }
    };
    if n * k < PAR_MIN_MACS {
        (0..groups).for_each(run);
    } else {
        // A whole number of equal tasks per thread: with 4 groups per task a 192-column
        // weight (6 groups) split 4 + 2 over two threads.
        let threads = team::threads();
        let tasks = threads * groups.div_ceil(threads * GROUPS_PER_TASK);
        let per_task = groups.div_ceil(tasks);
        team::for_each(groups.div_ceil(per_task), &|t| {
            (t * per_task..((t + 1) * per_task).min(groups)).for_each(run)
        });
    }
}

/// The body of the `[k][32]` GEMVs (f32 and f16 weights): `$load(p, h)` is the weight vector
/// of columns `16 h .. 16 h + 16` at step `p`, whose 32 columns start at `$w` plus
/// `p * $step_bytes` bytes; two steps per iteration into separate accumulators, then
/// [`Group::store`]. Expanded inside each `#[target_feature]` method so the loads inline;
/// call it in an `unsafe` block.
macro_rules! gemv_rows {
    ($group:expr, $w:expr, $step_bytes:expr, $load:expr) => {{
        let g = $group;
        let mut acc: Acc = [[_mm512_setzero_ps(); 4]; MAX_M];
        let x = g.x.as_ptr();
        let mut p = 0;
        while p + 2 <= g.k {
            prefetch_ahead(
                ($w as *const u8).wrapping_add(p * $step_bytes),
                2 * $step_bytes,
            );
            let (w0, w1, w2, w3) = ($load(p, 0), $load(p, 1), $load(p + 1, 0), $load(p + 1, 1));
            for (r, acc) in acc.iter_mut().enumerate().take(g.m) {
                let a0 = _mm512_set1_ps(*x.add(r * g.k + p));
                let a1 = _mm512_set1_ps(*x.add(r * g.k + p + 1));
                acc[0] = _mm512_fmadd_ps(a0, w0, acc[0]);
                acc[1] = _mm512_fmadd_ps(a0, w1, acc[1]);
                acc[2] = _mm512_fmadd_ps(a1, w2, acc[2]);
                acc[3] = _mm512_fmadd_ps(a1, w3, acc[3]);
            }
            p += 2;
        }
        if p < g.k {
            let (w0, w1) = ($load(p, 0), $load(p, 1));
            for (r, acc) in acc.iter_mut().enumerate().take(g.m) {
                let a0 = _mm512_set1_ps(*x.add(r * g.k + p));
                acc[0] = _mm512_fmadd_ps(a0, w0, acc[0]);
                acc[1] = _mm512_fmadd_ps(a0, w1, acc[1]);
            }
        }
        g.store(&acc);
    }};
}

/// One group of 32 columns.
pub(super) struct Group<'a> {
    pub x: &'a [f32],
    pub m: usize,
    pub k: usize,
    pub bias: &'a [f32; NR],
    pub cols: usize,
    pub out: *mut f32,
    pub ld: usize,
}

type Acc = [[__m512; 4]; MAX_M];

impl Group<'_> {
    /// # Safety
    /// AVX-512 supported; `w` holds `k * 32` floats; `out` as in [`gemv`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn run_f32(&self, w: *const f32) {
        // SAFETY: p < k keeps reads inside w and each row of x (caller's contract).
        unsafe {
            gemv_rows!(self, w, 4 * NR, |p: usize, h: usize| _mm512_loadu_ps(
                w.add(p * NR + 16 * h)
            ))
        }
    }

    /// As [`Group::run_f32`] with f16 weights `[k][32]`, widened by `vcvtph2ps`.
    ///
    /// # Safety
    /// AVX-512 supported; `w` holds `k * 32` u16; `out` as in [`gemv`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn run_f16(&self, w: *const u16) {
        // SAFETY: p < k keeps reads inside w and each row of x (caller's contract).
        unsafe {
            gemv_rows!(self, w, 2 * NR, |p: usize, h: usize| _mm512_cvtph_ps(
                _mm256_loadu_si256(w.add(p * NR + 16 * h) as *const _)
            ))
        }
    }

    /// # Safety
    /// AVX-512 supported; `w` holds `k2 * 64` u16 (bf16 pairs `[q][32][2]`); `out` as in
    /// [`gemv`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn run_bf16(&self, w: *const u16) {
        let mut acc: Acc = [[_mm512_setzero_ps(); 4]; MAX_M];
        let high = _mm512_set1_epi32(0xffff_0000u32 as i32);
        let x = self.x.as_ptr();
        let k2 = self.k / 2;
        // SAFETY: q < k2 (and the odd tail, pair k2, only when k is odd) keep reads inside
        // w and each row of x (caller's contract).
        unsafe {
            for q in 0..self.k.div_ceil(2) {
                prefetch_ahead(w.add(q * 2 * NR) as *const u8, 4 * NR);
                let x0 = _mm512_loadu_si512(w.add(q * 2 * NR) as *const _);
                let x1 = _mm512_loadu_si512(w.add(q * 2 * NR + NR) as *const _);
                let even0 = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(x0));
                let even1 = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(x1));
                let odd0 = _mm512_castsi512_ps(_mm512_and_si512(x0, high));
                let odd1 = _mm512_castsi512_ps(_mm512_and_si512(x1, high));
                for (r, acc) in acc.iter_mut().enumerate().take(self.m) {
                    let row = x.add(r * self.k + 2 * q);
                    let ae = _mm512_set1_ps(*row);
                    acc[0] = _mm512_fmadd_ps(ae, even0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(ae, even1, acc[1]);
                    if q < k2 {
                        let ao = _mm512_set1_ps(*row.add(1));
                        acc[2] = _mm512_fmadd_ps(ao, odd0, acc[2]);
                        acc[3] = _mm512_fmadd_ps(ao, odd1, acc[3]);
                    }
                }
            }
            self.store(&acc);
        }
    }

    /// `out[r, c] = acc (both chains) + bias` for `r < m`, `c < cols`.
    ///
    /// # Safety
    /// AVX-512 supported; `out` as in [`gemv`].
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn store(&self, acc: &Acc) {
        let masks = [
            ((1u32 << self.cols.min(16)) - 1) as u16,
            ((1u32 << self.cols.saturating_sub(16).min(16)) - 1) as u16,
        ];
        // SAFETY: lanes below `cols` of rows below `m` (caller's contract); bias holds 32.
        unsafe {
            for (r, acc) in acc.iter().enumerate().take(self.m) {
                let row = self.out.add(r * self.ld);
                for h in 0..2 {
                    let b = _mm512_loadu_ps(self.bias.as_ptr().add(16 * h));
                    let v = _mm512_add_ps(_mm512_add_ps(acc[h], acc[h + 2]), b);
                    // Past `cols` the mask is empty and the address may lie beyond `out`.
                    _mm512_mask_storeu_ps(row.wrapping_add(16 * h), masks[h], v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference;
    use crate::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};
    use half::bf16;

    #[test]
    fn packed_gemv_matches_reference() {
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|&isa| PackedWeights::supported(isa))
            .collect();
        if isas.is_empty() {
            eprintln!("skipped: neither AVX-512 nor AVX2");
            return;
        }
        let mut rng = Rng::new(151);
        for (n, k) in [
            (1, 1),
            (33, 7),
            (130, 577),
            (577, 64),
            (1000, 1031),
            (70, 2),
        ] {
            let wf = rng.vec(n * k, -1.0, 1.0);
            let wb: Vec<bf16> = wf.iter().map(|&v| bf16::from_f32(v)).collect();
            let wh: Vec<half::f16> = wf.iter().map(|&v| half::f16::from_f32(v)).collect();
            let bias: Vec<bf16> = rng
                .vec(n, -1.0, 1.0)
                .into_iter()
                .map(bf16::from_f32)
                .collect();
            for m in 1..=MAX_M {
                let x = rng.vec(m * k, -1.0, 1.0);
                for (w, with_bias) in [
                    (WeightSlice::F32(&wf), false),
                    (WeightSlice::BF16(&wb), true),
                    (WeightSlice::F32(&wf), true),
                    (WeightSlice::F16(&wh), true),
                ] {
                    let packed = PackedWeights::pack(w, n, k).expect("pack");
                    let b = with_bias.then_some(WeightSlice::BF16(&bias));
                    let mut want = vec![0.0; m * n];
                    reference::matmul(&x, w, b, m, n, k, &mut want);
                    let dtype = match w {
                        WeightSlice::F32(_) => "f32",
                        WeightSlice::BF16(_) => "bf16",
                        WeightSlice::F16(_) => "f16",
                    };
                    for &isa in &isas {
                        let mut got = vec![f32::NAN; m * n];
                        gemv(isa, &x, &packed, b, m, &mut got);
                        let what =
                            format!("packed gemv {isa} {m}x{n}x{k} {dtype} bias={with_bias}");
                        assert_nmse(&what, &got, &want, NMSE_F32_REDUCTION);
                    }
                }
            }
        }
    }
}
