//! CPU kernels. `reference` holds the plain scalar version of every op (f32 results, f32/f64
//! accumulation): the source of truth every SIMD and CUDA kernel is tested against. The fast
//! kernels take an [`isa::Isa`] (runtime dispatch, see `isa`) and split work over rayon:
//! `gemm` (tiled matmul), `gemv` (decode matmul), `attention` (flash-style), `rowops`
//! (vectorized norms and activations).

pub mod attention;
pub mod bench;
pub mod conv2d;
pub mod gemm;
pub mod gemv;
pub mod isa;
pub mod kv_element;
pub mod reference;
pub mod rowops;
pub mod simd;
pub mod team;
