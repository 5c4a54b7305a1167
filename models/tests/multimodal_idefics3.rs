//! Tiny random Idefics3 (SigLIP-style vision with post_layernorm, pixel-shuffle connector,
//! Llama) made by transformers (scripts/make_multimodal_fixtures.py): one image as two full
//! tiles; connector output and logits, 32 greedy tokens, bf16 weights.

mod multimodal_support;

use multimodal_support::{check, check_greedy, fixture};
use std::sync::Arc;

use iris_models::check::CheckOptions;
use iris_models::check_multimodal::check_model;
use iris_models::pipeline::{MultimodalModel, MultimodalSession};
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::safetensors::WeightStore;

#[test]
fn idefics3_f32() {
    check(&fixture("tiny-idefics3"), "reference.safetensors", 1e-6, "");
}

#[test]
fn idefics3_f32_greedy() {
    check_greedy(&fixture("tiny-idefics3"));
}

#[test]
fn idefics3_bf16_against_bf16_compute() {
    check(
        &fixture("tiny-idefics3-bf16"),
        "reference.safetensors",
        1e-3,
        "",
    );
}

#[test]
fn idefics3_bf16_weights_f32_compute() {
    check(
        &fixture("tiny-idefics3-bf16"),
        "reference.safetensors",
        1e-6,
        "_f32_compute",
    );
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
        CheckOptions::default(),
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
