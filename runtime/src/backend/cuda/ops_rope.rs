//! RoPE (rotate_half) over `[B, T, H, D]` activations with i64 positions, its frequency
//! table uploaded once per distinct vector by the backend.

use iris_kernels::cuda as kernels;

use super::ops::{check_slot, expect_inputs, expect_shape, invalid, unsupported};
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
