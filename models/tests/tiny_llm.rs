//! Tiny random Llama (GQA), Llama 3 (rope scaling, explicit head_dim, tied) and Qwen2
//! (q/k/v bias) checkpoints made by transformers (scripts/make_llm_fixtures.py): logits and
//! 32 greedy tokens must match in f32 and with bf16 weights.

use std::path::{Path, PathBuf};

use iris_kernels::testing::nmse;
use iris_models::check::{check_text_model, reference_input_ids, CheckOptions};
use iris_models::generate::{GenerationConfig, SamplingParams, TextSession};
use iris_models::llm::KvCacheDtype;
use iris_models::text_model::TextModel;
use iris_runtime::backend::cpu::CpuBackend;
use iris_runtime::safetensors::WeightStore;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

fn greedy(dir: &Path) -> (Vec<u32>, Vec<u32>) {
    let path = dir.join("greedy.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    };
    (ids("input_ids"), ids("output_ids"))
}

fn check_logits(name: &str, threshold: f64) {
    let dir = fixture(name);
    let model = TextModel::load(&dir, None).unwrap();
    let report = check_text_model(
        &model,
        CpuBackend::new(),
        &dir.join("reference.safetensors"),
        CheckOptions::threshold(threshold),
    )
    .unwrap();
    for c in &report {
        println!(
            "{name}: {} nmse {:.3e} max abs {:.3e} cosine {:.9}",
            c.name, c.nmse, c.max_abs_error, c.cosine
        );
        assert!(
            c.passed,
            "{name}: {} nmse {:.3e} > {threshold:.0e}",
            c.name, c.nmse
        );
    }
}

/// The input ids and the expected tensor `name` of `dir`'s reference file.
fn reference_logits(dir: &Path, name: &str) -> (Vec<u32>, Vec<f32>) {
    let path = dir.join("reference.safetensors");
    let reference = WeightStore::open(&path).unwrap();
    let ids = reference_input_ids(&reference, &path).unwrap();
    (ids, reference.get(name).unwrap().to_vec_f32())
}

fn check_greedy(name: &str) {
    check_greedy_through(name, KvCacheDtype::F32);
}

fn check_greedy_through(name: &str, kv_cache: KvCacheDtype) {
    let dir = fixture(name);
    let model = TextModel::load(&dir, None).unwrap();
    let (prompt, expected) = greedy(&dir);
    let mut session =
        TextSession::with_kv_cache(model.model.clone(), CpuBackend::new(), 64, kv_cache).unwrap();
    let config = GenerationConfig {
        max_new_tokens: expected.len(),
        sampling: SamplingParams::default(),
        eos_token_ids: Vec::new(),
    };
    let mut streamed = Vec::new();
    let out = session
        .generate(&prompt, &config, |t| {
            streamed.push(t);
            true
        })
        .unwrap();
    assert_eq!(
        out.tokens, expected,
        "{name}: greedy tokens differ from transformers ({kv_cache:?} cache)"
    );
    assert_eq!(
        streamed, expected,
        "{name}: the callback saw every token in order"
    );
}

#[test]
fn tiny_llama_f32_logits() {
    check_logits("tiny-llama", 1e-6);
}
#[test]
fn tiny_llama_f32_greedy() {
    check_greedy("tiny-llama");
}
#[test]
fn tiny_llama3_f32_logits() {
    check_logits("tiny-llama3", 1e-6);
}
#[test]
fn tiny_llama3_f32_greedy() {
    check_greedy("tiny-llama3");
}
#[test]
fn tiny_qwen2_f32_logits() {
    check_logits("tiny-qwen2", 1e-6);
}
#[test]
fn tiny_qwen2_f32_greedy() {
    check_greedy("tiny-qwen2");
}
#[test]
fn tiny_llama_bf16_logits_against_bf16_compute() {
    check_logits("tiny-llama-bf16", 1e-3);
}
#[test]
fn tiny_llama_bf16_greedy() {
    check_greedy("tiny-llama-bf16");
}
#[test]
fn tiny_qwen2_bf16_logits_against_bf16_compute() {
    check_logits("tiny-qwen2-bf16", 1e-3);
}
#[test]
fn tiny_qwen2_bf16_greedy() {
    check_greedy("tiny-qwen2-bf16");
}

/// bf16 weights computed in f32 are exactly what transformers computes after upcasting the
/// same weights: the tight f32 bound applies.
#[test]
fn bf16_weights_match_transformers_f32_compute_tightly() {
    for name in ["tiny-llama-bf16", "tiny-qwen2-bf16"] {
        let dir = fixture(name);
        let model = TextModel::load(&dir, None).unwrap();
        let (ids, expected) = reference_logits(&dir, "logits_f32_compute");
        let mut session =
            TextSession::new(model.model.clone(), CpuBackend::new(), ids.len() + 1).unwrap();
        let got = session.forward_all(&ids).unwrap().to_vec_f32();
        let err = nmse(&got, &expected);
        println!("{name}: f32-compute nmse {err:.3e}");
        assert!(err <= 1e-6, "{name}: nmse {err:.3e}");
    }
}

/// Converting f32 weights to bf16 at load (`--dtype bf16`) stays within the half bound.
#[test]
fn f32_checkpoint_run_as_bf16() {
    let dir = fixture("tiny-llama");
    let model = TextModel::load(&dir, Some(iris_runtime::DType::BF16)).unwrap();
    let report = check_text_model(
        &model,
        CpuBackend::new(),
        &dir.join("reference.safetensors"),
        CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(report[0].threshold, 1e-3);
    assert!(report[0].passed, "nmse {:.3e}", report[0].nmse);
}

#[test]
fn a_prompt_longer_than_the_context_is_a_clear_error() {
    let model = TextModel::load(fixture("tiny-llama"), None).unwrap();
    let mut session = TextSession::new(model.model.clone(), CpuBackend::new(), 8).unwrap();
    let config = GenerationConfig {
        max_new_tokens: 4,
        sampling: SamplingParams::default(),
        eos_token_ids: vec![],
    };
    let err = session.generate(&[5; 8], &config, |_| true).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not fit the context of 8 tokens"),
        "{err}"
    );
    // A prompt that fits generates until the cache is full: 6 prompt tokens and 2 generated
    // ones fill the 8 rows; the 3rd new token comes from those and never needs a row.
    let out = session.generate(&[5; 6], &config, |_| true).unwrap();
    assert_eq!(out.tokens.len(), 3);
    assert_eq!(
        out.stop_reason,
        iris_models::generate::StopReason::ContextFull
    );
}

/// An f16 KV cache rounds keys and values once: the logits stay within the half-precision
/// bound of transformers' f32 ones (the prefill reads the rounded cache too), and greedy
/// decoding through it still gives transformers' tokens.
#[test]
fn f16_kv_cache_stays_close_to_transformers() {
    for name in ["tiny-llama", "tiny-qwen2"] {
        let dir = fixture(name);
        let model = TextModel::load(&dir, None).unwrap();
        let (ids, expected) = reference_logits(&dir, "logits");
        let logits = |kv_cache| {
            let mut session = TextSession::with_kv_cache(
                model.model.clone(),
                CpuBackend::new(),
                ids.len() + 1,
                kv_cache,
            )
            .unwrap();
            session.forward_all(&ids).unwrap().to_vec_f32()
        };
        let (exact, half) = (logits(KvCacheDtype::F32), logits(KvCacheDtype::F16));
        let (err_exact, err_half) = (nmse(&exact, &expected), nmse(&half, &expected));
        println!("{name}: nmse f32 cache {err_exact:.3e}, f16 cache {err_half:.3e}");
        assert!(err_half <= 1e-5, "{name}: f16 cache nmse {err_half:.3e}");
        assert!(half != exact, "{name}: the f16 cache must round something");

        check_greedy_through(name, KvCacheDtype::F16);
    }
}
