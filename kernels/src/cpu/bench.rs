//! Measuring the CPU kernels against the machine: peak probes (FMA throughput per ISA level,
//! read bandwidth) and the kernel suite at model shapes, timed as the median of N runs.
//! `iris bench kernels` prints these; the criterion benches in `benches/kernels.rs` time the
//! same shapes.

use std::time::Instant;

use half::{bf16, f16};
use rayon::prelude::*;

use crate::cpu::conv2d;
use crate::cpu::isa::Isa;
use crate::cpu::reference::{AttentionParams, Conv2dParams, KvStrides};
use crate::cpu::{attention, gemm};
use crate::testing::Rng;
use crate::WeightSlice;

/// Machine peaks measured at start.
#[derive(Clone, Copy, Debug)]
pub struct Peaks {
    pub isa: Isa,
    pub threads: usize,
    /// f32 FMA throughput of one core at `isa`, GFLOP/s (2 flops per lane per FMA).
    pub gflops_per_core: f64,
    /// All threads together, GFLOP/s.
    pub gflops: f64,
    /// Read bandwidth, GB/s (timed parallel sum over a large buffer).
    pub read_gb_s: f64,
}

/// Fastest of a few timed FMA loops on every rayon thread at once: returns (per core, total)
/// GFLOP/s.
pub fn probe_fma(isa: Isa) -> (f64, f64) {
    isa.assert_supported();
    let iters = 100_000_000usize / isa.lanes().max(4);
    let threads = rayon::current_num_threads();
    let run = || -> f64 {
        // Every thread starts together and times itself; the rates add up.
        let barrier = std::sync::Barrier::new(threads);
        let rates = rayon::broadcast(|_| {
            barrier.wait();
            let start = Instant::now();
            fma_loop(isa, iters) / start.elapsed().as_secs_f64() / 1e9
        });
        rates.iter().sum()
    };
    let single = || -> f64 {
        let start = Instant::now();
        let flops = fma_loop(isa, iters);
        flops / start.elapsed().as_secs_f64() / 1e9
    };
    let per_core = (0..3).map(|_| single()).fold(0.0, f64::max);
    let total = (0..3).map(|_| run()).fold(0.0, f64::max);
    (per_core, total)
}

/// Runs `iters` steps of independent FMA chains; returns the flops done.
fn fma_loop(isa: Isa, iters: usize) -> f64 {
    match isa {
        // SAFETY: `probe_fma` checked the level is supported.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::fma_avx512(iters) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::fma_avx2(iters) },
        _ => {
            let mut acc = [1.0f32; 8];
            let (a, b) = (
                std::hint::black_box(0.999f32),
                std::hint::black_box(1e-3f32),
            );
            for _ in 0..iters {
                for x in acc.iter_mut() {
                    *x = *x * a + b;
                }
            }
            std::hint::black_box(acc);
            (iters * 8 * 2) as f64
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    // AVX-512 intrinsics are stable since Rust 1.89 (see `gemm/avx512.rs`).
    #![allow(clippy::incompatible_msrv)]
    use std::arch::x86_64::*;

    /// Wrapping sum of `words` in 8 independent 16-lane chains (512 bytes per step), then
    /// the tail.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub(super) unsafe fn sum_avx512(words: &[u32]) -> u32 {
        let mut acc = [_mm512_setzero_si512(); 8];
        let steps = words.len() / 128;
        // SAFETY: step `i` reads words 128 i .. 128 i + 128, inside `words`.
        unsafe {
            for i in 0..steps {
                let p = words.as_ptr().add(128 * i);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_add_epi32(*a, _mm512_loadu_si512(p.add(16 * j) as *const _));
                }
            }
        }
        let folded = acc
            .iter()
            .fold(_mm512_setzero_si512(), |s, &a| _mm512_add_epi32(s, a));
        let tail = words[steps * 128..]
            .iter()
            .fold(0u32, |a, &x| a.wrapping_add(x));
        (_mm512_reduce_add_epi32(folded) as u32).wrapping_add(tail)
    }

    /// 12 independent FMA chains of 16 lanes (covers FMA latency x ports).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub(super) unsafe fn fma_avx512(iters: usize) -> f64 {
        let a = _mm512_set1_ps(std::hint::black_box(0.999));
        let b = _mm512_set1_ps(std::hint::black_box(1e-3));
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        std::hint::black_box(acc);
        (iters * 12 * 16 * 2) as f64
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn fma_avx2(iters: usize) -> f64 {
        let a = _mm256_set1_ps(std::hint::black_box(0.999));
        let b = _mm256_set1_ps(std::hint::black_box(1e-3));
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        std::hint::black_box(acc);
        (iters * 12 * 8 * 2) as f64
    }
}

/// Read bandwidth in GB/s: the best of 5 passes over a `mb`-MiB buffer, each thread
/// summing its own contiguous share as wrapping integers (associative, so the sum
/// vectorises with several independent accumulators and is bound by memory alone). An
/// earlier probe summed through a one-row GEMV and reported about 15% less than the decode
/// GEMVs then read, so it understated the floor they are held to.
pub fn probe_read_bandwidth(mb: usize) -> f64 {
    let n = mb * (1 << 20) / 4;
    let mut buf = vec![0u32; n];
    buf.par_chunks_mut(1 << 16).enumerate().for_each(|(i, c)| {
        c.iter_mut()
            .enumerate()
            .for_each(|(j, x)| *x = (i ^ j) as u32)
    });
    let share = n.div_ceil(rayon::current_num_threads()).max(1);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let s = buf
            .par_chunks(share)
            .map(|c| {
                #[cfg(target_arch = "x86_64")]
                if Isa::Avx512.is_supported() {
                    // SAFETY: the CPU has the AVX-512 level.
                    return unsafe { x86::sum_avx512(c) };
                }
                c.iter().fold(0u32, |a, &x| a.wrapping_add(x))
            })
            .reduce(|| 0, u32::wrapping_add);
        std::hint::black_box(s);
        best = best.max((n * 4) as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// All peaks at `isa`.
pub fn probe(isa: Isa, bandwidth_mb: usize) -> Peaks {
    let (gflops_per_core, gflops) = probe_fma(isa);
    Peaks {
        isa,
        threads: rayon::current_num_threads(),
        gflops_per_core,
        gflops,
        read_gb_s: probe_read_bandwidth(bandwidth_mb),
    }
}

/// What bounds a kernel: compute (compare to the FMA peak) or memory (to the bandwidth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Compute,
    Memory,
}

/// One timed kernel at one shape.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub kernel: String,
    pub shape: String,
    pub median_s: f64,
    pub flops: f64,
    pub bytes: f64,
    pub bound: Bound,
}

impl Measurement {
    pub fn gflops(&self) -> f64 {
        self.flops / self.median_s / 1e9
    }
    pub fn gb_s(&self) -> f64 {
        self.bytes / self.median_s / 1e9
    }
    /// Percent of the relevant peak.
    pub fn percent_of_peak(&self, peaks: &Peaks) -> f64 {
        match self.bound {
            Bound::Compute => 100.0 * self.gflops() / peaks.gflops,
            Bound::Memory => 100.0 * self.gb_s() / peaks.read_gb_s,
        }
    }
}

/// Median seconds of `runs` calls of `f` after one warm-up call.
pub fn median_time(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Matmul shapes `(m, n, k)` of the suite: SmolLM2-135M decode GEMVs and prefill GEMMs,
/// ViT-L-sized GEMMs.
pub const MATMUL_SHAPES: [(usize, usize, usize); 8] = [
    (1, 576, 576),
    (1, 1536, 576),
    (1, 576, 1536),
    (1, 49152, 576),
    (512, 576, 576),
    (512, 1536, 576),
    (577, 4096, 1024),
    (2048, 2048, 2048),
];

/// Times `matmul` at `isa` with f32 or bf16 weights.
pub fn bench_matmul(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    bf16_weights: bool,
    runs: usize,
) -> Measurement {
    let mut rng = Rng::new(1);
    let a = rng.vec(m * k, -1.0, 1.0);
    let w = rng.vec(n * k, -1.0, 1.0);
    let wb: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
    let (ws, wbytes) = if bf16_weights {
        (WeightSlice::BF16(&wb), 2)
    } else {
        (WeightSlice::F32(&w), 4)
    };
    let mut out = vec![0.0f32; m * n];
    let median_s = median_time(runs, || gemm::matmul(isa, &a, ws, None, m, n, k, &mut out));
    Measurement {
        kernel: format!("matmul {}", if bf16_weights { "bf16" } else { "f32" }),
        shape: format!("{m}x{n}x{k}"),
        median_s,
        flops: (2 * m * n * k) as f64,
        bytes: (n * k * wbytes + 4 * (m * k + m * n)) as f64,
        bound: if m <= gemm::GEMV_MAX_M {
            Bound::Memory
        } else {
            Bound::Compute
        },
    }
}

/// Times the GEMM (or, for `m <= 4`, the GEMV) over weights packed once (`gemm::packed`,
/// AVX-512 or AVX2: the runtime's path) with f32 or bf16 weights at `precision`; `None`
/// where the CPU or the weights do not allow it (and for bf16 dot at GEMV sizes, which have
/// none).
#[cfg(target_arch = "x86_64")]
pub fn bench_matmul_packed(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    bf16_weights: bool,
    precision: gemm::packed::Precision,
    runs: usize,
) -> Option<Measurement> {
    use gemm::packed::{PackedWeights, Precision};
    if !PackedWeights::supported(isa) || (precision != Precision::F32 && isa != Isa::Avx512) {
        return None;
    }
    let mut rng = Rng::new(1);
    let a = rng.vec(m * k, -1.0, 1.0);
    let w = rng.vec(n * k, -1.0, 1.0);
    let wb: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
    let (ws, label) = match (bf16_weights, precision) {
        (false, _) => (WeightSlice::F32(&w), "f32 packed"),
        (true, Precision::F32) => (WeightSlice::BF16(&wb), "bf16 packed"),
        (true, Precision::Bf16Dot) => (WeightSlice::BF16(&wb), "bf16 dot packed"),
    };
    let packed = PackedWeights::pack(ws, n, k)?;
    if !packed.allows(precision) {
        return None;
    }
    let mut out = vec![0.0f32; m * n];
    let gemv = m <= gemm::packed_gemv::MAX_M;
    if gemv && precision != Precision::F32 {
        return None;
    }
    let median_s = median_time(runs, || {
        if gemv {
            gemm::packed_gemv::gemv(isa, &a, &packed, None, m, &mut out)
        } else {
            gemm::packed::gemm(isa, &a, &packed, &[], m, precision, &mut out)
        }
    });
    Some(Measurement {
        kernel: format!("matmul {label}"),
        shape: format!("{m}x{n}x{k}"),
        median_s,
        flops: (2 * m * n * k) as f64,
        bytes: (packed.bytes() + 4 * (m * k + m * n)) as f64,
        bound: if gemv { Bound::Memory } else { Bound::Compute },
    })
}

fn to_f16(x: &[f32]) -> Vec<f16> {
    x.iter().map(|&x| f16::from_f32(x)).collect()
}

/// Times causal GQA attention: `q_len` queries over `kv_len` keys (the last `q_len`
/// positions), SmolLM2-135M heads (9 query, 3 kv, head_dim 64), K/V in the bhsd cache, f32
/// or (`f16_cache`) f16.
pub fn bench_attention(
    isa: Isa,
    q_len: usize,
    kv_len: usize,
    f16_cache: bool,
    runs: usize,
) -> Measurement {
    let (nh, nkv, d) = (9, 3, 64);
    let p = AttentionParams {
        batch: 1,
        q_len,
        kv_len,
        n_heads: nh,
        n_kv_heads: nkv,
        head_dim: d,
        scale: 1.0 / (d as f32).sqrt(),
        causal: true,
    };
    let mut rng = Rng::new(2);
    let q = rng.vec(q_len * nh * d, -1.0, 1.0);
    let k = rng.vec(nkv * kv_len * d, -1.0, 1.0);
    let v = rng.vec(nkv * kv_len * d, -1.0, 1.0);
    let (k16, v16) = (to_f16(&k), to_f16(&v));
    let mut out = vec![0.0f32; q.len()];
    let kv = KvStrides::bhsd(kv_len, nkv, d);
    let median_s = median_time(runs, || {
        if f16_cache {
            attention::attention(isa, &q, &k16, &v16, kv, None, &p, &mut out)
        } else {
            attention::attention(isa, &q, &k, &v, kv, None, &p, &mut out)
        }
    });
    let element = if f16_cache { 2 } else { 4 };
    // Visible (query, key) pairs under the causal mask; 4 flops per pair and dim (q.k, p.v).
    let pairs: usize = (0..q_len).map(|i| kv_len - q_len + i + 1).sum();
    Measurement {
        kernel: "attention causal".into(),
        shape: format!(
            "q{q_len} kv{kv_len} h9/3 d64{}",
            if f16_cache { " f16 KV" } else { "" }
        ),
        median_s,
        flops: (4 * pairs * d * nh) as f64,
        bytes: (element * 2 * kv_len * nkv * d + 4 * 2 * q.len()) as f64,
        bound: if q_len == 1 {
            Bound::Memory
        } else {
            Bound::Compute
        },
    }
}

/// Times a patch-embedding conv2d (`cpu::conv2d`: im2col + GEMM) of one `side` x `side`
/// image, `in_ch -> out_ch` channels, kernel = stride = `kernel`, f32 or bf16 weights (the
/// shapes of `scripts/baselines/torch_kernels.py`).
pub fn bench_conv2d_patch(
    isa: Isa,
    (in_ch, out_ch, kernel, side): (usize, usize, usize, usize),
    bf16_weights: bool,
    runs: usize,
) -> Measurement {
    let p = Conv2dParams {
        batch: 1,
        in_channels: in_ch,
        height: side,
        width: side,
        out_channels: out_ch,
        kernel_h: kernel,
        kernel_w: kernel,
        stride: [kernel, kernel],
        padding: [0, 0],
    };
    let mut rng = Rng::new(3);
    let x = rng.vec(in_ch * side * side, -1.0, 1.0);
    let w = rng.vec(out_ch * in_ch * kernel * kernel, -0.5, 0.5);
    let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
    let ws = if bf16_weights {
        WeightSlice::BF16(&wb)
    } else {
        WeightSlice::F32(&w)
    };
    let bias = rng.vec(out_ch, -0.2, 0.2);
    let positions = p.out_height() * p.out_width();
    let mut out = vec![0.0f32; out_ch * positions];
    let median_s = median_time(runs, || {
        conv2d::conv2d(isa, &x, ws, Some(WeightSlice::F32(&bias)), &p, &mut out)
    });
    let k = in_ch * kernel * kernel;
    Measurement {
        kernel: format!("conv2d patch {}", if bf16_weights { "bf16" } else { "f32" }),
        shape: format!("{in_ch}->{out_ch} k{kernel} s{kernel} {side}x{side}"),
        median_s,
        flops: (2 * positions * out_ch * k) as f64,
        bytes: (ws.len() * if bf16_weights { 2 } else { 4 } + 4 * (x.len() + out.len())) as f64,
        bound: Bound::Compute,
    }
}

/// Patch embeddings of the suite: CLIP ViT-L/14-336 and SigLIP-base-512.
const CONV_SHAPES: [(usize, usize, usize, usize); 2] = [(3, 1024, 14, 336), (3, 768, 16, 512)];

/// The whole suite at `isa`: every matmul shape with f32 and bf16 weights, then attention
/// prefill (512 tokens) and decode (1 query over 512 keys, f32 and f16 caches), then the
/// vision towers' patch embeddings.
pub fn suite(isa: Isa, runs: usize) -> Vec<Measurement> {
    let mut rows = Vec::new();
    for shape in MATMUL_SHAPES {
        for bf in [false, true] {
            rows.push(bench_matmul(isa, shape, bf, runs));
        }
        #[cfg(target_arch = "x86_64")]
        if gemm::packed::PackedWeights::supported(isa) {
            use gemm::packed::Precision;
            for (bf, precision) in [
                (false, Precision::F32),
                (true, Precision::F32),
                (true, Precision::Bf16Dot),
            ] {
                rows.extend(bench_matmul_packed(isa, shape, bf, precision, runs));
            }
        }
    }
    rows.push(bench_attention(isa, 512, 512, false, runs));
    rows.push(bench_attention(isa, 1, 512, false, runs));
    rows.push(bench_attention(isa, 1, 512, true, runs));
    for shape in CONV_SHAPES {
        for bf in [false, true] {
            rows.push(bench_conv2d_patch(isa, shape, bf, runs));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_measurements_are_positive() {
        let isa = Isa::detect();
        let (core, total) = probe_fma(isa);
        assert!(core > 0.0 && total > 0.0);
        assert!(probe_read_bandwidth(8) > 0.0);
        let m = bench_matmul(isa, (3, 17, 9), true, 2);
        assert!(m.gflops() > 0.0 && m.gb_s() > 0.0 && m.bound == Bound::Memory);
        let a = bench_attention(isa, 2, 5, false, 2);
        assert!(a.gflops() > 0.0 && a.bound == Bound::Compute);
        let a = bench_attention(isa, 1, 9, true, 2);
        assert!(a.gb_s() > 0.0 && a.bound == Bound::Memory);
    }
}
