//! Named weights of a checkpoint with shape checks and an optional target dtype, scoped by
//! prefix like HF module paths (`model.layers.3.self_attn`).

use std::path::Path;
use std::sync::Arc;

use iris_runtime::safetensors::WeightStore;
use iris_runtime::{DType, Tensor};

use crate::error::ModelError;

#[derive(Clone)]
pub struct Weights {
    store: Arc<WeightStore>,
    prefix: String,
    /// Weights are converted to this float dtype when stored otherwise (one copy at load);
    /// `None` reads every weight as stored (no copy).
    dtype: Option<DType>,
}

impl Weights {
    pub fn open(path: impl AsRef<Path>, dtype: Option<DType>) -> Result<Self, ModelError> {
        Ok(Weights {
            store: Arc::new(WeightStore::open(path)?),
            prefix: String::new(),
            dtype,
        })
    }

    pub fn from_store(store: Arc<WeightStore>, dtype: Option<DType>) -> Self {
        Weights {
            store,
            prefix: String::new(),
            dtype,
        }
    }

    pub fn store(&self) -> &WeightStore {
        &self.store
    }

    /// The same weights under `prefix.` + `name`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Weights {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        Weights {
            prefix,
            ..self.clone()
        }
    }

    pub fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.store.contains(&self.full_name(name))
    }

    /// The weight `name` with exactly `shape`, converted to the target dtype if one is set.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        let full = self.full_name(name);
        if !self.store.contains(&full) {
            return Err(ModelError::Weight {
                name: full,
                message: format!("missing from {}", self.store.path().display()),
            });
        }
        let tensor = self.store.get(&full)?;
        if tensor.dims() != shape {
            return Err(ModelError::Weight {
                name: full,
                message: format!("expected shape {shape:?}, found {:?}", tensor.dims()),
            });
        }
        if !tensor.dtype().is_float() {
            return Err(ModelError::Weight {
                name: full,
                message: format!("expected a float tensor, found {}", tensor.dtype()),
            });
        }
        match self.dtype {
            Some(dtype) if dtype != tensor.dtype() => Ok(tensor.to_dtype(dtype)?),
            _ => Ok(tensor),
        }
    }

    /// Like `get`, `None` when the weight is absent.
    pub fn get_optional(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>, ModelError> {
        if self.contains(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}
