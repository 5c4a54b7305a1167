//! `CudaBackend::execute` for every op beyond Add, RmsNorm and MatMul (`ops.rs`): the
//! dispatch below and the launch helpers the op files share. The ops live one family per
//! file: elementwise activations (`ops_elementwise.rs`), row kernels such as softmax, layer
//! norm and argmax (`ops_rows.rs`), RoPE (`ops_rope.rs`), attention, plain and over the KV
//! cache (`ops_attention.rs`), embedding (`ops_embedding.rs`), the strided copies behind reshape,
//! permute, slice, concat and pixel shuffle (`ops_copy.rs`) and conv2d (`ops_conv.rs`). Each
//! function checks its operands (count, dtypes, shapes, slot sizes) and launches the PTX
//! kernel named in `iris_kernels::cuda`; activations are f32, weights f32, bf16 or f16.

use cudarc::driver::PushKernelArg;
use iris_kernels::cuda::{self as kernels, LaunchDims};

use super::ops::{config, dtypes, kernel_u32, launch_err, unsupported};
use super::ops_attention::{attention, cached_attention};
use super::ops_conv::conv2d;
use super::ops_copy::{concat, permute, pixel_shuffle, reshape, slice};
use super::ops_elementwise::{mul, silu_mul, unary};
use super::ops_embedding::embedding;
pub(super) use super::ops_rope::rope;
use super::ops_rows::{argmax, layer_norm, softmax};
use super::{CudaBackend, CudaSlot};
use crate::backend::Operand;
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{GeluKind, Op};
use crate::layout::Shape;

/// One kernel argument, in parameter order.
pub(super) enum Arg {
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
pub(super) unsafe fn launch(
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

pub(super) fn ptr(backend: &CudaBackend, operand: &Operand<CudaSlot>) -> Arg {
    Arg::Ptr(operand.slot.device_ptr(&backend.stream))
}

pub(super) fn expect_f32(op: &'static str, operands: &[&Operand<CudaSlot>]) -> Result<()> {
    if operands.iter().any(|o| o.dtype != DType::F32) {
        return Err(unsupported(format!(
            "{op} of {} (only f32 activations)",
            dtypes(operands)
        )));
    }
    Ok(())
}

/// The kernel for the weights' dtype (f32, bf16 or f16; every weight of one op the same).
pub(super) fn weight_kernel(
    op: &'static str,
    f32_kernel: &'static str,
    bf16_kernel: &'static str,
    f16_kernel: &'static str,
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
        DType::F16 => Ok(f16_kernel),
        _ => Err(unsupported(format!(
            "{op} with a {dtype} weight (f32, bf16 or f16 only)"
        ))),
    }
}

pub(super) fn elements(op: &'static str, shape: &Shape) -> Result<u32> {
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
