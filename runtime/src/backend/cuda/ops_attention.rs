//! Attention: plain attention (optional causal mask and additive mask, GQA) and cached
//! attention, which appends the new K/V rows to the cache and attends over it.
//!
//! Kernel choice (activations are f32; the KV cache is f32, or f16, written rounded by
//! `kv_write_f16` and widened as loaded by the `_kvf16` entries; the f16 kernels pass the PTX
//! interpreter and `tests/cuda_attention.rs` checks them, but they have not run on a GPU yet,
//! so the CLI still refuses `--kv-cache f16` on CUDA):
//! - prefill shapes (at least `FLASH_MIN_ROWS` query rows, head_dim 64/72/80/128, no additive
//!   mask): `flash_attention_d*`, tensor cores with Q, K, V and the probabilities rounded to
//!   bf16 (f32 softmax and accumulation; NMSE ~1e-5 against f32 attention);
//! - cached attention with fewer rows (decode), head_dim 64/128: the f32 split-KV pair
//!   `attention_decode_d*_r*` + `attention_decode_combine_f32`, its partials in a backend
//!   state buffer sized by the (static) shapes;
//! - everything else, and every call when `IRIS_CUDA_EXACT_ATTENTION=1` (for exact f32
//!   checks): `attention_f32`, one warp per query row, f32 throughout. It reads f32 caches
//!   only: a call over an f16 cache that neither fast kernel takes is an error that says so.
//!
//! The fast kernels use float4 loads, so they also need 16-byte aligned operands (graph arenas
//! align to 64 bytes; anything else falls back to `attention_f32`).

use std::sync::OnceLock;

use iris_kernels::cuda as kernels;
use iris_kernels::cuda::attention_decode::{
    combine_dims, decode_dims, decode_plan, DecodePlan, ATTENTION_DECODE_COMBINE_F32,
};
use iris_kernels::cuda::flash_attention::{
    flash_attention_dims, flash_attention_kernel, flash_attention_warps, FLASH_MIN_ROWS,
};
use iris_kernels::cuda::KvType;

use super::ops::{check_slot, expect_inputs, expect_shape, invalid, kernel_u32, unsupported};
use super::ops_more::{elements, expect_f32, launch, ptr, Arg};
use super::{CudaBackend, CudaSlot};
use crate::backend::{Backend, Operand};
use crate::dtype::DType;
use crate::error::Result;
use crate::layout::Shape;

/// Set to `1` to run every attention on the exact f32 kernel.
const EXACT_ATTENTION_ENV: &str = "IRIS_CUDA_EXACT_ATTENTION";

/// Whether `IRIS_CUDA_EXACT_ATTENTION=1` (read once).
fn exact_attention() -> bool {
    static EXACT: OnceLock<bool> = OnceLock::new();
    *EXACT.get_or_init(|| std::env::var(EXACT_ATTENTION_ENV).is_ok_and(|v| v.trim() == "1"))
}

/// `IRIS_FLASH_WARPS=4|8`: that many warps per flash CTA wherever the head dim has such a
/// kernel (to time the two against each other); unset, the launch shape decides.
fn forced_flash_warps() -> Option<usize> {
    static WARPS: OnceLock<Option<usize>> = OnceLock::new();
    *WARPS.get_or_init(|| {
        std::env::var("IRIS_FLASH_WARPS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Checks q [B, Tq, Hq, D] and k/v [B, Tk, Hkv, D]; returns (B, Tq, Hq, Hkv, D).
fn attention_dims(
    op: &'static str,
    q: &Operand<CudaSlot>,
    k: &Operand<CudaSlot>,
    v: &Operand<CudaSlot>,
) -> Result<(usize, usize, usize, usize, usize)> {
    let (qd, kd) = (q.shape.dims(), k.shape.dims());
    if qd.len() != 4 || kd.len() != 4 {
        return Err(invalid(
            op,
            format!("q {} / k {} are not rank 4", q.shape, k.shape),
        ));
    }
    expect_shape(&format!("{op} v"), &k.shape, &v.shape)?;
    let (b, tq, hq, d) = (qd[0], qd[1], qd[2], qd[3]);
    let hkv = kd[2];
    if kd[0] != b || kd[3] != d || hkv == 0 || hq % hkv != 0 {
        return Err(invalid(
            op,
            format!(
                "k {} does not fit q {} (GQA needs Hq % Hkv == 0)",
                k.shape, q.shape
            ),
        ));
    }
    if d > kernels::ATTENTION_MAX_HEAD_DIM {
        return Err(unsupported(format!(
            "{op} with head_dim {d} (the kernel handles up to {})",
            kernels::ATTENTION_MAX_HEAD_DIM
        )));
    }
    kernel_u32(op, "batch", b, 65535)?;
    kernel_u32(op, "query rows", tq, 65535)?;
    Ok((b, tq, hq, hkv, d))
}

/// One attention call as every kernel sees it: sizes, where keys/values live (element
/// strides), scale and causality.
struct Call {
    b: usize,
    tq: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    kv_batch: usize,
    kv_head: usize,
    kv_pos: usize,
    /// Rows of the KV buffer (the cache capacity; Tk for plain attention).
    max_kv: usize,
    /// Keys for plain attention; 0 in cache mode (kv_len = *past + tq, read on the device).
    kv_len: usize,
    scale: f32,
    causal: bool,
    /// What K and V are stored as (f16 only for an f16 KV cache).
    kv: KvType,
}

/// Device addresses of one call's operands (`past` 0 for plain attention).
struct Ptrs {
    q: u64,
    k: u64,
    v: u64,
    out: u64,
    past: u64,
}

impl Call {
    fn group(&self) -> u32 {
        (self.hq / self.hkv) as u32
    }

    /// scale * log2(e): the fast kernels work in the log2 domain (ex2).
    fn scale_log2(&self) -> f32 {
        (self.scale as f64 * std::f64::consts::LOG2_E) as f32
    }
}

fn dev(backend: &CudaBackend, operand: &Operand<CudaSlot>) -> u64 {
    operand.slot.device_ptr(&backend.stream)
}

fn aligned16(backend: &CudaBackend, operands: &[&Operand<CudaSlot>]) -> bool {
    operands.iter().all(|o| dev(backend, o).is_multiple_of(16))
}

/// The flash kernel for this call and its warps per CTA, when it applies (see the module
/// header).
fn flash_kernel(
    backend: &CudaBackend,
    call: &Call,
    operands: &[&Operand<CudaSlot>],
) -> Option<(&'static str, usize)> {
    if exact_attention()
        || call.tq < FLASH_MIN_ROWS
        || call.hq > 65535
        || !aligned16(backend, operands)
    {
        return None;
    }
    let (tq, hq, b) = (call.tq as u32, call.hq as u32, call.b as u32);
    let chosen = flash_attention_warps(call.d, tq, hq, b);
    let warps = forced_flash_warps()
        .filter(|w| flash_attention_kernel(call.d, *w, call.kv).is_some())
        .unwrap_or(chosen);
    flash_attention_kernel(call.d, warps, call.kv).map(|kernel| (kernel, warps))
}

/// The split-KV plan for a cached call, when it applies.
fn decode_kernel(
    backend: &CudaBackend,
    call: &Call,
    operands: &[&Operand<CudaSlot>],
) -> Option<DecodePlan> {
    if exact_attention() || call.tq >= FLASH_MIN_ROWS || !aligned16(backend, operands) {
        return None;
    }
    let plan = decode_plan(
        call.d,
        call.hq / call.hkv,
        call.tq,
        call.b,
        call.hkv,
        call.max_kv,
        call.kv,
    )?;
    let rows = call.b * call.tq * call.hq;
    let fits = call.hkv * plan.row_groups as usize <= 65535
        && plan.scratch_len(rows, call.d) <= kernels::MAX_DIM;
    fits.then_some(plan)
}

/// Launches `attention_f32` (`mask` 0 for none).
///
/// # Safety
/// `ptrs` and `mask` must address live device buffers holding the operands `call` describes
/// (q, out [B, tq, hq, d]; keys/values at `call`'s strides for max_kv rows; the mask
/// [B, tq, kv_len]; past_len one i64), checked by the caller.
unsafe fn run_f32(backend: &CudaBackend, call: &Call, ptrs: &Ptrs, mask: u64) -> Result<()> {
    // SAFETY: attention_f32's parameters in order; it reads q, k, v (within max_kv rows:
    // in cache mode kv_len is checked against max_kv on the device) and the mask inside the
    // shapes the caller checked, and writes out [B, tq, hq, d].
    unsafe {
        launch(
            backend,
            "attention_f32",
            kernels::attention_dims(call.hq as u32, call.tq as u32, call.b as u32),
            &[
                Arg::Ptr(ptrs.q),
                Arg::Ptr(ptrs.k),
                Arg::Ptr(ptrs.v),
                Arg::Ptr(mask),
                Arg::Ptr(ptrs.out),
                Arg::Ptr(ptrs.past),
                Arg::U32(call.tq as u32),
                Arg::U32(call.kv_len as u32),
                Arg::U32(call.hq as u32),
                Arg::U32(call.group()),
                Arg::U32(call.d as u32),
                Arg::U32(call.kv_batch as u32),
                Arg::U32(call.kv_head as u32),
                Arg::U32(call.kv_pos as u32),
                Arg::U32(call.max_kv as u32),
                Arg::F32(call.scale),
                Arg::U32(call.causal as u32),
            ],
        )
    }
}

/// Launches a `flash_attention_d*` kernel.
///
/// # Safety
/// As [`run_f32`], and every address 16-byte aligned (`aligned16`).
unsafe fn run_flash(
    backend: &CudaBackend,
    (kernel, warps): (&'static str, usize),
    call: &Call,
    ptrs: &Ptrs,
) -> Result<()> {
    // SAFETY: the flash kernels' parameters in order (see their headers); they read q rows
    // < tq, key/value rows < kv_len <= max_kv (cache mode checks kv_len on the device) and
    // write out rows < tq, all inside the buffers the caller checked; float4 accesses are
    // aligned because every base is 16-byte aligned and head_dim is a multiple of 8.
    unsafe {
        launch(
            backend,
            kernel,
            flash_attention_dims(warps, call.tq as u32, call.hq as u32, call.b as u32),
            &[
                Arg::Ptr(ptrs.q),
                Arg::Ptr(ptrs.k),
                Arg::Ptr(ptrs.v),
                Arg::Ptr(ptrs.out),
                Arg::Ptr(ptrs.past),
                Arg::U32(call.tq as u32),
                Arg::U32(call.kv_len as u32),
                Arg::U32(call.hq as u32),
                Arg::U32(call.group()),
                Arg::U32(call.kv_batch as u32),
                Arg::U32(call.kv_head as u32),
                Arg::U32(call.kv_pos as u32),
                Arg::U32(call.max_kv as u32),
                Arg::F32(call.scale_log2()),
                Arg::U32(call.causal as u32),
            ],
        )
    }
}

/// Split-KV decode over the cache, then the chunk merge into `out`. The partials live in a
/// backend state buffer named by its size, so every decode graph of the same shapes shares
/// one and nothing is allocated after the first step.
///
/// # Safety
/// As [`run_f32`] in cache mode (`ptrs.past` set), every address 16-byte aligned.
unsafe fn run_decode(
    backend: &mut CudaBackend,
    plan: &DecodePlan,
    call: &Call,
    ptrs: &Ptrs,
) -> Result<()> {
    let rows = call.b * call.tq * call.hq;
    let len = plan.scratch_len(rows, call.d);
    let scratch = backend.state(
        &format!("cuda.attention_decode.partials.{len}"),
        DType::F32,
        &Shape::new([len]),
    )?;
    let part_o = scratch.device_ptr(&backend.stream);
    let part_ml = part_o + (rows * plan.chunks as usize * call.d * 4) as u64;
    // SAFETY: the decode kernel's parameters in order; it reads q rows of the call, cache
    // rows < kv_len <= max_kv (checked on the device) and writes, per real row and chunk,
    // d floats at part_o and two at part_ml: rows * chunks * (d + 2) floats, the scratch
    // length. The scratch is a whole allocation (aligned), d * 4 a multiple of 16.
    unsafe {
        launch(
            backend,
            plan.kernel,
            decode_dims(plan, call.hkv as u32, call.b as u32),
            &[
                Arg::Ptr(ptrs.q),
                Arg::Ptr(ptrs.k),
                Arg::Ptr(ptrs.v),
                Arg::Ptr(part_o),
                Arg::Ptr(part_ml),
                Arg::Ptr(ptrs.past),
                Arg::U32(call.tq as u32),
                Arg::U32(call.hq as u32),
                Arg::U32(call.group()),
                Arg::U32(call.kv_batch as u32),
                Arg::U32(call.kv_head as u32),
                Arg::U32(call.kv_pos as u32),
                Arg::U32(call.max_kv as u32),
                Arg::U32(plan.chunk_len),
                Arg::U32(plan.chunks),
                Arg::U32(plan.row_groups),
                Arg::F32(call.scale_log2()),
            ],
        )?;
    }
    // SAFETY: the combine kernel reads rows * chunks partials (written just above, stream
    // order) and writes out [rows, d]; chunks <= 64 as the kernel requires.
    unsafe {
        launch(
            backend,
            ATTENTION_DECODE_COMBINE_F32.kernels[0],
            combine_dims(rows as u32),
            &[
                Arg::Ptr(part_o),
                Arg::Ptr(part_ml),
                Arg::Ptr(ptrs.out),
                Arg::U32(plan.chunks),
                Arg::U32(call.d as u32),
            ],
        )
    }
}

pub(super) fn attention(
    backend: &CudaBackend,
    causal: bool,
    scale: f32,
    has_mask: bool,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "attention";
    expect_inputs(OP, inputs, 3 + has_mask as usize)?;
    let (q, k, v, mask) = (&inputs[0], &inputs[1], &inputs[2], inputs.get(3));
    let mut all = vec![q, k, v, output];
    all.extend(mask);
    expect_f32(OP, &all)?;
    let (b, tq, hq, hkv, d) = attention_dims(OP, q, k, v)?;
    let tk = k.shape.dims()[1];
    if let Some(mask) = mask {
        expect_shape("attention mask", &Shape::new([b, tq, tk]), &mask.shape)?;
    }
    expect_shape("attention output", &q.shape, &output.shape)?;
    for operand in &all {
        check_slot(OP, "operand", operand)?;
        elements(OP, &operand.shape)?;
    }
    if q.shape.numel() == 0 {
        return Ok(());
    }
    let call = Call {
        b,
        tq,
        hq,
        hkv,
        d,
        kv_batch: tk * hkv * d,
        kv_head: d,
        kv_pos: hkv * d,
        max_kv: tk,
        kv_len: tk,
        scale,
        causal,
        kv: KvType::F32,
    };
    let ptrs = Ptrs {
        q: dev(backend, q),
        k: dev(backend, k),
        v: dev(backend, v),
        out: dev(backend, output),
        past: 0,
    };
    if !has_mask {
        if let Some(kernel) = flash_kernel(backend, &call, &[q, k, v, output]) {
            // SAFETY: q, k, v (contiguous [B, Tk, Hkv, D]) and out were checked above and
            // are 16-byte aligned (flash_kernel).
            return unsafe { run_flash(backend, kernel, &call, &ptrs) };
        }
    }
    let mask_ptr = mask.map_or(0, |m| dev(backend, m));
    // SAFETY: q, k, v, the mask and out were checked above; past_len 0 (plain mode).
    unsafe { run_f32(backend, &call, &ptrs, mask_ptr) }
}

pub(super) fn cached_attention(
    backend: &mut CudaBackend,
    scale: f32,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "cached_attention";
    expect_inputs(OP, inputs, 6)?;
    let (q, k, v, k_cache, v_cache, past) = (
        &inputs[0], &inputs[1], &inputs[2], &inputs[3], &inputs[4], &inputs[5],
    );
    let kv = match (k_cache.dtype, v_cache.dtype) {
        (DType::F32, DType::F32) => KvType::F32,
        (DType::F16, DType::F16) => KvType::F16,
        (kd, vd) => {
            return Err(unsupported(format!(
                "{OP} with {kd} / {vd} KV caches (both f32, or both f16)"
            )))
        }
    };
    expect_f32(OP, &[q, k, v, output])?;
    if past.dtype != DType::I64 || past.shape.numel() != 1 {
        return Err(invalid(
            OP,
            format!(
                "past_len must be one i64, got {} {}",
                past.dtype, past.shape
            ),
        ));
    }
    let (b, t, hq, hkv, d) = attention_dims(OP, q, k, v)?;
    if k.shape.dims()[1] != t {
        return Err(invalid(
            OP,
            format!("k_new {} and q {} differ in T", k.shape, q.shape),
        ));
    }
    let cd = k_cache.shape.dims();
    if cd.len() != 4 || cd[0] != b || cd[1] != hkv || cd[3] != d {
        return Err(invalid(
            OP,
            format!("cache {} is not [{b}, {hkv}, S, {d}]", k_cache.shape),
        ));
    }
    let max_seq = cd[2];
    expect_shape("cached_attention v_cache", &k_cache.shape, &v_cache.shape)?;
    expect_shape("cached_attention output", &q.shape, &output.shape)?;
    for (what, operand) in [
        ("q", q),
        ("k_new", k),
        ("v_new", v),
        ("k_cache", k_cache),
        ("v_cache", v_cache),
        ("past_len", past),
        ("output", output),
    ] {
        check_slot(OP, what, operand)?;
        elements(OP, &operand.shape)?;
    }
    let n = elements(OP, &k.shape)?;
    if n == 0 || q.shape.numel() == 0 {
        return Ok(());
    }
    let call = Call {
        b,
        tq: t,
        hq,
        hkv,
        d,
        kv_batch: hkv * max_seq * d,
        kv_head: max_seq * d,
        kv_pos: d,
        max_kv: max_seq,
        kv_len: 0,
        scale,
        causal: true,
        kv,
    };
    let ptrs = Ptrs {
        q: dev(backend, q),
        k: dev(backend, k_cache),
        v: dev(backend, v_cache),
        out: dev(backend, output),
        past: dev(backend, past),
    };
    // The kernel is chosen before the cache is written, so a call no kernel takes changes
    // nothing.
    let operands = [q, k_cache, v_cache, output];
    let flash = flash_kernel(backend, &call, &operands);
    let decode = match flash {
        Some(_) => None,
        None => decode_kernel(backend, &call, &operands),
    };
    if kv == KvType::F16 && flash.is_none() && decode.is_none() {
        return Err(unsupported(format!(
            "{OP} over an f16 KV cache with head_dim {d}, {t} new rows{}: the CUDA kernels \
             that read f16 caches take head_dim 64/72/80/128 for prefill ({FLASH_MIN_ROWS}+ \
             rows) and 64/128 for decode; use an f32 cache (--kv-cache f32)",
            if exact_attention() {
                format!(", {EXACT_ATTENTION_ENV}=1")
            } else {
                String::new()
            }
        )));
    }
    let kv_write = match kv {
        KvType::F32 => "kv_write_f32",
        KvType::F16 => "kv_write_f16",
    };
    let err_ptr = Arg::Ptr(backend.error_flag.device_ptr(&backend.stream));
    // SAFETY: kv_write_f32 / _f16 (k_new, v_new, k_cache, v_cache, past_len, err: u64; n,
    // new_len, heads, head_dim, max_seq: u32) reads past_len on the device and writes cache
    // rows (of the cache's dtype) past_len..past_len + T only when they fit in max_seq (else
    // it raises the 16-byte error flag); the shapes and dtypes were checked above.
    unsafe {
        launch(
            backend,
            kv_write,
            kernels::elementwise_dims(n),
            &[
                ptr(backend, k),
                ptr(backend, v),
                ptr(backend, k_cache),
                ptr(backend, v_cache),
                ptr(backend, past),
                err_ptr,
                Arg::U32(n),
                Arg::U32(t as u32),
                Arg::U32(hkv as u32),
                Arg::U32(d as u32),
                Arg::U32(max_seq as u32),
            ],
        )?;
    }
    if let Some(kernel) = flash {
        // SAFETY: q, out and the [B, Hkv, S, D] caches (of `kv`'s dtype, which the kernel
        // reads) were checked above and are 16-byte aligned; kv_len = past_len + T is checked
        // against S on the device.
        return unsafe { run_flash(backend, kernel, &call, &ptrs) };
    }
    if let Some(plan) = decode {
        // SAFETY: as for the flash kernel.
        return unsafe { run_decode(backend, &plan, &call, &ptrs) };
    }
    // SAFETY: attention_f32 in cache mode over f32 caches (f16 ones were refused above):
    // kv_len = past_len + T read on the device and checked against max_seq before any cache
    // row is read; cache strides [B, Hkv, S, D].
    unsafe { run_f32(backend, &call, &ptrs, 0) }
}
