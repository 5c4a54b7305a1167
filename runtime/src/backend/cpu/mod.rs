//! The CPU backend: buffers in host memory, weights read in place from their (mapped)
//! storage, kernels from `iris_kernels::cpu`: the fast kernels (SIMD, threaded) at the ISA
//! level chosen at run time (`Isa`, `IRIS_ISA`), or the plain references.

mod matmul;
mod ops;
mod weights;

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::weight_key::WeightKey;
use crate::backend::{Backend, Operand};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::Op;
use crate::layout::Shape;
use crate::storage::AlignedBuffer;
use crate::tensor::Tensor;
use weights::WeightBuffer;

enum CpuBuffer {
    Owned(AlignedBuffer),
    /// A weight read in place; kernels never write to it.
    Weight(WeightBuffer),
}

impl CpuBuffer {
    fn base_ptr(&self) -> *mut u8 {
        match self {
            CpuBuffer::Owned(buf) => buf.as_mut_ptr(),
            CpuBuffer::Weight(w) => w.tensor.data_ptr() as *mut u8,
        }
    }
}

/// A byte range of a CPU buffer. Holds the buffer alive.
#[derive(Clone)]
pub struct CpuSlot {
    buffer: Arc<CpuBuffer>,
    offset: usize,
    len: usize,
}

impl std::fmt::Debug for CpuSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match *self.buffer {
            CpuBuffer::Owned(_) => "owned",
            CpuBuffer::Weight(_) => "weight",
        };
        write!(
            f,
            "CpuSlot({kind}, {}..{})",
            self.offset,
            self.offset + self.len
        )
    }
}

impl CpuSlot {
    /// Address of the first byte: lets tests prove a weight is read where it was mapped.
    pub fn data_ptr(&self) -> *const u8 {
        self.ptr()
    }

    /// True when the slot reads a weight in place (no copy was made).
    pub fn is_weight_in_place(&self) -> bool {
        matches!(*self.buffer, CpuBuffer::Weight(_))
    }

    fn ptr(&self) -> *mut u8 {
        // SAFETY: offset + len lies inside the buffer (checked in `sub_slot` and at creation).
        unsafe { self.buffer.base_ptr().add(self.offset) }
    }
}

/// Kernel measurement (peak probes, the kernel suite) for `iris bench kernels`.
pub use iris_kernels::cpu::bench;
/// The process-wide choice of bf16 compute for bf16 weights (`--cpu-compute`).
pub use iris_kernels::cpu::gemm::bf16_dot;
pub use iris_kernels::cpu::isa::Isa;

/// Which kernels a [`CpuBackend`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuKernels {
    /// The plain references of `iris_kernels::cpu::reference` (matmul split over rayon).
    Reference,
    /// The fast kernels at this ISA level.
    Fast(Isa),
}

pub struct CpuBackend {
    states: HashMap<String, (CpuSlot, DType, Shape)>,
    /// Weights read in place, one buffer per tensor view for the backend's lifetime, so a
    /// weight's packed copy (see `weights.rs`) is made once however many graphs read it.
    weights: HashMap<WeightKey, Arc<CpuBuffer>>,
    kernels: CpuKernels,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// The fast kernels at the best level this CPU supports, or the one `IRIS_ISA` names
    /// (`iris_kernels::cpu::isa::selected`).
    pub fn new() -> Self {
        Self::with_kernels(CpuKernels::Fast(iris_kernels::cpu::isa::selected()))
    }

    /// The plain reference kernels: the baseline of the differential op tests.
    pub fn reference() -> Self {
        Self::with_kernels(CpuKernels::Reference)
    }

    /// The fast kernels at `isa`; an error if this CPU does not support it.
    pub fn with_isa(isa: Isa) -> Result<Self> {
        if !isa.is_supported() {
            return Err(Error::Unsupported {
                backend: "cpu",
                what: format!(
                    "ISA level {isa} on this CPU (supported: {:?})",
                    Isa::available()
                ),
            });
        }
        Ok(Self::with_kernels(CpuKernels::Fast(isa)))
    }

    fn with_kernels(kernels: CpuKernels) -> Self {
        CpuBackend {
            states: HashMap::new(),
            weights: HashMap::new(),
            kernels,
        }
    }

    /// The kernel set this backend runs.
    pub fn kernels(&self) -> CpuKernels {
        self.kernels
    }

    /// Bytes held in packed copies of weights (the packed GEMM / GEMV's layout, made when a
    /// graph that reads the weight is compiled), beside the weights read in place.
    pub fn packed_weight_bytes(&self) -> usize {
        self.weights
            .values()
            .map(|buffer| match &**buffer {
                CpuBuffer::Weight(w) => w.packed_bytes(),
                CpuBuffer::Owned(_) => 0,
            })
            .sum()
    }

    /// The ISA level of the fast kernels (`Scalar` for the reference set).
    pub fn kernels_isa(&self) -> Isa {
        match self.kernels {
            CpuKernels::Fast(isa) => isa,
            CpuKernels::Reference => Isa::Scalar,
        }
    }
}

fn owned_slot(buf: AlignedBuffer) -> CpuSlot {
    let len = buf.len();
    CpuSlot {
        buffer: Arc::new(CpuBuffer::Owned(buf)),
        offset: 0,
        len,
    }
}

/// The checks of `copy_slot`: both slots hold `bytes`, `dst` is writable, no overlap.
fn check_copy(src: &CpuSlot, dst: &CpuSlot, bytes: usize) -> Result<()> {
    let invalid = |message: String| Error::InvalidOp {
        op: "slot copy",
        message,
    };
    if bytes > src.len || bytes > dst.len {
        return Err(invalid(format!(
            "{bytes} bytes from a slot of {} into a slot of {}",
            src.len, dst.len
        )));
    }
    if let CpuBuffer::Weight(_) = *dst.buffer {
        return Err(invalid("the destination is a weight (read-only)".into()));
    }
    let overlap = Arc::ptr_eq(&src.buffer, &dst.buffer)
        && src.offset < dst.offset + bytes
        && dst.offset < src.offset + bytes;
    if overlap {
        return Err(invalid(format!(
            "{bytes} bytes from offset {} onto offset {} of the same buffer overlap",
            src.offset, dst.offset
        )));
    }
    Ok(())
}

impl Backend for CpuBackend {
    type Slot = CpuSlot;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn alloc(&mut self, bytes: usize) -> Result<CpuSlot> {
        Ok(owned_slot(AlignedBuffer::zeroed(bytes)))
    }

    fn sub_slot(&self, slot: &CpuSlot, offset: usize, len: usize) -> CpuSlot {
        assert!(
            offset + len <= slot.len,
            "sub-slot {offset}+{len} outside a slot of {} bytes",
            slot.len
        );
        CpuSlot {
            buffer: slot.buffer.clone(),
            offset: slot.offset + offset,
            len,
        }
    }

    fn weight(&mut self, tensor: &Tensor) -> Result<CpuSlot> {
        let aligned = (tensor.data_ptr() as usize).is_multiple_of(tensor.dtype().size_in_bytes());
        if tensor.is_contiguous() && aligned {
            let len = tensor.numel() * tensor.dtype().size_in_bytes();
            let buffer = self
                .weights
                .entry(WeightKey::of(tensor))
                .or_insert_with(|| Arc::new(CpuBuffer::Weight(WeightBuffer::new(tensor))));
            return Ok(CpuSlot {
                buffer: buffer.clone(),
                offset: 0,
                len,
            });
        }
        // Strided or misaligned (a safetensors offset not a multiple of the element size):
        // one aligned copy now, so kernels can read typed slices.
        let contiguous = tensor.contiguous();
        Ok(owned_slot(AlignedBuffer::from_bytes(
            contiguous.contiguous_bytes()?,
        )))
    }

    fn state(&mut self, name: &str, dtype: DType, shape: &Shape) -> Result<CpuSlot> {
        if let Some((slot, d, s)) = self.states.get(name) {
            if *d != dtype || s != shape {
                return Err(Error::InvalidShape(format!(
                    "state `{name}` exists as {d} {s}, requested as {dtype} {shape}"
                )));
            }
            return Ok(slot.clone());
        }
        let slot = owned_slot(AlignedBuffer::zeroed(shape.numel() * dtype.size_in_bytes()));
        self.states
            .insert(name.to_string(), (slot.clone(), dtype, shape.clone()));
        Ok(slot)
    }

    fn write_bytes(&mut self, slot: &CpuSlot, bytes: &[u8]) -> Result<()> {
        if bytes.len() > slot.len {
            return Err(Error::InvalidShape(format!(
                "writing {} bytes into a slot of {}",
                bytes.len(),
                slot.len
            )));
        }
        if let CpuBuffer::Weight(_) = *slot.buffer {
            return Err(Error::InvalidShape("weights are read-only".into()));
        }
        // SAFETY: the slot holds at least `bytes.len()` bytes of an owned buffer (checked
        // above) and no kernel runs while inputs are written.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), slot.ptr(), bytes.len()) };
        Ok(())
    }

    fn copy_slot(&mut self, src: &CpuSlot, dst: &CpuSlot, bytes: usize) -> Result<()> {
        check_copy(src, dst, bytes)?;
        // SAFETY: both slots hold `bytes` bytes of live buffers (their `Arc`s keep them), the
        // ranges do not overlap and `dst` is not a weight (checked above), and no kernel runs
        // while a copy does (the CPU backend runs one thing at a time).
        unsafe { std::ptr::copy_nonoverlapping(src.ptr(), dst.ptr(), bytes) };
        Ok(())
    }

    fn read_into(&mut self, slot: &CpuSlot, out: &mut [u8]) -> Result<()> {
        if out.len() > slot.len {
            return Err(Error::InvalidShape(format!(
                "reading {} bytes from a slot of {}",
                out.len(),
                slot.len
            )));
        }
        // SAFETY: the slot covers `out.len()` valid bytes and no kernel is writing while we read.
        unsafe { std::ptr::copy_nonoverlapping(slot.ptr(), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    fn prepare(&mut self, op: &Op, inputs: &[Operand<CpuSlot>]) -> Result<()> {
        ops::prepare(self.kernels, op, inputs)
    }

    fn execute(
        &mut self,
        op: &Op,
        inputs: &[Operand<CpuSlot>],
        output: &Operand<CpuSlot>,
    ) -> Result<()> {
        ops::execute(self.kernels, op, inputs, output)
    }
}
