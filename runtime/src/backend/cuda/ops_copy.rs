//! The strided copies (`copy_strided_b32`) behind reshape, permute, slice, concat and pixel
//! shuffle.

use iris_kernels::cuda as kernels;

use super::ops::{check_slot, expect_inputs, expect_shape, invalid, kernel_u32, unsupported};
use super::ops_more::{launch, ptr, Arg};
use super::{CudaBackend, CudaSlot};
use crate::backend::Operand;
use crate::error::Result;
use crate::layout::Shape;

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

pub(super) fn reshape(
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

pub(super) fn permute(
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

pub(super) fn slice(
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

pub(super) fn concat(
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
pub(super) fn pixel_shuffle(
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
