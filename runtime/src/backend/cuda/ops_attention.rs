//! RoPE and attention: plain attention (optional causal mask and additive mask, GQA) and
//! cached attention, which appends the new K/V rows to the cache and attends over it.

use iris_kernels::cuda as kernels;

use super::ops::{check_slot, expect_inputs, expect_shape, invalid, kernel_u32, unsupported};
use super::ops_more::{elements, expect_f32, launch, ptr, Arg};
use super::{CudaBackend, CudaSlot};
use crate::backend::Operand;
use crate::dtype::DType;
use crate::error::Result;
use crate::layout::Shape;

/// `[x [B, T, H, D], positions i64 [B, T]]`, inv_freq uploaded in `table`.
pub(super) fn rope(
    backend: &CudaBackend,
    half: usize,
    table: &CudaSlot,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "rope";
    expect_inputs(OP, inputs, 2)?;
    let (x, pos) = (&inputs[0], &inputs[1]);
    expect_f32(OP, &[x, output])?;
    if pos.dtype != DType::I64 {
        return Err(unsupported(format!("rope with {} positions", pos.dtype)));
    }
    let d = x.shape.dims();
    if d.len() != 4 {
        return Err(invalid(OP, format!("x {} is not [B, T, H, D]", x.shape)));
    }
    expect_shape("rope positions", &Shape::new([d[0], d[1]]), &pos.shape)?;
    expect_shape("rope output", &x.shape, &output.shape)?;
    if 2 * half > d[3] {
        return Err(invalid(
            OP,
            format!("rotary dim {} exceeds head_dim {}", 2 * half, d[3]),
        ));
    }
    if table.len() < 4 * half {
        return Err(invalid(OP, "rope table slot too small".into()));
    }
    check_slot(OP, "x", x)?;
    check_slot(OP, "positions", pos)?;
    check_slot(OP, "output", output)?;
    let n = elements(OP, &x.shape)?;
    if n == 0 {
        return Ok(());
    }
    let table_ptr = Arg::Ptr(table.device_ptr(&backend.stream));
    // SAFETY: rope_f32(x, pos, inv_freq, out: u64; n, heads, head_dim, half: u32) reads
    // x[..n], pos[..n / (heads * head_dim)] (i64), inv_freq[..half] and writes out[..n];
    // checked above.
    unsafe {
        launch(
            backend,
            "rope_f32",
            kernels::elementwise_dims(n),
            &[
                ptr(backend, x),
                ptr(backend, pos),
                table_ptr,
                ptr(backend, output),
                Arg::U32(n),
                Arg::U32(d[2] as u32),
                Arg::U32(d[3] as u32),
                Arg::U32(half as u32),
            ],
        )
    }
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
    let mask_ptr = mask.map_or(Arg::Ptr(0), |m| ptr(backend, m));
    // SAFETY: attention_f32's parameters in order; with past_len = 0 it reads q, k, v
    // (strides of a contiguous [B, Tk, Hkv, D]) and the mask inside their checked shapes and
    // writes out [B, Tq, Hq, D].
    unsafe {
        launch(
            backend,
            "attention_f32",
            kernels::attention_dims(hq as u32, tq as u32, b as u32),
            &[
                ptr(backend, q),
                ptr(backend, k),
                ptr(backend, v),
                mask_ptr,
                ptr(backend, output),
                Arg::Ptr(0),
                Arg::U32(tq as u32),
                Arg::U32(tk as u32),
                Arg::U32(hq as u32),
                Arg::U32((hq / hkv) as u32),
                Arg::U32(d as u32),
                Arg::U32((tk * hkv * d) as u32),
                Arg::U32(d as u32),
                Arg::U32((hkv * d) as u32),
                Arg::U32(tk as u32),
                Arg::F32(scale),
                Arg::U32(causal as u32),
            ],
        )
    }
}

pub(super) fn cached_attention(
    backend: &CudaBackend,
    scale: f32,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "cached_attention";
    expect_inputs(OP, inputs, 6)?;
    let (q, k, v, k_cache, v_cache, past) = (
        &inputs[0], &inputs[1], &inputs[2], &inputs[3], &inputs[4], &inputs[5],
    );
    expect_f32(OP, &[q, k, v, k_cache, v_cache, output])?;
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
    let past_ptr = ptr(backend, past);
    let err_ptr = Arg::Ptr(backend.error_flag.device_ptr(&backend.stream));
    // SAFETY: kv_write_f32(k_new, v_new, k_cache, v_cache, past_len, err: u64; n, new_len,
    // heads, head_dim, max_seq: u32) reads past_len on the device and writes cache rows
    // past_len..past_len + T only when they fit in max_seq (else it raises the 16-byte error
    // flag); the shapes were checked above.
    unsafe {
        launch(
            backend,
            "kv_write_f32",
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
    // SAFETY: attention_f32 in cache mode: kv_len = past_len + T read on the device and
    // checked against max_seq before any cache row is read; cache strides [B, Hkv, S, D].
    unsafe {
        launch(
            backend,
            "attention_f32",
            kernels::attention_dims(hq as u32, t as u32, b as u32),
            &[
                ptr(backend, q),
                ptr(backend, k_cache),
                ptr(backend, v_cache),
                Arg::Ptr(0),
                ptr(backend, output),
                past_ptr,
                Arg::U32(t as u32),
                Arg::U32(0),
                Arg::U32(hq as u32),
                Arg::U32((hq / hkv) as u32),
                Arg::U32(d as u32),
                Arg::U32((hkv * max_seq * d) as u32),
                Arg::U32((max_seq * d) as u32),
                Arg::U32(d as u32),
                Arg::U32(max_seq as u32),
                Arg::F32(scale),
                Arg::U32(1),
            ],
        )
    }
}
