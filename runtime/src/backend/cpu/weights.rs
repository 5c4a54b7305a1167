//! Weights on the CPU: read in place from their (mapped) storage, plus, for the packed GEMM
//! and GEMV (`iris_kernels::cpu::gemm::packed*`, AVX-512), one copy in the kernels' layout
//! made at the first matmul that reads the weight and kept for the backend's lifetime. After
//! that the matmuls read only the copy, so the mapped pages are read once (norm weights and
//! embedding rows are still read in place). The packed GEMV also streams faster than the
//! row-major one (one contiguous run per 32 output columns).

use std::sync::OnceLock;

use iris_kernels::cpu::gemm::packed::PackedWeights;
use iris_kernels::WeightSlice;

use crate::tensor::Tensor;

/// A weight tensor read in place and its packed copy, made on first request.
pub(super) struct WeightBuffer {
    pub(super) tensor: Tensor,
    packed: OnceLock<Option<PackedWeights>>,
}

impl WeightBuffer {
    pub(super) fn new(tensor: &Tensor) -> Self {
        WeightBuffer {
            tensor: tensor.clone(),
            packed: OnceLock::new(),
        }
    }

    /// Bytes of the packed copy (0 while there is none).
    pub(super) fn packed_bytes(&self) -> usize {
        self.packed
            .get()
            .and_then(|p| p.as_ref())
            .map_or(0, |p| p.bytes())
    }

    /// The packed copy of this weight read as `[n, k]` from `w` (a view of the whole
    /// weight), packed now if this is the first request; `None` where the packed kernels do
    /// not take the dtype.
    pub(super) fn packed(&self, w: WeightSlice, n: usize, k: usize) -> Option<&PackedWeights> {
        self.packed
            .get_or_init(|| PackedWeights::pack(w, n, k))
            .as_ref()
            .filter(|p| p.rows() == n && p.cols() == k)
    }
}
