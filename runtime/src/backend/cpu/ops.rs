//! One op on the CPU: turns operand slots into typed slices and calls the kernel: the fast
//! kernels of `iris_kernels::cpu` (matmul: GEMM / GEMV, attention, patch embedding, the
//! row ops and copies of `cpu::rowops`) at the backend's ISA level, or the plain
//! `iris_kernels::cpu::reference` for the reference backend. The row ops' scalar level is
//! the reference itself. The copy ops (permute, slice, concat) are in `ops_copy.rs`. Still
//! reference-only: a general conv2d (not a patch embedding).
//! No allocation (the decode loop runs through here once per op and token).

use half::{bf16, f16};
use iris_kernels::cpu::kv_element::KvElement;
use iris_kernels::cpu::reference as kernel;
use iris_kernels::cpu::reference::{AttentionParams, Conv2dParams, KvStrides};
use iris_kernels::cpu::{attention as fast_attention, conv2d, isa::Isa, rowops};
use iris_kernels::WeightSlice;

use super::{CpuKernels, CpuSlot};
use crate::backend::Operand;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::graph::{GeluKind, Op};

// Beside this file like the CUDA backend's `ops_*.rs`, but a child of this module, so it
// shares the operand views without widening them.
#[path = "ops_copy.rs"]
mod copy;

type CpuOperand = Operand<CpuSlot>;

fn check_view<T: Element>(o: &CpuOperand) -> Result<usize> {
    if o.dtype != T::DTYPE {
        return Err(Error::DTypeMismatch {
            name: format!("{:?}", o.slot),
            expected: T::DTYPE,
            found: o.dtype,
        });
    }
    let n = o.shape.numel();
    if n * std::mem::size_of::<T>() != o.slot.len
        || !(o.slot.ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        return Err(Error::InvalidShape(format!(
            "slot {:?} does not hold {} x {}",
            o.slot,
            o.shape,
            T::DTYPE
        )));
    }
    Ok(n)
}

/// Elements of an operand.
///
/// SAFETY (callers): no mutable view of an overlapping range may be alive. The planner
/// never lets an op's output overlap its inputs, so views of one op's operands are disjoint.
unsafe fn view<T: Element>(o: &CpuOperand) -> Result<&[T]> {
    let n = check_view::<T>(o)?;
    // SAFETY: type, size and alignment checked above; liveness by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(o.slot.ptr() as *const T, n) })
}

/// Mutable elements of an operand. Same contract as [`view`]; never a weight.
#[allow(clippy::mut_from_ref)]
unsafe fn view_mut<T: Element>(o: &CpuOperand) -> Result<&mut [T]> {
    if let super::CpuBuffer::Weight(_) = *o.slot.buffer {
        return Err(Error::InvalidShape(
            "a kernel may not write a weight".into(),
        ));
    }
    let n = check_view::<T>(o)?;
    // SAFETY: as `view`, plus the buffer is owned (not a mapped weight).
    Ok(unsafe { std::slice::from_raw_parts_mut(o.slot.ptr() as *mut T, n) })
}

/// A float operand as the weight type kernels read directly.
unsafe fn weight_view(o: &CpuOperand) -> Result<WeightSlice<'_>> {
    // SAFETY: forwarded contract.
    unsafe {
        Ok(match o.dtype {
            DType::F32 => WeightSlice::F32(view::<f32>(o)?),
            DType::F16 => WeightSlice::F16(view::<f16>(o)?),
            DType::BF16 => WeightSlice::BF16(view::<bf16>(o)?),
            other => {
                return Err(Error::Unsupported {
                    backend: "cpu",
                    what: format!("{other} weights"),
                })
            }
        })
    }
}

fn dims(o: &CpuOperand) -> &[usize] {
    o.shape.dims()
}

/// Work done once before a graph's first run: packing the weights of its matmuls.
pub(super) fn prepare(kernels: CpuKernels, op: &Op, inputs: &[CpuOperand]) -> Result<()> {
    if let (CpuKernels::Fast(isa), Op::MatMul { .. }) = (kernels, op) {
        let (n, k) = (dims(&inputs[1])[0], dims(&inputs[1])[1]);
        // SAFETY: the executor compiling the graph holds every operand's slot alive.
        let w = unsafe { weight_view(&inputs[1])? };
        super::matmul::prepare(isa, w, &inputs[1].slot, (n, k));
    }
    Ok(())
}

pub(super) fn execute(
    kernels: CpuKernels,
    op: &Op,
    inputs: &[CpuOperand],
    output: &CpuOperand,
) -> Result<()> {
    // The row ops' scalar level is the reference itself.
    let row_isa = match kernels {
        CpuKernels::Reference => Isa::Scalar,
        CpuKernels::Fast(isa) => isa,
    };
    // SAFETY: every slice below views one operand of this op; the output is disjoint from
    // the inputs (planner), and the KV caches of CachedAttention are state buffers that no
    // other operand of the op aliases.
    unsafe {
        match op {
            Op::MatMul { has_bias } => {
                let x = view::<f32>(&inputs[0])?;
                let w = weight_view(&inputs[1])?;
                let bias = if *has_bias {
                    Some(weight_view(&inputs[2])?)
                } else {
                    None
                };
                let (n, k) = (dims(&inputs[1])[0], dims(&inputs[1])[1]);
                let out = view_mut(output)?;
                let m = out.len() / n.max(1);
                match kernels {
                    CpuKernels::Reference => parallel_matmul(x, w, bias, m, n, k, out),
                    CpuKernels::Fast(isa) => {
                        let w_slot = &inputs[1].slot;
                        super::matmul::matmul(isa, x, w, w_slot, bias, (m, n, k), out)
                    }
                }
            }
            Op::Add => rowops::add(
                row_isa,
                view(&inputs[0])?,
                view(&inputs[1])?,
                view_mut(output)?,
            ),
            Op::Mul => rowops::mul(
                row_isa,
                view(&inputs[0])?,
                view(&inputs[1])?,
                view_mut(output)?,
            ),
            Op::Scale { factor } => {
                rowops::scale(row_isa, view(&inputs[0])?, *factor, view_mut(output)?)
            }
            Op::RmsNorm { eps } => {
                let dim = inputs[0].shape.last();
                rowops::rms_norm(
                    row_isa,
                    view(&inputs[0])?,
                    weight_view(&inputs[1])?,
                    *eps,
                    dim,
                    view_mut(output)?,
                );
            }
            Op::LayerNorm { eps, has_bias } => {
                let dim = inputs[0].shape.last();
                let bias = if *has_bias {
                    Some(weight_view(&inputs[2])?)
                } else {
                    None
                };
                rowops::layer_norm(
                    row_isa,
                    view(&inputs[0])?,
                    weight_view(&inputs[1])?,
                    bias,
                    *eps,
                    dim,
                    view_mut(output)?,
                );
            }
            Op::Softmax => rowops::softmax(
                row_isa,
                view(&inputs[0])?,
                inputs[0].shape.last(),
                view_mut(output)?,
            ),
            Op::Rope { inv_freq } => {
                let d = dims(&inputs[0]);
                rowops::rope(
                    row_isa,
                    view(&inputs[0])?,
                    view(&inputs[1])?,
                    d[2],
                    d[3],
                    inv_freq,
                    view_mut(output)?,
                );
            }
            Op::Attention {
                causal,
                scale,
                has_mask,
            } => {
                let (q, k) = (dims(&inputs[0]), dims(&inputs[1]));
                let params = AttentionParams {
                    batch: q[0],
                    q_len: q[1],
                    kv_len: k[1],
                    n_heads: q[2],
                    n_kv_heads: k[2],
                    head_dim: q[3],
                    scale: *scale,
                    causal: *causal,
                };
                let mask = if *has_mask {
                    Some(view::<f32>(&inputs[3])?)
                } else {
                    None
                };
                let strides = KvStrides::bthd(k[1], k[2], k[3]);
                attention(
                    kernels,
                    view(&inputs[0])?,
                    view(&inputs[1])?,
                    view(&inputs[2])?,
                    strides,
                    mask,
                    &params,
                    view_mut(output)?,
                );
            }
            Op::CachedAttention { scale } => {
                let (q, k, cache) = (dims(&inputs[0]), dims(&inputs[1]), dims(&inputs[3]));
                let (batch, new_len, n_kv_heads, head_dim, max_seq) =
                    (k[0], k[1], k[2], k[3], cache[2]);
                let past = view::<i64>(&inputs[5])?[0];
                if past < 0 || past as usize + new_len > max_seq {
                    return Err(Error::InvalidOp {
                        op: op.name(),
                        message: format!("past_len {past} + {new_len} new tokens exceeds the KV cache of {max_seq}"),
                    });
                }
                let past = past as usize;
                let params = AttentionParams {
                    batch,
                    q_len: q[1],
                    kv_len: past + new_len,
                    n_heads: q[2],
                    n_kv_heads,
                    head_dim,
                    scale: *scale,
                    causal: true,
                };
                let (q, new_k, new_v) = (view(&inputs[0])?, view(&inputs[1])?, view(&inputs[2])?);
                let out = view_mut(output)?;
                match inputs[3].dtype {
                    DType::F16 => {
                        let (k, v) = (view_mut::<f16>(&inputs[3])?, view_mut(&inputs[4])?);
                        cached_attention(kernels, q, (new_k, new_v), (k, v), past, &params, out)
                    }
                    _ => {
                        let (k, v) = (view_mut::<f32>(&inputs[3])?, view_mut(&inputs[4])?);
                        cached_attention(kernels, q, (new_k, new_v), (k, v), past, &params, out)
                    }
                }
            }
            Op::Gelu(GeluKind::Erf) => {
                rowops::gelu_erf(row_isa, view(&inputs[0])?, view_mut(output)?)
            }
            Op::Gelu(GeluKind::Tanh) => {
                rowops::gelu_tanh(row_isa, view(&inputs[0])?, view_mut(output)?)
            }
            Op::QuickGelu => rowops::quick_gelu(row_isa, view(&inputs[0])?, view_mut(output)?),
            Op::Silu => rowops::silu(row_isa, view(&inputs[0])?, view_mut(output)?),
            Op::SiluMul => rowops::silu_mul(
                row_isa,
                view(&inputs[0])?,
                view(&inputs[1])?,
                view_mut(output)?,
            ),
            Op::Embedding => {
                let dim = dims(&inputs[1])[1];
                rowops::embedding(
                    row_isa,
                    view(&inputs[0])?,
                    weight_view(&inputs[1])?,
                    dim,
                    view_mut(output)?,
                )
                .map_err(|e| Error::InvalidOp {
                    op: op.name(),
                    message: e.to_string(),
                })?;
            }
            Op::Reshape { .. } => {} // an alias: nothing to compute
            Op::Permute { perm } => copy::permute(kernels, &inputs[0], output, perm)?,
            Op::Slice { axis, start, .. } => {
                copy::slice(kernels, &inputs[0], output, *axis, *start)?
            }
            Op::Concat { axis } => copy::concat(kernels, inputs, output, *axis)?,
            Op::Conv2d {
                stride,
                padding,
                has_bias,
            } => {
                let (x, w) = (dims(&inputs[0]), dims(&inputs[1]));
                let params = Conv2dParams {
                    batch: x[0],
                    in_channels: x[1],
                    height: x[2],
                    width: x[3],
                    out_channels: w[0],
                    kernel_h: w[2],
                    kernel_w: w[3],
                    stride: *stride,
                    padding: *padding,
                };
                let bias = if *has_bias {
                    Some(weight_view(&inputs[2])?)
                } else {
                    None
                };
                let (x, w, out) = (
                    view(&inputs[0])?,
                    weight_view(&inputs[1])?,
                    view_mut(output)?,
                );
                match kernels {
                    CpuKernels::Fast(isa) => conv2d::conv2d(isa, x, w, bias, &params, out),
                    CpuKernels::Reference => kernel::conv2d(x, w, bias, &params, out),
                }
            }
            Op::PixelShuffle { scale } => {
                let d = dims(&inputs[0]);
                let pixel_shuffle = match kernels {
                    CpuKernels::Reference => kernel::pixel_shuffle,
                    CpuKernels::Fast(_) => rowops::pixel_shuffle,
                };
                pixel_shuffle(
                    view(&inputs[0])?,
                    d[0],
                    d[1],
                    d[2],
                    *scale,
                    view_mut(output)?,
                );
            }
            Op::Argmax => rowops::argmax(
                row_isa,
                view(&inputs[0])?,
                inputs[0].shape.last(),
                view_mut(output)?,
            ),
        }
    }
    Ok(())
}

/// Attention with the backend's kernel set.
#[allow(clippy::too_many_arguments)]
fn attention(
    kernels: CpuKernels,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    kv: KvStrides,
    mask: Option<&[f32]>,
    params: &AttentionParams,
    out: &mut [f32],
) {
    match kernels {
        CpuKernels::Reference => kernel::attention(q, k, v, kv, mask, params, out),
        CpuKernels::Fast(isa) => fast_attention::attention(isa, q, k, v, kv, mask, params, out),
    }
}

/// Writes the new keys and values at rows `past..` of the caches (`[B, Hkv, max_seq, D]`,
/// f32 or f16), then attends over the first `past + new` rows (causal).
fn cached_attention<T: KvElement>(
    kernels: CpuKernels,
    q: &[f32],
    (new_k, new_v): (&[f32], &[f32]),
    (k_cache, v_cache): (&mut [T], &mut [T]),
    past: usize,
    p: &AttentionParams,
    out: &mut [f32],
) {
    let (b, h, d) = (p.batch, p.n_kv_heads, p.head_dim);
    let max_seq = k_cache.len() / (b * h * d).max(1);
    let new_len = p.kv_len - past;
    let strides = KvStrides::bhsd(max_seq, h, d);
    match kernels {
        CpuKernels::Reference => {
            for (cache, new) in [(&mut *k_cache, new_k), (&mut *v_cache, new_v)] {
                kernel::kv_write(cache, new, b, new_len, h, d, max_seq, past);
            }
            // The reference computes on f32: an f16 cache is widened, exactly.
            let widen = |c: &[T]| c.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
            let (k, v) = (widen(k_cache), widen(v_cache));
            kernel::attention(q, &k, &v, strides, None, p, out)
        }
        CpuKernels::Fast(isa) => {
            for (cache, new) in [(&mut *k_cache, new_k), (&mut *v_cache, new_v)] {
                rowops::kv_write(cache, new, b, new_len, h, d, max_seq, past);
            }
            fast_attention::attention(isa, q, k_cache, v_cache, strides, None, p, out)
        }
    }
}

/// Splits a matmul over the rayon pool: by rows of `x` when there are enough, else (decode)
/// by output columns. Each part runs the same kernel, so results are identical to one call.
fn parallel_matmul(
    x: &[f32],
    w: WeightSlice,
    bias: Option<WeightSlice>,
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
) {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads();
    let work = m * n * k;
    if threads == 1 || work < (1 << 18) || k == 0 {
        return kernel::matmul(x, w, bias, m, n, k, out);
    }
    if m >= threads {
        let rows = m.div_ceil(threads * 4).max(1);
        out.par_chunks_mut(rows * n)
            .zip(x.par_chunks(rows * k))
            .for_each(|(out_part, x_part)| {
                kernel::matmul(x_part, w, bias, x_part.len() / k, n, k, out_part)
            });
    } else if m == 1 {
        let cols = n.div_ceil(threads * 4).max(1);
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(i, out_part)| {
                let (start, len) = (i * cols, out_part.len());
                let w_part = w.sub(start * k, (start + len) * k);
                let bias_part = bias.map(|b| b.sub(start, start + len));
                kernel::matmul(x, w_part, bias_part, 1, len, k, out_part)
            });
    } else {
        kernel::matmul(x, w, bias, m, n, k, out)
    }
}
