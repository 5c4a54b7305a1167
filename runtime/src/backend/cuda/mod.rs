//! The CUDA backend: device memory and kernel launches over cudarc's driver API, loaded at
//! run time (`dynamic-loading`), so a binary built without CUDA runs anywhere and reports a
//! missing driver as an error instead of crashing.
//!
//! - One context and one (non-blocking) stream per backend; every copy and launch is queued
//!   on it, so stream order is the only synchronization needed. cudarc's per-allocation event
//!   tracking is turned off for that reason (it would record two events per launch).
//! - Slots are `Arc`'d allocations plus a byte range (`slot.rs`): views are free.
//! - The PTX modules of `iris_kernels::cuda::MODULES` are loaded, each at the first launch of
//!   one of its kernels (`modules.rs`).
//! - `execute` (in `ops.rs`) runs every op on f32 activations with f32, bf16 or f16 weights
//!   (RMSNorm, LayerNorm, embedding and conv2d widen 16-bit weights exactly to f32 as they
//!   load them); other dtype mixes are `Error::Unsupported`.
//! - MatMul with a bf16 (f16) weight rounds the activations to bf16 (f16) and runs on the
//!   tensor cores (a GEMV for M <= 8, a GEMM above), as PyTorch's Linear does; f32 weights
//!   keep the exact f32 kernel (`ops_matmul.rs`).
//! - Kernels that can fail on data (an embedding id out of range, a KV cache overflow) write
//!   a code into a 16-byte device error flag instead of trapping; `synchronize` and every
//!   read check it and report `Error::InvalidOp` (then clear it), so a bad id or a full cache
//!   is an error, never a crash or a silent wrong answer.
//! - `begin_capture` / `end_capture` record an executor's launches as a CUDA graph that is
//!   replayed per decode step (`graph.rs`; `IRIS_CUDA_GRAPH=0` turns it off). Out of memory,
//!   a refused PTX module and a GPU older than sm_80 are errors naming the cause (`errors.rs`).

mod errors;
mod graph;
mod modules;
mod ops;
mod ops_attention;
mod ops_conv;
mod ops_copy;
mod ops_elementwise;
mod ops_embedding;
mod ops_matmul;
mod ops_more;
mod ops_rope;
mod ops_rows;
mod slot;
mod timing;

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{result as cu, CudaContext, CudaFunction, CudaSlice, CudaStream, DriverError};
use iris_kernels::cuda::gemm_mma::{gemm_tile_named, GemmTile, GEMM_TILES};

pub use self::slot::CudaSlot;
use super::weight_key::WeightKey;
use super::{Backend, Operand};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::Op;
use crate::layout::Shape;
use crate::tensor::Tensor;
/// Every PTX module this backend loads (for `iris kernels --dump-ptx`).
pub use iris_kernels::cuda::{PtxModule, MODULES};

/// True when the CUDA driver library (libcuda) can be loaded on this machine. Touches no
/// CUDA function, so it is safe to call anywhere.
pub fn driver_present() -> bool {
    // SAFETY: `is_culib_present` only tries to dlopen the candidate library names and closes
    // what it opened; it calls no CUDA function and touches no shared state.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Wraps a driver error with what was being done.
fn cuda_err(context: impl std::fmt::Display) -> impl FnOnce(DriverError) -> Error {
    move |e| Error::Cuda(format!("{context}: {e}"))
}

/// Bytes of the device error flag.
const ERROR_FLAG_BYTES: usize = 16;

struct StateBuffer {
    dtype: DType,
    shape: Shape,
    slot: CudaSlot,
}

pub struct CudaBackend {
    // Field order is drop order: kernels and buffers go before the stream and context.
    modules: modules::Modules,
    weights: HashMap<WeightKey, (Tensor, CudaSlot)>,
    states: HashMap<String, StateBuffer>,
    /// RoPE frequency tables, uploaded once per distinct vector (keyed by the f32 bits).
    inv_freqs: HashMap<Vec<u32>, CudaSlot>,
    /// Device error flag: u32 code, u32 limit, i64 value (see iris_kernels::cuda).
    error_flag: CudaSlot,
    /// bf16 activations (and padded odd-K weights) of the tensor-core matmul: allocated at
    /// first need, replaced only by a larger one, never freed before the backend
    /// (`ops_matmul.rs`).
    matmul_scratch: ops_matmul::Scratch,
    /// `IRIS_GEMM_TILE`: one tensor-core GEMM variant for every matmul (to time the variants
    /// against each other); `None` picks per shape.
    gemm_tile: Option<&'static GemmTile>,
    /// Shared memory a block may use on this device (the opt-in limit), bytes.
    max_shared: u32,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    device_name: String,
    compute_capability: (i32, i32),
}

impl CudaBackend {
    /// Opens device `ordinal`; PTX modules load at their first launch. Fails with
    /// `Error::Cuda` (never panics) when libcuda is missing or the device does not exist or is
    /// older than sm_80; a module that does not load fails the launches that need it, with an
    /// error naming the module, the device and the cause.
    pub fn new(ordinal: usize) -> Result<Self> {
        if !driver_present() {
            let mut tried = cudarc::get_lib_name_candidates("cuda");
            tried.sort();
            tried.dedup();
            return Err(Error::Cuda(format!(
                "CUDA driver library (libcuda) not found: dlopen failed for {} names \
                 (libcuda.so, libcuda.so.1, ...); install the NVIDIA driver or add the \
                 directory holding libcuda.so.1 to LD_LIBRARY_PATH",
                tried.len()
            )));
        }
        // cudarc panics on a missing driver symbol and on a few malformed inputs; the check
        // above covers the common case, this covers the rest.
        match std::panic::catch_unwind(|| Self::open(ordinal)) {
            Ok(result) => result,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                Err(Error::Cuda(format!(
                    "initialising CUDA device {ordinal} panicked: {message}"
                )))
            }
        }
    }

    fn open(ordinal: usize) -> Result<Self> {
        cu::init().map_err(cuda_err("cuInit"))?;
        let count = CudaContext::device_count().map_err(cuda_err("counting CUDA devices"))?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::Cuda(format!(
                "no CUDA device {ordinal}: {count} device(s) visible"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(cuda_err(format_args!(
            "creating a context on CUDA device {ordinal}"
        )))?;
        let device_name = ctx.name().map_err(cuda_err("reading the device name"))?;
        let compute_capability = ctx
            .compute_capability()
            .map_err(cuda_err("reading the compute capability"))?;
        errors::check_compute_capability(&device_name, ordinal, compute_capability)?;
        // SAFETY: every allocation, copy and launch of this backend goes to `stream` (created
        // next), so stream order already serializes all uses of every buffer and frees are
        // stream-ordered; the per-buffer events cudarc would record add nothing.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(cuda_err("creating a stream"))?;

        // Consumer GPUs allow less shared memory per block than an H100 (99 KiB against 227).
        let max_shared = ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            .map_err(cuda_err("reading the shared memory per block"))?
            .max(0) as u32;
        let gemm_tile = gemm_tile_from_env()?;
        if let Some(tile) = gemm_tile {
            check_fits(tile, max_shared, &device_name)?;
        }
        let flag: CudaSlice<u8> = stream
            .alloc_zeros(ERROR_FLAG_BYTES)
            .map_err(cuda_err("allocating the device error flag"))?;
        Ok(CudaBackend {
            modules: modules::Modules::new(),
            weights: HashMap::new(),
            states: HashMap::new(),
            inv_freqs: HashMap::new(),
            error_flag: CudaSlot::whole(flag, ERROR_FLAG_BYTES),
            matmul_scratch: ops_matmul::Scratch::default(),
            gemm_tile,
            max_shared,
            stream,
            ctx,
            device_name,
            compute_capability,
        })
    }

    /// The GEMM variant every matmul uses, if one is forced (`IRIS_GEMM_TILE` or
    /// [`Self::force_gemm_tile`]).
    pub fn forced_gemm_tile(&self) -> Option<&'static GemmTile> {
        self.gemm_tile
    }

    /// Makes every later matmul use `tile` (`None`: the choice per output shape again). For
    /// tests and benchmarks that compare the variants. Fails, changing nothing, when the
    /// variant needs more shared memory than this device gives a block.
    pub fn force_gemm_tile(&mut self, tile: Option<&'static GemmTile>) -> Result<()> {
        if let Some(tile) = tile {
            check_fits(tile, self.max_shared, &self.device_name)?;
        }
        self.gemm_tile = tile;
        Ok(())
    }

    /// Shared memory a block may use on this device, bytes (the GEMM variants' limit).
    pub fn max_shared_per_block(&self) -> u32 {
        self.max_shared
    }

    /// The device's name as the driver reports it (e.g. "NVIDIA H100 80GB HBM3").
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// (major, minor) compute capability, e.g. (9, 0) for an H100.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// Number of weights uploaded so far (each once).
    pub fn uploaded_weights(&self) -> usize {
        self.weights.len()
    }

    /// Kernel `kernel`, its module loaded now if this is its first launch.
    fn function(&self, kernel: &'static str) -> Result<&CudaFunction> {
        self.modules
            .function(&self.ctx, (&self.device_name, self.max_shared), kernel)
    }

    /// Reads the device error flag (after the queued work) and turns a raised flag into an
    /// error, clearing it so the backend stays usable.
    fn check_device_error(&mut self) -> Result<()> {
        let mut flag = [0u8; ERROR_FLAG_BYTES];
        let view = self
            .error_flag
            .view(ERROR_FLAG_BYTES)
            .ok_or_else(|| Error::Cuda("device error flag slot is too small".into()))?;
        self.stream
            .memcpy_dtoh(&view, &mut flag)
            .map_err(cuda_err("reading the device error flag"))?;
        self.stream
            .synchronize()
            .map_err(cuda_err("waiting for the device error flag"))?;
        let code = u32::from_le_bytes(flag[0..4].try_into().expect("4 bytes"));
        if code == 0 {
            return Ok(());
        }
        let limit = u32::from_le_bytes(flag[4..8].try_into().expect("4 bytes"));
        let value = i64::from_le_bytes(flag[8..16].try_into().expect("8 bytes"));
        let zeros = [0u8; ERROR_FLAG_BYTES];
        let slot = self.error_flag.clone();
        self.write_bytes(&slot, &zeros)?;
        Err(match code {
            iris_kernels::cuda::ERROR_EMBEDDING_ID => Error::InvalidOp {
                op: "embedding",
                message: format!("token id {value} is outside the table's 0..{limit} rows"),
            },
            iris_kernels::cuda::ERROR_KV_OVERFLOW => Error::InvalidOp {
                op: "cached_attention",
                message: format!(
                    "past_len {value} plus the new tokens exceeds the KV cache of {limit} rows"
                ),
            },
            other => Error::Cuda(format!("a kernel raised unknown device error code {other}")),
        })
    }

    /// The device copy of a RoPE frequency table, uploaded on first use.
    fn inv_freq(&mut self, inv_freq: &[f32]) -> Result<CudaSlot> {
        let key: Vec<u32> = inv_freq.iter().map(|v| v.to_bits()).collect();
        if let Some(slot) = self.inv_freqs.get(&key) {
            return Ok(slot.clone());
        }
        let bytes: Vec<u8> = inv_freq.iter().flat_map(|v| v.to_le_bytes()).collect();
        let slot = if bytes.is_empty() {
            self.zeroed(0, "an empty rope table")?
        } else {
            let buffer = self
                .stream
                .clone_htod(&bytes)
                .map_err(cuda_err("uploading a rope frequency table"))?;
            CudaSlot::whole(buffer, bytes.len())
        };
        self.inv_freqs.insert(key, slot.clone());
        Ok(slot)
    }

    /// A zeroed allocation of `bytes` (one byte at least: CUDA cannot allocate nothing).
    fn zeroed(&self, bytes: usize, what: &str) -> Result<CudaSlot> {
        let buffer: CudaSlice<u8> = self
            .stream
            .alloc_zeros(bytes.max(1))
            .map_err(errors::alloc_err(format_args!("allocating {what}"), bytes))?;
        Ok(CudaSlot::whole(buffer, bytes))
    }
}

/// An error unless `tile` fits the `max_shared` bytes a block may use on the device.
fn check_fits(tile: &GemmTile, max_shared: u32, device: &str) -> Result<()> {
    if tile.shared_bytes() > max_shared {
        return Err(Error::Cuda(format!(
            "GEMM variant {} needs {} bytes of shared memory per block; {device} allows {max_shared}",
            tile.kernel,
            tile.shared_bytes()
        )));
    }
    Ok(())
}

/// `IRIS_GEMM_TILE=<variant>` (e.g. `64x128x64_s3`): that GEMM variant for every matmul. An
/// unknown name is an error that lists the variants, not a silent fallback.
fn gemm_tile_from_env() -> Result<Option<&'static GemmTile>> {
    let Some(name) = std::env::var_os("IRIS_GEMM_TILE") else {
        return Ok(None);
    };
    let name = name.to_string_lossy();
    if name.is_empty() {
        return Ok(None);
    }
    gemm_tile_named(&name).map(Some).ok_or_else(|| {
        let known: Vec<&str> = GEMM_TILES.iter().map(|t| t.shape).collect();
        Error::Cuda(format!(
            "IRIS_GEMM_TILE={name} names no GEMM variant (one of: {})",
            known.join(", ")
        ))
    })
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.device_name)
            .field("ordinal", &self.ctx.ordinal())
            .field("compute_capability", &self.compute_capability)
            .field("modules_loaded", &self.modules.loaded())
            .field("weights", &self.weights.len())
            .field("states", &self.states.len())
            .finish()
    }
}

impl Backend for CudaBackend {
    type Slot = CudaSlot;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn alloc(&mut self, bytes: usize) -> Result<CudaSlot> {
        self.zeroed(bytes, "an arena")
    }

    fn sub_slot(&self, slot: &CudaSlot, offset: usize, len: usize) -> CudaSlot {
        slot.sub(offset, len)
    }

    fn weight(&mut self, tensor: &Tensor) -> Result<CudaSlot> {
        let key = WeightKey::of(tensor);
        if let Some((_, slot)) = self.weights.get(&key) {
            return Ok(slot.clone());
        }
        let host = tensor.contiguous();
        let bytes = host.contiguous_bytes()?;
        let slot = if bytes.is_empty() {
            self.zeroed(0, "an empty weight")?
        } else {
            let buffer = self.stream.clone_htod(bytes).map_err(errors::alloc_err(
                format_args!("uploading a {} x {} weight", tensor.dtype(), tensor.shape()),
                bytes.len(),
            ))?;
            CudaSlot::whole(buffer, bytes.len())
        };
        self.weights.insert(key, (tensor.clone(), slot.clone()));
        Ok(slot)
    }

    fn state(&mut self, name: &str, dtype: DType, shape: &Shape) -> Result<CudaSlot> {
        if let Some(state) = self.states.get(name) {
            if state.dtype != dtype {
                return Err(Error::DTypeMismatch {
                    name: name.to_string(),
                    expected: state.dtype,
                    found: dtype,
                });
            }
            if &state.shape != shape {
                return Err(Error::ShapeMismatch {
                    name: name.to_string(),
                    expected: state.shape.clone(),
                    found: shape.clone(),
                });
            }
            return Ok(state.slot.clone());
        }
        let slot = self.zeroed(
            shape.numel() * dtype.size_in_bytes(),
            &format!("state `{name}`"),
        )?;
        self.states.insert(
            name.to_string(),
            StateBuffer {
                dtype,
                shape: shape.clone(),
                slot: slot.clone(),
            },
        );
        Ok(slot)
    }

    fn write_bytes(&mut self, slot: &CudaSlot, bytes: &[u8]) -> Result<()> {
        if bytes.len() > slot.len() {
            return Err(Error::InvalidOp {
                op: "cuda write",
                message: format!("{} bytes do not fit a slot of {}", bytes.len(), slot.len()),
            });
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.ctx
            .bind_to_thread()
            .map_err(cuda_err("binding the CUDA context"))?;
        let dst = slot.device_ptr(&self.stream);
        // SAFETY: dst..dst + bytes.len() lies inside the slot's allocation (checked above;
        // slots never extend past their allocation). `bytes` is pageable host memory: the
        // driver stages it before cuMemcpyHtoDAsync returns, so it may be dropped right after
        // (the same contract cudarc's own `memcpy_htod` relies on for slices).
        unsafe { cu::memcpy_htod_async(dst, bytes, self.stream.cu_stream()) }.map_err(cuda_err(
            format_args!("copying {} bytes to the device", bytes.len()),
        ))
    }

    fn copy_slot(&mut self, src: &CudaSlot, dst: &CudaSlot, bytes: usize) -> Result<()> {
        let invalid = |message: String| Error::InvalidOp {
            op: "cuda slot copy",
            message,
        };
        if bytes > src.len() || bytes > dst.len() {
            return Err(invalid(format!(
                "{bytes} bytes from a slot of {} into a slot of {}",
                src.len(),
                dst.len()
            )));
        }
        let overlap = src.same_buffer(dst)
            && src.offset() < dst.offset() + bytes
            && dst.offset() < src.offset() + bytes;
        if overlap {
            // cuMemcpyDtoD leaves overlapping ranges undefined.
            return Err(invalid(format!(
                "{bytes} bytes from offset {} onto offset {} of the same allocation overlap",
                src.offset(),
                dst.offset()
            )));
        }
        if bytes == 0 {
            return Ok(());
        }
        self.ctx
            .bind_to_thread()
            .map_err(cuda_err("binding the CUDA context"))?;
        let (from, to) = (src.device_ptr(&self.stream), dst.device_ptr(&self.stream));
        // SAFETY: both ranges of `bytes` lie inside live allocations of this backend (checked
        // above; slots never extend past their allocation, and the `Arc`s the slots hold keep
        // them allocated until the stream-ordered free after this copy), and they do not
        // overlap. The copy is queued on the backend's stream, behind the kernels that wrote
        // `src` and before any that read `dst`.
        unsafe { cu::memcpy_dtod_async(to, from, bytes, self.stream.cu_stream()) }.map_err(
            cuda_err(format_args!("copying {bytes} bytes between device buffers")),
        )
    }

    fn read_into(&mut self, slot: &CudaSlot, out: &mut [u8]) -> Result<()> {
        let bytes = out.len();
        let view = slot.view(bytes).ok_or_else(|| Error::InvalidOp {
            op: "cuda read",
            message: format!("{bytes} bytes requested from a slot of {}", slot.len()),
        })?;
        if bytes > 0 {
            self.stream
                .memcpy_dtoh(&view, out)
                .map_err(cuda_err(format_args!(
                    "copying {bytes} bytes from the device"
                )))?;
            self.stream
                .synchronize()
                .map_err(cuda_err("waiting for a device-to-host copy"))?;
        }
        self.check_device_error()
    }

    fn execute(
        &mut self,
        op: &Op,
        inputs: &[Operand<CudaSlot>],
        output: &Operand<CudaSlot>,
    ) -> Result<()> {
        ops::execute(self, op, inputs, output)
    }

    fn synchronize(&mut self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(cuda_err("synchronizing the stream"))?;
        // Errors cudarc could only record (in Drop impls) surface here.
        self.ctx
            .check_err()
            .map_err(cuda_err("a deferred CUDA error"))?;
        self.check_device_error()
    }

    fn begin_capture(&mut self) -> Result<bool> {
        self.begin_graph_capture()
    }

    fn end_capture(&mut self) -> Result<Box<dyn super::Recording>> {
        self.end_graph_capture()
    }
}
