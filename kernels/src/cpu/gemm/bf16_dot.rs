//! The opt-in switch of bf16 compute for bf16 weights: with `IRIS_BF16_DOT=1` on a CPU with
//! AVX512-BF16, prefill/vision GEMMs over bf16 weights round the activations to bf16 (round
//! to nearest even) and multiply with `vdpbf16ps` at twice the f32 FMA rate (`gemm::packed`,
//! [`Precision::Bf16Dot`](super::packed::Precision)). That changes results at the
//! half-precision level (NMSE vs the f32 reference ~1e-6), so it is off by default: the
//! default keeps f32 activations, exact to f32 summation order.

use std::sync::OnceLock;

use crate::cpu::isa::{CpuFeatures, Isa};

/// The environment variable that turns the bf16 dot-product GEMM on.
pub const BF16_DOT_ENV: &str = "IRIS_BF16_DOT";

/// Whether the CPU has the AVX-512 level and AVX512-BF16.
pub fn supported() -> bool {
    Isa::Avx512.is_supported() && CpuFeatures::detect().avx512_bf16
}

/// Whether `IRIS_BF16_DOT=1` asked for it and the CPU [`supported`] it (read once).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        let asked = std::env::var(BF16_DOT_ENV).is_ok_and(|v| v.trim() == "1");
        if asked && !supported() {
            eprintln!("iris: {BF16_DOT_ENV}=1 ignored: this CPU lacks AVX512-BF16");
        }
        asked && supported()
    })
}
