//! The decode step as a replayed CUDA graph (`Executor::execute_replayed` on the CUDA
//! backend): step by step against the CPU backend's logits, greedy tokens against
//! transformers' (tiny Llama, tiny LLaVA with an image), graph on vs off
//! (`IRIS_CUDA_GRAPH=0`) giving the same tokens, with both step times printed, and the
//! vision graph replayed with its features copied to the prefill on the device.
//!
//! Without a CUDA device each test prints `skipping: <reason>` and passes;
//! `IRIS_REQUIRE_CUDA=1` makes that a failure. Run on the GPU machine with
//! `--test-threads=1` (one test sets and restores IRIS_CUDA_GRAPH).
#![cfg(feature = "cuda")]

#[allow(dead_code)] // only `backend` is used here
#[path = "common/cuda.rs"]
mod cuda_common;
#[path = "common/greedy.rs"]
mod greedy_common;

use std::sync::Arc;
use std::time::Instant;

use iris_kernels::testing::{assert_nmse, NMSE_F32_ELEMENTWISE, NMSE_F32_REDUCTION};
use iris_models::generate::sampling::argmax;
use iris_models::generate::TextSession;
use iris_models::pipeline::{MultimodalModel, MultimodalSession};
use iris_models::text_model::TextModel;
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::backend::cuda::CudaBackend;
use iris_runtime::graph::ReplayState;
use iris_runtime::safetensors::WeightStore;
use iris_runtime::Tensor;

use cuda_common::backend;
use greedy_common::{fixture, greedy, greedy_json};

const GRAPH_ENV: &str = "IRIS_CUDA_GRAPH";

/// What a session that ran two or more decode steps should report.
fn expected_state() -> ReplayState {
    let off = std::env::var(GRAPH_ENV).is_ok_and(|v| v.trim() == "0");
    if off {
        ReplayState::Unavailable
    } else {
        ReplayState::Recorded
    }
}

#[test]
fn replayed_decode_logits_match_the_cpu_step_by_step() {
    let Some(be) = backend() else { return };
    let dir = fixture("tiny-llama");
    let (prompt, _) = greedy_json(&dir);
    let model = TextModel::load(&dir, None).unwrap();
    let mut gpu = TextSession::new(model.model.clone(), be, 64).unwrap();
    let mut cpu = TextSession::new(model.model.clone(), CpuBackend::new(), 64).unwrap();
    let expected = cpu.prefill(&prompt).unwrap().to_vec();
    assert_nmse(
        "prefill logits",
        gpu.prefill(&prompt).unwrap(),
        &expected,
        NMSE_F32_REDUCTION,
    );
    let mut token = argmax(&expected);
    // Step 0 runs op by op, step 1 records, steps 2.. replay.
    for step in 0..8 {
        let expected = cpu.step(token).unwrap().to_vec();
        let actual = gpu.step(token).unwrap();
        assert_nmse(
            &format!("decode step {step} logits"),
            actual,
            &expected,
            NMSE_F32_REDUCTION,
        );
        token = argmax(&expected);
    }
    assert_eq!(gpu.decode_replay_state(), &expected_state());
}

#[test]
fn replayed_greedy_decode_matches_transformers() {
    let Some(be) = backend() else { return };
    let dir = fixture("tiny-llama");
    let (prompt, expected) = greedy_json(&dir);
    let model = TextModel::load(&dir, None).unwrap();
    let mut session = TextSession::new(model.model.clone(), be, 64).unwrap();
    for run in 0..2 {
        let out = session
            .generate(&prompt, &greedy(expected.len()), |_| true)
            .unwrap();
        assert_eq!(out.tokens, expected, "tiny-llama run {run}");
    }
    assert_eq!(session.decode_replay_state(), &expected_state());

    let Some(be) = backend() else { return };
    let dir = fixture("tiny-llava");
    let (prompt, expected) = greedy_json(&dir);
    let pixels = WeightStore::open(dir.join("reference.safetensors"))
        .unwrap()
        .get("pixel_values")
        .unwrap();
    let model = Arc::new(MultimodalModel::load(&dir, None).unwrap());
    let mut session = MultimodalSession::new(model, be, 128).unwrap();
    let out = session
        .generate(&prompt, Some(&pixels), &greedy(expected.len()), |_| true)
        .unwrap();
    assert_eq!(out.generation.tokens, expected, "tiny-llava");
    assert_eq!(session.decode_replay_state(), &expected_state());
}

/// Greedy tokens and median step time of 48 tokens with the graph on, then off.
#[test]
fn graph_on_and_off_give_the_same_tokens() {
    if backend().is_none() {
        return;
    }
    let dir = fixture("tiny-llama");
    let (prompt, _) = greedy_json(&dir);
    let model = TextModel::load(&dir, None).unwrap();
    let saved = std::env::var_os(GRAPH_ENV);
    let mut runs = Vec::new();
    for (label, value) in [("graph on", "1"), ("graph off", "0")] {
        // Read by the backend when the decode graph records; this binary runs its tests on
        // one thread on the GPU machine, so nothing reads the environment meanwhile.
        std::env::set_var(GRAPH_ENV, value);
        let be = CudaBackend::new(0).unwrap();
        let mut session = TextSession::new(model.model.clone(), be, 128).unwrap();
        session.generate(&prompt, &greedy(8), |_| true).unwrap(); // warm-up
        let start = Instant::now();
        let out = session.generate(&prompt, &greedy(48), |_| true).unwrap();
        let mut steps: Vec<f64> = out
            .timings
            .decode_steps
            .iter()
            .map(|d| d.as_secs_f64() * 1e6)
            .collect();
        steps.sort_by(f64::total_cmp);
        println!(
            "tiny-llama {label}: median decode step {:.1} us, {:.1} ms for 48 tokens ({:?})",
            steps[steps.len() / 2],
            start.elapsed().as_secs_f64() * 1e3,
            session.decode_replay_state()
        );
        let want = if value == "1" {
            ReplayState::Recorded
        } else {
            ReplayState::Unavailable
        };
        assert_eq!(session.decode_replay_state(), &want, "{label}");
        runs.push(out.tokens);
    }
    match saved {
        Some(v) => std::env::set_var(GRAPH_ENV, v),
        None => std::env::remove_var(GRAPH_ENV),
    }
    assert_eq!(runs[0], runs[1], "graph on and off chose different tokens");
}

/// `input_ids` and `pixel_values` of a fixture's reference file.
fn reference(name: &str, file: &str) -> (Vec<u32>, Tensor) {
    let store = WeightStore::open(fixture(name).join(file)).unwrap();
    let ids = store.get("input_ids").unwrap().to_vec_i64().unwrap();
    let ids = ids.iter().map(|&id| id as u32).collect();
    (ids, store.get("pixel_values").unwrap())
}

/// The vision graph replays from the third run on and its features reach the prefill by a
/// device-to-device copy (`prefill_images`): the logits equal those of the GPU's host path
/// (features read back, then uploaded) and the CPU's, for one and two LLaVA images (two
/// vision runs, in order) and the tiles of one Idefics3 image.
#[test]
fn replayed_vision_with_device_features_matches_the_host_path() {
    let cases = [
        ("tiny-llava", "reference.safetensors"),
        ("tiny-llava", "reference_2images.safetensors"),
        ("tiny-idefics3", "reference.safetensors"),
    ];
    for (name, file) in cases {
        let Some(be) = backend() else { return };
        let (ids, pixels) = reference(name, file);
        let model = Arc::new(MultimodalModel::load(fixture(name), None).unwrap());
        let mut cpu = MultimodalSession::new(model.clone(), CpuBackend::new(), 128).unwrap();
        let features = cpu.encode_images(&pixels).unwrap();
        let expected = cpu.prefill(&ids, Some(&features)).unwrap().to_vec();
        let mut gpu = MultimodalSession::new(model, be, 128).unwrap();
        let features = gpu.encode_images(&pixels).unwrap();
        let host = gpu.prefill(&ids, Some(&features)).unwrap().to_vec();
        let label = format!("{name}/{file}");
        assert_nmse(
            &format!("{label} host path vs cpu"),
            &host,
            &expected,
            NMSE_F32_REDUCTION,
        );
        for run in 0..3 {
            gpu.reset();
            let start = Instant::now();
            let device = gpu.prefill_images(&ids, Some(&pixels)).unwrap().to_vec();
            let ms = start.elapsed().as_secs_f64() * 1e3;
            println!(
                "{label} device path run {run}: {ms:.2} ms ({:?})",
                gpu.vision_replay_state()
            );
            assert_nmse(
                &format!("{label} run {run}"),
                &device,
                &host,
                NMSE_F32_ELEMENTWISE,
            );
        }
        assert_eq!(
            gpu.vision_replay_state(),
            Some(&expected_state()),
            "{label}"
        );
    }
}
