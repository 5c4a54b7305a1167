//! The tile shapes `gemm_bf16_mma` is generated in, and which one a matmul launches.
//!
//! Every variant is the same kernel design (see the header of `ptx/gemm_bf16_mma.ptx`) with
//! its own block tile (`bm x bn`, walked `bk` deep), warp grid and pipeline depth. Large
//! outputs want large tiles (fewer global and shared loads per product); outputs of a few
//! hundred rows, as a ViT or a prompt of a few hundred tokens gives, want small ones, or most
//! of the 132 SMs of an H100 sit idle in the last (often the only) wave.

/// One generated variant of the tensor-core GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmTile {
    /// The variant's name, `bm x bn x bk _s stages` (e.g. `64x128x64_s3`): what
    /// `IRIS_GEMM_TILE` takes.
    pub shape: &'static str,
    /// Kernel entry name in the `gemm_bf16_mma` module.
    pub kernel: &'static str,
    /// The same variant's entry in the `gemm_f16_mma` module (f16 weights).
    pub f16_kernel: &'static str,
    /// Output rows per block.
    pub bm: u32,
    /// Output columns per block.
    pub bn: u32,
    /// K per pipeline stage: 32 or 64.
    pub bk: u32,
    /// Warps along M; each owns `bm / warps_m` rows.
    pub warps_m: u32,
    /// Warps along N; each owns `bn / warps_n` columns.
    pub warps_n: u32,
    /// cp.async pipeline stages (tiles in flight + the one being multiplied).
    pub stages: u32,
}

/// Shared memory a kernel may declare statically; beyond it the variant uses dynamic shared
/// memory, which the backend must allow per function before launching.
pub const STATIC_SHARED_LIMIT: u32 = 48 * 1024;

impl GemmTile {
    pub const fn threads(&self) -> u32 {
        32 * self.warps_m * self.warps_n
    }

    /// Bytes of one row of a stage's tile (`bk` bf16).
    pub const fn row_bytes(&self) -> u32 {
        self.bk * 2
    }

    /// Bytes of one pipeline stage: the A tile (`bm` rows) then the W tile (`bn` rows).
    pub const fn stage_bytes(&self) -> u32 {
        (self.bm + self.bn) * self.row_bytes()
    }

    pub const fn shared_bytes(&self) -> u32 {
        self.stage_bytes() * self.stages
    }

    /// Whether the kernel takes its shared memory as dynamic shared memory.
    pub const fn dynamic_shared(&self) -> bool {
        self.shared_bytes() > STATIC_SHARED_LIMIT
    }

    /// Rows of one warp's sub-tile, and its m16 tiles.
    pub const fn warp_rows(&self) -> u32 {
        self.bm / self.warps_m
    }

    /// Columns of one warp's sub-tile.
    pub const fn warp_cols(&self) -> u32 {
        self.bn / self.warps_n
    }

    /// 16-byte chunks per tile row.
    pub const fn chunks_per_row(&self) -> u32 {
        self.bk / 8
    }

    /// Tile rows one pass of the block's loads covers (each thread copies one chunk).
    pub const fn rows_per_pass(&self) -> u32 {
        self.threads() / self.chunks_per_row()
    }

    /// Output tiles of an `m x n` GEMM.
    pub fn tiles(&self, m: u32, n: u32) -> u64 {
        u64::from(m.div_ceil(self.bm)) * u64::from(n.div_ceil(self.bn))
    }

    /// Why this shape cannot be generated, if it cannot: the generator relies on each of these.
    pub fn invalid(&self) -> Option<String> {
        let pow2 = |v: u32| v.is_power_of_two();
        let checks = [
            (self.bk == 32 || self.bk == 64, "bk must be 32 or 64"),
            (
                pow2(self.bm) && pow2(self.bn),
                "bm and bn must be powers of two",
            ),
            (
                pow2(self.warps_m) && pow2(self.warps_n),
                "the warp grid must be powers of two",
            ),
            (
                self.warp_rows() >= 16 && self.warp_rows().is_multiple_of(16),
                "warp rows must be whole m16 tiles",
            ),
            (
                self.warp_cols() >= 16 && self.warp_cols().is_multiple_of(16),
                "warp columns must be whole pairs of n8 tiles",
            ),
            (
                self.warp_rows() <= 64 && self.warp_cols() <= 64,
                "a warp holds at most 64 x 64 accumulators",
            ),
            (self.threads() <= 256, "at most 8 warps"),
            (
                self.bm.is_multiple_of(self.rows_per_pass())
                    && self.bn.is_multiple_of(self.rows_per_pass()),
                "load passes must cover the tiles exactly",
            ),
            (
                (self.rows_per_pass() * self.row_bytes()).is_multiple_of(1024),
                "a load pass must keep the swizzle (a multiple of 8 swizzle lines)",
            ),
            (self.stages >= 2, "at least two stages"),
            (
                self.bn * 4 <= self.stage_bytes(),
                "the bias row must fit one stage",
            ),
            (
                self.shared_bytes() <= 227 * 1024,
                "at most 227 KiB of shared memory",
            ),
        ];
        checks
            .iter()
            .find(|(ok, _)| !ok)
            .map(|(_, why)| format!("{}: {why}", self.kernel))
    }
}

/// A variant named by its shape (`bm x bn x bk _s stages`) in both modules.
macro_rules! tile {
    ($shape:literal, ($bm:expr, $bn:expr, $bk:expr), ($wm:expr, $wn:expr), $stages:expr) => {
        GemmTile {
            shape: $shape,
            kernel: concat!("gemm_bf16_mma_", $shape),
            f16_kernel: concat!("gemm_f16_mma_", $shape),
            bm: $bm,
            bn: $bn,
            bk: $bk,
            warps_m: $wm,
            warps_n: $wn,
            stages: $stages,
        }
    };
}

/// Every generated variant, in the order the modules define them.
pub const GEMM_TILES: [GemmTile; 8] = [
    tile!("128x128x32_s3", (128, 128, 32), (2, 2), 3),
    tile!("128x128x64_s3", (128, 128, 64), (2, 2), 3),
    tile!("128x256x64_s3", (128, 256, 64), (2, 4), 3),
    tile!("256x128x64_s3", (256, 128, 64), (4, 2), 3),
    tile!("64x128x64_s3", (64, 128, 64), (2, 2), 3),
    tile!("64x128x64_s4", (64, 128, 64), (2, 2), 4),
    tile!("64x64x64_s3", (64, 64, 64), (2, 2), 3),
    tile!("64x64x64_s4", (64, 64, 64), (2, 2), 4),
];

/// The kernel names of [`GEMM_TILES`], for the bf16 module's entry list.
pub const GEMM_KERNELS: [&str; 8] = [
    GEMM_TILES[0].kernel,
    GEMM_TILES[1].kernel,
    GEMM_TILES[2].kernel,
    GEMM_TILES[3].kernel,
    GEMM_TILES[4].kernel,
    GEMM_TILES[5].kernel,
    GEMM_TILES[6].kernel,
    GEMM_TILES[7].kernel,
];

/// The same for the f16 module.
pub const GEMM_F16_KERNELS: [&str; 8] = [
    GEMM_TILES[0].f16_kernel,
    GEMM_TILES[1].f16_kernel,
    GEMM_TILES[2].f16_kernel,
    GEMM_TILES[3].f16_kernel,
    GEMM_TILES[4].f16_kernel,
    GEMM_TILES[5].f16_kernel,
    GEMM_TILES[6].f16_kernel,
    GEMM_TILES[7].f16_kernel,
];

/// Streaming multiprocessors the choice assumes (an H100 SXM has 132; fewer or more only
/// shifts where the choice changes).
const SMS: u64 = 132;

/// The variant a matmul of `m x n` output launches on a device that allows `max_shared`
/// bytes of shared memory per block: the 128x128 tile when it fills the SMs at least twice
/// over, else the largest smaller tile that gives every SM a block; the 48 KiB
/// `gemm_bf16_mma_128x128x32_s3`, which every device of compute capability 8.0 or later
/// holds, when the preferred one does not fit.
///
/// Measured on an H100 (`scripts/gpu/sweep.sh`, BENCHMARKS.md): at 128x128 the BK 32 tile
/// was 1-4% faster than the BK 64 one at 8192^3, 2048x11008x4096 and 600x11008x4096, and the
/// 64-row tiles were the fastest at 600x4096 and 577x1024 outputs.
pub fn gemm_tile_for(m: u32, n: u32, max_shared: u32) -> &'static GemmTile {
    let preferred = if by_name(FALLBACK).tiles(m, n) >= 2 * SMS {
        by_name(FALLBACK)
    } else if by_name("gemm_bf16_mma_64x128x64_s3").tiles(m, n) >= SMS {
        by_name("gemm_bf16_mma_64x128x64_s3")
    } else {
        by_name("gemm_bf16_mma_64x64x64_s3")
    };
    if preferred.shared_bytes() <= max_shared {
        preferred
    } else {
        by_name(FALLBACK)
    }
}

/// The variant that needs no more than the 48 KiB of static shared memory every device has.
const FALLBACK: &str = "gemm_bf16_mma_128x128x32_s3";

fn by_name(name: &str) -> &'static GemmTile {
    GEMM_TILES
        .iter()
        .find(|t| t.kernel == name)
        .expect("a listed variant")
}

/// The variant named `name` (a kernel name, or its shape suffix such as `64x128x64_s3`).
pub fn gemm_tile_named(name: &str) -> Option<&'static GemmTile> {
    GEMM_TILES
        .iter()
        .find(|t| t.kernel == name || t.shape == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_is_generatable_and_listed_once() {
        for ((t, name), f16_name) in GEMM_TILES.iter().zip(GEMM_KERNELS).zip(GEMM_F16_KERNELS) {
            assert_eq!(t.invalid(), None);
            assert_eq!(t.kernel, name);
            assert_eq!(t.f16_kernel, f16_name);
            assert_eq!(t.f16_kernel.replace("f16", "bf16"), t.kernel);
            assert!(t
                .kernel
                .ends_with(&format!("{}x{}x{}_s{}", t.bm, t.bn, t.bk, t.stages)));
            let shape = format!("{}x{}x{}_s{}", t.bm, t.bn, t.bk, t.stages);
            assert_eq!(t.shape, shape);
        }
        let names: std::collections::HashSet<_> = GEMM_KERNELS.iter().collect();
        assert_eq!(names.len(), GEMM_KERNELS.len());
    }

    #[test]
    fn invalid_shapes_say_why() {
        let mut t = GEMM_TILES[0];
        t.bk = 48;
        assert!(t.invalid().unwrap().contains("bk must be 32 or 64"));
        let mut t = GEMM_TILES[0];
        t.warps_n = 16;
        assert!(t.invalid().unwrap().contains("whole pairs of n8 tiles"));
    }

    #[test]
    fn choice_follows_the_output_size_and_the_shared_memory() {
        const H100: u32 = 227 * 1024;
        let name = |m, n, smem| gemm_tile_for(m, n, smem).kernel;
        assert_eq!(name(8192, 8192, H100), "gemm_bf16_mma_128x128x32_s3");
        assert_eq!(name(2048, 11008, H100), "gemm_bf16_mma_128x128x32_s3");
        assert_eq!(name(600, 4096, H100), "gemm_bf16_mma_64x128x64_s3");
        assert_eq!(name(577, 1024, H100), "gemm_bf16_mma_64x64x64_s3");
        assert_eq!(name(9, 7, H100), "gemm_bf16_mma_64x64x64_s3");
        // A device with 64 KiB per block: a 64-row tile that needs more falls back to the
        // static one.
        let needs = by_name("gemm_bf16_mma_64x128x64_s3").shared_bytes();
        assert_eq!(name(600, 4096, needs - 1), FALLBACK);
        assert!(by_name(FALLBACK).shared_bytes() <= STATIC_SHARED_LIMIT);
        for (m, n) in [(8192, 8192), (600, 4096), (577, 1024), (1, 1)] {
            let smem = gemm_tile_for(m, n, STATIC_SHARED_LIMIT).shared_bytes();
            assert!(smem <= STATIC_SHARED_LIMIT);
        }
        assert_eq!(
            gemm_tile_named("64x64x64_s4").map(|t| t.kernel),
            Some("gemm_bf16_mma_64x64x64_s4")
        );
        assert_eq!(gemm_tile_named("nope"), None);
    }
}
