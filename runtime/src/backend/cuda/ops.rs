//! `CudaBackend::execute`: checks each op's operands (count, dtypes, shapes, slot sizes and
//! alignment, index ranges) and launches its PTX kernel on the backend's stream. Ops and
//! dtype combinations without a kernel yet are `Error::Unsupported`. Add and RmsNorm are here,
//! MatMul in `ops_matmul.rs`; every other op is dispatched by `ops_more.rs` to one file per
//! op family.

use cudarc::driver::{LaunchConfig, PushKernelArg};
use iris_kernels::cuda::{self as kernels, LaunchDims};

use super::ops_matmul;
use super::ops_more as more;
use super::{CudaBackend, CudaSlot};
use crate::backend::Operand;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::Op;
use crate::layout::Shape;

pub(super) fn execute(
    backend: &mut CudaBackend,
    op: &Op,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    match op {
        Op::Add => add(backend, inputs, output),
        Op::RmsNorm { eps } => rms_norm(backend, *eps, inputs, output),
        Op::MatMul { has_bias } => ops_matmul::matmul(backend, *has_bias, inputs, output),
        Op::Rope { inv_freq } => {
            let table = backend.inv_freq(inv_freq)?;
            more::rope(backend, inv_freq.len(), &table, inputs, output)
        }
        other => more::execute(backend, other, inputs, output),
    }
}

pub(super) fn unsupported(what: String) -> Error {
    Error::Unsupported {
        backend: "cuda",
        what,
    }
}

pub(super) fn invalid(op: &'static str, message: String) -> Error {
    Error::InvalidOp { op, message }
}

pub(super) fn dtypes(operands: &[&Operand<CudaSlot>]) -> String {
    operands
        .iter()
        .map(|o| o.dtype.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn expect_inputs(
    op: &'static str,
    inputs: &[Operand<CudaSlot>],
    count: usize,
) -> Result<()> {
    if inputs.len() != count {
        return Err(invalid(
            op,
            format!("expected {count} inputs, got {}", inputs.len()),
        ));
    }
    Ok(())
}

pub(super) fn expect_shape(name: &str, expected: &Shape, found: &Shape) -> Result<()> {
    if expected != found {
        return Err(Error::ShapeMismatch {
            name: name.to_string(),
            expected: expected.clone(),
            found: found.clone(),
        });
    }
    Ok(())
}

/// The operand's slot holds its elements and starts aligned for its dtype (allocations are
/// 256-byte aligned, so the offset decides).
pub(super) fn check_slot(op: &'static str, what: &str, operand: &Operand<CudaSlot>) -> Result<()> {
    let size = operand.dtype.size_in_bytes();
    let bytes = operand.shape.numel() * size;
    if operand.slot.len() < bytes {
        return Err(invalid(
            op,
            format!(
                "{what} is {} x {} ({bytes} bytes) but its slot holds {}",
                operand.dtype,
                operand.shape,
                operand.slot.len()
            ),
        ));
    }
    if !operand.slot.offset().is_multiple_of(size) {
        return Err(invalid(
            op,
            format!(
                "{what} starts at byte offset {}, not aligned for {}",
                operand.slot.offset(),
                operand.dtype
            ),
        ));
    }
    Ok(())
}

/// A size the kernels index with u32 arithmetic.
pub(super) fn kernel_u32(op: &'static str, what: &str, value: usize, max: usize) -> Result<u32> {
    if value > max {
        return Err(unsupported(format!(
            "{op} with {what} = {value} (the kernel handles up to {max})"
        )));
    }
    Ok(value as u32)
}

pub(super) fn config(dims: LaunchDims) -> LaunchConfig {
    LaunchConfig {
        grid_dim: dims.grid,
        block_dim: dims.block,
        shared_mem_bytes: dims.shared_mem_bytes,
    }
}

pub(super) fn launch_err(
    kernel: &'static str,
) -> impl FnOnce(cudarc::driver::DriverError) -> Error {
    move |e| Error::Cuda(format!("launching {kernel}: {e}"))
}

/// `[a, b] -> a + b`, b's shape a suffix of a's (leading 1s of b ignored).
fn add(
    backend: &CudaBackend,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "add";
    expect_inputs(OP, inputs, 2)?;
    let (a, b) = (&inputs[0], &inputs[1]);
    if (a.dtype, b.dtype, output.dtype) != (DType::F32, DType::F32, DType::F32) {
        return Err(unsupported(format!(
            "add of {} (only f32)",
            dtypes(&[a, b, output])
        )));
    }
    expect_shape("add output", &a.shape, &output.shape)?;
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
    let n = kernel_u32(OP, "elements", a.shape.numel(), kernels::MAX_DIM)?;
    let b_len = b.shape.numel() as u32; // divides n, so fits
    if n == 0 {
        return Ok(());
    }

    let kernel = "add_f32";
    let function = backend.function(kernel)?;
    let stream = &backend.stream;
    let (a_ptr, b_ptr, out_ptr) = (
        a.slot.device_ptr(stream),
        b.slot.device_ptr(stream),
        output.slot.device_ptr(stream),
    );
    let mut launch = stream.launch_builder(function);
    launch
        .arg(&a_ptr)
        .arg(&b_ptr)
        .arg(&out_ptr)
        .arg(&n)
        .arg(&b_len);
    // SAFETY: the arguments match add_f32's parameters (u64 a, b, out; u32 n, b_len). The
    // kernel reads a[0..n] and b[0..b_len] and writes out[0..n] (f32), and check_slot proved
    // each slot holds that many bytes, 4-byte aligned; 1 <= b_len divides n <= 2^31 - 1 as
    // the kernel requires. The slots' allocations outlive the launch: they are only freed
    // stream-ordered, after it.
    unsafe { launch.launch(config(kernels::add_f32_dims(n))) }.map_err(launch_err(kernel))?;
    Ok(())
}

/// `[x [.., D], weight [D]] -> x / sqrt(mean(x^2) + eps) * weight`.
fn rms_norm(
    backend: &CudaBackend,
    eps: f32,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Result<()> {
    const OP: &str = "rms_norm";
    expect_inputs(OP, inputs, 2)?;
    let (x, w) = (&inputs[0], &inputs[1]);
    let kernel = match (x.dtype, w.dtype, output.dtype) {
        (DType::F32, DType::F32, DType::F32) => "rms_norm_f32",
        (DType::F32, DType::BF16, DType::F32) => "rms_norm_f32_wbf16",
        (DType::F32, DType::F16, DType::F32) => "rms_norm_f32_wf16",
        _ => {
            return Err(unsupported(format!(
                "rms_norm of {} (x and output f32; weight f32, bf16 or f16)",
                dtypes(&[x, w, output])
            )))
        }
    };
    if x.shape.rank() == 0 {
        return Err(invalid(
            OP,
            "x must have at least one dimension".to_string(),
        ));
    }
    let dim = x.shape.last();
    expect_shape("rms_norm weight", &Shape::new([dim]), &w.shape)?;
    expect_shape("rms_norm output", &x.shape, &output.shape)?;
    for (what, operand) in [("x", x), ("weight", w), ("output", output)] {
        check_slot(OP, what, operand)?;
    }
    if x.shape.numel() == 0 {
        return Ok(());
    }
    let dim = kernel_u32(OP, "dim", dim, kernels::MAX_DIM)?;
    let rows = kernel_u32(OP, "rows", x.shape.rows(), kernels::MAX_DIM)?;

    let function = backend.function(kernel)?;
    let stream = &backend.stream;
    let (x_ptr, w_ptr, out_ptr) = (
        x.slot.device_ptr(stream),
        w.slot.device_ptr(stream),
        output.slot.device_ptr(stream),
    );
    let dims = kernels::rms_norm_dims(rows, dim);
    let mut launch = stream.launch_builder(function);
    launch
        .arg(&x_ptr)
        .arg(&w_ptr)
        .arg(&out_ptr)
        .arg(&dim)
        .arg(&eps);
    // SAFETY: the arguments match the kernel's parameters (u64 x, w, out; u32 dim; f32 eps).
    // Block r reads x[r * dim ..][..dim] and w[..dim] and writes out[r * dim ..][..dim] for
    // r < rows; check_slot proved the slots hold rows * dim f32 (x, out) and dim weight
    // elements, aligned for their dtypes (the kernel takes its 16-byte path only where the
    // addresses allow). Any block of whole warps up to 1024 threads is valid. Allocations are
    // freed stream-ordered, after it.
    unsafe { launch.launch(config(dims)) }.map_err(launch_err(kernel))?;
    Ok(())
}
