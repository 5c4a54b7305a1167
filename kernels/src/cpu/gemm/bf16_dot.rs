//! The switch of bf16 compute for bf16 weights: on a CPU with AVX512-BF16, prefill/vision
//! GEMMs over bf16 weights round the activations to bf16 (round to nearest even) and multiply
//! with `vdpbf16ps` at twice the f32 FMA rate (`gemm::packed`,
//! [`Precision::Bf16Dot`](super::packed::Precision)). That changes results at the
//! half-precision level (NMSE vs the f32 reference ~1e-6), so it is off by default: the
//! default keeps f32 activations, exact to f32 summation order.
//!
//! The choice is made once per process: by [`choose`] (the CLI's `--cpu-compute`) before
//! the first GEMM, else by `IRIS_BF16_DOT=1`.

use std::sync::OnceLock;

use crate::cpu::isa::{CpuFeatures, Isa};

/// The environment variable that turns the bf16 dot-product GEMM on.
pub const BF16_DOT_ENV: &str = "IRIS_BF16_DOT";

static ENABLED: OnceLock<bool> = OnceLock::new();

/// A compute choice that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceError {
    /// bf16 compute asked for on a CPU without AVX512-BF16.
    Unsupported,
    /// The process already computes the other way (a GEMM ran, or an earlier choice).
    AlreadyFixed { bf16: bool },
}

impl std::fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChoiceError::Unsupported => {
                write!(
                    f,
                    "bf16 compute needs AVX-512 with AVX512-BF16; this CPU lacks it"
                )
            }
            ChoiceError::AlreadyFixed { bf16 } => write!(
                f,
                "this process already computes bf16-weight GEMMs in {}",
                if *bf16 { "bf16" } else { "f32" }
            ),
        }
    }
}

impl std::error::Error for ChoiceError {}

/// Whether the CPU has the AVX-512 level and AVX512-BF16.
pub fn supported() -> bool {
    Isa::Avx512.is_supported() && CpuFeatures::detect().avx512_bf16
}

/// Fixes the choice for this process: bf16 compute (`true`) or f32. Call it before any GEMM;
/// choosing again the same way is fine.
pub fn choose(bf16: bool) -> Result<(), ChoiceError> {
    if bf16 && !supported() {
        return Err(ChoiceError::Unsupported);
    }
    match *ENABLED.get_or_init(|| bf16) {
        fixed if fixed == bf16 => Ok(()),
        fixed => Err(ChoiceError::AlreadyFixed { bf16: fixed }),
    }
}

/// Whether bf16 compute is on: as [`choose`] fixed it, else as `IRIS_BF16_DOT=1` asks (when
/// the CPU is [`supported`]; otherwise it says so once and stays off).
pub fn enabled() -> bool {
    *ENABLED.get_or_init(|| {
        let asked = std::env::var(BF16_DOT_ENV).is_ok_and(|v| v.trim() == "1");
        if asked && !supported() {
            eprintln!("iris: {BF16_DOT_ENV}=1 ignored: this CPU lacks AVX512-BF16");
        }
        asked && supported()
    })
}
