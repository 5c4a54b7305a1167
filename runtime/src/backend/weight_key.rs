//! The key under which a backend keeps one buffer (or upload) per weight view.

use crate::dtype::DType;
use crate::tensor::Tensor;

/// Identifies a weight view: the host address of its first element and its layout. A
/// backend's map holds a clone of the tensor beside the key, which pins the storage, so an
/// address cannot be reused by another tensor while the entry lives.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct WeightKey {
    host_addr: usize,
    dtype: DType,
    dims: Vec<usize>,
    strides: Vec<usize>,
}

impl WeightKey {
    pub(crate) fn of(tensor: &Tensor) -> Self {
        WeightKey {
            host_addr: tensor.data_ptr() as usize,
            dtype: tensor.dtype(),
            dims: tensor.dims().to_vec(),
            strides: tensor.layout().strides.clone(),
        }
    }
}
