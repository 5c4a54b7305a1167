//! Row ops over the last axis (one block per row): softmax, argmax and layer norm.

use iris_kernels::cuda as kernels;

use super::ops::{check_slot, expect_inputs, expect_shape, invalid, kernel_u32, unsupported};
use super::ops_more::{elements, expect_f32, launch, ptr, weight_kernel, Arg};
use super::{CudaBackend, CudaSlot};
use crate::backend::Operand;
use crate::dtype::DType;
use crate::error::Result;
use crate::layout::Shape;

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

pub(super) fn softmax(
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

pub(super) fn argmax(
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

pub(super) fn layer_norm(
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
    let kernel = weight_kernel(
        OP,
        "layer_norm_f32",
        "layer_norm_f32_wbf16",
        "layer_norm_f32_wf16",
        &weights,
    )?;
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
