//! Error messages that name the cause of a CUDA failure instead of a bare driver code: out of
//! device memory (what was being allocated, how much, and what the device has free), a PTX
//! module the driver refused (which module, its `.version` / `.target`, and what the code
//! means), and a GPU older than the PTX targets.
//!
//! The messages are built from the error code alone (`CUresult`'s name), never from
//! `cuGetErrorString`: that needs libcuda, and these functions are tested without it.

use std::fmt::Display;

use cudarc::driver::sys::CUresult;
use cudarc::driver::{result as cu, DriverError};
use iris_kernels::cuda::PtxModule;

use crate::error::{Error, Result};

/// The oldest compute capability the PTX modules target (sm_80).
pub(super) const MIN_COMPUTE_CAPABILITY: (i32, i32) = (8, 0);

/// Maps the failure of `what` ("allocating an arena", "uploading a bf16 x [..] weight"), which
/// needed `bytes` bytes of device memory: out of memory names the request and the device's
/// free / total memory; any other code is reported as it is.
pub(super) fn alloc_err(what: impl Display, bytes: usize) -> impl FnOnce(DriverError) -> Error {
    move |e| {
        if e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            // The driver answered the allocation, so it is loaded and can be asked this.
            Error::Cuda(out_of_memory_message(&what, bytes, cu::mem_get_info().ok()))
        } else {
            Error::Cuda(format!("{what} ({bytes} bytes): {e}"))
        }
    }
}

/// The out-of-memory message; `info` is the device's (free, total) bytes when known.
pub(super) fn out_of_memory_message(
    what: &dyn Display,
    bytes: usize,
    info: Option<(usize, usize)>,
) -> String {
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    let state = match info {
        Some((free, total)) => format!(
            "{:.2} GiB of the device's {:.2} GiB are free",
            gib(free),
            gib(total)
        ),
        None => "the device's free memory is unknown".to_string(),
    };
    format!(
        "out of GPU memory: {what} needs {bytes} bytes ({:.2} GiB) and {state} \
         (CUDA_ERROR_OUT_OF_MEMORY); use a smaller model, --dtype bf16, a shorter context, \
         or a GPU with more memory",
        gib(bytes)
    )
}

/// The message for a failure (driver code `code`) to load PTX `module` on `device`: it names
/// the module, its PTX ISA version and target, and what the driver's code means.
pub(super) fn ptx_load_message(module: &PtxModule, device: &str, code: CUresult) -> String {
    let directive = |name: &str| {
        module
            .source
            .lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| rest.trim().to_string())
            .unwrap_or_else(|| "?".to_string())
    };
    let (version, target) = (directive(".version"), directive(".target"));
    let meaning = match code {
        CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION => {
            "the driver is older than this PTX ISA version: update the NVIDIA driver"
        }
        CUresult::CUDA_ERROR_INVALID_PTX => {
            "the driver's PTX compiler rejected the text: run scripts/check_ptx.sh to see \
             ptxas's message"
        }
        CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU => "the PTX targets a newer GPU than this one",
        CUresult::CUDA_ERROR_JIT_COMPILER_NOT_FOUND => {
            "the driver's PTX JIT compiler (libnvidia-ptxjitcompiler) is not installed"
        }
        CUresult::CUDA_ERROR_OUT_OF_MEMORY => "the device is out of memory",
        _ => "see the CUDA driver documentation for this code",
    };
    format!(
        "loading PTX module `{}` (.version {version}, .target {target}) on {device} failed \
         with {code:?}: {meaning}",
        module.name
    )
}

/// An error unless `capability` is at least sm_80, the oldest target of the PTX modules.
pub(super) fn check_compute_capability(
    device: &str,
    ordinal: usize,
    capability: (i32, i32),
) -> Result<()> {
    if capability >= MIN_COMPUTE_CAPABILITY {
        return Ok(());
    }
    let (major, minor) = capability;
    Err(Error::Cuda(format!(
        "unsupported GPU: {device} (device {ordinal}) has compute capability {major}.{minor}, \
         but iris's PTX kernels need {}.{} or newer (A100, Ada, H100 and later)",
        MIN_COMPUTE_CAPABILITY.0, MIN_COMPUTE_CAPABILITY.1
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_names_the_request_and_the_free_memory() {
        let what = "uploading a bf16 x [11008, 4096] weight";
        let message = out_of_memory_message(&what, 3 << 30, Some((1 << 30, 80 << 30)));
        for part in [
            "out of GPU memory",
            "uploading a bf16 x [11008, 4096] weight needs",
            "3221225472 bytes (3.00 GiB)",
            "1.00 GiB of the device's 80.00 GiB are free",
            "CUDA_ERROR_OUT_OF_MEMORY",
        ] {
            assert!(message.contains(part), "`{part}` missing from: {message}");
        }
        let unknown = out_of_memory_message(&"allocating an arena", 10, None);
        assert!(unknown.contains("free memory is unknown"), "{unknown}");
    }

    #[test]
    fn ptx_failures_name_the_module_its_version_and_the_cause() {
        let module = &PtxModule {
            name: "gemm_demo",
            source: "// a header that mentions .version 1.0\n.version 8.0\n.target sm_90a\n",
            kernels: &[],
        };
        let message = ptx_load_message(
            module,
            "NVIDIA H100",
            CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
        );
        for part in [
            "`gemm_demo`",
            ".version 8.0",
            ".target sm_90a",
            "NVIDIA H100",
            "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
            "update the NVIDIA driver",
        ] {
            assert!(message.contains(part), "`{part}` missing from: {message}");
        }
        let invalid = ptx_load_message(module, "gpu", CUresult::CUDA_ERROR_INVALID_PTX);
        assert!(invalid.contains("scripts/check_ptx.sh"), "{invalid}");
    }

    #[test]
    fn gpus_older_than_sm_80_are_refused_by_name() {
        let err = check_compute_capability("Tesla T4", 0, (7, 5)).unwrap_err();
        let message = err.to_string();
        for part in ["unsupported GPU", "Tesla T4", "7.5", "8.0"] {
            assert!(message.contains(part), "`{part}` missing from: {message}");
        }
        check_compute_capability("A100", 0, (8, 0)).unwrap();
        check_compute_capability("H100", 1, (9, 0)).unwrap();
    }
}
