//! Errors of the runtime's tensor, graph and backend layers.

use crate::dtype::DType;
use crate::layout::Shape;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tensor `{name}`: expected dtype {expected}, found {found}")]
    DTypeMismatch {
        name: String,
        expected: DType,
        found: DType,
    },
    #[error("tensor `{name}`: expected shape {expected}, found {found}")]
    ShapeMismatch {
        name: String,
        expected: Shape,
        found: Shape,
    },
    #[error("{0}")]
    InvalidShape(String),
    #[error("{op}: {message}")]
    InvalidOp { op: &'static str, message: String },
    #[error("tensor data is {bytes} bytes, but {dtype} x {shape} needs {needed}")]
    DataSize {
        bytes: usize,
        dtype: DType,
        shape: Shape,
        needed: usize,
    },
    #[error("graph input `{0}` was not given")]
    MissingInput(String),
    #[error("graph has no value named `{0}`")]
    UnknownValue(String),
    #[error("{backend} backend does not support {what}")]
    Unsupported { backend: &'static str, what: String },
    #[error("CUDA: {0}")]
    Cuda(String),
    #[error(transparent)]
    Load(#[from] crate::safetensors::LoadError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
