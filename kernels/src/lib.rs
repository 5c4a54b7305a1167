//! iris-kernels: pure compute over slices, strides and sizes. Knows nothing of tensors or
//! graphs. `cpu::reference` holds the plain, readable version of every op (f32
//! accumulation) that every faster kernel is tested against; `cuda` holds PTX sources.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod testing;
pub mod weights;

pub use weights::WeightSlice;
