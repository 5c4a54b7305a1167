//! iris-runtime: tensors over shared storage, the safetensors memory-map loader, graphs
//! (builder, memory planner, executor) and the backends that run them.

pub mod backend;
pub mod dtype;
pub mod error;
pub mod graph;
pub mod layout;
pub mod op_cases;
pub mod safetensors;
pub mod storage;
pub mod tensor;
pub mod threads;

pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use layout::{Layout, Shape};
pub use tensor::Tensor;
