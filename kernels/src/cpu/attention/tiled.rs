//! Tiled flash attention for prefill and ViT shapes (AVX-512): the same contract as
//! `cpu::reference::attention`, used when there are enough query rows per head to fill a tile.
//!
//! The per-row kernel in `mod.rs` does one dot product per (query, key) and one scalar `exp`
//! per score, which made attention a quarter of SmolLM2's 512-token prefill. Here a tile of
//! `QB` queries meets a block of `KB` keys as a small GEMM:
//! - `K` of each (batch, kv head) is packed once per call, transposed and zero-padded, into
//!   blocks `[d][KB]`, shared by every query head of the GQA group;
//! - per task (batch, head, tile of `QB` query rows), `Q` is packed `[d][QB]`; the score tile
//!   `S[QB][KB]` is reduced over `d` in 24 zmm (as the GEMM micro-kernel: 2 vector loads of
//!   keys, `QB` broadcasts of queries, `2 QB` FMAs per `d`);
//! - online softmax per row on the vector `exp`, with causal lanes cleared;
//! - `O[QB][d] += P V` in groups of 4 rows x 64 dims of accumulators, `V` read in place.
//!
//! Blocks past the tile's last visible key are never visited (causal); rows with no visible
//! key in a block leave their state untouched; rows that see nothing end as zeros.
//!
//! | variant | prefill 512 tok, 9/3 heads, d 64, causal (2 threads, 2-core AMD EPYC VM) |
//! |---|---|
//! | per-row flash (mod.rs) | 9.5-14.6 GFLOP/s (loaded machine) |
//! | tiled (this file) | 261 GFLOP/s (idle; PyTorch SDPA f32 in the same run: 85) |

use rayon::prelude::*;

use super::tiled_avx512 as simd;
use crate::cpu::kv_element::KvElement;
use crate::cpu::reference::{AttentionParams, KvStrides};
use crate::cpu::simd::SendPtr;

/// Query rows per tile.
pub(super) const QB: usize = 12;
/// Keys per block (two 16-lane vectors).
pub(super) const KB: usize = 32;
/// Fewest query rows per head for which the tiled kernel pays for packing `K`.
pub(super) const MIN_Q_LEN: usize = 8;

/// Per-tile state of the online softmax, one entry per query row.
pub(super) struct RowState {
    pub max: [f32; QB],
    pub sum: [f32; QB],
}

/// `out = attention(q, k, v)` with the tiled kernel. The caller checked the operands
/// (`check_operands`) and that the CPU has the AVX-512 level.
#[allow(clippy::too_many_arguments)] // the reference's operands
pub(super) fn attention<T: KvElement>(
    q: &[f32],
    k: &[T],
    v: &[T],
    kv: KvStrides,
    mask: Option<&[f32]>,
    p: &AttentionParams,
    out: &mut [f32],
) {
    let AttentionParams {
        batch,
        q_len,
        kv_len,
        n_heads,
        n_kv_heads,
        head_dim: d,
        ..
    } = *p;
    let blocks = kv_len.div_ceil(KB);
    let kt = pack_keys(k, kv, batch, n_kv_heads, kv_len, d);
    let group = n_heads / n_kv_heads;
    let tiles = q_len.div_ceil(QB);
    let out_ptr = SendPtr(out.as_mut_ptr());
    (0..batch * n_heads * tiles).into_par_iter().for_each_init(
        || TileScratch::new(d),
        |scratch, t| {
            let (b, qh, tile) = (t / (n_heads * tiles), t / tiles % n_heads, t % tiles);
            let kvh = qh / group;
            let i0 = tile * QB;
            let rows = QB.min(q_len - i0);
            let job = Tile {
                q,
                v: &v[b * kv.batch + kvh * kv.head..],
                v_pos: kv.pos,
                kt: &kt[(b * n_kv_heads + kvh) * blocks * d * KB..][..blocks * d * KB],
                mask: mask.map(|m| &m[(b * q_len + i0) * kv_len..][..rows * kv_len]),
                q_off: |r: usize| ((b * q_len + i0 + r) * n_heads + qh) * d,
                rows,
                first_query: i0,
                params: p,
            };
            // SAFETY: the tile writes only its own rows (b, i0..i0 + rows, qh) of `out`, each
            // `d` floats at `q_off(r)` < out.len() (out has q's shape); tiles are disjoint and
            // `out` outlives the parallel loop.
            unsafe { run_tile(&job, scratch, out_ptr) };
        },
    );
}

/// Scratch of one worker, reused across its tiles.
pub(super) struct TileScratch {
    /// `Q` of the tile, `[d][QB]`, zeros past the tile's rows.
    pub q_pack: Vec<f32>,
    /// Output accumulators `[QB][d]`.
    pub acc: Vec<f32>,
    /// Scores, then probabilities, `[QB][KB]`.
    pub scores: [f32; QB * KB],
}

impl TileScratch {
    fn new(d: usize) -> Self {
        TileScratch {
            q_pack: vec![0.0; d * QB],
            acc: vec![0.0; QB * d],
            scores: [0.0; QB * KB],
        }
    }
}

/// One tile's inputs.
struct Tile<'a, T, F: Fn(usize) -> usize> {
    q: &'a [f32],
    /// Values of this (batch, kv head): key `j` at `j * v_pos`.
    v: &'a [T],
    v_pos: usize,
    /// Packed keys of this (batch, kv head): `[block][d][KB]`.
    kt: &'a [f32],
    /// The mask rows of this tile (`rows * kv_len`), if any.
    mask: Option<&'a [f32]>,
    /// Offset of row `r`'s query (and output) in `q` (and `out`).
    q_off: F,
    rows: usize,
    first_query: usize,
    params: &'a AttentionParams,
}

/// # Safety
/// The CPU has the AVX-512 level; `out` is valid for writes at `q_off(r)..q_off(r) + d` for
/// every row of the tile, and no other thread writes those elements.
unsafe fn run_tile<T: KvElement, F: Fn(usize) -> usize>(
    job: &Tile<T, F>,
    s: &mut TileScratch,
    out: SendPtr,
) {
    let p = job.params;
    let d = p.head_dim;
    let mut seen = [0usize; QB];
    for (r, seen) in seen.iter_mut().enumerate().take(job.rows) {
        *seen = p.visible_keys(job.first_query + r);
    }
    let last_visible = seen[..job.rows].iter().copied().max().unwrap_or(0);
    s.q_pack.fill(0.0);
    for r in 0..job.rows {
        let row = &job.q[(job.q_off)(r)..][..d];
        for (c, &x) in row.iter().enumerate() {
            s.q_pack[c * QB + r] = x;
        }
    }
    s.acc.fill(0.0);
    let mut state = RowState {
        max: [f32::NEG_INFINITY; QB],
        sum: [0.0; QB],
    };
    for block in 0..last_visible.div_ceil(KB) {
        let j0 = block * KB;
        let kt = &job.kt[block * d * KB..][..d * KB];
        // SAFETY: AVX-512 (caller); q_pack holds d * QB, kt d * KB, scores QB * KB floats.
        unsafe { simd::scores(d, s.q_pack.as_ptr(), kt.as_ptr(), s.scores.as_mut_ptr()) };
        let mut corr = [1.0f32; QB];
        let mut keys = [0usize; QB];
        for r in 0..QB {
            keys[r] = if r < job.rows {
                seen[r].saturating_sub(j0).min(KB)
            } else {
                0
            };
            if keys[r] == 0 {
                // Padding row, or nothing visible in this block: the state is unchanged.
                s.scores[r * KB..][..KB].fill(0.0);
                continue;
            }
            let mask = job.mask.map(|m| &m[r * p.kv_len + j0..][..keys[r]]);
            // SAFETY: AVX-512 (caller); the row holds KB scores.
            corr[r] = unsafe {
                simd::softmax_block(
                    &mut s.scores[r * KB..][..KB],
                    keys[r],
                    p.scale,
                    mask,
                    &mut state.max[r],
                    &mut state.sum[r],
                )
            };
        }
        let block_keys = keys.iter().copied().max().unwrap_or(0);
        // SAFETY: AVX-512 (caller); v holds block_keys values of d floats from key j0 (the
        // block lies within kv_len), acc QB * d floats, scores QB * KB.
        unsafe {
            simd::accumulate_pv(
                d,
                job.rows,
                block_keys,
                job.v[j0 * job.v_pos..].as_ptr(),
                job.v_pos,
                &s.scores,
                &corr,
                &mut s.acc,
            )
        };
    }
    for r in 0..job.rows {
        let sum = state.sum[r];
        let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
        // SAFETY: the caller's contract on `out` for this row.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add((job.q_off)(r)), d) };
        for (o, &a) in dst.iter_mut().zip(&s.acc[r * d..][..d]) {
            *o = a * inv;
        }
    }
}

/// `K` of every (batch, kv head) transposed into zero-padded blocks:
/// `kt[((b * n_kv_heads + h) * blocks + block) * d * KB + c * KB + j] = k[key block * KB + j, c]`.
fn pack_keys<T: KvElement>(
    k: &[T],
    kv: KvStrides,
    batch: usize,
    n_kv_heads: usize,
    kv_len: usize,
    d: usize,
) -> Vec<f32> {
    let blocks = kv_len.div_ceil(KB);
    let mut kt = vec![0.0f32; batch * n_kv_heads * blocks * d * KB];
    kt.par_chunks_mut(d * KB)
        .enumerate()
        .for_each(|(index, dst)| {
            let (head, block) = (index / blocks, index % blocks);
            let (b, h) = (head / n_kv_heads, head % n_kv_heads);
            let base = b * kv.batch + h * kv.head;
            for j in 0..KB.min(kv_len - block * KB) {
                let key = &k[base + (block * KB + j) * kv.pos..][..d];
                for (c, &x) in key.iter().enumerate() {
                    dst[c * KB + j] = x.to_f32();
                }
            }
        });
    kt
}
