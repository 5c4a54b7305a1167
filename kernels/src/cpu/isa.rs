//! Runtime instruction-set dispatch for the CPU kernels.
//!
//! Kernels are compiled for every level at once with `#[target_feature(enable = ...)]`
//! functions (no compile-time `target-cpu`); which one runs is decided here, at run time:
//!
//! - [`Isa::Avx512`]: AVX-512 F + BW + VL (plus AVX2, FMA, F16C). 16-lane f32 kernels.
//! - [`Isa::Avx2`]: AVX2 + FMA + F16C. 8-lane f32 kernels.
//! - [`Isa::Scalar`]: plain Rust loops; every target, including non-x86 builds.
//!
//! [`selected`] is the level the fast kernels use by default: the best one this CPU supports,
//! unless the environment variable `IRIS_ISA=scalar|avx2|avx512` asks for another. Asking for
//! a level the CPU lacks (or an unknown name) is not silently ignored: on first use an error
//! line naming the variable, the request and the supported levels is printed to stderr and the
//! best supported level is used instead. Code that must not fall back (tests, benches) passes
//! an [`Isa`] explicitly to the kernels' entry points, which panic on an unsupported level.

use std::fmt;
use std::sync::OnceLock;

/// An instruction-set level of the CPU kernels, from the plainest to the widest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
}

/// The environment variable that overrides the detected level.
pub const ISA_ENV: &str = "IRIS_ISA";

/// `IRIS_ISA` named an unknown or unsupported level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsaError {
    Unknown(String),
    Unsupported(Isa),
}

impl fmt::Display for IsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let supported: Vec<&str> = Isa::available().iter().map(|i| i.name()).collect();
        match self {
            IsaError::Unknown(s) => write!(
                f,
                "{ISA_ENV}={s:?} is not an ISA level (scalar, avx2, avx512); this CPU supports: {}",
                supported.join(", ")
            ),
            IsaError::Unsupported(isa) => write!(
                f,
                "{ISA_ENV}={} is not supported by this CPU; it supports: {}",
                isa.name(),
                supported.join(", ")
            ),
        }
    }
}

impl std::error::Error for IsaError {}

impl Isa {
    /// Every level, plainest first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// Lower-case name as accepted by `IRIS_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a level name (case-insensitive).
    pub fn parse(s: &str) -> Result<Isa, IsaError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            _ => Err(IsaError::Unknown(s.to_string())),
        }
    }

    /// Whether this CPU can run the kernels of this level.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest supported level.
    pub fn detect() -> Isa {
        *Isa::available().last().expect("scalar is always available")
    }

    /// Supported levels, plainest first (always starts with `Scalar`).
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// f32 lanes of one vector register at this level.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Scalar => 1,
            Isa::Avx2 => 8,
            Isa::Avx512 => 16,
        }
    }

    /// The level `IRIS_ISA` asks for, or `Ok(None)` when it is unset or empty.
    pub fn from_env() -> Result<Option<Isa>, IsaError> {
        match std::env::var(ISA_ENV) {
            Ok(s) if !s.trim().is_empty() => {
                let isa = Isa::parse(&s)?;
                if isa.is_supported() {
                    Ok(Some(isa))
                } else {
                    Err(IsaError::Unsupported(isa))
                }
            }
            _ => Ok(None),
        }
    }

    /// Panics with a clear message unless this CPU supports `self`. Every public kernel
    /// entry point that takes an `Isa` calls this before running `target_feature` code.
    #[track_caller]
    pub fn assert_supported(self) {
        assert!(
            self.is_supported(),
            "CPU kernels asked to run at ISA level {} which this CPU does not support (supported: {:?})",
            self.name(),
            Isa::available()
        );
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Optional CPU features reported beside the level: `avx512_bf16` gates the opt-in bf16
/// dot-product GEMM (`gemm::bf16_dot`); the FP16 and AMX kernels of later slices will key on
/// the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFeatures {
    pub avx512_bf16: bool,
    pub avx512_fp16: bool,
    pub amx_tile: bool,
}

impl CpuFeatures {
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            CpuFeatures {
                avx512_bf16: is_x86_feature_detected!("avx512bf16"),
                avx512_fp16: is_x86_feature_detected!("avx512fp16"),
                // AMX-TILE: CPUID leaf 7, sub-leaf 0, EDX bit 24 (the std macro for AMX is
                // not stable yet). The OS must also enable the tile state (XCR0 bits 17/18),
                // which the AMX kernels will request before use.
                amx_tile: std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 24) != 0,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        CpuFeatures {
            avx512_bf16: false,
            avx512_fp16: false,
            amx_tile: false,
        }
    }
}

/// The level the fast kernels use by default: `IRIS_ISA` if set and supported, else the
/// detected best. Decided once per process; an invalid `IRIS_ISA` prints one error line to
/// stderr (see the module docs) and falls back to the detected level.
pub fn selected() -> Isa {
    static SELECTED: OnceLock<Isa> = OnceLock::new();
    *SELECTED.get_or_init(|| match Isa::from_env() {
        Ok(Some(isa)) => isa,
        Ok(None) => Isa::detect(),
        Err(e) => {
            let best = Isa::detect();
            eprintln!("iris: error: {e}; using {best} instead");
            best
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order() {
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(isa.name()), Ok(isa));
        }
        assert_eq!(Isa::parse(" AVX512 "), Ok(Isa::Avx512));
        assert!(matches!(Isa::parse("sse9"), Err(IsaError::Unknown(_))));
        assert!(Isa::Scalar < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
    }

    #[test]
    fn detection_is_consistent() {
        let avail = Isa::available();
        assert_eq!(avail[0], Isa::Scalar);
        assert_eq!(Isa::detect(), *avail.last().unwrap());
        // A wider level implies the narrower ones.
        if Isa::Avx512.is_supported() {
            assert!(Isa::Avx2.is_supported());
        }
        let msg = IsaError::Unsupported(Isa::Avx512).to_string();
        assert!(
            msg.contains("IRIS_ISA=avx512") && msg.contains("scalar"),
            "{msg}"
        );
    }
}
