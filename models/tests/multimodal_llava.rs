//! Tiny random LLaVA (CLIP vision, GELU projector, Llama with GQA) made by transformers
//! (scripts/make_multimodal_fixtures.py): image features and logits for one and two images,
//! 32 greedy tokens, bf16 weights, both weight-name layouts, and the image-token count check.

mod multimodal_support;

use multimodal_support::{check, check_greedy, fixture};
use std::sync::Arc;

use iris_models::check::CheckOptions;
use iris_models::check_multimodal::check_model;
use iris_models::pipeline::{MultimodalModel, MultimodalSession};
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::safetensors::WeightStore;

#[test]
fn llava_f32_one_image() {
    check(&fixture("tiny-llava"), "reference.safetensors", 1e-6, "");
}

#[test]
fn llava_f32_two_images() {
    check(
        &fixture("tiny-llava"),
        "reference_2images.safetensors",
        1e-6,
        "",
    );
}

#[test]
fn llava_f32_greedy() {
    check_greedy(&fixture("tiny-llava"));
}

#[test]
fn llava_bf16_against_bf16_compute() {
    check(
        &fixture("tiny-llava-bf16"),
        "reference.safetensors",
        1e-3,
        "",
    );
}

#[test]
fn llava_bf16_weights_f32_compute() {
    check(
        &fixture("tiny-llava-bf16"),
        "reference.safetensors",
        1e-6,
        "_f32_compute",
    );
}

#[test]
fn llava_bf16_greedy() {
    check_greedy(&fixture("tiny-llava-bf16"));
}

#[test]
fn check_model_dispatches_on_architecture() {
    let dir = fixture("tiny-llava");
    let report = check_model(
        &dir,
        CpuBackend::new(),
        &dir.join("reference.safetensors"),
        None,
        CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(
        report.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["image_features", "logits"]
    );
    assert!(report.iter().all(|c| c.passed));
    let text = fixture("tiny-llama");
    let report = check_model(
        &text,
        CpuBackend::new(),
        &text.join("reference.safetensors"),
        None,
        CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(report.len(), 1);
    assert!(
        report[0].passed,
        "text model through check_model: nmse {:.3e}",
        report[0].nmse
    );
}

#[test]
fn image_token_count_mismatch_is_an_error() {
    let dir = fixture("tiny-llava");
    let store = WeightStore::open(dir.join("reference.safetensors")).unwrap();
    let pixels = store.get("pixel_values").unwrap();
    let model = Arc::new(MultimodalModel::load(&dir, None).unwrap());
    let mut session = MultimodalSession::new(model.clone(), CpuBackend::new(), 128).unwrap();
    let features = session.encode_images(&pixels).unwrap();
    assert_eq!(features.dims(), [1, 25, 96]);
    let mut ids: Vec<u32> = vec![1, 5, 6];
    ids.extend(std::iter::repeat_n(model.image_token_id, 24));
    ids.push(7);
    let err = session
        .forward_all(&ids, Some(&features))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("24 image tokens") && err.contains("25 feature rows"),
        "{err}"
    );
    session.reset();
    let err = session.forward_all(&ids, None).unwrap_err().to_string();
    assert!(
        err.contains("24 image tokens") && err.contains("0 feature rows"),
        "{err}"
    );
}

/// Copies the fixture with every tensor renamed by `rename`.
fn renamed_copy(rename: impl Fn(&str) -> String) -> tempfile::TempDir {
    let src = fixture("tiny-llava");
    let out = tempfile::tempdir().unwrap();
    for f in ["config.json", "generation_config.json"] {
        std::fs::copy(src.join(f), out.path().join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (rename(&name), view))
        .collect();
    safetensors::serialize_to_file(tensors, &None, &out.path().join("model.safetensors")).unwrap();
    out
}

fn check_layout(rename: impl Fn(&str) -> String) {
    let dir = renamed_copy(rename);
    let reference = fixture("tiny-llava").join("reference.safetensors");
    let report = check_model(
        dir.path(),
        CpuBackend::new(),
        &reference,
        None,
        CheckOptions::threshold(1e-6),
    )
    .unwrap();
    for c in &report {
        assert!(c.passed, "{}: nmse {:.3e}", c.name, c.nmse);
    }
}

#[test]
fn llava_module_name_layout() {
    // transformers 5 module names: model.vision_tower.vision_model.*, model.language_model.*.
    check_layout(|name| {
        if let Some(rest) = name.strip_prefix("vision_tower.") {
            format!("model.vision_tower.vision_model.{rest}")
        } else if let Some(rest) = name.strip_prefix("language_model.model.") {
            format!("model.language_model.{rest}")
        } else if name == "language_model.lm_head.weight" {
            "lm_head.weight".into()
        } else {
            format!("model.{name}")
        }
    });
}

#[test]
fn llava_hub_layout() {
    // Older Hub checkpoints: vision_tower.vision_model.*, language_model.model.*.
    check_layout(|name| match name.strip_prefix("vision_tower.") {
        Some(rest) => format!("vision_tower.vision_model.{rest}"),
        None => name.to_string(),
    });
}

#[test]
fn missing_projector_names_the_tensors_tried() {
    let dir = renamed_copy(|name| name.replace("multi_modal_projector", "projector"));
    let err = MultimodalModel::load(dir.path(), None)
        .err()
        .expect("load fails")
        .to_string();
    assert!(
        err.contains("multi_modal_projector.linear_1.weight"),
        "{err}"
    );
}
