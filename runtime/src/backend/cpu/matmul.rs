//! The fast CPU matmul: on AVX-512 and AVX2, the packed GEMM for prefill and vision shapes
//! and the packed GEMV for decode, both over one copy of each weight packed when a graph
//! reading it is compiled (see `weights.rs`); the per-call GEMM / GEMV of
//! `iris_kernels::cpu::gemm` otherwise (scalar, weights that are views of part of a tensor).

use iris_kernels::cpu::gemm::{self, bf16_dot, packed, packed_gemv};
use iris_kernels::cpu::isa::Isa;
use iris_kernels::cpu::simd::widen_into;
use iris_kernels::WeightSlice;

use super::weights::WeightBuffer;
use super::{CpuBuffer, CpuSlot};

/// `out = x @ w^T + bias` at `isa`; `w_slot` is the slot `w` views.
#[allow(clippy::too_many_arguments)] // the matmul contract plus the weight's slot
pub(super) fn matmul(
    isa: Isa,
    x: &[f32],
    w: WeightSlice,
    w_slot: &CpuSlot,
    bias: Option<WeightSlice>,
    (m, n, k): (usize, usize, usize),
    out: &mut [f32],
) {
    if !packed::PackedWeights::supported(isa) {
        return gemm::matmul(isa, x, w, bias, m, n, k, out);
    }
    let Some(p) = whole_weight(w_slot).and_then(|b| b.packed(w, n, k)) else {
        return gemm::matmul(isa, x, w, bias, m, n, k, out);
    };
    if m <= packed_gemv::MAX_M {
        packed_gemv::gemv(isa, x, p, bias, m, out)
    } else {
        let dot = isa == Isa::Avx512 && bf16_dot::enabled();
        let precision = if dot && p.allows(packed::Precision::Bf16Dot) {
            packed::Precision::Bf16Dot
        } else {
            packed::Precision::F32
        };
        let mut bias_f32 = Vec::new();
        if let Some(b) = bias {
            bias_f32.resize(n, 0.0);
            widen_into(isa, b, 0, &mut bias_f32);
        }
        packed::gemm(isa, x, p, &bias_f32, m, precision, out)
    }
}

/// Packs `w` (`[n, k]`, viewed by `w_slot`) as the first `matmul` over it would.
pub(super) fn prepare(isa: Isa, w: WeightSlice, w_slot: &CpuSlot, (n, k): (usize, usize)) {
    if packed::PackedWeights::supported(isa) {
        if let Some(buffer) = whole_weight(w_slot) {
            buffer.packed(w, n, k);
        }
    }
}

/// The weight `w_slot` reads in place, when the slot is the whole of it (not a view of part
/// of one, not a copy).
fn whole_weight(w_slot: &CpuSlot) -> Option<&WeightBuffer> {
    match &*w_slot.buffer {
        CpuBuffer::Weight(buffer)
            if w_slot.offset == 0
                && w_slot.len == buffer.tensor.numel() * buffer.tensor.dtype().size_in_bytes() =>
        {
            Some(buffer)
        }
        _ => None,
    }
}
