//! Flash-attention prefill on tensor cores: the PTX generator for `flash_attention_d{D}`, one
//! kernel per head dim in [`FLASH_HEAD_DIMS`], its modules and its launch shape.
//!
//! The generated text is checked in under `ptx/flash_attention_d{D}.ptx` (so `MODULES` stays a
//! list of `include_str!`s and a reader can read the kernel); a unit test fails when a file
//! differs from [`flash_attention_ptx`], and `IRIS_WRITE_PTX=1 cargo test -p iris-kernels
//! --features cuda flash_attention` rewrites them. Each file's header states the algorithm,
//! the fragment layouts and the thread -> element mapping. `generate.rs` writes the PTX,
//! `writer.rs` holds the line writer shared with the decode generator.
//!
//! Numerics: Q, K, V and the probabilities P are rounded to bf16 (round to nearest even) for
//! the mma; scores, the online softmax (max, sum, rescaling) and the output accumulate in f32.
//! Against an f32 reference this gives NMSE ~1e-5, not the 1e-7 of `attention_f32`.

mod generate;
mod header;
mod mma;
pub(crate) mod writer;

pub use generate::flash_attention_ptx;

use super::{LaunchDims, PtxModule};

/// Head dims with a generated kernel (72 and 80 are zero-padded to 80 in the QK^T k-dim).
pub const FLASH_HEAD_DIMS: [usize; 4] = [64, 72, 80, 128];
/// Query rows per CTA: 4 warps x 16 rows.
pub const FLASH_ROWS: u32 = 64;
/// Keys per K/V tile in shared memory.
pub const FLASH_KEYS: u32 = 64;
/// Threads per CTA (4 warps).
pub const FLASH_THREADS: u32 = 128;
/// Fewest query rows for which the flash kernel is worth its 64-row tiles; fewer rows (decode)
/// go to the split-KV kernel or `attention_f32`.
pub const FLASH_MIN_ROWS: usize = 16;

/// `flash_attention_d64`: head_dim 64.
pub const FLASH_ATTENTION_D64: PtxModule = PtxModule {
    name: "flash_attention_d64",
    source: include_str!("../ptx/flash_attention_d64.ptx"),
    kernels: &["flash_attention_d64"],
};
/// `flash_attention_d72`: head_dim 72 (SigLIP so400m).
pub const FLASH_ATTENTION_D72: PtxModule = PtxModule {
    name: "flash_attention_d72",
    source: include_str!("../ptx/flash_attention_d72.ptx"),
    kernels: &["flash_attention_d72"],
};
/// `flash_attention_d80`: head_dim 80.
pub const FLASH_ATTENTION_D80: PtxModule = PtxModule {
    name: "flash_attention_d80",
    source: include_str!("../ptx/flash_attention_d80.ptx"),
    kernels: &["flash_attention_d80"],
};
/// `flash_attention_d128`: head_dim 128.
pub const FLASH_ATTENTION_D128: PtxModule = PtxModule {
    name: "flash_attention_d128",
    source: include_str!("../ptx/flash_attention_d128.ptx"),
    kernels: &["flash_attention_d128"],
};

/// The kernel (entry) name for `head_dim`, or `None` when no kernel is generated for it.
pub fn flash_attention_kernel(head_dim: usize) -> Option<&'static str> {
    match head_dim {
        64 => Some("flash_attention_d64"),
        72 => Some("flash_attention_d72"),
        80 => Some("flash_attention_d80"),
        128 => Some("flash_attention_d128"),
        _ => None,
    }
}

/// Launch of `flash_attention_d*`: one 128-thread CTA per 64 query rows of one (head,
/// batch); `heads` and `batch` are at most 65535 (gridDim.y/z). 34,816 bytes of static
/// shared memory at most (d128), so no opt-in is needed.
pub fn flash_attention_dims(q_len: u32, heads: u32, batch: u32) -> LaunchDims {
    LaunchDims {
        grid: (
            q_len.div_ceil(FLASH_ROWS).max(1),
            heads.max(1),
            batch.max(1),
        ),
        block: (FLASH_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULES: [(usize, PtxModule); 4] = [
        (64, FLASH_ATTENTION_D64),
        (72, FLASH_ATTENTION_D72),
        (80, FLASH_ATTENTION_D80),
        (128, FLASH_ATTENTION_D128),
    ];

    /// The checked-in files are the generator's output; `IRIS_WRITE_PTX=1` rewrites them.
    #[test]
    fn checked_in_ptx_is_the_generator_output() {
        for (d, module) in MODULES {
            writer::check_checked_in(&module, &flash_attention_ptx(d));
        }
    }

    #[test]
    fn kernel_names_and_dims() {
        for (d, module) in MODULES {
            assert_eq!(flash_attention_kernel(d), Some(module.kernels[0]));
            assert!(module.name.ends_with(&format!("_d{d}")));
        }
        assert_eq!(flash_attention_kernel(96), None);
        assert_eq!(flash_attention_kernel(24), None);
        let dims = flash_attention_dims(577, 16, 1);
        assert_eq!(dims.grid, (10, 16, 1));
        assert_eq!(dims.block, (128, 1, 1));
        assert_eq!(flash_attention_dims(1, 1, 1).grid, (1, 1, 1));
    }
}
