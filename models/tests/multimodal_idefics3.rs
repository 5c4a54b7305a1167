//! Tiny random Idefics3 (SigLIP-style vision with post_layernorm, pixel-shuffle connector,
//! Llama) made by transformers (scripts/make_multimodal_fixtures.py): one image as two full
//! tiles; connector output and logits, 32 greedy tokens, bf16 weights.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use iris_models::check_multimodal::{check_model, check_multimodal_model};
use iris_models::generate::{GenerationConfig, SamplingParams};
use iris_models::pipeline::{MultimodalModel, MultimodalSession};
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::safetensors::WeightStore;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

fn check(dir: &Path, threshold: f64, suffix: &str) {
    let model = Arc::new(MultimodalModel::load(dir, None).unwrap());
    let reference = dir.join("reference.safetensors");
    let report = check_multimodal_model(
        &model,
        CpuBackend::new(),
        &reference,
        Some(threshold),
        suffix,
    )
    .unwrap();
    assert_eq!(report.len(), 2, "image_features and logits are compared");
    for c in &report {
        println!(
            "{}{suffix}: {} nmse {:.3e} max abs {:.3e} cosine {:.9}",
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

fn check_greedy(dir: &Path) {
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

#[test]
fn idefics3_f32() {
    check(&fixture("tiny-idefics3"), 1e-6, "");
}

#[test]
fn idefics3_f32_greedy() {
    check_greedy(&fixture("tiny-idefics3"));
}

#[test]
fn idefics3_bf16_against_bf16_compute() {
    check(&fixture("tiny-idefics3-bf16"), 1e-3, "");
}

#[test]
fn idefics3_bf16_weights_f32_compute() {
    check(&fixture("tiny-idefics3-bf16"), 1e-6, "_f32_compute");
}

#[test]
fn idefics3_bf16_greedy() {
    check_greedy(&fixture("tiny-idefics3-bf16"));
}

#[test]
fn idefics3_shapes_and_dispatch() {
    let dir = fixture("tiny-idefics3");
    let model = MultimodalModel::load(&dir, None).unwrap();
    assert_eq!(model.tokens_per_image(), 9, "36 patches shuffled by 2 x 2");
    assert_eq!(model.image_token_id, 699);
    let report = check_model(
        &dir,
        CpuBackend::new(),
        &dir.join("reference.safetensors"),
        None,
        None,
    )
    .unwrap();
    assert!(report.iter().all(|c| c.passed));
    // One tile's features for a prompt with two tiles' image tokens.
    let store = WeightStore::open(dir.join("reference.safetensors")).unwrap();
    let pixels = store
        .get("pixel_values")
        .unwrap()
        .narrow(0, 0, 1)
        .unwrap()
        .contiguous();
    let ids = store.get("input_ids").unwrap().to_vec_i64().unwrap();
    let ids: Vec<u32> = ids.iter().map(|&v| v as u32).collect();
    let mut session = MultimodalSession::new(Arc::new(model), CpuBackend::new(), 64).unwrap();
    let features = session.encode_images(&pixels).unwrap();
    let err = session
        .forward_all(&ids, Some(&features))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("18 image tokens") && err.contains("9 feature rows"),
        "{err}"
    );
}
