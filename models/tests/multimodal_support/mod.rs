//! Checks shared by the LLaVA and Idefics3 fixture tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use iris_models::check::CheckOptions;
use iris_models::check_multimodal::check_multimodal_model;
use iris_models::generate::{GenerationConfig, SamplingParams};
use iris_models::pipeline::{MultimodalModel, MultimodalSession};
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::safetensors::WeightStore;
use serde_json::Value;

/// A committed fixture folder.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// `image_features` and `logits` of `dir` against its reference file `reference` (suffix
/// selects e.g. the `_f32_compute` expectations of a bf16 folder).
pub fn check(dir: &Path, reference: &str, threshold: f64, suffix: &str) {
    let model = Arc::new(MultimodalModel::load(dir, None).unwrap());
    let report = check_multimodal_model(
        &model,
        CpuBackend::new(),
        &dir.join(reference),
        CheckOptions::threshold(threshold),
        suffix,
    )
    .unwrap();
    assert_eq!(report.len(), 2, "image_features and logits are compared");
    for c in &report {
        println!(
            "{} {reference}{suffix}: {} nmse {:.3e} max abs {:.3e} cosine {:.9}",
            dir.file_name().unwrap().to_string_lossy(),
            c.name,
            c.nmse,
            c.max_abs_error,
            c.cosine
        );
        assert!(
            c.passed,
            "{}: nmse {:.3e} > {threshold:.0e}",
            c.name, c.nmse
        );
    }
}

/// 32 greedy tokens from the reference's input_ids and pixel_values equal greedy.json, and the
/// callback sees every one in order.
pub fn check_greedy(dir: &Path) {
    let text = std::fs::read_to_string(dir.join("greedy.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    };
    let (prompt, expected) = (ids("input_ids"), ids("output_ids"));
    let store = WeightStore::open(dir.join("reference.safetensors")).unwrap();
    let pixels = store.get("pixel_values").unwrap();
    let model = Arc::new(MultimodalModel::load(dir, None).unwrap());
    let mut session = MultimodalSession::new(model, CpuBackend::new(), 128).unwrap();
    let config = GenerationConfig {
        max_new_tokens: expected.len(),
        sampling: SamplingParams::default(),
        eos_token_ids: Vec::new(),
    };
    let mut streamed = Vec::new();
    let out = session
        .generate(&prompt, Some(&pixels), &config, |t| {
            streamed.push(t);
            true
        })
        .unwrap();
    assert_eq!(
        out.generation.tokens, expected,
        "greedy tokens differ from transformers"
    );
    assert_eq!(streamed, expected);
}
