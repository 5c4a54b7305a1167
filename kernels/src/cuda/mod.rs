//! CUDA kernels as hand-written PTX text, one kernel per `.ptx` file under `ptx/`, embedded
//! at compile time and loaded by the runtime's CUDA backend at run time (no nvcc, no NVRTC,
//! no CUDA needed to build). Every file targets `sm_80` (A100, Ada, H100) with PTX ISA 7.0.
//! `scripts/check_ptx.sh` assembles each one offline with `ptxas` for sm_80 and sm_90a.
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
//! | `matmul_f32`          | `a[M,K] @ w[N,K]^T (+ bias[N])`, f32 w    | [`matmul_dims`]         |
//! | `matmul_f32_wbf16`    | the same with bf16 weight and bias        | [`matmul_dims`]         |
//!
//! ptxas 12.9 (`-v`): add_f32 16 registers; rms_norm_* 19 (sm_80) / 18 (sm_90a) registers,
//! 132 B shared; matmul_* 64 (sm_80) / 56 (sm_90a) registers, 8704 B shared; no spills.

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

/// Every module the CUDA backend loads (and `iris kernels --dump-ptx` writes).
pub const MODULES: &[PtxModule] = &[
    ADD_F32,
    RMS_NORM_F32,
    RMS_NORM_F32_WBF16,
    MATMUL_F32,
    MATMUL_F32_WBF16,
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
/// Threads per block (one block per row) of the RMSNorm kernels; a multiple of 32.
pub const RMS_NORM_BLOCK: u32 = 256;
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

/// Launch of `rms_norm_f32*` over `rows >= 1` rows: one block of 256 threads per row.
pub fn rms_norm_dims(rows: u32) -> LaunchDims {
    LaunchDims {
        grid: (rows.max(1), 1, 1),
        block: (RMS_NORM_BLOCK, 1, 1),
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
        assert_eq!(rms_norm_dims(5).grid, (5, 1, 1));
    }
}
