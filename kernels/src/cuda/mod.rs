//! CUDA kernels as hand-written PTX text, one kernel per `.ptx` file under `ptx/`, embedded
//! at compile time and loaded by the runtime's CUDA backend at run time (no nvcc, no NVRTC,
//! no CUDA needed to build). Every file targets `sm_80` (A100, Ada, H100) with PTX ISA 7.0.
//! `scripts/check_ptx.sh` assembles each one offline with `ptxas` for sm_80 and sm_90a, and
//! `scripts/check_ptx_sim.py` runs the tensor-core, cast, attention, RMSNorm, LayerNorm, RoPE,
//! embedding and conv2d kernels' PTX on a CPU interpreter (`scripts/ptx_sim`) against NumPy
//! references, no GPU needed.
//!
//! This module knows nothing of cudarc, tensors or device memory: it holds the sources and
//! the launch shape each kernel expects ([`LaunchDims`], from sizes). Each `.ptx` file's
//! header states what it computes, its layout, parameters and launch configuration.
//!
//! | kernel                | computes                                  | launch                  |
//! |-----------------------|-------------------------------------------|-------------------------|
//! | `add_f32`             | `out[i] = a[i] + b[i % b_len]`            | [`add_f32_dims`]        |
//! | `rms_norm_f32`        | `x / sqrt(mean(x^2) + eps) * w`, f32 w    | [`rms_norm_dims`]       |
//! | `rms_norm_f32_wbf16`  | the same with a bf16 weight               | [`rms_norm_dims`]       |
//! | `rms_norm_f32_wf16`   | the same with an f16 weight               | [`rms_norm_dims`]       |
//! | `matmul_f32`          | `a[M,K] @ w[N,K]^T (+ bias[N])`, f32 w    | [`matmul_dims`]         |
//! | `matmul_f32_wbf16`    | the same with bf16 weight and bias        | [`matmul_dims`]         |
//! | `mul_f32`             | `out[i] = a[i] * b[i % b_len]`            | [`elementwise_dims`]    |
//! | `scale_f32`, `silu_f32`, `silu_mul_f32`, `quick_gelu_f32`, `gelu_erf_f32`, `gelu_tanh_f32` | elementwise | [`elementwise_dims`] |
//! | `softmax_f32`, `layer_norm_f32(_wbf16, _wf16)`, `argmax_f32` | one block per row | [`row_dims`] |
//! | `embedding_f32(_wbf16, _wf16)` | row gather, i64 ids, error flag, 16-byte chunks | [`elementwise_dims`] |
//! | `copy_strided_b32`    | rank-6 strided copy (permute/slice/concat/pixel shuffle) | [`elementwise_dims`] |
//! | `conv2d_f32(_wbf16, _wf16)` | direct conv, one thread per output  | [`elementwise_dims`]    |
//! | `rope_f32`            | rotate_half RoPE, f64 sin/cos per 2 heads | [`elementwise_dims`]    |
//! | `kv_write_f32`, `kv_write_f16` | KV-cache append at device past_len (f16: rounded as written) | [`elementwise_dims`] |
//! | `attention_f32`       | one warp per query row, online softmax    | [`attention_dims`]      |
//! | `flash_attention_d{64,72,80,128}[_w8][_kvf16]` | prefill attention, bf16 mma, generated; `_kvf16` reads an f16 cache | [`flash_attention::flash_attention_dims`] |
//! | `attention_decode_d{64,128}_r{1,2,4,8}[_kvf16]` | split-KV decode over the cache, f32 math, generated; `_kvf16` reads an f16 cache | [`attention_decode::decode_dims`] |
//! | `attention_decode_combine_f32` | log-sum-exp merge of the decode chunks | [`attention_decode::combine_dims`] |
//! | `cast_f32_bf16`, `pad_bf16` | rows to bf16 rows zero-padded to 8 | [`cast_dims`]       |
//! | `gemm_bf16_mma`       | bf16 tensor-core `a @ w^T (+ bias)`, M > 8 | [`gemm_dims`]          |
//! | `gemv_bf16`           | the same for M <= 8 at memory bandwidth   | [`gemv_dims`]           |
//! | `cast_f32_f16`, `gemm_f16_mma_*`, `gemv_f16` | the same for f16 weights (f16 twins) | as above |
//!
//! A `_wbf16` / `_wf16` kernel reads the weight (and bias) as bf16 / IEEE f16 and widens it
//! exactly to f32 as it loads it (`bits << 16` / `cvt.f32.f16`), so it computes what its f32
//! kernel computes on the widened weight; each `_wf16` file is its `_wbf16` file with only
//! that widening changed.
//!
//! Kernels that can fail on data (an embedding id out of range, a KV cache overflow) never
//! trap: they write a code into a small device error flag that the backend checks at every
//! synchronize and read ([`ERROR_EMBEDDING_ID`], [`ERROR_KV_OVERFLOW`]).
//!
//! RMSNorm, RoPE and embedding have a 16-byte vector path, taken when the buffers the runtime
//! passes are 16-byte aligned (arena and weight slots are; views need only be aligned for
//! their dtype) and the row length is a multiple of 4 (8 for a 16-bit embedding table; RoPE's
//! rotary half too), and a scalar path for everything else (the file headers say which).
//!
//! ptxas 12.9 (`-v`, sm_80 / sm_90a): add_f32 16 registers; rms_norm_f32 53 / 55,
//! rms_norm_f32_w{bf16,f16} 45 / 46 registers, 132 B shared; layer_norm_f32_w{bf16,f16}
//! 21 / 22, 136 B shared; rope_f32 48 / 44; embedding_* 32 / 32; conv2d_f32_w{bf16,f16}
//! 26 / 32; matmul_* 64 / 56 registers, 8704 B shared; no spills.

pub mod attention_decode;
pub mod flash_attention;
pub mod gemm_mma;

pub use gemm_mma::{cast_dims, gemm_dims, gemv_dims};

/// The element type an attention kernel reads K and V as: f32 (activations, or an f32 KV
/// cache), or f16 (an f16 KV cache, each element widened to f32 as it is loaded). The f16
/// variant of a kernel is the entry named with [`KvType::suffix`] appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvType {
    F32,
    F16,
}

impl KvType {
    /// What the f16 variants' entry names end with (`""` for f32).
    pub fn suffix(self) -> &'static str {
        match self {
            KvType::F32 => "",
            KvType::F16 => "_kvf16",
        }
    }

    /// Bytes per K/V element.
    pub fn bytes(self) -> u32 {
        match self {
            KvType::F32 => 4,
            KvType::F16 => 2,
        }
    }
}

/// One PTX module: a `.ptx` file and the kernels (`.entry` names) it defines.
#[derive(Clone, Copy, Debug)]
pub struct PtxModule {
    /// File stem, also used in error messages (`add_f32` for `ptx/add_f32.ptx`).
    pub name: &'static str,
    /// The PTX text.
    pub source: &'static str,
    /// Entry points defined in `source`.
    pub kernels: &'static [&'static str],
}

/// `out[i] = a[i] + b[i % b_len]`, f32.
pub const ADD_F32: PtxModule = PtxModule {
    name: "add_f32",
    source: include_str!("ptx/add_f32.ptx"),
    kernels: &["add_f32"],
};

/// RMSNorm over the last axis, f32 activations and weight.
pub const RMS_NORM_F32: PtxModule = PtxModule {
    name: "rms_norm_f32",
    source: include_str!("ptx/rms_norm_f32.ptx"),
    kernels: &["rms_norm_f32"],
};

/// RMSNorm over the last axis, f32 activations, bf16 weight.
pub const RMS_NORM_F32_WBF16: PtxModule = PtxModule {
    name: "rms_norm_f32_wbf16",
    source: include_str!("ptx/rms_norm_f32_wbf16.ptx"),
    kernels: &["rms_norm_f32_wbf16"],
};

/// RMSNorm over the last axis, f32 activations, f16 weight.
pub const RMS_NORM_F32_WF16: PtxModule = PtxModule {
    name: "rms_norm_f32_wf16",
    source: include_str!("ptx/rms_norm_f32_wf16.ptx"),
    kernels: &["rms_norm_f32_wf16"],
};

/// `out = a @ w^T (+ bias)`, all f32.
pub const MATMUL_F32: PtxModule = PtxModule {
    name: "matmul_f32",
    source: include_str!("ptx/matmul_f32.ptx"),
    kernels: &["matmul_f32"],
};

/// `out = a @ w^T (+ bias)`, f32 activations, bf16 weight and bias, f32 accumulation.
pub const MATMUL_F32_WBF16: PtxModule = PtxModule {
    name: "matmul_f32_wbf16",
    source: include_str!("ptx/matmul_f32_wbf16.ptx"),
    kernels: &["matmul_f32_wbf16"],
};

/// `out[i] = a[i] * b[i % b_len]`, f32.
pub const MUL_F32: PtxModule = PtxModule {
    name: "mul_f32",
    source: include_str!("ptx/mul_f32.ptx"),
    kernels: &["mul_f32"],
};

/// `out = x * factor`, f32.
pub const SCALE_F32: PtxModule = PtxModule {
    name: "scale_f32",
    source: include_str!("ptx/scale_f32.ptx"),
    kernels: &["scale_f32"],
};

/// `out = x * sigmoid(x)`, f32.
pub const SILU_F32: PtxModule = PtxModule {
    name: "silu_f32",
    source: include_str!("ptx/silu_f32.ptx"),
    kernels: &["silu_f32"],
};

/// `out = silu(gate) * up`, f32.
pub const SILU_MUL_F32: PtxModule = PtxModule {
    name: "silu_mul_f32",
    source: include_str!("ptx/silu_mul_f32.ptx"),
    kernels: &["silu_mul_f32"],
};

/// `out = x * sigmoid(1.702 x)`, f32.
pub const QUICK_GELU_F32: PtxModule = PtxModule {
    name: "quick_gelu_f32",
    source: include_str!("ptx/quick_gelu_f32.ptx"),
    kernels: &["quick_gelu_f32"],
};

/// Exact (erf) GELU, f32.
pub const GELU_ERF_F32: PtxModule = PtxModule {
    name: "gelu_erf_f32",
    source: include_str!("ptx/gelu_erf_f32.ptx"),
    kernels: &["gelu_erf_f32"],
};

/// Tanh-approximated GELU, f32.
pub const GELU_TANH_F32: PtxModule = PtxModule {
    name: "gelu_tanh_f32",
    source: include_str!("ptx/gelu_tanh_f32.ptx"),
    kernels: &["gelu_tanh_f32"],
};

/// Row softmax, f32.
pub const SOFTMAX_F32: PtxModule = PtxModule {
    name: "softmax_f32",
    source: include_str!("ptx/softmax_f32.ptx"),
    kernels: &["softmax_f32"],
};

/// LayerNorm over the last axis, f32 weight and bias.
pub const LAYER_NORM_F32: PtxModule = PtxModule {
    name: "layer_norm_f32",
    source: include_str!("ptx/layer_norm_f32.ptx"),
    kernels: &["layer_norm_f32"],
};

/// LayerNorm over the last axis, bf16 weight and bias.
pub const LAYER_NORM_F32_WBF16: PtxModule = PtxModule {
    name: "layer_norm_f32_wbf16",
    source: include_str!("ptx/layer_norm_f32_wbf16.ptx"),
    kernels: &["layer_norm_f32_wbf16"],
};

/// LayerNorm over the last axis, f16 weight and bias.
pub const LAYER_NORM_F32_WF16: PtxModule = PtxModule {
    name: "layer_norm_f32_wf16",
    source: include_str!("ptx/layer_norm_f32_wf16.ptx"),
    kernels: &["layer_norm_f32_wf16"],
};

/// Row argmax (first maximum), i64 out.
pub const ARGMAX_F32: PtxModule = PtxModule {
    name: "argmax_f32",
    source: include_str!("ptx/argmax_f32.ptx"),
    kernels: &["argmax_f32"],
};

/// Row gather from an f32 table by i64 ids (device error flag on a bad id).
pub const EMBEDDING_F32: PtxModule = PtxModule {
    name: "embedding_f32",
    source: include_str!("ptx/embedding_f32.ptx"),
    kernels: &["embedding_f32"],
};

/// Row gather from a bf16 table by i64 ids.
pub const EMBEDDING_F32_WBF16: PtxModule = PtxModule {
    name: "embedding_f32_wbf16",
    source: include_str!("ptx/embedding_f32_wbf16.ptx"),
    kernels: &["embedding_f32_wbf16"],
};

/// Row gather from an f16 table by i64 ids.
pub const EMBEDDING_F32_WF16: PtxModule = PtxModule {
    name: "embedding_f32_wf16",
    source: include_str!("ptx/embedding_f32_wf16.ptx"),
    kernels: &["embedding_f32_wf16"],
};

/// Rank-6 strided copy of 4-byte words (permute, slice, concat, pixel shuffle).
pub const COPY_STRIDED_B32: PtxModule = PtxModule {
    name: "copy_strided_b32",
    source: include_str!("ptx/copy_strided_b32.ptx"),
    kernels: &["copy_strided_b32"],
};

/// Direct 2-D convolution, f32 weight.
pub const CONV2D_F32: PtxModule = PtxModule {
    name: "conv2d_f32",
    source: include_str!("ptx/conv2d_f32.ptx"),
    kernels: &["conv2d_f32"],
};

/// Direct 2-D convolution, bf16 weight.
pub const CONV2D_F32_WBF16: PtxModule = PtxModule {
    name: "conv2d_f32_wbf16",
    source: include_str!("ptx/conv2d_f32_wbf16.ptx"),
    kernels: &["conv2d_f32_wbf16"],
};

/// Direct 2-D convolution, f16 weight and bias.
pub const CONV2D_F32_WF16: PtxModule = PtxModule {
    name: "conv2d_f32_wf16",
    source: include_str!("ptx/conv2d_f32_wf16.ptx"),
    kernels: &["conv2d_f32_wf16"],
};

/// Rotary embedding (rotate_half, partial rotary), i64 positions.
pub const ROPE_F32: PtxModule = PtxModule {
    name: "rope_f32",
    source: include_str!("ptx/rope_f32.ptx"),
    kernels: &["rope_f32"],
};

/// KV-cache append at a device-resident past_len (device error flag on overflow).
pub const KV_WRITE_F32: PtxModule = PtxModule {
    name: "kv_write_f32",
    source: include_str!("ptx/kv_write_f32.ptx"),
    kernels: &["kv_write_f32"],
};

/// `kv_write_f32` into f16 caches: each value rounded to f16 as it is written.
pub const KV_WRITE_F16: PtxModule = PtxModule {
    name: "kv_write_f16",
    source: include_str!("ptx/kv_write_f16.ptx"),
    kernels: &["kv_write_f16"],
};

/// Attention, one warp per query row, online softmax; also over the KV cache.
pub const ATTENTION_F32: PtxModule = PtxModule {
    name: "attention_f32",
    source: include_str!("ptx/attention_f32.ptx"),
    kernels: &["attention_f32"],
};

/// Every module the CUDA backend loads (and `iris kernels --dump-ptx` writes).
pub const MODULES: &[PtxModule] = &[
    ADD_F32,
    RMS_NORM_F32,
    RMS_NORM_F32_WBF16,
    RMS_NORM_F32_WF16,
    MATMUL_F32,
    MATMUL_F32_WBF16,
    MUL_F32,
    SCALE_F32,
    SILU_F32,
    SILU_MUL_F32,
    QUICK_GELU_F32,
    GELU_ERF_F32,
    GELU_TANH_F32,
    SOFTMAX_F32,
    LAYER_NORM_F32,
    LAYER_NORM_F32_WBF16,
    LAYER_NORM_F32_WF16,
    ARGMAX_F32,
    EMBEDDING_F32,
    EMBEDDING_F32_WBF16,
    EMBEDDING_F32_WF16,
    COPY_STRIDED_B32,
    CONV2D_F32,
    CONV2D_F32_WBF16,
    CONV2D_F32_WF16,
    ROPE_F32,
    KV_WRITE_F32,
    KV_WRITE_F16,
    ATTENTION_F32,
    flash_attention::FLASH_ATTENTION_D64,
    flash_attention::FLASH_ATTENTION_D72,
    flash_attention::FLASH_ATTENTION_D80,
    flash_attention::FLASH_ATTENTION_D128,
    attention_decode::ATTENTION_DECODE_D64,
    attention_decode::ATTENTION_DECODE_D128,
    attention_decode::ATTENTION_DECODE_COMBINE_F32,
    gemm_mma::CAST_F32_BF16,
    gemm_mma::PAD_BF16,
    gemm_mma::GEMM_BF16_MMA,
    gemm_mma::GEMV_BF16,
    gemm_mma::CAST_F32_F16,
    gemm_mma::GEMM_F16_MMA,
    gemm_mma::GEMV_F16,
];

/// Grid and block of one kernel launch, in CUDA's (x, y, z) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchDims {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    /// Dynamic shared memory; every kernel here uses static shared memory only.
    pub shared_mem_bytes: u32,
}

/// Threads per block of `add_f32`.
pub const ADD_BLOCK: u32 = 256;
/// Most blocks `add_f32` is launched with; larger inputs loop (grid-stride). 2048 x 256
/// threads is about four waves of resident threads on a 132-SM H100.
pub const ADD_MAX_BLOCKS: u32 = 2048;
/// Floats of its row each RMSNorm thread keeps in registers (four float4 chunks): the block
/// is sized so that a row of up to `RMS_NORM_FLOATS_PER_THREAD * RMS_NORM_MAX_BLOCK` floats
/// stays in registers between the two passes.
pub const RMS_NORM_FLOATS_PER_THREAD: u32 = 16;
/// Most threads per block of the RMSNorm kernels (longer rows stream the rest).
pub const RMS_NORM_MAX_BLOCK: u32 = 1024;
/// Output tile of the matmul kernels: `MATMUL_TILE x MATMUL_TILE` per block.
pub const MATMUL_TILE: u32 = 64;
/// Threads per block of the matmul kernels (16 x 16, each 4 x 4 outputs).
pub const MATMUL_BLOCK: u32 = 256;
/// Largest element count, row count or matrix size (M, N, K) the kernels accept: their u32
/// index arithmetic (`i + stride`, `k0 + 16`) must not wrap.
pub const MAX_DIM: usize = i32::MAX as usize;

/// Launch of `add_f32` over `n >= 1` elements: 256 threads per block, at most
/// [`ADD_MAX_BLOCKS`] blocks.
pub fn add_f32_dims(n: u32) -> LaunchDims {
    let blocks = n.div_ceil(ADD_BLOCK).clamp(1, ADD_MAX_BLOCKS);
    LaunchDims {
        grid: (blocks, 1, 1),
        block: (ADD_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch of `rms_norm_f32*` over `rows >= 1` rows of `dim` floats: one block per row, of
/// `dim / 16` threads rounded up to whole warps, 32 to 1024 (256 for dim 4096).
pub fn rms_norm_dims(rows: u32, dim: u32) -> LaunchDims {
    let threads = dim
        .div_ceil(RMS_NORM_FLOATS_PER_THREAD)
        .next_multiple_of(32);
    LaunchDims {
        grid: (rows.max(1), 1, 1),
        block: (threads.clamp(32, RMS_NORM_MAX_BLOCK), 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch of `matmul_f32*` for an `m x n` output: one 256-thread block per 64 x 64 tile,
/// grid x over N, grid y over M (so `m` may be at most 65535 tiles, 4,194,240 rows).
pub fn matmul_dims(m: u32, n: u32) -> LaunchDims {
    LaunchDims {
        grid: (
            n.div_ceil(MATMUL_TILE).max(1),
            m.div_ceil(MATMUL_TILE).max(1),
            1,
        ),
        block: (MATMUL_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch of the 1-D grid-stride kernels (every elementwise kernel, embedding, rope,
/// kv_write, copy_strided, conv2d) over `n >= 1` elements: as [`add_f32_dims`].
pub fn elementwise_dims(n: u32) -> LaunchDims {
    add_f32_dims(n)
}

/// Threads per block of the row kernels (softmax, layer_norm, argmax): one block per row.
pub const ROW_BLOCK: u32 = 256;

/// Launch of the row kernels (softmax, layer_norm, argmax) over `rows >= 1` rows.
pub fn row_dims(rows: u32) -> LaunchDims {
    LaunchDims {
        grid: (rows.max(1), 1, 1),
        block: (ROW_BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Largest head_dim `attention_f32` handles (4 dims per lane of one warp).
pub const ATTENTION_MAX_HEAD_DIM: usize = 128;
/// Rank of `copy_strided_b32`'s index space.
pub const COPY_RANK: usize = 6;

/// Launch of `attention_f32`: one 32-thread block (a warp) per (query head, query row,
/// batch); `q_len` and `batch` are at most 65535 (gridDim.y/z).
pub fn attention_dims(heads: u32, q_len: u32, batch: u32) -> LaunchDims {
    LaunchDims {
        grid: (heads.max(1), q_len.max(1), batch.max(1)),
        block: (32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Device error codes the kernels raise in the backend's error flag (u32 at byte 0; the
/// limit at byte 4 as u32, the offending value at byte 8 as i64).
pub const ERROR_EMBEDDING_ID: u32 = 1;
/// `kv_write_f32`: past_len < 0 or past_len + new tokens > the cache length.
pub const ERROR_KV_OVERFLOW: u32 = 2;

/// Most rows `matmul_dims` can cover: gridDim.y is limited to 65535 blocks.
pub const MATMUL_MAX_M: usize = 65535 * MATMUL_TILE as usize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_targets_sm80_and_defines_its_kernels() {
        let mut names = std::collections::HashSet::new();
        for module in MODULES {
            assert!(
                names.insert(module.name),
                "module {} listed twice",
                module.name
            );
            assert!(
                module.source.contains(".target sm_80"),
                "{}: not .target sm_80",
                module.name
            );
            assert!(
                module.source.contains(".address_size 64"),
                "{}",
                module.name
            );
            assert!(!module.source.contains('\0'), "{}: NUL byte", module.name);
            assert!(!module.kernels.is_empty(), "{}: no kernels", module.name);
            for kernel in module.kernels {
                let entry = format!(".visible .entry {kernel}(");
                assert!(
                    module.source.contains(&entry),
                    "{}: no entry {kernel}",
                    module.name
                );
            }
            // One kernel per file.
            assert_eq!(
                module.source.matches(".entry ").count(),
                module.kernels.len(),
                "{}",
                module.name
            );
        }
    }

    #[test]
    fn add_dims_cover_n_and_cap_blocks() {
        assert_eq!(add_f32_dims(1).grid, (1, 1, 1));
        assert_eq!(add_f32_dims(256).grid, (1, 1, 1));
        assert_eq!(add_f32_dims(257).grid, (2, 1, 1));
        assert_eq!(add_f32_dims(1_000_003).grid, (2048, 1, 1));
        assert_eq!(add_f32_dims(1).block, (256, 1, 1));
    }

    #[test]
    fn matmul_dims_cover_ragged_edges() {
        let d = matmul_dims(129, 257);
        assert_eq!(d.grid, (5, 3, 1));
        assert_eq!(d.block, (256, 1, 1));
        assert_eq!(matmul_dims(1, 1).grid, (1, 1, 1));
        assert_eq!(matmul_dims(64, 64).grid, (1, 1, 1));
    }

    #[test]
    fn rms_norm_dims_size_the_block_from_the_row() {
        assert_eq!(rms_norm_dims(5, 4096).grid, (5, 1, 1));
        assert_eq!(rms_norm_dims(5, 4096).block, (256, 1, 1));
        assert_eq!(rms_norm_dims(0, 1).grid, (1, 1, 1));
        // At least a warp, whole warps, at most 1024 threads.
        assert_eq!(rms_norm_dims(1, 1).block, (32, 1, 1));
        assert_eq!(rms_norm_dims(1, 576).block, (64, 1, 1));
        assert_eq!(rms_norm_dims(1, 4099).block, (288, 1, 1));
        assert_eq!(rms_norm_dims(1, 16384).block, (1024, 1, 1));
        assert_eq!(rms_norm_dims(1, 100_000).block, (1024, 1, 1));
        assert_eq!(rms_norm_dims(1, u32::MAX).block, (1024, 1, 1));
        // Every row up to 16 floats per thread at 1024 threads fits the four register chunks.
        for dim in [1, 7, 33, 576, 1000, 4096, 4099, 8192, 16384] {
            let threads = rms_norm_dims(1, dim).block.0;
            assert_eq!(threads % 32, 0, "dim {dim}");
            assert!(dim <= threads * RMS_NORM_FLOATS_PER_THREAD, "dim {dim}");
        }
    }
}
