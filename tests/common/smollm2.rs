//! SmolLM2-135M-Instruct test helpers shared by the CPU test (tests/smollm2.rs) and the CUDA
//! one (tests/cuda_smollm2.rs): where the converted model is, transformers' references, and
//! the greedy check against them.

use std::path::{Path, PathBuf};

use iris_models::generate::{GenerationConfig, SamplingParams, StopReason, TextSession};
use iris_models::llm::KvCacheDtype;
use iris_models::text_model::TextModel;
use iris_models::tokenizer::{build_prompt_ids, ChatMessage, Prompt, TextTokenizer};
use iris_runtime::backend::Backend;
use serde_json::Value;

/// The repository: the working directory when it holds the references (the GPU machine runs
/// these binaries from its own copy, where the compile-time manifest path does not exist),
/// else the manifest directory.
pub fn root() -> PathBuf {
    if Path::new("fixtures/smollm2/greedy.json").is_file() {
        return PathBuf::from(".");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The converted model folder, or `None` (after saying why) when it is absent.
pub fn model_dir(suffix: &str) -> Option<PathBuf> {
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

pub fn references() -> Value {
    let path = root().join("fixtures/smollm2/greedy.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixtures/smollm2/greedy.json"))
        .unwrap()
}

pub fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("an id list")
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// Greedy generation of every reference chat prompt on `backend` gives exactly transformers'
/// token ids and text (the model folder `dir`, f32 weights).
pub fn greedy_matches_transformers<B: Backend>(dir: &Path, backend: B, kv_cache: KvCacheDtype) {
    let model = TextModel::load(dir, None).unwrap();
    let tokenizer = TextTokenizer::from_dir(dir).unwrap();
    let refs = references();
    let prompts = refs["prompts"].as_array().unwrap();
    assert!(prompts.len() >= 3);
    let mut session =
        TextSession::with_kv_cache(model.model.clone(), backend, 256, kv_cache).unwrap();
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
