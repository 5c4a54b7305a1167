//! The CUDA backend under the graph executor: the whole op-level harness against the CPU
//! reference, cached attention over prefill then decode against full causal attention, and
//! the tiny fixture models (`iris check`, greedy tokens) against transformers. Single ops
//! called on the backend directly are in `cuda_ops.rs`.
//!
//! Without a CUDA device (no driver, no GPU) each test prints `skipping: <reason>` and
//! passes; `IRIS_REQUIRE_CUDA=1` makes that a failure.
//! On a GPU machine: `bash scripts/gpu/run_cuda_tests.sh` (binaries from scripts/gpu/build.sh).
#![cfg(feature = "cuda")]

#[allow(dead_code)] // only `backend` and `f32_tensor` are used here
#[path = "common/cuda.rs"]
mod cuda_common;
#[path = "common/greedy.rs"]
mod greedy_common;

use cuda_common::{backend, f32_tensor};
use greedy_common::{fixture, greedy, greedy_json};
use iris_kernels::cpu::reference;
use iris_kernels::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION};
use iris_models::check::CheckOptions;
use iris_models::check_multimodal::check_model;
use iris_models::generate::TextSession;
use iris_models::text_model::TextModel;
use iris_runtime::backend::cuda::CudaBackend;
use iris_runtime::graph::{Executor, ExecutorOptions, GraphBuilder, ValueId};
use iris_runtime::{DType, Tensor};

/// The whole op-level harness through the graph executor: every case the CUDA backend
/// implements must match the CPU reference; the rest are listed as skipped.
#[test]
fn op_harness_through_the_executor_matches_cpu_reference() {
    use iris_runtime::op_cases::{compare_backend, CaseOutcome};
    let Some(mut be) = backend() else { return };
    let reports = compare_backend(&mut be, 2026).expect("harness ran");
    let (mut passed, mut skipped, mut failed) = (0, 0, Vec::new());
    for report in &reports {
        match &report.outcome {
            CaseOutcome::Passed { nmse } => {
                passed += 1;
                println!(
                    "pass  {:<60} nmse {nmse:.2e} (<= {:.0e})",
                    report.name, report.threshold
                );
            }
            CaseOutcome::Skipped(what) => {
                skipped += 1;
                println!("skip  {:<60} unsupported: {what}", report.name);
            }
            CaseOutcome::Failed { nmse, max_abs } => {
                println!(
                    "FAIL  {:<60} nmse {nmse:.2e} max abs {max_abs:.2e}",
                    report.name
                );
                failed.push(report.name.clone());
            }
        }
    }
    println!(
        "op harness on cuda: {passed} passed, {skipped} skipped, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "cases failed: {failed:?}");
    // Only matmul with f16 weights is left without a kernel.
    let unexpected: Vec<&str> = reports
        .iter()
        .filter(|r| matches!(r.outcome, CaseOutcome::Skipped(_)))
        .map(|r| r.name.as_str())
        .filter(|name| !(name.starts_with("matmul") && name.contains("w=f16")))
        .collect();
    assert!(unexpected.is_empty(), "skipped: {unexpected:?}");
    assert!(passed >= 70, "only {passed} cases passed");
}

fn graph_input(g: &mut GraphBuilder, name: &str, dtype: DType, dims: &[usize]) -> ValueId {
    g.input(name, dtype, dims.to_vec()).unwrap()
}

/// Prefill then one-token decode steps through CachedAttention on the device equal full
/// causal attention over the whole sequence (CPU reference), including GQA.
#[test]
fn cached_attention_prefill_then_decode_equals_full_causal_attention() {
    let Some(mut be) = backend() else { return };
    let (hq, hkv, d, max_seq, prompt, total) = (6usize, 2usize, 24usize, 16usize, 5usize, 9usize);
    let scale = 1.0 / (d as f32).sqrt();
    let mut rng = Rng::new(0xca7);
    let q = rng.vec(total * hq * d, -1.5, 1.5);
    let k = rng.vec(total * hkv * d, -1.5, 1.5);
    let v = rng.vec(total * hkv * d, -1.5, 1.5);
    let mut expected = vec![0.0; q.len()];
    let params = reference::AttentionParams {
        batch: 1,
        q_len: total,
        kv_len: total,
        n_heads: hq,
        n_kv_heads: hkv,
        head_dim: d,
        scale,
        causal: true,
    };
    reference::attention(
        &q,
        &k,
        &v,
        reference::KvStrides::bthd(total, hkv, d),
        None,
        &params,
        &mut expected,
    );

    let mut got = Vec::new();
    let run_chunk = |be: &mut CudaBackend, start: usize, t: usize| {
        let mut g = GraphBuilder::new();
        let qv = graph_input(&mut g, "q", DType::F32, &[1, t, hq, d]);
        let kv = graph_input(&mut g, "k", DType::F32, &[1, t, hkv, d]);
        let vv = graph_input(&mut g, "v", DType::F32, &[1, t, hkv, d]);
        let past = graph_input(&mut g, "past_len", DType::I64, &[1]);
        let kc = g.state("test.k", DType::F32, [1, hkv, max_seq, d]).unwrap();
        let vc = g.state("test.v", DType::F32, [1, hkv, max_seq, d]).unwrap();
        let out = g.cached_attention(qv, kv, vv, kc, vc, past, scale).unwrap();
        g.output("out", out).unwrap();
        let mut exec = Executor::new(be, g.build(), ExecutorOptions::default()).unwrap();
        let qs = f32_tensor(&q[start * hq * d..(start + t) * hq * d], &[1, t, hq, d]);
        let ks = f32_tensor(&k[start * hkv * d..(start + t) * hkv * d], &[1, t, hkv, d]);
        let vs = f32_tensor(&v[start * hkv * d..(start + t) * hkv * d], &[1, t, hkv, d]);
        let p = Tensor::from_slice(&[start as i64], [1]).unwrap();
        exec.run(be, &[("q", &qs), ("k", &ks), ("v", &vs), ("past_len", &p)])
            .unwrap();
        exec.read(be, "out").unwrap().to_vec_f32()
    };
    got.extend(run_chunk(&mut be, 0, prompt));
    for step in prompt..total {
        got.extend(run_chunk(&mut be, step, 1));
    }
    assert_nmse(
        "cached attention prefill + decode",
        &got,
        &expected,
        NMSE_F32_REDUCTION,
    );
}

/// `iris check` of a fixture on the GPU: a text model, or a LLaVA / Idefics3 pipeline (then
/// image_features too). Bounds: 1e-6 for f32 weights, 1e-3 for bf16.
fn check_tiny_model_reference(name: &str, reference: &str) {
    let Some(be) = backend() else { return };
    let dir = fixture(name);
    let report = check_model(
        &dir,
        be,
        &dir.join(reference),
        None,
        CheckOptions::default(),
    )
    .unwrap();
    for c in &report {
        println!(
            "{name}/{reference} on cuda: {} nmse {:.3e} max abs {:.3e} cosine {:.9} (<= {:.0e})",
            c.name, c.nmse, c.max_abs_error, c.cosine, c.threshold
        );
        assert!(
            c.passed,
            "{name}: {} nmse {:.3e} > {:.0e}",
            c.name, c.nmse, c.threshold
        );
    }
}

fn check_tiny_model(name: &str) {
    check_tiny_model_reference(name, "reference.safetensors");
}

#[test]
fn tiny_llava_matches_transformers() {
    check_tiny_model("tiny-llava");
    check_tiny_model_reference("tiny-llava", "reference_2images.safetensors");
    check_tiny_model("tiny-llava-bf16");
}

#[test]
fn tiny_idefics3_matches_transformers() {
    check_tiny_model("tiny-idefics3");
    check_tiny_model("tiny-idefics3-bf16");
}

#[test]
fn tiny_bf16_text_models_match_transformers() {
    check_tiny_model("tiny-llama-bf16");
    check_tiny_model("tiny-qwen2-bf16");
}

#[test]
fn tiny_llama_logits_match_transformers() {
    check_tiny_model("tiny-llama");
}

#[test]
fn tiny_qwen2_logits_match_transformers() {
    check_tiny_model("tiny-qwen2");
}

#[test]
fn tiny_llama3_logits_match_transformers() {
    check_tiny_model("tiny-llama3");
}

#[test]
fn tiny_llama_greedy_matches_transformers() {
    let Some(be) = backend() else { return };
    let dir = fixture("tiny-llama");
    let (prompt, expected) = greedy_json(&dir);
    let model = TextModel::load(&dir, None).unwrap();
    let mut session = TextSession::new(model.model.clone(), be, 64).unwrap();
    let config = greedy(expected.len());
    let out = session.generate(&prompt, &config, |_| true).unwrap();
    println!("tiny-llama greedy on cuda: {:?}", out.tokens);
    assert_eq!(
        out.tokens, expected,
        "greedy tokens differ from transformers"
    );
}
