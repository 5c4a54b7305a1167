//! `CudaBackend::execute` for every op beyond Add, RmsNorm and MatMul (`ops.rs`): elementwise
//! activations, row kernels (softmax, layer norm, argmax), RoPE, attention (plain and over
//! the KV cache), embedding, conv2d and the strided copies behind permute, slice, concat and
//! pixel shuffle. Each function checks its operands (count, dtypes, shapes, slot sizes) and
//! launches the PTX kernel named in `iris_kernels::cuda`; activations are f32, weights f32 or
//! bf16.

use cudarc::driver::PushKernelArg;
use iris_kernels::cuda::{self as kernels, LaunchDims};

use super::ops::{
    check_slot, config, dtypes, expect_inputs, expect_shape, invalid, kernel_u32, launch_err,
    unsupported,
};
use super::{CudaBackend, CudaSlot};
use crate::backend::Operand;
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{GeluKind, Op};
use crate::layout::Shape;

/// One kernel argument, in parameter order.
enum Arg {
    Ptr(u64),
    U32(u32),
    F32(f32),
}

/// Launches `kernel` with `args`.
///
/// # Safety
/// `args` must match the kernel's parameter list, and every address range the kernel
/// touches for these sizes must lie inside live device allocations of this backend (each
/// caller checks its operands with `check_slot` first).
unsafe fn launch(
    backend: &CudaBackend,
    kernel: &'static str,
    dims: LaunchDims,
    args: &[Arg],
) -> Result<()> {
    let function = backend.function(kernel)?;
    let mut builder = backend.stream.launch_builder(function);
    for arg in args {
        match arg {
            Arg::Ptr(v) => builder.arg(v),
            Arg::U32(v) => builder.arg(v),
            Arg::F32(v) => builder.arg(v),
        };
    }
    // SAFETY: the caller guarantees the arguments and the memory they name (see above);
    // allocations are only freed stream-ordered, after the launch.
    unsafe { builder.launch(config(dims)) }.map_err(launch_err(kernel))?;
    Ok(())
}

fn ptr(backend: &CudaBackend, operand: &Operand<CudaSlot>) -> Arg {
    Arg::Ptr(operand.slot.device_ptr(&backend.stream))
}

fn expect_f32(op: &'static str, operands: &[&Operand<CudaSlot>]) -> Result<()> {
    if operands.iter().any(|o| o.dtype != DType::F32) {
        return Err(unsupported(format!(
            "{op} of {} (only f32 activations)",
            dtypes(operands)
        )));
    }
    Ok(())
}

/// f32 or bf16 weight: the kernel suffix.
fn weight_kernel(
    op: &'static str,
    f32_kernel: &'static str,
    bf16_kernel: &'static str,
    weights: &[&Operand<CudaSlot>],
) -> Result<&'static str> {
    let dtype = weights[0].dtype;
    if weights.iter().any(|w| w.dtype != dtype) {
        return Err(unsupported(format!(
            "{op} with mixed weight dtypes {}",
            dtypes(weights)
        )));
    }
    match dtype {
        DType::F32 => Ok(f32_kernel),
        DType::BF16 => Ok(bf16_kernel),
        _ => Err(unsupported(format!(
            "{op} with a {dtype} weight (f32 or bf16 only)"
        ))),
    }
}

fn elements(op: &'static str, shape: &Shape) -> Result<u32> {
    kernel_u32(op, "elements", shape.numel(), kernels::MAX_DIM)
}

pub(super) fn execute(
    backend: &mut CudaBackend,
    op: &Op,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    match op {
        Op::Mul => mul(backend, inputs, output),
        Op::Scale { factor } => unary(backend, "scale", "scale_f32", Some(*factor), inputs, output),
        Op::Gelu(GeluKind::Erf) => unary(backend, "gelu", "gelu_erf_f32", None, inputs, output),
        Op::Gelu(GeluKind::Tanh) => {
            unary(backend, "gelu_tanh", "gelu_tanh_f32", None, inputs, output)
        }
        Op::QuickGelu => unary(
            backend,
            "quick_gelu",
            "quick_gelu_f32",
            None,
            inputs,
            output,
        ),
        Op::Silu => unary(backend, "silu", "silu_f32", None, inputs, output),
        Op::SiluMul => silu_mul(backend, inputs, output),
        Op::Softmax => softmax(backend, inputs, output),
        Op::Argmax => argmax(backend, inputs, output),
        Op::LayerNorm { eps, has_bias } => layer_norm(backend, *eps, *has_bias, inputs, output),
        Op::Attention {
            causal,
            scale,
            has_mask,
        } => attention(backend, *causal, *scale, *has_mask, inputs, output),
        Op::CachedAttention { scale } => cached_attention(backend, *scale, inputs, output),
        Op::Embedding => embedding(backend, inputs, output),
        Op::Reshape { .. } => reshape(backend, inputs, output),
        Op::Permute { perm } => permute(backend, perm, inputs, output),
        Op::Slice { axis, start, end } => slice(backend, *axis, *start, *end, inputs, output),
        Op::Concat { axis } => concat(backend, *axis, inputs, output),
        Op::PixelShuffle { scale } => pixel_shuffle(backend, *scale, inputs, output),
        Op::Conv2d {
            stride,
            padding,
            has_bias,
        } => conv2d(backend, *stride, *padding, *has_bias, inputs, output),
        other => Err(unsupported(format!("op `{}`", other.name()))),
    }
}

/// `[a, b] -> a * b`, b a suffix of a (as Add).
fn mul(
    backend: &CudaBackend,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "mul";
    expect_inputs(OP, inputs, 2)?;
    let (a, b) = (&inputs[0], &inputs[1]);
    expect_f32(OP, &[a, b, output])?;
    expect_shape("mul output", &a.shape, &output.shape)?;
    let b_dims = b.shape.dims();
    let b_core = &b_dims[b_dims.iter().take_while(|&&d| d == 1).count()..];
    if !a.shape.dims().ends_with(b_core) {
        return Err(invalid(
            OP,
            format!(
                "b {} does not broadcast over a {} (must be a suffix)",
                b.shape, a.shape
            ),
        ));
    }
    for (what, operand) in [("a", a), ("b", b), ("output", output)] {
        check_slot(OP, what, operand)?;
    }
    let n = elements(OP, &a.shape)?;
    if n == 0 {
        return Ok(());
    }
    let b_len = b.shape.numel() as u32;
    // SAFETY: mul_f32(a, b, out: u64; n, b_len: u32) reads a[..n], b[..b_len] and writes
    // out[..n] f32; check_slot proved the slots, b_len divides n.
    unsafe {
        launch(
            backend,
            "mul_f32",
            kernels::elementwise_dims(n),
            &[
                ptr(backend, a),
                ptr(backend, b),
                ptr(backend, output),
                Arg::U32(n),
                Arg::U32(b_len),
            ],
        )
    }
}

/// `[x] -> f(x)` elementwise, f32; `factor` for scale.
fn unary(
    backend: &CudaBackend,
    op: &'static str,
    kernel: &'static str,
    factor: Option<f32>,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    expect_inputs(op, inputs, 1)?;
    let x = &inputs[0];
    expect_f32(op, &[x, output])?;
    expect_shape(&format!("{op} output"), &x.shape, &output.shape)?;
    check_slot(op, "x", x)?;
    check_slot(op, "output", output)?;
    let n = elements(op, &x.shape)?;
    if n == 0 {
        return Ok(());
    }
    let mut args = vec![ptr(backend, x), ptr(backend, output), Arg::U32(n)];
    if let Some(factor) = factor {
        args.push(Arg::F32(factor));
    }
    // SAFETY: the elementwise kernels take (x, out: u64; n: u32 [; factor: f32]) and touch
    // x[..n], out[..n] f32, both checked.
    unsafe { launch(backend, kernel, kernels::elementwise_dims(n), &args) }
}

/// `[gate, up] -> silu(gate) * up`, same shapes.
fn silu_mul(
    backend: &CudaBackend,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "silu_mul";
    expect_inputs(OP, inputs, 2)?;
    let (gate, up) = (&inputs[0], &inputs[1]);
    expect_f32(OP, &[gate, up, output])?;
    expect_shape("silu_mul up", &gate.shape, &up.shape)?;
    expect_shape("silu_mul output", &gate.shape, &output.shape)?;
    for (what, operand) in [("gate", gate), ("up", up), ("output", output)] {
        check_slot(OP, what, operand)?;
    }
    let n = elements(OP, &gate.shape)?;
    if n == 0 {
        return Ok(());
    }
    // SAFETY: silu_mul_f32(gate, up, out: u64; n: u32), all [n] f32, checked.
    unsafe {
        launch(
            backend,
            "silu_mul_f32",
            kernels::elementwise_dims(n),
            &[
                ptr(backend, gate),
                ptr(backend, up),
                ptr(backend, output),
                Arg::U32(n),
            ],
        )
    }
}

/// (rows, cols) of a row op over the last axis; None when empty.
fn rows_cols(op: &'static str, shape: &Shape) -> Result<Option<(u32, u32)>> {
    if shape.rank() == 0 {
        return Err(invalid(op, "x must have at least one dimension".into()));
    }
    if shape.numel() == 0 {
        return Ok(None);
    }
    let cols = kernel_u32(op, "cols", shape.last(), kernels::MAX_DIM)?;
    let rows = kernel_u32(op, "rows", shape.rows(), kernels::MAX_DIM)?;
    elements(op, shape)?;
    Ok(Some((rows, cols)))
}

fn softmax(
    backend: &CudaBackend,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "softmax";
    expect_inputs(OP, inputs, 1)?;
    let x = &inputs[0];
    expect_f32(OP, &[x, output])?;
    expect_shape("softmax output", &x.shape, &output.shape)?;
    check_slot(OP, "x", x)?;
    check_slot(OP, "output", output)?;
    let Some((rows, cols)) = rows_cols(OP, &x.shape)? else {
        return Ok(());
    };
    // SAFETY: softmax_f32(x, out: u64; cols: u32); block r touches row r of x and out, rows
    // = grid, checked.
    unsafe {
        launch(
            backend,
            "softmax_f32",
            kernels::row_dims(rows),
            &[ptr(backend, x), ptr(backend, output), Arg::U32(cols)],
        )
    }
}

fn argmax(
    backend: &CudaBackend,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "argmax";
    expect_inputs(OP, inputs, 1)?;
    let x = &inputs[0];
    expect_f32(OP, &[x])?;
    if output.dtype != DType::I64 {
        return Err(unsupported(format!("argmax into {}", output.dtype)));
    }
    let dims = x.shape.dims();
    if dims.is_empty() {
        return Err(invalid(OP, "x must have at least one dimension".into()));
    }
    expect_shape(
        "argmax output",
        &Shape::new(&dims[..dims.len() - 1]),
        &output.shape,
    )?;
    check_slot(OP, "x", x)?;
    check_slot(OP, "output", output)?;
    let Some((rows, cols)) = rows_cols(OP, &x.shape)? else {
        return Ok(());
    };
    // SAFETY: argmax_f32(x, out: u64; cols: u32): block r reads row r of x, writes out[r]
    // (i64); checked.
    unsafe {
        launch(
            backend,
            "argmax_f32",
            kernels::row_dims(rows),
            &[ptr(backend, x), ptr(backend, output), Arg::U32(cols)],
        )
    }
}

fn layer_norm(
    backend: &CudaBackend,
    eps: f32,
    has_bias: bool,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "layer_norm";
    expect_inputs(OP, inputs, 2 + has_bias as usize)?;
    let (x, w, b) = (&inputs[0], &inputs[1], inputs.get(2));
    expect_f32(OP, &[x, output])?;
    let mut weights = vec![w];
    weights.extend(b);
    let kernel = weight_kernel(OP, "layer_norm_f32", "layer_norm_f32_wbf16", &weights)?;
    if x.shape.rank() == 0 {
        return Err(invalid(OP, "x must have at least one dimension".into()));
    }
    let dim = Shape::new([x.shape.last()]);
    expect_shape("layer_norm weight", &dim, &w.shape)?;
    if let Some(b) = b {
        expect_shape("layer_norm bias", &dim, &b.shape)?;
        check_slot(OP, "bias", b)?;
    }
    expect_shape("layer_norm output", &x.shape, &output.shape)?;
    check_slot(OP, "x", x)?;
    check_slot(OP, "weight", w)?;
    check_slot(OP, "output", output)?;
    let Some((rows, cols)) = rows_cols(OP, &x.shape)? else {
        return Ok(());
    };
    let bias = b.map_or(Arg::Ptr(0), |b| ptr(backend, b));
    // SAFETY: layer_norm_f32*(x, w, b, out: u64; cols: u32; eps: f32); b = 0 means none;
    // block r touches row r of x/out and w[..cols], b[..cols]; checked.
    unsafe {
        launch(
            backend,
            kernel,
            kernels::row_dims(rows),
            &[
                ptr(backend, x),
                ptr(backend, w),
                bias,
                ptr(backend, output),
                Arg::U32(cols),
                Arg::F32(eps),
            ],
        )
    }
}

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

fn attention(
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

fn cached_attention(
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

fn embedding(
    backend: &CudaBackend,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "embedding";
    expect_inputs(OP, inputs, 2)?;
    let (ids, table) = (&inputs[0], &inputs[1]);
    if ids.dtype != DType::I64 {
        return Err(unsupported(format!("embedding with {} ids", ids.dtype)));
    }
    expect_f32(OP, &[output])?;
    let kernel = weight_kernel(OP, "embedding_f32", "embedding_f32_wbf16", &[table])?;
    let td = table.shape.dims();
    if td.len() != 2 {
        return Err(invalid(OP, format!("table {} is not [V, D]", table.shape)));
    }
    let mut out_dims = ids.shape.dims().to_vec();
    out_dims.push(td[1]);
    expect_shape("embedding output", &Shape::new(out_dims), &output.shape)?;
    for (what, operand) in [("ids", ids), ("table", table), ("output", output)] {
        check_slot(OP, what, operand)?;
    }
    let n = elements(OP, &output.shape)?;
    if n == 0 {
        return Ok(());
    }
    let vocab = kernel_u32(OP, "vocab", td[0], kernels::MAX_DIM)?;
    let err_ptr = Arg::Ptr(backend.error_flag.device_ptr(&backend.stream));
    // SAFETY: embedding_f32*(ids, table, out, err: u64; n, dim, vocab: u32): reads ids[..n /
    // dim] (i64), table rows < vocab only, writes out[..n]; checked above.
    unsafe {
        launch(
            backend,
            kernel,
            kernels::elementwise_dims(n),
            &[
                ptr(backend, ids),
                ptr(backend, table),
                ptr(backend, output),
                err_ptr,
                Arg::U32(n),
                Arg::U32(td[1] as u32),
                Arg::U32(vocab),
            ],
        )
    }
}

/// Contiguous strides of `dims`, in elements.
fn strides_of(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    strides
}

/// One strided copy (`copy_strided_b32`) of `dims` elements from `src` to `dst` (strides and
/// offsets in elements of the operands' dtype, which must be 4 or 8 bytes wide).
#[allow(clippy::too_many_arguments)]
fn copy(
    backend: &CudaBackend,
    op: &'static str,
    src: &Operand<CudaSlot>,
    dst: &Operand<CudaSlot>,
    dims: &[usize],
    src_strides: &[usize],
    src_offset: usize,
    dst_strides: &[usize],
    dst_offset: usize,
) -> Result<()> {
    if src.dtype != dst.dtype {
        return Err(invalid(
            op,
            format!("{} input, {} output", src.dtype, dst.dtype),
        ));
    }
    let words = match src.dtype.size_in_bytes() {
        4 => 1,
        8 => 2,
        _ => {
            return Err(unsupported(format!(
                "{op} of {} (4- or 8-byte dtypes)",
                src.dtype
            )))
        }
    };
    let n: usize = dims.iter().product::<usize>() * words;
    if n == 0 {
        return Ok(());
    }
    // Drop size-1 axes, add the word axis of 8-byte elements, pad to rank 6 with leading 1s.
    let mut axes: Vec<(usize, usize, usize)> = dims
        .iter()
        .zip(src_strides)
        .zip(dst_strides)
        .filter(|((&d, _), _)| d != 1)
        .map(|((&d, &s), &t)| (d, s * words, t * words))
        .collect();
    if words == 2 {
        axes.push((2, 1, 1));
    }
    if axes.len() > kernels::COPY_RANK {
        return Err(unsupported(format!(
            "{op} over {} axes (at most 6)",
            axes.len()
        )));
    }
    while axes.len() < kernels::COPY_RANK {
        axes.insert(0, (1, 0, 0));
    }
    let limit = kernels::MAX_DIM / words;
    for (what, operand) in [("input", src), ("output", dst)] {
        check_slot(op, what, operand)?;
        kernel_u32(op, "elements", operand.shape.numel(), limit)?;
    }
    let n = kernel_u32(op, "elements", n, kernels::MAX_DIM)?;
    let mut args = vec![ptr(backend, src), ptr(backend, dst), Arg::U32(n)];
    args.extend(axes.iter().map(|a| Arg::U32(a.0 as u32)));
    args.extend(axes.iter().map(|a| Arg::U32(a.1 as u32)));
    args.extend(axes.iter().map(|a| Arg::U32(a.2 as u32)));
    args.push(Arg::U32((src_offset * words) as u32));
    args.push(Arg::U32((dst_offset * words) as u32));
    // SAFETY: copy_strided_b32(src, dst: u64; n; dims, src strides, dst strides (6 each);
    // src_offset, dst_offset: u32). Every caller derives dims/strides/offsets from the
    // checked shapes so that all indices fall inside src and dst (both checked slots).
    unsafe {
        launch(
            backend,
            "copy_strided_b32",
            kernels::elementwise_dims(n),
            &args,
        )
    }
}

fn reshape(
    backend: &CudaBackend,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "reshape";
    expect_inputs(OP, inputs, 1)?;
    let x = &inputs[0];
    if x.shape.numel() != output.shape.numel() {
        return Err(invalid(
            OP,
            format!("{} and {} differ in size", x.shape, output.shape),
        ));
    }
    if x.slot.same_buffer(&output.slot) && x.slot.offset() == output.slot.offset() {
        return Ok(()); // the executor's alias: nothing to do
    }
    let n = [x.shape.numel()];
    copy(backend, OP, x, output, &n, &[1], 0, &[1], 0)
}

fn permute(
    backend: &CudaBackend,
    perm: &[usize],
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "permute";
    expect_inputs(OP, inputs, 1)?;
    let x = &inputs[0];
    let xd = x.shape.dims();
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    if perm.len() != xd.len() || sorted.iter().enumerate().any(|(i, &p)| i != p) {
        return Err(invalid(
            OP,
            format!("{perm:?} is not a permutation of {} axes", xd.len()),
        ));
    }
    let out_dims: Vec<usize> = perm.iter().map(|&p| xd[p]).collect();
    expect_shape(
        "permute output",
        &Shape::new(out_dims.clone()),
        &output.shape,
    )?;
    let strides = strides_of(xd);
    let src_strides: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    copy(
        backend,
        OP,
        x,
        output,
        &out_dims,
        &src_strides,
        0,
        &strides_of(&out_dims),
        0,
    )
}

fn slice(
    backend: &CudaBackend,
    axis: usize,
    start: usize,
    end: usize,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "slice";
    expect_inputs(OP, inputs, 1)?;
    let x = &inputs[0];
    let xd = x.shape.dims();
    if axis >= xd.len() || start > end || end > xd[axis] {
        return Err(invalid(
            OP,
            format!("{start}..{end} on axis {axis} of {}", x.shape),
        ));
    }
    let mut out_dims = xd.to_vec();
    out_dims[axis] = end - start;
    expect_shape("slice output", &Shape::new(out_dims.clone()), &output.shape)?;
    let strides = strides_of(xd);
    copy(
        backend,
        OP,
        x,
        output,
        &out_dims,
        &strides,
        start * strides[axis],
        &strides_of(&out_dims),
        0,
    )
}

fn concat(
    backend: &CudaBackend,
    axis: usize,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "concat";
    if inputs.is_empty() {
        return Err(invalid(OP, "no inputs".into()));
    }
    let od = output.shape.dims();
    if axis >= od.len() {
        return Err(invalid(OP, format!("axis {axis} of {}", output.shape)));
    }
    let mut along = 0;
    for x in inputs {
        let xd = x.shape.dims();
        let fits = xd.len() == od.len()
            && xd
                .iter()
                .zip(od)
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !fits {
            return Err(invalid(
                OP,
                format!("input {} does not fit output {}", x.shape, output.shape),
            ));
        }
        along += xd[axis];
    }
    if along != od[axis] {
        return Err(invalid(
            OP,
            format!(
                "inputs add up to {along} on axis {axis}, output has {}",
                od[axis]
            ),
        ));
    }
    let out_strides = strides_of(od);
    let mut offset = 0;
    for x in inputs {
        let xd = x.shape.dims();
        copy(
            backend,
            OP,
            x,
            output,
            xd,
            &strides_of(xd),
            0,
            &out_strides,
            offset * out_strides[axis],
        )?;
        offset += xd[axis];
    }
    Ok(())
}

/// `[x [B, S, E]] -> [B, S / s^2, E s^2]` as the rank-6 permute
/// out[b, by, bx, dy, dx, e] = x[b, by, dy, bx, dx, e].
fn pixel_shuffle(
    backend: &CudaBackend,
    scale: usize,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "pixel_shuffle";
    expect_inputs(OP, inputs, 1)?;
    let x = &inputs[0];
    let xd = x.shape.dims();
    if xd.len() != 3 || scale == 0 {
        return Err(invalid(
            OP,
            format!("x {} is not [B, S, E] (scale {scale})", x.shape),
        ));
    }
    let (b, seq, e) = (xd[0], xd[1], xd[2]);
    let side = (seq as f64).sqrt().round() as usize;
    if side * side != seq || !side.is_multiple_of(scale) {
        return Err(invalid(
            OP,
            format!("seq {seq} is not a square with a side divisible by {scale}"),
        ));
    }
    let blocks = side / scale;
    expect_shape(
        "pixel_shuffle output",
        &Shape::new([b, seq / (scale * scale), e * scale * scale]),
        &output.shape,
    )?;
    let dims = [b, blocks, blocks, scale, scale, e];
    let src_strides = [seq * e, scale * side * e, scale * e, side * e, e, 1];
    copy(
        backend,
        OP,
        x,
        output,
        &dims,
        &src_strides,
        0,
        &strides_of(&dims),
        0,
    )
}

fn conv2d(
    backend: &CudaBackend,
    stride: [usize; 2],
    padding: [usize; 2],
    has_bias: bool,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "conv2d";
    expect_inputs(OP, inputs, 2 + has_bias as usize)?;
    let (x, w, bias) = (&inputs[0], &inputs[1], inputs.get(2));
    expect_f32(OP, &[x, output])?;
    let mut weights = vec![w];
    weights.extend(bias);
    let kernel = weight_kernel(OP, "conv2d_f32", "conv2d_f32_wbf16", &weights)?;
    let (xd, wd) = (x.shape.dims(), w.shape.dims());
    if xd.len() != 4 || wd.len() != 4 || wd[1] != xd[1] || stride.contains(&0) {
        return Err(invalid(
            OP,
            format!(
                "x {} / w {} / stride {stride:?} do not fit",
                x.shape, w.shape
            ),
        ));
    }
    let (n, c, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
    let (oc, kh, kw) = (wd[0], wd[2], wd[3]);
    let out_size = |size: usize, pad: usize, k: usize, s: usize| {
        (size + 2 * pad).checked_sub(k).map_or(0, |v| v / s + 1)
    };
    let (oh, ow) = (
        out_size(h, padding[0], kh, stride[0]),
        out_size(wi, padding[1], kw, stride[1]),
    );
    expect_shape("conv2d output", &Shape::new([n, oc, oh, ow]), &output.shape)?;
    if let Some(bias) = bias {
        expect_shape("conv2d bias", &Shape::new([oc]), &bias.shape)?;
        check_slot(OP, "bias", bias)?;
    }
    for (what, operand) in [("x", x), ("weight", w), ("output", output)] {
        check_slot(OP, what, operand)?;
        elements(OP, &operand.shape)?;
    }
    let total = elements(OP, &output.shape)?;
    if total == 0 {
        return Ok(());
    }
    if c == 0 || kh == 0 || kw == 0 {
        return Err(unsupported(format!(
            "conv2d with an empty input or kernel ({} * {})",
            x.shape, w.shape
        )));
    }
    let bias_ptr = bias.map_or(Arg::Ptr(0), |b| ptr(backend, b));
    let u = |v: usize| Arg::U32(v as u32);
    // SAFETY: conv2d_f32*(x, w, bias, out: u64; n, C, H, W, OC, KH, KW, OH, OW, sh, sw, ph,
    // pw: u32): taps outside the image are skipped, every other index lies in the checked
    // x [N, C, H, W], w [OC, C, KH, KW], bias [OC] and out [N, OC, OH, OW].
    unsafe {
        launch(
            backend,
            kernel,
            kernels::elementwise_dims(total),
            &[
                ptr(backend, x),
                ptr(backend, w),
                bias_ptr,
                ptr(backend, output),
                Arg::U32(total),
                u(c),
                u(h),
                u(wi),
                u(oc),
                u(kh),
                u(kw),
                u(oh),
                u(ow),
                u(stride[0]),
                u(stride[1]),
                u(padding[0]),
                u(padding[1]),
            ],
        )
    }
}
