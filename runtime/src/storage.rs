//! Where a tensor's bytes live: an owned 64-byte-aligned buffer or a range of a shared
//! memory map.

use std::alloc::{alloc_zeroed, dealloc, Layout as AllocLayout};
use std::ptr::NonNull;
use std::sync::Arc;

use memmap2::Mmap;

/// Alignment of owned buffers: one cache line, and wide enough for any AVX-512 load.
pub const BUFFER_ALIGN: usize = 64;

/// An owned, zero-initialised, 64-byte-aligned byte buffer.
pub struct AlignedBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer is uniquely owned heap memory with no interior pointers shared elsewhere.
unsafe impl Send for AlignedBuffer {}
// SAFETY: shared access only hands out `&[u8]`; mutation needs `&mut self`.
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    pub fn zeroed(len: usize) -> Self {
        if len == 0 {
            // A dangling but well-aligned pointer is valid for zero-length slices.
            let ptr = NonNull::new(BUFFER_ALIGN as *mut u8).expect("non-zero constant");
            return AlignedBuffer { ptr, len };
        }
        let layout = Self::alloc_layout(len);
        // SAFETY: layout has non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuffer { ptr, len }
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut buf = Self::zeroed(bytes.len());
        buf.as_mut_slice().copy_from_slice(bytes);
        buf
    }

    fn alloc_layout(len: usize) -> AllocLayout {
        AllocLayout::from_size_align(len, BUFFER_ALIGN).expect("buffer size overflows isize")
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialised bytes (zeroed on allocation).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Raw pointer to the first byte, for backends that hand out disjoint ranges of one
    /// buffer to kernels (the graph planner guarantees the ranges a kernel writes do not
    /// overlap the ones it reads).
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: allocated in `zeroed` with exactly this layout.
            unsafe { dealloc(self.ptr.as_ptr(), Self::alloc_layout(self.len)) }
        }
    }
}

impl Clone for AlignedBuffer {
    fn clone(&self) -> Self {
        Self::from_bytes(self.as_slice())
    }
}

impl std::fmt::Debug for AlignedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuffer({} bytes)", self.len)
    }
}

/// Bytes of a CPU tensor.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    Owned(AlignedBuffer),
    /// `len` bytes at `start` of a shared read-only memory map: weights read in place.
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
}

impl CpuStorage {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CpuStorage::Owned(buf) => buf.as_slice(),
            CpuStorage::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }

    /// Mutable bytes; `None` for a mapped (read-only) range.
    pub fn as_bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            CpuStorage::Owned(buf) => Some(buf.as_mut_slice()),
            CpuStorage::Mapped { .. } => None,
        }
    }

    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self, CpuStorage::Mapped { .. })
    }
}
