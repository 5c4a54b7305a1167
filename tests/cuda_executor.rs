//! The CUDA backend under the graph executor: the whole op-level harness against the CPU
//! reference, cached attention over prefill then decode against full causal attention, and
//! the tiny fixture models (`iris check`, greedy tokens) against transformers, and one
//! executor's output copied into another's input on the device. Single ops called on the
//! backend directly are in `cuda_ops.rs`.
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
use iris_runtime::backend::{Backend, Operand};
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
    // Every op has a kernel for every weight type (f32, bf16, f16).
    let unexpected: Vec<&str> = reports
        .iter()
        .filter(|r| matches!(r.outcome, CaseOutcome::Skipped(_)))
        .map(|r| r.name.as_str())
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
    check_tiny_model_as(name, reference, None);
}

/// `check_model` on CUDA, the weights converted to `dtype` at load when it is given.
fn check_tiny_model_as(name: &str, reference: &str, dtype: Option<DType>) {
    let Some(be) = backend() else { return };
    let dir = fixture(name);
    let report = check_model(
        &dir,
        be,
        &dir.join(reference),
        dtype,
        CheckOptions::default(),
    )
    .unwrap();
    for c in &report {
        println!(
            "{name}/{reference} ({dtype:?}) on cuda: {} nmse {:.3e} max abs {:.3e} cosine {:.9} \
             (<= {:.0e})",
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

/// f16 weights (the f32 fixtures converted at load, as `--dtype f16` does): every op's f16
/// kernel, the f16 GEMM and GEMV among them, within the half-precision bound of the f32
/// references (on the CPU these conversions give NMSE 3e-7 to 3e-6).
#[test]
fn tiny_models_with_f16_weights_match_transformers() {
    for name in ["tiny-llama", "tiny-qwen2", "tiny-llava", "tiny-idefics3"] {
        check_tiny_model_as(name, "reference.safetensors", Some(DType::F16));
    }
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

/// An output copied into another executor's input on the device (in two parts, from two
/// runs) equals the host round trip; a wrong size, dtype or overlapping copy is an error.
#[test]
fn outputs_copied_into_inputs_on_the_device_match_the_host() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(31);
    let w = f32_tensor(&rng.vec(20, -1.0, 1.0), &[5, 4]);
    let mut g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [2, 3, 4]).unwrap();
    let wv = g.weight("w", w).unwrap();
    let y = g.matmul(x, wv, None).unwrap();
    g.output("y", y).unwrap();
    let mut producer = Executor::new(&mut be, g.build(), ExecutorOptions::default()).unwrap();
    let mut g = GraphBuilder::new();
    let feats = g.input("feats", DType::F32, [1, 12, 5]).unwrap();
    let z = g.scale(feats, 2.0).unwrap();
    g.output("z", z).unwrap();
    let mut consumer = Executor::new(&mut be, g.build(), ExecutorOptions::default()).unwrap();

    let mut expected = Vec::new();
    for part in 0..2 {
        let x = f32_tensor(&rng.vec(24, -1.0, 1.0), &[2, 3, 4]);
        producer.run(&mut be, &[("x", &x)]).unwrap();
        expected.extend(producer.read(&mut be, "y").unwrap().to_vec_f32());
        let src = producer.operand("y").unwrap();
        consumer
            .write_input_part_from(&mut be, "feats", part * 30, &src)
            .unwrap();
    }
    consumer.execute(&mut be).unwrap();
    let z = consumer.read(&mut be, "z").unwrap().to_vec_f32();
    let doubled: Vec<f32> = expected.iter().map(|v| 2.0 * v).collect();
    assert_eq!(z, doubled);

    let src = producer.operand("y").unwrap();
    let err = consumer
        .write_input_from(&mut be, "feats", &src)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`feats`") && err.contains("240 bytes"),
        "{err}"
    );
    let as_i32 = Operand {
        dtype: DType::I32,
        ..src.clone()
    };
    let err = consumer
        .write_input_part_from(&mut be, "feats", 0, &as_i32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`feats`") && err.contains("i32"), "{err}");
    let arena = be.alloc(64).unwrap();
    let (a, b) = (be.sub_slot(&arena, 4, 16), be.sub_slot(&arena, 12, 16));
    let err = be.copy_slot(&a, &b, 16).unwrap_err().to_string();
    assert!(err.contains("overlap"), "{err}");
    let err = be.copy_slot(&a, &b, 17).unwrap_err().to_string();
    assert!(err.contains("17 bytes from a slot of 16"), "{err}");
    be.copy_slot(&a, &b, 8).unwrap(); // 4..12 onto 12..20: adjacent
    be.synchronize().unwrap();
}
