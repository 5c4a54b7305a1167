//! Embedding lookup: i64 ids into an f32, bf16 or f16 table; an id out of range raises the
//! device error flag.

use iris_kernels::cuda as kernels;

use super::ops::{check_slot, expect_inputs, expect_shape, invalid, kernel_u32, unsupported};
use super::ops_more::{elements, expect_f32, launch, ptr, weight_kernel, Arg};
use super::{CudaBackend, CudaSlot};
use crate::backend::Operand;
use crate::dtype::DType;
use crate::error::Result;
use crate::layout::Shape;

pub(super) fn embedding(
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
    let kernel = weight_kernel(
        OP,
        "embedding_f32",
        "embedding_f32_wbf16",
        "embedding_f32_wf16",
        &[table],
    )?;
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
