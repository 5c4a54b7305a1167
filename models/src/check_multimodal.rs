//! `iris check` for every pipeline: dispatches on config.json `architectures` to the text
//! check (LlamaForCausalLM, Qwen2ForCausalLM, ...) or the multimodal one (LLaVA, Idefics3).
//!
//! Multimodal reference files hold `input_ids` i64 [1, T], `pixel_values` f32 [N, C, H, W]
//! (LLaVA: N images; Idefics3: the N tiles of one image), and the expected
//! `image_features` (the projector / connector output as `get_image_features` computes it,
//! before it is split into a list: LLaVA [images, tokens, H], Idefics3 [tiles, tokens, H];
//! any shape with the same values in that order is accepted) and `logits` f32 [1, T, V].

use std::path::Path;
use std::sync::Arc;

use iris_runtime::backend::Backend;
use iris_runtime::safetensors::WeightStore;
use iris_runtime::{DType, Tensor};

use crate::check::{
    check_text_model, default_threshold, reference_input_ids, CheckOptions, Comparison,
};
use crate::error::ModelError;
use crate::pipeline::{architecture, MultimodalModel, MultimodalSession, PipelineKind};
use crate::text_model::TextModel;

/// Checks the model in `dir` against `reference`. `dtype` converts the weights at load
/// (`None`: as stored); `threshold` is the NMSE bound (default: 1e-6 for f32 weights, 1e-3
/// otherwise).
pub fn check_model<B: Backend>(
    dir: &Path,
    backend: B,
    reference: &Path,
    dtype: Option<DType>,
    options: CheckOptions,
) -> Result<Vec<Comparison>, ModelError> {
    let arch = architecture(dir)?;
    if PipelineKind::from_architecture(&arch).is_some() {
        let model = MultimodalModel::load(dir, dtype)?;
        check_multimodal_model(&Arc::new(model), backend, reference, options, "")
    } else {
        let model = TextModel::load(dir, dtype)?;
        check_text_model(&model, backend, reference, options)
    }
}

fn tensor(store: &WeightStore, path: &Path, name: &str) -> Result<Option<Tensor>, ModelError> {
    if !store.contains(name) {
        return Ok(None);
    }
    let t = store.get(name)?;
    if !t.dtype().is_float() {
        return Err(ModelError::Invalid(format!(
            "{}: `{name}` must be a float tensor, found {}",
            path.display(),
            t.dtype()
        )));
    }
    Ok(Some(t))
}

/// Runs `model` on the reference inputs and compares `image_features{suffix}` (when the
/// reference has it) and `logits{suffix}` (e.g. suffix `_f32_compute` for the f32-compute
/// references of bf16 fixtures).
pub fn check_multimodal_model<B: Backend>(
    model: &Arc<MultimodalModel>,
    backend: B,
    reference: &Path,
    options: CheckOptions,
    suffix: &str,
) -> Result<Vec<Comparison>, ModelError> {
    let store = WeightStore::open(reference)?;
    let ids = reference_input_ids(&store, reference)?;
    let logits_name = format!("logits{suffix}");
    let features_name = format!("image_features{suffix}");
    let expected_logits = tensor(&store, reference, &logits_name)?.ok_or_else(|| {
        ModelError::Invalid(format!(
            "{}: the reference has no `{logits_name}` tensor",
            reference.display()
        ))
    })?;
    let vocab = model.llm.config.vocab_size;
    if expected_logits.dims() != [1, ids.len(), vocab] {
        return Err(ModelError::Invalid(format!(
            "{}: `{logits_name}` is {:?}, expected [1, {}, {vocab}]",
            reference.display(),
            expected_logits.dims(),
            ids.len()
        )));
    }
    let threshold = options
        .threshold
        .unwrap_or_else(|| default_threshold(model.weight_dtype));
    let mut session =
        MultimodalSession::with_kv_cache(model.clone(), backend, ids.len() + 1, options.kv_cache)?;
    let mut report = Vec::new();
    let features = match tensor(&store, reference, "pixel_values")? {
        Some(pixels) => {
            let features = session.encode_images(&pixels)?;
            if let Some(expected) = tensor(&store, reference, &features_name)? {
                if expected.numel() != features.numel() {
                    return Err(ModelError::Invalid(format!(
                        "{}: `{features_name}` is {:?}, iris computes {:?}",
                        reference.display(),
                        expected.dims(),
                        features.dims()
                    )));
                }
                report.push(Comparison::new(
                    "image_features",
                    &features.to_vec_f32(),
                    &expected.to_vec_f32(),
                    threshold,
                ));
            }
            Some(features)
        }
        None => None,
    };
    let logits = session.forward_all(&ids, features.as_ref())?;
    report.push(Comparison::new(
        "logits",
        &logits.to_vec_f32(),
        &expected_logits.to_vec_f32(),
        threshold,
    ));
    Ok(report)
}
