//! `CudaSlot`: a byte range of a device allocation. Cloning and `sub_slot` only bump a
//! reference count and adjust two integers; the allocation is freed (stream-ordered) when the
//! last slot over it is dropped.

use std::fmt;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, CudaView, DevicePtr};

/// `len` bytes at `offset` of a device allocation.
#[derive(Clone)]
pub struct CudaSlot {
    buffer: Arc<CudaSlice<u8>>,
    offset: usize,
    len: usize,
}

impl CudaSlot {
    /// The whole of `buffer`, seen as `len` bytes (`len` may be less than the allocation:
    /// empty requests allocate one byte).
    pub(super) fn whole(buffer: CudaSlice<u8>, len: usize) -> Self {
        let len = len.min(buffer.len());
        CudaSlot {
            buffer: Arc::new(buffer),
            offset: 0,
            len,
        }
    }

    /// `len` bytes at `offset` inside this slot, clamped to stay inside it (the executor
    /// never asks for more; an op on a clamped slot then fails its size check).
    pub(super) fn sub(&self, offset: usize, len: usize) -> Self {
        let offset = offset.min(self.len);
        let len = len.min(self.len - offset);
        CudaSlot {
            buffer: Arc::clone(&self.buffer),
            offset: self.offset + offset,
            len,
        }
    }

    /// Bytes in this slot.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Byte offset of this slot inside its allocation.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// True when both slots are views of the same allocation.
    pub fn same_buffer(&self, other: &CudaSlot) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
    }

    /// Device address of the first byte, for kernel arguments and raw copies on `stream`.
    ///
    /// The backend disables cudarc's per-allocation event tracking and runs everything on
    /// one stream, so the `SyncOnDrop` guard `device_ptr` returns holds no event and dropping
    /// it at once does nothing: stream order alone orders the work.
    pub(super) fn device_ptr(&self, stream: &CudaStream) -> u64 {
        let (base, _no_event) = self.buffer.device_ptr(stream);
        base + self.offset as u64
    }

    /// The first `bytes` bytes of this slot as a cudarc view (`None` if it holds fewer).
    pub(super) fn view(&self, bytes: usize) -> Option<CudaView<'_, u8>> {
        if bytes > self.len {
            return None;
        }
        self.buffer.try_slice(self.offset..self.offset + bytes)
    }
}

impl fmt::Debug for CudaSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaSlot")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("allocation_bytes", &self.buffer.len())
            .finish()
    }
}
