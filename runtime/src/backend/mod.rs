//! The Backend trait: what a device must do to run a planned graph. The executor
//! (`graph/executor.rs`) resolves every graph value to a backend `Slot` (arena range, weight,
//! or state buffer) and calls `execute` once per node, in order; a backend that can record
//! (`begin_capture` / `end_capture`, CUDA graphs) lets it record those calls once and replay
//! them as one launch.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod weight_key;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::Op;
use crate::layout::Shape;
use std::sync::Arc;

use crate::layout::Layout;
use crate::storage::{AlignedBuffer, CpuStorage};
use crate::tensor::Tensor;

/// One operand of an op as the backend sees it: where its bytes are, their dtype and the
/// (contiguous, row-major) shape.
#[derive(Clone, Debug)]
pub struct Operand<S> {
    pub slot: S,
    pub dtype: DType,
    pub shape: Shape,
}

pub trait Backend {
    /// A byte range the backend can read or write: a host pointer range, a device pointer...
    /// Slots are plain handles; the executor guarantees that an op's output never overlaps
    /// its inputs, and that arena slots stay inside the arena.
    type Slot: Clone + std::fmt::Debug;

    fn name(&self) -> &'static str;

    /// A fresh zeroed buffer of `bytes` (the arena of a plan).
    fn alloc(&mut self, bytes: usize) -> Result<Self::Slot>;

    /// `len` bytes at `offset` inside `slot`.
    fn sub_slot(&self, slot: &Self::Slot, offset: usize, len: usize) -> Self::Slot;

    /// Makes a weight readable by kernels. The CPU backend reads it in place when its
    /// storage is contiguous and aligned (a mapped file stays mapped); a GPU uploads it once.
    fn weight(&mut self, tensor: &Tensor) -> Result<Self::Slot>;

    /// A named buffer that lives as long as the backend and is shared by every graph that
    /// names it (KV caches). Created zeroed on first request; later requests must match.
    fn state(&mut self, name: &str, dtype: DType, shape: &Shape) -> Result<Self::Slot>;

    /// Copies `bytes` into the start of `slot` (at most the slot's length). No allocation:
    /// the decode loop writes its token ids this way.
    fn write_bytes(&mut self, slot: &Self::Slot, bytes: &[u8]) -> Result<()>;

    /// Copies the first `out.len()` bytes of `slot` into `out` (waiting for queued work).
    fn read_into(&mut self, slot: &Self::Slot, out: &mut [u8]) -> Result<()>;

    /// Copies the first `bytes` bytes of `src` to the start of `dst`, queued behind the work
    /// already queued and without a host round trip: one graph's output becomes another's
    /// input where both live (image features from the vision graph to the prefill graph).
    /// Both slots must hold `bytes` (else an error) and must not overlap (the CPU and CUDA
    /// backends refuse that too). The default goes through host memory (read, then write),
    /// for backends that have nothing better.
    fn copy_slot(&mut self, src: &Self::Slot, dst: &Self::Slot, bytes: usize) -> Result<()> {
        let mut staged = vec![0u8; bytes];
        self.read_into(src, &mut staged)?;
        self.write_bytes(dst, &staged)
    }

    /// Copies a host tensor into `slot`.
    fn write(&mut self, slot: &Self::Slot, data: &Tensor) -> Result<()> {
        let contiguous = data.contiguous();
        self.write_bytes(slot, contiguous.contiguous_bytes()?)
    }

    /// Copies `slot` out as a new host tensor of `dtype` x `shape`.
    fn read(&mut self, slot: &Self::Slot, dtype: DType, shape: &Shape) -> Result<Tensor> {
        let mut buf = AlignedBuffer::zeroed(shape.numel() * dtype.size_in_bytes());
        self.read_into(slot, buf.as_mut_slice())?;
        Tensor::from_storage(
            Arc::new(CpuStorage::Owned(buf)),
            Layout::contiguous(shape.clone()),
            dtype,
        )
    }

    /// Gets ready to run `op` on these operands, once, when a graph is compiled: the CPU
    /// backend packs the weight a matmul reads, which would otherwise happen in its first
    /// run (the first prompt's time). Default: nothing.
    fn prepare(&mut self, _op: &Op, _inputs: &[Operand<Self::Slot>]) -> Result<()> {
        Ok(())
    }

    /// Runs one op. Unsupported op/dtype combinations return `Error::Unsupported`.
    fn execute(
        &mut self,
        op: &Op,
        inputs: &[Operand<Self::Slot>],
        output: &Operand<Self::Slot>,
    ) -> Result<()>;

    /// Waits for all queued work (a no-op on the CPU).
    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }

    /// Starts recording: until `end_capture`, `execute` queues its kernels into a recording
    /// instead of running them, and nothing else may touch the device (no copies, reads,
    /// allocations or waits). Returns false, having started nothing, when this backend cannot
    /// record (the default; the CPU): callers then run op by op.
    fn begin_capture(&mut self) -> Result<bool> {
        Ok(false)
    }

    /// Ends the recording `begin_capture` started. The recording replays every kernel queued
    /// since, with the same operands: the same buffers, read with whatever they hold at replay
    /// time. So a per-run value (a position, the KV length) must be an input the kernels read
    /// from device memory, and the backend must keep every buffer it named alive and in place
    /// while the recording lives. On error the backend is no longer recording.
    fn end_capture(&mut self) -> Result<Box<dyn Recording>> {
        Err(Error::Unsupported {
            backend: self.name(),
            what: "recording kernels for replay".into(),
        })
    }
}

/// Inside an `impl Backend`, forwards the storage methods (`alloc`, `sub_slot`, `weight`,
/// `state`, `write_bytes`, `read_into`) to the backend in field `$inner`: for wrappers that
/// change only how ops run, such as test backends that perturb or refuse an op.
#[macro_export]
macro_rules! forward_backend_storage {
    ($inner:ident) => {
        fn alloc(&mut self, bytes: usize) -> $crate::Result<Self::Slot> {
            $crate::backend::Backend::alloc(&mut self.$inner, bytes)
        }
        fn sub_slot(&self, slot: &Self::Slot, offset: usize, len: usize) -> Self::Slot {
            $crate::backend::Backend::sub_slot(&self.$inner, slot, offset, len)
        }
        fn weight(&mut self, tensor: &$crate::Tensor) -> $crate::Result<Self::Slot> {
            $crate::backend::Backend::weight(&mut self.$inner, tensor)
        }
        fn state(
            &mut self,
            name: &str,
            dtype: $crate::DType,
            shape: &$crate::Shape,
        ) -> $crate::Result<Self::Slot> {
            $crate::backend::Backend::state(&mut self.$inner, name, dtype, shape)
        }
        fn write_bytes(&mut self, slot: &Self::Slot, bytes: &[u8]) -> $crate::Result<()> {
            $crate::backend::Backend::write_bytes(&mut self.$inner, slot, bytes)
        }
        fn read_into(&mut self, slot: &Self::Slot, out: &mut [u8]) -> $crate::Result<()> {
            $crate::backend::Backend::read_into(&mut self.$inner, slot, out)
        }
    };
}

/// A recorded sequence of kernel launches (a CUDA graph) that replays as one launch.
pub trait Recording: Send {
    /// Queues one replay behind the work already queued; `Backend::synchronize` waits for it
    /// and reports kernel errors as after `execute`.
    fn replay(&self) -> Result<()>;
}
