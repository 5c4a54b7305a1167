//! The generation path keeps image features on the backend (`prefill_images`, `generate`:
//! vision output copied into the prefill input, never read back); the check path reads them
//! to the host (`encode_images`, then `prefill` with the tensor). Both must give the same
//! logits and greedy tokens: tiny LLaVA with one and two images (two vision runs, whose
//! features must land in order) and tiny Idefics3 (the tiles of one image in one run).

#[allow(dead_code)] // only `fixture` is used here
mod multimodal_support;

use multimodal_support::fixture;
use std::sync::Arc;

use iris_models::generate::sampling::argmax;
use iris_models::generate::{GenerationConfig, SamplingParams};
use iris_models::pipeline::{MultimodalModel, MultimodalSession};
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::graph::ReplayState;
use iris_runtime::safetensors::WeightStore;
use iris_runtime::Tensor;

/// `input_ids` and `pixel_values` of a fixture's reference file.
fn reference(name: &str, file: &str) -> (Vec<u32>, Tensor) {
    let store = WeightStore::open(fixture(name).join(file)).unwrap();
    let ids = store.get("input_ids").unwrap().to_vec_i64().unwrap();
    let ids = ids.iter().map(|&id| id as u32).collect();
    (ids, store.get("pixel_values").unwrap())
}

fn session(name: &str) -> MultimodalSession<CpuBackend> {
    let model = Arc::new(MultimodalModel::load(fixture(name), None).unwrap());
    MultimodalSession::new(model, CpuBackend::new(), 128).unwrap()
}

fn greedy(max_new_tokens: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens,
        sampling: SamplingParams::default(),
        eos_token_ids: Vec::new(),
    }
}

/// Greedy tokens through the host path: features read back, prefilled from the tensor.
fn host_greedy(
    session: &mut MultimodalSession<CpuBackend>,
    ids: &[u32],
    features: &Tensor,
    n: usize,
) -> Vec<u32> {
    session.reset();
    let mut tokens = vec![argmax(session.prefill(ids, Some(features)).unwrap())];
    while tokens.len() < n {
        let next = session.step_greedy(*tokens.last().unwrap()).unwrap();
        tokens.push(next);
    }
    tokens
}

fn device_path_matches_host_path(name: &str, file: &str) {
    let (ids, pixels) = reference(name, file);
    let mut session = session(name);
    let features = session.encode_images(&pixels).unwrap();
    let host = session.prefill(&ids, Some(&features)).unwrap().to_vec();
    // Several runs over the same vision executor (the replay path on a recording backend).
    for run in 0..3 {
        session.reset();
        let device = session.prefill_images(&ids, Some(&pixels)).unwrap();
        assert_eq!(device, &host[..], "{name} {file}: logits of run {run}");
    }
    assert_eq!(
        session.vision_replay_state(),
        Some(&ReplayState::Unavailable),
        "the CPU runs the vision graph op by op"
    );
    let expected = host_greedy(&mut session, &ids, &features, 12);
    let out = session
        .generate(&ids, Some(&pixels), &greedy(12), |_| true)
        .unwrap();
    assert_eq!(out.generation.tokens, expected, "{name} {file}: tokens");
}

#[test]
fn llava_one_image_device_features_match_host_features() {
    device_path_matches_host_path("tiny-llava", "reference.safetensors");
}

#[test]
fn llava_two_images_device_features_land_in_order() {
    let (_, pixels) = reference("tiny-llava", "reference_2images.safetensors");
    assert_eq!(pixels.dims()[0], 2, "two images, two vision runs");
    device_path_matches_host_path("tiny-llava", "reference_2images.safetensors");
}

#[test]
fn idefics3_device_features_match_host_features() {
    device_path_matches_host_path("tiny-idefics3", "reference.safetensors");
}

#[test]
fn bf16_llava_device_features_match_host_features() {
    device_path_matches_host_path("tiny-llava-bf16", "reference.safetensors");
}

/// Bad prompts and pixels are errors before anything is cached: the next good call gives
/// the logits of a fresh session.
#[test]
fn device_path_errors_leave_the_session_usable() {
    let (ids, pixels) = reference("tiny-llava", "reference.safetensors");
    let mut fresh = session("tiny-llava");
    let expected = fresh.prefill_images(&ids, Some(&pixels)).unwrap().to_vec();

    let mut session = session("tiny-llava");
    let image_token = session.model().image_token_id;
    let one_short: Vec<u32> = {
        let mut ids = ids.clone();
        let at = ids.iter().position(|&t| t == image_token).unwrap();
        ids.remove(at);
        ids
    };
    let err = session
        .prefill_images(&one_short, Some(&pixels))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("24 image tokens") && err.contains("25 feature rows"),
        "{err}"
    );
    let err = session.prefill_images(&ids, None).unwrap_err().to_string();
    assert!(
        err.contains("25 image tokens") && err.contains("0 feature rows"),
        "{err}"
    );
    let flat = pixels.reshape(pixels.dims()[1..].to_vec()).unwrap();
    let err = session
        .prefill_images(&ids, Some(&flat))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pixel_values must be [N, C, H, W]"), "{err}");
    // Right rank, wrong size: refused by the vision graph after the prefill compiled.
    let dims = pixels.dims();
    let cropped = pixels.narrow(3, 0, dims[3] - 2).unwrap().contiguous();
    let err = session
        .prefill_images(&ids, Some(&cropped))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pixel_values"), "{err}");

    let logits = session.prefill_images(&ids, Some(&pixels)).unwrap();
    assert_eq!(logits, &expected[..]);
}
