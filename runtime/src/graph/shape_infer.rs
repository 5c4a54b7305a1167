//! Output shape and dtype of each op from its operands, with the checks that make a bad
//! graph fail when it is built rather than when it runs.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::op::Op;
use crate::layout::Shape;

/// What an op sees of an operand at build time.
#[derive(Clone, Debug)]
pub struct OperandInfo {
    pub shape: Shape,
    pub dtype: DType,
}

fn fail<T>(op: &Op, message: impl Into<String>) -> Result<T> {
    Err(Error::InvalidOp {
        op: op.name(),
        message: message.into(),
    })
}

fn expect_arity(op: &Op, inputs: &[OperandInfo], n: usize) -> Result<()> {
    if inputs.len() != n {
        return fail(op, format!("expects {n} operands, got {}", inputs.len()));
    }
    Ok(())
}

fn expect_float(op: &Op, what: &str, info: &OperandInfo) -> Result<()> {
    if !info.dtype.is_float() {
        return fail(
            op,
            format!("{what} must be a float tensor, got {}", info.dtype),
        );
    }
    Ok(())
}

fn expect_rank(op: &Op, what: &str, info: &OperandInfo, rank: usize) -> Result<()> {
    if info.shape.rank() != rank {
        return fail(
            op,
            format!("{what} must have rank {rank}, got shape {}", info.shape),
        );
    }
    Ok(())
}

fn expect_vector(op: &Op, what: &str, info: &OperandInfo, len: usize) -> Result<()> {
    expect_float(op, what, info)?;
    if info.shape.dims() != [len] {
        return fail(
            op,
            format!("{what} must have shape [{len}], got {}", info.shape),
        );
    }
    Ok(())
}

/// Dtype of a computed float result: the CPU computes in f32, so activations are f32.
const ACT: DType = DType::F32;

/// Dtype that a data-movement op (permute, slice, concat) produces from its input.
fn moved_dtype(dtype: DType) -> DType {
    if dtype.is_float() {
        ACT
    } else {
        dtype
    }
}

pub fn infer(op: &Op, inputs: &[OperandInfo]) -> Result<OperandInfo> {
    let out = |shape: Shape, dtype: DType| Ok(OperandInfo { shape, dtype });
    match op {
        Op::MatMul { has_bias } => {
            expect_arity(op, inputs, 2 + *has_bias as usize)?;
            let (x, w) = (&inputs[0], &inputs[1]);
            expect_float(op, "x", x)?;
            expect_float(op, "weight", w)?;
            expect_rank(op, "weight", w, 2)?;
            if x.shape.rank() == 0 || x.shape.last() != w.shape.dims()[1] {
                return fail(
                    op,
                    format!("x {} and weight {} disagree on K", x.shape, w.shape),
                );
            }
            let n = w.shape.dims()[0];
            if *has_bias {
                expect_vector(op, "bias", &inputs[2], n)?;
            }
            let mut dims = x.shape.dims().to_vec();
            *dims.last_mut().unwrap() = n;
            out(Shape(dims), ACT)
        }
        Op::Add | Op::Mul => {
            expect_arity(op, inputs, 2)?;
            let (a, b) = (&inputs[0], &inputs[1]);
            expect_float(op, "a", a)?;
            expect_float(op, "b", b)?;
            let (ad, bd) = (a.shape.dims(), b.shape.dims());
            if bd.len() > ad.len() || ad[ad.len() - bd.len()..] != *bd {
                return fail(
                    op,
                    format!("b {} must equal a trailing part of a {}", b.shape, a.shape),
                );
            }
            out(a.shape.clone(), ACT)
        }
        Op::Scale { .. } | Op::Softmax | Op::Gelu(_) | Op::QuickGelu | Op::Silu => {
            expect_arity(op, inputs, 1)?;
            expect_float(op, "x", &inputs[0])?;
            out(inputs[0].shape.clone(), ACT)
        }
        Op::SiluMul => {
            expect_arity(op, inputs, 2)?;
            expect_float(op, "gate", &inputs[0])?;
            expect_float(op, "up", &inputs[1])?;
            if inputs[0].shape != inputs[1].shape {
                return fail(
                    op,
                    format!("gate {} and up {} differ", inputs[0].shape, inputs[1].shape),
                );
            }
            out(inputs[0].shape.clone(), ACT)
        }
        Op::RmsNorm { .. } | Op::LayerNorm { .. } => {
            let has_bias = matches!(op, Op::LayerNorm { has_bias: true, .. });
            expect_arity(op, inputs, 2 + has_bias as usize)?;
            let x = &inputs[0];
            expect_float(op, "x", x)?;
            let dim = x.shape.last();
            expect_vector(op, "weight", &inputs[1], dim)?;
            if has_bias {
                expect_vector(op, "bias", &inputs[2], dim)?;
            }
            out(x.shape.clone(), ACT)
        }
        Op::Rope { inv_freq } => {
            expect_arity(op, inputs, 2)?;
            let (x, pos) = (&inputs[0], &inputs[1]);
            expect_float(op, "x", x)?;
            expect_rank(op, "x", x, 4)?;
            let d = x.shape.dims();
            if 2 * inv_freq.len() > d[3] || inv_freq.is_empty() {
                return fail(
                    op,
                    format!(
                        "rotary dims {} do not fit head_dim {}",
                        2 * inv_freq.len(),
                        d[3]
                    ),
                );
            }
            if pos.dtype != DType::I64 || pos.shape.dims() != [d[0], d[1]] {
                return fail(
                    op,
                    format!(
                        "positions must be i64 [{}, {}], got {} {}",
                        d[0], d[1], pos.dtype, pos.shape
                    ),
                );
            }
            out(x.shape.clone(), ACT)
        }
        Op::Attention { has_mask, .. } => {
            expect_arity(op, inputs, 3 + *has_mask as usize)?;
            for (what, info) in ["q", "k", "v"].iter().zip(inputs) {
                expect_float(op, what, info)?;
                expect_rank(op, what, info, 4)?;
            }
            let (q, k, v) = (
                inputs[0].shape.dims(),
                inputs[1].shape.dims(),
                inputs[2].shape.dims(),
            );
            check_attention_heads(op, q, k)?;
            if k != v {
                return fail(op, format!("k {:?} and v {:?} differ", k, v));
            }
            if *has_mask {
                let m = &inputs[3];
                expect_float(op, "mask", m)?;
                if m.shape.dims() != [q[0], q[1], k[1]] {
                    return fail(
                        op,
                        format!(
                            "mask must be [{}, {}, {}], got {}",
                            q[0], q[1], k[1], m.shape
                        ),
                    );
                }
            }
            out(inputs[0].shape.clone(), ACT)
        }
        Op::CachedAttention { .. } => {
            expect_arity(op, inputs, 6)?;
            for (what, info) in ["q", "k_new", "v_new", "k_cache", "v_cache"]
                .iter()
                .zip(inputs)
            {
                expect_float(op, what, info)?;
                expect_rank(op, what, info, 4)?;
            }
            let q = inputs[0].shape.dims();
            let k = inputs[1].shape.dims();
            check_attention_heads(op, q, k)?;
            if inputs[2].shape.dims() != k {
                return fail(op, "k_new and v_new differ");
            }
            let cache = inputs[3].shape.dims();
            let cache_dtype = inputs[3].dtype;
            if !matches!(cache_dtype, DType::F32 | DType::F16) || inputs[4].dtype != cache_dtype {
                return fail(
                    op,
                    format!(
                        "the KV caches must be f32 or f16 state of one dtype, got {} and {}",
                        cache_dtype, inputs[4].dtype
                    ),
                );
            }
            if cache[0] != k[0]
                || cache[1] != k[2]
                || cache[3] != k[3]
                || inputs[4].shape.dims() != cache
            {
                return fail(
                    op,
                    format!(
                        "caches {} must be [B, Hkv, S, D] for k_new {}",
                        inputs[3].shape, inputs[1].shape
                    ),
                );
            }
            let past = &inputs[5];
            if past.dtype != DType::I64 || past.shape.numel() != 1 {
                return fail(
                    op,
                    format!(
                        "past_len must be one i64, got {} {}",
                        past.dtype, past.shape
                    ),
                );
            }
            out(inputs[0].shape.clone(), ACT)
        }
        Op::Embedding => {
            expect_arity(op, inputs, 2)?;
            let (ids, table) = (&inputs[0], &inputs[1]);
            if ids.dtype != DType::I64 {
                return fail(op, format!("ids must be i64, got {}", ids.dtype));
            }
            expect_float(op, "table", table)?;
            expect_rank(op, "table", table, 2)?;
            let mut dims = ids.shape.dims().to_vec();
            dims.push(table.shape.dims()[1]);
            out(Shape(dims), ACT)
        }
        Op::Reshape { shape } => {
            expect_arity(op, inputs, 1)?;
            let new = Shape(shape.clone());
            if new.numel() != inputs[0].shape.numel() {
                return fail(op, format!("cannot reshape {} into {new}", inputs[0].shape));
            }
            out(new, inputs[0].dtype)
        }
        Op::Permute { perm } => {
            expect_arity(op, inputs, 1)?;
            let layout = crate::layout::Layout::contiguous(inputs[0].shape.clone());
            let permuted = layout.permute(perm).ok_or_else(|| Error::InvalidOp {
                op: op.name(),
                message: format!("{perm:?} is not a permutation for {}", inputs[0].shape),
            })?;
            out(permuted.shape, moved_dtype(inputs[0].dtype))
        }
        Op::Slice { axis, start, end } => {
            expect_arity(op, inputs, 1)?;
            let layout = crate::layout::Layout::contiguous(inputs[0].shape.clone());
            let sliced = layout
                .narrow(*axis, *start, *end)
                .ok_or_else(|| Error::InvalidOp {
                    op: op.name(),
                    message: format!(
                        "axis {axis} range {start}..{end} out of bounds for {}",
                        inputs[0].shape
                    ),
                })?;
            out(sliced.shape, moved_dtype(inputs[0].dtype))
        }
        Op::Concat { axis } => {
            if inputs.is_empty() {
                return fail(op, "needs at least one operand");
            }
            let first = &inputs[0];
            if *axis >= first.shape.rank() {
                return fail(op, format!("axis {axis} out of range for {}", first.shape));
            }
            let mut dims = first.shape.dims().to_vec();
            dims[*axis] = 0;
            for info in inputs {
                let d = info.shape.dims();
                let same_rest = d.len() == dims.len()
                    && d.iter()
                        .zip(first.shape.dims())
                        .enumerate()
                        .all(|(i, (a, b))| i == *axis || a == b);
                if !same_rest || moved_dtype(info.dtype) != moved_dtype(first.dtype) {
                    return fail(
                        op,
                        format!(
                            "operand {} {} does not match {} {} off axis {axis}",
                            info.dtype, info.shape, first.dtype, first.shape
                        ),
                    );
                }
                dims[*axis] += d[*axis];
            }
            out(Shape(dims), moved_dtype(first.dtype))
        }
        Op::Conv2d {
            stride,
            padding,
            has_bias,
        } => {
            expect_arity(op, inputs, 2 + *has_bias as usize)?;
            let (x, w) = (&inputs[0], &inputs[1]);
            expect_float(op, "x", x)?;
            expect_float(op, "weight", w)?;
            expect_rank(op, "x", x, 4)?;
            expect_rank(op, "weight", w, 4)?;
            let (xd, wd) = (x.shape.dims(), w.shape.dims());
            if xd[1] != wd[1] {
                return fail(
                    op,
                    format!("x has {} channels, weight expects {}", xd[1], wd[1]),
                );
            }
            if stride.contains(&0) {
                return fail(op, "stride must be positive");
            }
            let (ph, pw) = (xd[2] + 2 * padding[0], xd[3] + 2 * padding[1]);
            if ph < wd[2] || pw < wd[3] {
                return fail(
                    op,
                    format!(
                        "kernel {}x{} larger than padded input {ph}x{pw}",
                        wd[2], wd[3]
                    ),
                );
            }
            if *has_bias {
                expect_vector(op, "bias", &inputs[2], wd[0])?;
            }
            let oh = (ph - wd[2]) / stride[0] + 1;
            let ow = (pw - wd[3]) / stride[1] + 1;
            out(Shape(vec![xd[0], wd[0], oh, ow]), ACT)
        }
        Op::PixelShuffle { scale } => {
            expect_arity(op, inputs, 1)?;
            let x = &inputs[0];
            expect_float(op, "x", x)?;
            expect_rank(op, "x", x, 3)?;
            let d = x.shape.dims();
            let side = (d[1] as f64).sqrt().round() as usize;
            if *scale == 0 || side * side != d[1] || !side.is_multiple_of(*scale) {
                return fail(
                    op,
                    format!(
                        "sequence {} is not a square grid divisible by scale {scale}",
                        d[1]
                    ),
                );
            }
            out(
                Shape(vec![d[0], d[1] / (scale * scale), d[2] * scale * scale]),
                ACT,
            )
        }
        Op::Argmax => {
            expect_arity(op, inputs, 1)?;
            expect_float(op, "x", &inputs[0])?;
            let d = inputs[0].shape.dims();
            if d.is_empty() || d[d.len() - 1] == 0 {
                return fail(
                    op,
                    format!("needs a non-empty last axis, got {}", inputs[0].shape),
                );
            }
            out(Shape(d[..d.len() - 1].to_vec()), DType::I64)
        }
    }
}

/// q [B, Tq, Hq, D] against k [B, Tk, Hkv, D]: same batch and head_dim, Hq a multiple of Hkv.
fn check_attention_heads(op: &Op, q: &[usize], k: &[usize]) -> Result<()> {
    if q[0] != k[0] || q[3] != k[3] || k[2] == 0 || !q[2].is_multiple_of(k[2]) {
        return fail(op, format!("q {:?} and k {:?} need equal batch and head_dim, and q heads a multiple of kv heads", q, k));
    }
    Ok(())
}

/// Whether operand `index` of `op` may be a bf16/f16 weight read as stored by the CPU
/// kernels; other float operands are widened to f32 once when a graph is compiled.
pub fn reads_half_weight(op: &Op, index: usize) -> bool {
    match op {
        Op::MatMul { .. } | Op::Conv2d { .. } => index >= 1,
        Op::RmsNorm { .. } | Op::LayerNorm { .. } => index >= 1,
        Op::Embedding => index == 1,
        _ => false,
    }
}
