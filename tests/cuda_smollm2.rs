//! The real-weights model on the GPU: SmolLM2-135M-Instruct with f32 weights (the exact f32
//! kernels) generates exactly transformers' greedy token ids and text for every reference chat
//! prompt of fixtures/smollm2/greedy.json, as tests/smollm2.rs checks on the CPU; also through
//! an f16 KV cache (`--kv-cache f16`), as the CPU test does.
//!
//! The model folder comes from `scripts/fetch_smollm2.sh` here; on the GPU machine, where
//! nothing can be downloaded, `scripts/gpu/smollm2.sh` rebuilds it from the GGUF sent in
//! parts and sets IRIS_MODELS_DIR. Without a device or without the model the test prints
//! why and passes (IRIS_REQUIRE_CUDA=1 / IRIS_REQUIRE_SMOLLM2=1 make either a failure).
#![cfg(feature = "cuda")]

#[path = "common/cuda.rs"]
#[allow(dead_code)] // only `backend` is used here
mod cuda_common;
#[path = "common/smollm2.rs"]
mod smollm2_common;

use iris_models::llm::KvCacheDtype;

#[test]
fn greedy_chat_generation_on_cuda_matches_transformers() {
    greedy_on_cuda(KvCacheDtype::F32);
}

#[test]
fn greedy_chat_generation_on_cuda_with_an_f16_cache_matches_transformers() {
    greedy_on_cuda(KvCacheDtype::F16);
}

fn greedy_on_cuda(kv_cache: KvCacheDtype) {
    let Some(dir) = smollm2_common::model_dir("") else {
        return;
    };
    let Some(backend) = cuda_common::backend() else {
        return;
    };
    smollm2_common::greedy_matches_transformers(&dir, backend, kv_cache);
}
