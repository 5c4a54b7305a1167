//! Fixture helpers of the greedy-decode tests: a committed fixture folder, its transformers
//! greedy tokens (`greedy.json`) and a greedy generation config.
//!
//! Included with `#[path = "common/greedy.rs"] mod greedy_common;` by the tests that use it.

use std::path::{Path, PathBuf};

use iris_models::generate::{GenerationConfig, SamplingParams};

/// `fixtures/NAME` in the repository: relative to the working directory first, because the
/// GPU machine runs these binaries from its own copy of the repository (built elsewhere, so
/// the compile-time manifest path does not exist there), then under the manifest directory.
pub fn fixture(name: &str) -> PathBuf {
    let here = Path::new("fixtures").join(name);
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// (input_ids, output_ids) of a fixture's greedy.json (transformers' greedy tokens).
pub fn greedy_json(dir: &Path) -> (Vec<u32>, Vec<u32>) {
    let text = std::fs::read_to_string(dir.join("greedy.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
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

/// Greedy decoding of `max_new_tokens`, no stop ids.
pub fn greedy(max_new_tokens: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens,
        sampling: SamplingParams::default(),
        eos_token_ids: Vec::new(),
    }
}
