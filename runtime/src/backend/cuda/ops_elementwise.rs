//! Elementwise ops on f32 activations: `mul` (broadcast over a suffix), the unary
//! activations and `scale` (`unary`), and the fused `silu_mul`.

use iris_kernels::cuda as kernels;

use super::ops::{check_slot, expect_inputs, expect_shape, invalid};
use super::ops_more::{elements, expect_f32, launch, ptr, Arg};
use super::{CudaBackend, CudaSlot};
use crate::backend::Operand;
use crate::error::Result;

/// `[a, b] -> a * b`, b a suffix of a (as Add).
pub(super) fn mul(
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
pub(super) fn unary(
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
pub(super) fn silu_mul(
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
