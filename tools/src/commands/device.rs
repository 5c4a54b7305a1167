//! `--device`, `--dtype` and `--kv-cache` options shared by the commands that run models.

use std::str::FromStr;

use anyhow::bail;
use iris_models::llm::KvCacheDtype;
use iris_runtime::DType;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    Cpu,
    Cuda,
}

/// The KV cache's element type on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KvCache {
    /// Exact (the default).
    #[default]
    F32,
    /// Half the memory and the cache traffic of decode; values rounded to f16 (CPU only).
    F16,
}

impl KvCache {
    /// The cache type for `device`, or an error where the device's kernels lack it.
    pub fn for_device(self, device: Device) -> anyhow::Result<KvCacheDtype> {
        match (self, device) {
            (KvCache::F32, _) => Ok(KvCacheDtype::F32),
            (KvCache::F16, Device::Cpu) => Ok(KvCacheDtype::F16),
            // The CUDA kernels that read and write f16 caches pass the PTX interpreter
            // (scripts/check_ptx_sim.py) and their GPU tests are written, but they have not
            // run on a GPU yet: the CLI offers them once they have.
            (KvCache::F16, Device::Cuda) => {
                bail!(
                    "--kv-cache f16 is CPU-only for now: the CUDA kernels for f16 caches are \
                     not yet checked on a GPU; use --kv-cache f32"
                )
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KvCache::F32 => "f32",
            KvCache::F16 => "f16",
        }
    }
}

/// Weight precision requested on the command line (`None`: as stored in the checkpoint).
pub fn parse_dtype(value: Option<&str>) -> anyhow::Result<Option<DType>> {
    let Some(value) = value else { return Ok(None) };
    let dtype = DType::from_str(value).map_err(anyhow::Error::msg)?;
    if !dtype.is_float() {
        bail!("--dtype must be f32, bf16 or f16, not {value}");
    }
    Ok(Some(dtype))
}

/// Calls `$body` with `$backend` bound to the chosen device's backend.
macro_rules! with_backend {
    ($device:expr, |$backend:ident| $body:expr) => {{
        match $device {
            $crate::commands::device::Device::Cpu => {
                let $backend = iris_runtime::backend::cpu::CpuBackend::new();
                $body
            }
            $crate::commands::device::Device::Cuda => {
                #[cfg(feature = "cuda")]
                {
                    let $backend = iris_runtime::backend::cuda::CudaBackend::new(0)?;
                    $body
                }
                #[cfg(not(feature = "cuda"))]
                {
                    anyhow::bail!(
                        "this iris was built without CUDA support: rebuild with `--features cuda`"
                    )
                }
            }
        }
    }};
}
pub(crate) use with_backend;
