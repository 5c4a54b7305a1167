//! Flash-attention prefill on tensor cores: the PTX generator for `flash_attention_d{D}`, one
//! kernel per head dim in [`FLASH_HEAD_DIMS`], its modules and its launch shape. Each module
//! has an entry per warp count of [`flash_warps`] reading f32 K/V and the same entries with
//! the suffix `_kvf16` reading f16 K/V (an f16 KV cache; see [`KvType`]).
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
//! Against an f32 reference this gives NMSE ~1e-5, not the 1e-7 of `attention_f32`. The
//! `_kvf16` entries widen each f16 K/V element exactly to f32 and then round it to bf16 the
//! same way.

mod generate;
mod header;
mod mma;
pub(crate) mod writer;

pub use generate::flash_attention_ptx;

use super::{KvType, LaunchDims, PtxModule};

/// Head dims with a generated kernel (72 and 80 are zero-padded to 80 in the QK^T k-dim).
pub const FLASH_HEAD_DIMS: [usize; 4] = [64, 72, 80, 128];
/// Keys per K/V tile in shared memory.
pub const FLASH_KEYS: u32 = 64;
/// Streaming multiprocessors the launch choice assumes (an H100 SXM has 132).
const SMS: u32 = 132;
/// Fewest query rows for which the flash kernel is worth its 64-row tiles; fewer rows (decode)
/// go to the split-KV kernel or `attention_f32`.
pub const FLASH_MIN_ROWS: usize = 16;

/// Warps per CTA generated for `head_dim` (16 query rows each): 4, and 8 where a 64-key
/// tile's float4 chunks split evenly over 256 threads. Eight warps read each K/V tile once
/// for 128 query rows instead of 64, which halves the K/V traffic of long prompts; four keep
/// more CTAs in flight when there are few query tiles.
pub fn flash_warps(head_dim: usize) -> &'static [usize] {
    if (FLASH_KEYS as usize * head_dim / 4).is_multiple_of(256) {
        &[4, 8]
    } else {
        &[4]
    }
}

/// `flash_attention_d64`: head_dim 64.
pub const FLASH_ATTENTION_D64: PtxModule = PtxModule {
    name: "flash_attention_d64",
    source: include_str!("../ptx/flash_attention_d64.ptx"),
    kernels: &[
        "flash_attention_d64",
        "flash_attention_d64_w8",
        "flash_attention_d64_kvf16",
        "flash_attention_d64_w8_kvf16",
    ],
};
/// `flash_attention_d72`: head_dim 72 (SigLIP so400m).
pub const FLASH_ATTENTION_D72: PtxModule = PtxModule {
    name: "flash_attention_d72",
    source: include_str!("../ptx/flash_attention_d72.ptx"),
    kernels: &["flash_attention_d72", "flash_attention_d72_kvf16"],
};
/// `flash_attention_d80`: head_dim 80.
pub const FLASH_ATTENTION_D80: PtxModule = PtxModule {
    name: "flash_attention_d80",
    source: include_str!("../ptx/flash_attention_d80.ptx"),
    kernels: &[
        "flash_attention_d80",
        "flash_attention_d80_w8",
        "flash_attention_d80_kvf16",
        "flash_attention_d80_w8_kvf16",
    ],
};
/// `flash_attention_d128`: head_dim 128.
pub const FLASH_ATTENTION_D128: PtxModule = PtxModule {
    name: "flash_attention_d128",
    source: include_str!("../ptx/flash_attention_d128.ptx"),
    kernels: &[
        "flash_attention_d128",
        "flash_attention_d128_w8",
        "flash_attention_d128_kvf16",
        "flash_attention_d128_w8_kvf16",
    ],
};

/// The kernel (entry) name for `head_dim` with `warps` warps per CTA reading K/V of type `kv`
/// (`flash_attention_d{D}[_w8][_kvf16]`), or `None` when no such kernel is generated.
pub fn flash_attention_kernel(head_dim: usize, warps: usize, kv: KvType) -> Option<&'static str> {
    let names: &[&'static str] = match head_dim {
        64 => FLASH_ATTENTION_D64.kernels,
        72 => FLASH_ATTENTION_D72.kernels,
        80 => FLASH_ATTENTION_D80.kernels,
        128 => FLASH_ATTENTION_D128.kernels,
        _ => return None,
    };
    // Module kernels: the f32 entries in flash_warps order, then the f16 ones.
    let all = flash_warps(head_dim);
    let at = all.iter().position(|&w| w == warps)?;
    let first = match kv {
        KvType::F32 => 0,
        KvType::F16 => all.len(),
    };
    names.get(first + at).copied()
}

/// Warps per CTA for a launch: 8 (128 query rows per CTA) when that still gives every SM a
/// CTA, else 4.
pub fn flash_attention_warps(head_dim: usize, q_len: u32, heads: u32, batch: u32) -> usize {
    let wide = flash_warps(head_dim).contains(&8)
        && u64::from(q_len.div_ceil(128)) * u64::from(heads) * u64::from(batch) >= u64::from(SMS);
    if wide {
        8
    } else {
        4
    }
}

/// Launch of `flash_attention_d*` with `warps` warps: one CTA of 32 `warps` threads per 16
/// `warps` query rows of one (head, batch); `heads` and `batch` are at most 65535
/// (gridDim.y/z). 34,816 bytes of static shared memory at most (d128), so no opt-in is needed.
pub fn flash_attention_dims(warps: usize, q_len: u32, heads: u32, batch: u32) -> LaunchDims {
    let rows = 16 * warps as u32;
    LaunchDims {
        grid: (q_len.div_ceil(rows).max(1), heads.max(1), batch.max(1)),
        block: (32 * warps as u32, 1, 1),
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
            assert_eq!(
                flash_attention_kernel(d, 4, KvType::F32),
                Some(module.kernels[0])
            );
            assert_eq!(module.kernels.len(), 2 * flash_warps(d).len());
            assert_eq!(
                module.source.matches(".entry ").count(),
                module.kernels.len()
            );
            for kv in [KvType::F32, KvType::F16] {
                for &warps in flash_warps(d) {
                    let name = flash_attention_kernel(d, warps, kv).unwrap();
                    let plain = flash_attention_kernel(d, warps, KvType::F32).unwrap();
                    assert_eq!(name, format!("{plain}{}", kv.suffix()));
                    assert!(module.kernels.contains(&name), "{name}");
                    assert!(module.source.contains(&format!(".entry {name}(")), "{name}");
                }
            }
            assert!(module.name.ends_with(&format!("_d{d}")));
        }
        assert_eq!(flash_warps(72), &[4]);
        for kv in [KvType::F32, KvType::F16] {
            assert_eq!(flash_attention_kernel(72, 8, kv), None);
            assert_eq!(flash_attention_kernel(96, 4, kv), None);
            assert_eq!(flash_attention_kernel(24, 4, kv), None);
            assert_eq!(flash_attention_kernel(64, 2, kv), None);
        }
        assert_eq!(
            flash_attention_kernel(128, 8, KvType::F32),
            Some("flash_attention_d128_w8")
        );
        assert_eq!(
            flash_attention_kernel(128, 8, KvType::F16),
            Some("flash_attention_d128_w8_kvf16")
        );
        assert_eq!(
            flash_attention_kernel(72, 4, KvType::F16),
            Some("flash_attention_d72_kvf16")
        );
        let dims = flash_attention_dims(4, 577, 16, 1);
        assert_eq!(dims.grid, (10, 16, 1));
        assert_eq!(dims.block, (128, 1, 1));
        let dims = flash_attention_dims(8, 577, 16, 1);
        assert_eq!(dims.grid, (5, 16, 1));
        assert_eq!(dims.block, (256, 1, 1));
        assert_eq!(flash_attention_dims(4, 1, 1, 1).grid, (1, 1, 1));
        // A ViT's 577 tokens x 16 heads keep 4 warps; a 4096-token prompt x 32 heads takes 8.
        assert_eq!(flash_attention_warps(64, 577, 16, 1), 4);
        assert_eq!(flash_attention_warps(128, 4096, 32, 4), 8);
        assert_eq!(flash_attention_warps(128, 600, 32, 1), 8);
        assert_eq!(flash_attention_warps(72, 4096, 32, 4), 4);
    }
}
