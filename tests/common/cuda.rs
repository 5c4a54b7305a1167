//! Helpers for the CUDA test binaries: the backend or a printed reason to skip, operands
//! placed at odd offsets of one arena, NaN-poisoned runs and a rough host-clock timer.
//!
//! Included with `#[path = "common/cuda.rs"] mod cuda_common;` by the CUDA tests that use it
//! (only with `--features cuda`), so the CLI tests that include `common/mod.rs` never compile
//! it.

use iris_runtime::backend::cuda::{CudaBackend, CudaSlot};
use iris_runtime::backend::{Backend, Operand};
use iris_runtime::graph::Op;
use iris_runtime::{DType, Shape, Tensor};

/// The backend on device 0, or `None` (after printing why) when there is none. With
/// `IRIS_REQUIRE_CUDA=1` (set by scripts/gpu/run_cuda_tests.sh) no device is a failure.
pub fn backend() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(backend) => {
            let (major, minor) = backend.compute_capability();
            println!(
                "device: {} (compute capability {major}.{minor})",
                backend.device_name()
            );
            Some(backend)
        }
        Err(err) if std::env::var_os("IRIS_REQUIRE_CUDA").is_some_and(|v| v == "1") => {
            panic!("IRIS_REQUIRE_CUDA=1 but the CUDA backend did not start: {err}")
        }
        Err(err) => {
            println!("skipping: {err}");
            None
        }
    }
}

/// Places operands in one arena at 4-byte aligned but otherwise odd offsets (never 0, never
/// 256-aligned), so every launch also checks the slot offset arithmetic.
pub fn place(be: &mut CudaBackend, sizes: &[usize]) -> Vec<CudaSlot> {
    let mut offsets = Vec::with_capacity(sizes.len());
    let mut cursor = 4;
    for &bytes in sizes {
        offsets.push(cursor);
        cursor += bytes.div_ceil(4) * 4 + 12;
    }
    let arena = be.alloc(cursor).expect("alloc arena");
    offsets
        .iter()
        .zip(sizes)
        .map(|(&offset, &bytes)| be.sub_slot(&arena, offset, bytes))
        .collect()
}

pub fn operand(slot: &CudaSlot, dtype: DType, dims: &[usize]) -> Operand<CudaSlot> {
    Operand {
        slot: slot.clone(),
        dtype,
        shape: Shape::new(dims),
    }
}

pub fn f32_tensor(data: &[f32], dims: &[usize]) -> Tensor {
    Tensor::from_slice(data, dims).expect("tensor")
}

pub fn bf16_tensor(data: &[half::bf16], dims: &[usize]) -> Tensor {
    Tensor::from_slice(data, dims).expect("tensor")
}

/// Writes NaN over the output, runs `op`, waits, and reads the output back as f32.
pub fn run(
    be: &mut CudaBackend,
    op: &Op,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> Vec<f32> {
    let poison = vec![f32::NAN; output.shape.numel()];
    be.write(&output.slot, &f32_tensor(&poison, output.shape.dims()))
        .expect("poison output");
    be.execute(op, inputs, output)
        .unwrap_or_else(|e| panic!("{} failed: {e}", op.name()));
    be.synchronize().expect("synchronize");
    be.read(&output.slot, DType::F32, &output.shape)
        .expect("read output")
        .to_vec_f32()
}

/// Median wall time in seconds of `op` (execute + synchronize) over 20 runs after 3
/// warm-ups: a rough figure that includes launch overhead.
pub fn time_op(
    be: &mut CudaBackend,
    op: &Op,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) -> f64 {
    let mut times = Vec::with_capacity(20);
    for rep in 0..23 {
        let start = std::time::Instant::now();
        be.execute(op, inputs, output).expect("timed op");
        be.synchronize().expect("synchronize");
        if rep >= 3 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
