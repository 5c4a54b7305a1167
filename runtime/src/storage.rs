//! Where a tensor's bytes live: an owned 64-byte-aligned buffer or a range of a shared
//! memory map.

use std::alloc::{alloc_zeroed, dealloc, Layout as AllocLayout};
use std::ptr::NonNull;
use std::sync::Arc;

use memmap2::Mmap;

/// Alignment of owned buffers: one cache line, and wide enough for any AVX-512 load.
pub const BUFFER_ALIGN: usize = 64;

/// The allocator's own alignment on the platforms we build for: a block asked for at this
/// alignment comes zeroed from `calloc`.
const NATURAL_ALIGN: usize = 16;

/// An owned, zero-initialised, 64-byte-aligned byte buffer.
pub struct AlignedBuffer {
    /// The first byte, `BUFFER_ALIGN`-aligned, inside the allocation at `base`.
    ptr: NonNull<u8>,
    len: usize,
    /// The allocation (`len + BUFFER_ALIGN` bytes at `NATURAL_ALIGN`).
    base: NonNull<u8>,
}

// SAFETY: the buffer is uniquely owned heap memory with no interior pointers shared elsewhere.
unsafe impl Send for AlignedBuffer {}
// SAFETY: shared access only hands out `&[u8]`; mutation needs `&mut self`.
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    /// `len` zero bytes. The block is asked for at the allocator's natural alignment and
    /// aligned inside: at a larger alignment the system allocator allocates and then clears
    /// every byte, which made a session fault in its whole KV cache (184 MB for SmolLM2 at
    /// 4096 tokens) when it was created. Through `calloc` a large block is fresh zero pages
    /// that cost memory only once written.
    pub fn zeroed(len: usize) -> Self {
        if len == 0 {
            // A dangling but well-aligned pointer is valid for zero-length slices.
            let ptr = NonNull::new(BUFFER_ALIGN as *mut u8).expect("non-zero constant");
            return AlignedBuffer {
                ptr,
                len,
                base: ptr,
            };
        }
        let layout = Self::alloc_layout(len);
        // SAFETY: layout has non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let base = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        let offset = raw.align_offset(BUFFER_ALIGN);
        assert!(offset < BUFFER_ALIGN, "no aligned start inside the block");
        // SAFETY: offset < BUFFER_ALIGN, so `ptr .. ptr + len` lies inside the
        // `len + BUFFER_ALIGN` bytes allocated.
        let ptr = unsafe { base.add(offset) };
        AlignedBuffer { ptr, len, base }
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut buf = Self::zeroed(bytes.len());
        buf.as_mut_slice().copy_from_slice(bytes);
        buf
    }

    fn alloc_layout(len: usize) -> AllocLayout {
        len.checked_add(BUFFER_ALIGN)
            .and_then(|size| AllocLayout::from_size_align(size, NATURAL_ALIGN).ok())
            .expect("buffer size overflows isize")
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
            // SAFETY: allocated in `zeroed` at `base` with exactly this layout.
            unsafe { dealloc(self.base.as_ptr(), Self::alloc_layout(self.len)) }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size comes 64-byte aligned and zeroed, can be written whole, and frees (the
    /// block starts at the allocator's alignment and the buffer inside it).
    #[test]
    fn zeroed_buffers_are_aligned_zero_and_writable() {
        for len in [0, 1, 17, 63, 64, 65, 4096, 1 << 20, 40 << 20] {
            let mut buf = AlignedBuffer::zeroed(len);
            assert_eq!(buf.len(), len);
            assert_eq!(buf.as_mut_ptr() as usize % BUFFER_ALIGN, 0, "len {len}");
            assert!(buf.as_slice().iter().all(|&b| b == 0), "len {len}");
            buf.as_mut_slice().fill(0xa5);
            let copy = buf.clone();
            assert!(copy.as_slice().iter().all(|&b| b == 0xa5), "len {len}");
        }
    }
}
