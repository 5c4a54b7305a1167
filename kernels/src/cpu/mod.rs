//! CPU kernels. `reference` holds the plain scalar version of every op (f32 results, f32/f64
//! accumulation): the source of truth every SIMD and CUDA kernel is tested against.

pub mod reference;
