//! Split-KV decode attention over the KV cache, f32 arithmetic: the PTX generator for
//! `attention_decode_d{D}` (entries `attention_decode_d{D}_r{R}`, R query rows per CTA, over
//! an f32 cache, and `attention_decode_d{D}_r{R}_kvf16` with the same parameters over an f16
//! cache, each element widened to f32 as it is loaded), the chunk plan and the launch shapes
//! of it and of `attention_decode_combine_f32` (shared by both cache types).
//!
//! Decode reads the whole cache once per token, so it is memory bound: each CTA streams one
//! chunk of keys of one kv head with 16-byte loads (8-byte for f16) and keeps every query row
//! that reads that kv head (GQA group x query tokens, up to R) in registers, so K/V are read
//! once per kv head.
//! The second kernel merges the chunks by log-sum-exp. The chunk count depends only on static
//! shapes (batch, heads, rows, cache capacity), so a decode graph replays unchanged while the
//! KV length (read from device memory) grows.
//!
//! Generated text is checked in as `ptx/attention_decode_d{D}.ptx`, guarded like the flash
//! kernels (`IRIS_WRITE_PTX=1` rewrites it); `generate.rs` writes it.

mod generate;

pub use generate::attention_decode_ptx;

use super::{KvType, LaunchDims, PtxModule};

/// Head dims with a decode kernel (a power of two of float4 lanes per key, at most 32).
pub const DECODE_HEAD_DIMS: [usize; 2] = [64, 128];
/// Query rows per CTA of the generated variants.
pub const DECODE_ROWS: [usize; 4] = [1, 2, 4, 8];
/// Threads per decode CTA (4 warps).
pub const DECODE_THREADS: u32 = 128;
/// Most chunks per row (the combine kernel keeps one weight per chunk in shared memory).
pub const DECODE_MAX_CHUNKS: u32 = 64;
/// Fewest keys per chunk.
pub const DECODE_MIN_CHUNK: u32 = 64;
/// CTAs the chunk plan aims for: four per SM of a 132-SM H100.
pub const DECODE_TARGET_CTAS: u32 = 528;

/// `attention_decode_d64` (entries r1, r2, r4, r8 over an f32 cache, then the same with
/// `_kvf16` over an f16 cache).
pub const ATTENTION_DECODE_D64: PtxModule = PtxModule {
    name: "attention_decode_d64",
    source: include_str!("../ptx/attention_decode_d64.ptx"),
    kernels: &[
        "attention_decode_d64_r1",
        "attention_decode_d64_r2",
        "attention_decode_d64_r4",
        "attention_decode_d64_r8",
        "attention_decode_d64_r1_kvf16",
        "attention_decode_d64_r2_kvf16",
        "attention_decode_d64_r4_kvf16",
        "attention_decode_d64_r8_kvf16",
    ],
};
/// `attention_decode_d128` (entries r1, r2, r4, r8 over an f32 cache, then the same with
/// `_kvf16` over an f16 cache).
pub const ATTENTION_DECODE_D128: PtxModule = PtxModule {
    name: "attention_decode_d128",
    source: include_str!("../ptx/attention_decode_d128.ptx"),
    kernels: &[
        "attention_decode_d128_r1",
        "attention_decode_d128_r2",
        "attention_decode_d128_r4",
        "attention_decode_d128_r8",
        "attention_decode_d128_r1_kvf16",
        "attention_decode_d128_r2_kvf16",
        "attention_decode_d128_r4_kvf16",
        "attention_decode_d128_r8_kvf16",
    ],
};
/// Log-sum-exp merge of the decode chunks, one warp per output row.
pub const ATTENTION_DECODE_COMBINE_F32: PtxModule = PtxModule {
    name: "attention_decode_combine_f32",
    source: include_str!("../ptx/attention_decode_combine_f32.ptx"),
    kernels: &["attention_decode_combine_f32"],
};

/// How one decode call is split: the kernel, rows per CTA, and the KV chunking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodePlan {
    pub kernel: &'static str,
    /// Query rows per CTA (R of the kernel).
    pub rows_per_cta: u32,
    /// CTAs along the rows of one kv head: ceil(group * q_len / rows_per_cta).
    pub row_groups: u32,
    /// Keys per chunk (the last chunk may be shorter).
    pub chunk_len: u32,
    /// Chunks over the cache capacity.
    pub chunks: u32,
}

impl DecodePlan {
    /// f32 elements of the partial results: `rows * chunks * (head_dim + 2)` (outputs, then
    /// (max, sum) pairs), `rows` = batch * q_len * heads.
    pub fn scratch_len(&self, rows: usize, head_dim: usize) -> usize {
        rows * self.chunks as usize * (head_dim + 2)
    }
}

/// `attention_decode_d{head_dim}_r{rows}{kv.suffix()}`: the f32-cache entries come first in
/// the module's list, then the f16 ones, each in [`DECODE_ROWS`] order.
fn kernel_name(head_dim: usize, rows: usize, kv: KvType) -> Option<&'static str> {
    let module = match head_dim {
        64 => ATTENTION_DECODE_D64,
        128 => ATTENTION_DECODE_D128,
        _ => return None,
    };
    let index = DECODE_ROWS.iter().position(|&r| r == rows)?;
    let offset = match kv {
        KvType::F32 => 0,
        KvType::F16 => DECODE_ROWS.len(),
    };
    Some(module.kernels[offset + index])
}

/// The plan for `q_len` query tokens of `kv_heads * group` heads over a cache of `max_seq`
/// rows whose elements are `kv` (the kernel is the `_kvf16` entry for an f16 cache; the chunking
/// does not depend on it), or `None` when no decode kernel fits (head_dim, or a cache too small
/// to chunk).
pub fn decode_plan(
    head_dim: usize,
    group: usize,
    q_len: usize,
    batch: usize,
    kv_heads: usize,
    max_seq: usize,
    kv: KvType,
) -> Option<DecodePlan> {
    if group == 0 || q_len == 0 || batch == 0 || kv_heads == 0 || max_seq == 0 {
        return None;
    }
    let rows = group * q_len;
    let rows_per_cta = DECODE_ROWS
        .iter()
        .copied()
        .find(|&r| r >= rows)
        .unwrap_or(DECODE_ROWS[DECODE_ROWS.len() - 1]);
    let kernel = kernel_name(head_dim, rows_per_cta, kv)?;
    let row_groups = rows.div_ceil(rows_per_cta);
    let groups = batch.checked_mul(kv_heads)?.checked_mul(row_groups)?;
    let most = (DECODE_MAX_CHUNKS as usize).min(max_seq.div_ceil(DECODE_MIN_CHUNK as usize));
    let wanted = (DECODE_TARGET_CTAS as usize).div_ceil(groups);
    let chunk_len = max_seq.div_ceil(wanted.clamp(1, most.max(1)));
    let chunks = max_seq.div_ceil(chunk_len);
    Some(DecodePlan {
        kernel,
        rows_per_cta: rows_per_cta as u32,
        row_groups: u32::try_from(row_groups).ok()?,
        chunk_len: u32::try_from(chunk_len).ok()?,
        chunks: chunks as u32,
    })
}

/// Launch of a decode kernel: grid = (chunks, kv_heads * row_groups, batch), 128 threads;
/// kv_heads * row_groups and batch at most 65535.
pub fn decode_dims(plan: &DecodePlan, kv_heads: u32, batch: u32) -> LaunchDims {
    LaunchDims {
        grid: (plan.chunks, kv_heads * plan.row_groups, batch),
        block: (DECODE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch of `attention_decode_combine_f32`: one 32-thread CTA per output row.
pub fn combine_dims(rows: u32) -> LaunchDims {
    LaunchDims {
        grid: (rows.max(1), 1, 1),
        block: (32, 1, 1),
        shared_mem_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cuda::flash_attention::writer::check_checked_in;

    /// The checked-in files are the generator's output; `IRIS_WRITE_PTX=1` rewrites them.
    #[test]
    fn checked_in_ptx_is_the_generator_output() {
        for (d, module) in [(64, ATTENTION_DECODE_D64), (128, ATTENTION_DECODE_D128)] {
            check_checked_in(&module, &attention_decode_ptx(d));
        }
    }

    #[test]
    fn plans_cover_rows_and_capacity() {
        // Llama-2 7B decode: 32 heads, MHA, 4096 cache rows.
        let p = decode_plan(128, 1, 1, 1, 32, 4096, KvType::F32).unwrap();
        assert_eq!(p.kernel, "attention_decode_d128_r1");
        assert_eq!((p.rows_per_cta, p.row_groups), (1, 1));
        assert_eq!(p.chunks, 17);
        assert!(p.chunks * p.chunk_len >= 4096);
        assert!((p.chunks - 1) * p.chunk_len < 4096);
        // SmolLM2: 9 heads over 3 kv heads -> 3 rows in an r4 CTA.
        let p = decode_plan(64, 3, 1, 1, 3, 2048, KvType::F32).unwrap();
        assert_eq!(
            (p.kernel, p.rows_per_cta, p.row_groups),
            ("attention_decode_d64_r4", 4, 1)
        );
        assert_eq!(p.chunks, 32);
        // Qwen2-7B style 7 rows -> r8; 4 tokens x group 4 = 16 rows -> two r8 CTAs.
        assert_eq!(
            decode_plan(128, 7, 1, 1, 4, 512, KvType::F32)
                .unwrap()
                .rows_per_cta,
            8
        );
        let p = decode_plan(128, 4, 4, 1, 8, 100, KvType::F32).unwrap();
        assert_eq!((p.rows_per_cta, p.row_groups, p.chunks), (8, 2, 2));
        // A tiny cache: one chunk; never more than DECODE_MAX_CHUNKS.
        let p = decode_plan(64, 1, 1, 1, 1, 5, KvType::F32).unwrap();
        assert_eq!((p.chunks, p.chunk_len), (1, 5));
        assert!(
            decode_plan(64, 1, 1, 1, 1, 1 << 20, KvType::F32)
                .unwrap()
                .chunks
                <= DECODE_MAX_CHUNKS
        );
        assert_eq!(decode_plan(96, 1, 1, 1, 1, 64, KvType::F32), None);
        assert_eq!(decode_plan(64, 1, 1, 1, 1, 0, KvType::F32), None);
        assert_eq!(p.scratch_len(3, 64), 3 * 66);
        let dims = decode_dims(
            &decode_plan(128, 4, 4, 2, 8, 100, KvType::F32).unwrap(),
            8,
            2,
        );
        assert_eq!(dims.grid, (2, 16, 2));
        assert_eq!(combine_dims(96).grid, (96, 1, 1));
    }

    /// An f16 cache picks the `_kvf16` entry of the same R; the chunking is the same.
    #[test]
    fn f16_cache_plans_pick_the_kvf16_entries() {
        for (d, group, q_len, batch, kv_heads, max_seq) in [
            (128, 1, 1, 1, 32, 4096),
            (64, 3, 1, 1, 3, 2048),
            (128, 4, 4, 1, 8, 100),
            (64, 2, 1, 1, 1, 5),
        ] {
            let f32 = decode_plan(d, group, q_len, batch, kv_heads, max_seq, KvType::F32).unwrap();
            let f16 = decode_plan(d, group, q_len, batch, kv_heads, max_seq, KvType::F16).unwrap();
            assert_eq!(f16.kernel, format!("{}_kvf16", f32.kernel));
            assert_eq!(
                DecodePlan {
                    kernel: f32.kernel,
                    ..f16
                },
                f32
            );
        }
        assert_eq!(decode_plan(96, 1, 1, 1, 1, 64, KvType::F16), None);
    }

    /// Every entry name is listed in the order `kernel_name` indexes and defined in the text.
    #[test]
    fn module_lists_name_every_entry() {
        for (d, module) in [(64, ATTENTION_DECODE_D64), (128, ATTENTION_DECODE_D128)] {
            let mut want = Vec::new();
            for kv in [KvType::F32, KvType::F16] {
                for r in DECODE_ROWS {
                    let name = format!("attention_decode_d{d}_r{r}{}", kv.suffix());
                    assert_eq!(kernel_name(d, r, kv), Some(module.kernels[want.len()]));
                    assert!(module.source.contains(&format!(".visible .entry {name}(")));
                    want.push(name);
                }
            }
            assert_eq!(module.kernels, want);
        }
    }
}
