//! The backend's PTX modules, each loaded (and compiled by the driver) at the first launch of
//! one of its kernels rather than all when the backend starts.
//!
//! On an H100 without the driver's compute cache (a fresh machine or container, or
//! `CUDA_CACHE_DISABLE=1`), `iris bench kernels --device cuda --filter "add 2048"` took
//! 4.8-6.5 s as a whole process when the backend loaded every module at start, against
//! 0.45-0.5 s with the cache warm. Loading on first use: 0.40 s for that command, 1.07 s
//! for a bf16 GEMM (`--filter "matmul 600x4096x4096"`, the largest module) and 0.72 s for
//! flash attention, without the cache. A bf16 model never loads the f16 twins, the f32
//! matmul or the kernels of ops it does not use.
//!
//! Every graph runs op by op before it is recorded as a CUDA graph (see
//! `Executor::execute_replayed`), so its modules are loaded before any recording starts.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cudarc::driver::sys::CUfunction_attribute;
use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::Ptx;
use iris_kernels::cuda::{PtxModule, MODULES};

use super::errors;
use crate::error::{Error, Result};

/// Every module of `iris_kernels::cuda::MODULES`, loaded on first use.
pub(super) struct Modules {
    /// Kernel name -> index of its module in `MODULES`.
    module_of: HashMap<&'static str, usize>,
    /// Per module: its kernels once loaded, or the load error (kept, so a module that fails
    /// to load fails every launch the same way without retrying the driver).
    loaded: Vec<OnceLock<std::result::Result<HashMap<&'static str, CudaFunction>, String>>>,
}

impl Modules {
    pub(super) fn new() -> Self {
        let module_of = MODULES
            .iter()
            .enumerate()
            .flat_map(|(i, module)| module.kernels.iter().map(move |&kernel| (kernel, i)))
            .collect();
        Modules {
            module_of,
            loaded: MODULES.iter().map(|_| OnceLock::new()).collect(),
        }
    }

    /// Kernel `kernel`, loading its module on `ctx` first if no launch needed it yet.
    /// `max_shared`: the shared memory a block may use on the device; GEMM variants that need
    /// more than 48 KiB get their share when their module loads, those that need more than
    /// `max_shared` stay unused.
    pub(super) fn function(
        &self,
        ctx: &Arc<CudaContext>,
        (device_name, max_shared): (&str, u32),
        kernel: &'static str,
    ) -> Result<&CudaFunction> {
        let &index = self
            .module_of
            .get(kernel)
            .ok_or_else(|| Error::Cuda(format!("no PTX module defines kernel `{kernel}`")))?;
        let module = &MODULES[index];
        let functions = self.loaded[index]
            .get_or_init(|| load(ctx, (device_name, max_shared), module))
            .as_ref()
            .map_err(|message| Error::Cuda(message.clone()))?;
        functions.get(kernel).ok_or_else(|| {
            Error::Cuda(format!(
                "kernel `{kernel}` is missing from PTX module `{}`",
                module.name
            ))
        })
    }

    /// Modules loaded so far.
    pub(super) fn loaded(&self) -> usize {
        self.loaded.iter().filter(|m| m.get().is_some()).count()
    }
}

/// Loads `module` and finds its kernels; the error message names the module and device.
fn load(
    ctx: &Arc<CudaContext>,
    (device_name, max_shared): (&str, u32),
    module: &PtxModule,
) -> std::result::Result<HashMap<&'static str, CudaFunction>, String> {
    let loaded = ctx
        .load_module(Ptx::from_src(module.source))
        .map_err(|e| errors::ptx_load_message(module, device_name, e.0))?;
    let mut functions = HashMap::new();
    for &kernel in module.kernels {
        let function = loaded.load_function(kernel).map_err(|e| {
            format!(
                "finding kernel `{kernel}` in PTX module `{}`: {e}",
                module.name
            )
        })?;
        functions.insert(kernel, function);
    }
    // Consumer GPUs allow less shared memory per block than an H100 (99 KiB against 227):
    // variants beyond the device's limit stay unused instead of failing the module.
    for (kernel, bytes) in iris_kernels::cuda::gemm_mma::dynamic_shared_kernels() {
        let Some(function) = functions.get(kernel) else {
            continue;
        };
        if bytes > max_shared {
            continue;
        }
        function
            .set_attribute(
                CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes as i32,
            )
            .map_err(|e| {
                format!(
                    "allowing `{kernel}` {bytes} bytes of dynamic shared memory on \
                         {device_name}: {e}"
                )
            })?;
    }
    Ok(functions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel name belongs to exactly one module, so a launch loads the right one.
    #[test]
    fn every_kernel_has_one_module() {
        let modules = Modules::new();
        let total: usize = MODULES.iter().map(|m| m.kernels.len()).sum();
        assert_eq!(
            modules.module_of.len(),
            total,
            "a kernel name is in two modules"
        );
        for (i, module) in MODULES.iter().enumerate() {
            for kernel in module.kernels {
                assert_eq!(modules.module_of[kernel], i, "{kernel}");
            }
        }
        assert_eq!(modules.loaded(), 0);
    }
}
