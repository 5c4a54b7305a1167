//! `iris check`: run a model on the inputs stored in a reference file and compare its
//! outputs with the expected tensors there (NMSE, max abs error, cosine).
//!
//! Reference file (safetensors): `input_ids` i64 [1, T] and expected `logits` f32
//! [1, T, V]; multimodal references add `pixel_values` and `image_features`.

use std::path::Path;

use iris_kernels::testing::{cosine, max_abs_diff, nmse};
use iris_runtime::backend::Backend;
use iris_runtime::safetensors::WeightStore;
use iris_runtime::{DType, Tensor};

use crate::error::ModelError;
use crate::generate::TextSession;
use crate::llm::KvCacheDtype;
use crate::text_model::TextModel;

/// How a check runs: the NMSE bound (`None`: [`default_threshold`] of the weights) and the
/// KV cache type (an f16 cache shows how far its rounding moves the outputs).
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    pub threshold: Option<f64>,
    pub kv_cache: KvCacheDtype,
}

impl CheckOptions {
    /// The default options with NMSE bound `threshold`.
    pub fn threshold(threshold: f64) -> Self {
        CheckOptions {
            threshold: Some(threshold),
            ..Default::default()
        }
    }
}

/// How one output compares with its reference.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub name: String,
    pub nmse: f64,
    pub max_abs_error: f32,
    pub cosine: f64,
    pub threshold: f64,
    pub passed: bool,
}

impl Comparison {
    pub fn new(name: &str, actual: &[f32], expected: &[f32], threshold: f64) -> Self {
        let nmse = nmse(actual, expected);
        Comparison {
            name: name.to_string(),
            nmse,
            max_abs_error: max_abs_diff(actual, expected),
            cosine: cosine(actual, expected),
            threshold,
            passed: nmse <= threshold,
        }
    }
}

/// NMSE bound of a check: tight where weights are f32, looser for half precision.
pub fn default_threshold(weight_dtype: DType) -> f64 {
    match weight_dtype {
        DType::F32 => 1e-6,
        _ => 1e-3,
    }
}

fn reference_tensor(store: &WeightStore, path: &Path, name: &str) -> Result<Tensor, ModelError> {
    if !store.contains(name) {
        return Err(ModelError::Invalid(format!(
            "{}: the reference has no `{name}` tensor",
            path.display()
        )));
    }
    Ok(store.get(name)?)
}

/// Reads `input_ids` (i64 [1, T]) from a reference file as token ids.
pub fn reference_input_ids(store: &WeightStore, path: &Path) -> Result<Vec<u32>, ModelError> {
    let ids = reference_tensor(store, path, "input_ids")?;
    if ids.dims().len() != 2 || ids.dims()[0] != 1 {
        return Err(ModelError::Invalid(format!(
            "{}: `input_ids` must be [1, T], found {:?}",
            path.display(),
            ids.dims()
        )));
    }
    let values = ids.to_vec_i64().map_err(|_| {
        ModelError::Invalid(format!(
            "{}: `input_ids` must be an integer tensor, found {}",
            path.display(),
            ids.dtype()
        ))
    })?;
    values
        .iter()
        .map(|&v| {
            u32::try_from(v).map_err(|_| {
                ModelError::Invalid(format!("{}: `input_ids` holds {v}", path.display()))
            })
        })
        .collect()
}

/// Runs the text model of `model` on the reference inputs and compares its logits.
pub fn check_text_model<B: Backend>(
    model: &TextModel,
    backend: B,
    reference: &Path,
    options: CheckOptions,
) -> Result<Vec<Comparison>, ModelError> {
    let store = WeightStore::open(reference)?;
    let ids = reference_input_ids(&store, reference)?;
    let expected = reference_tensor(&store, reference, "logits")?;
    let vocab = model.model.config.vocab_size;
    if expected.dims() != [1, ids.len(), vocab] {
        return Err(ModelError::Invalid(format!(
            "{}: `logits` is {:?}, expected [1, {}, {vocab}]",
            reference.display(),
            expected.dims(),
            ids.len()
        )));
    }
    let mut session = TextSession::with_kv_cache(
        model.model.clone(),
        backend,
        ids.len() + 1,
        options.kv_cache,
    )?;
    let logits = session.forward_all(&ids)?;
    let threshold = options
        .threshold
        .unwrap_or_else(|| default_threshold(model.weight_dtype));
    Ok(vec![Comparison::new(
        "logits",
        &logits.to_vec_f32(),
        &expected.to_vec_f32(),
        threshold,
    )])
}
