//! The CUDA attention kernels against the CPU reference (`reference::attention`, f64 math):
//! the tensor-core flash prefill kernels (`flash_attention_d*`), the split-KV decode pair
//! (`attention_decode_d*_r*` + `attention_decode_combine_f32`) and the `attention_f32`
//! fallback, picked by the CUDA backend from the op's shapes.
//!
//! q, k and v are rounded to bf16 before both the device and the reference see them, so the
//! only differences left are the kernels' own: the flash path rounds P to bf16 (bound
//! `NMSE_HALF`, 1e-4), the decode and fallback paths are f32 (`NMSE_F32_REDUCTION`, 1e-7).
//! Every output is poisoned with NaN first; KV cache rows past the valid length hold large
//! garbage, so a kernel that reads past kv_len fails.
//!
//! Without a CUDA device each test prints `skipping: <reason>` and passes; with
//! `IRIS_REQUIRE_CUDA=1` (scripts/gpu/run_cuda_tests.sh sets it) no device is a failure.
#![cfg(feature = "cuda")]

#[allow(dead_code)] // not every helper is used here
#[path = "common/cuda.rs"]
mod cuda_common;

use cuda_common::{backend, f32_tensor as tensor, operand, run};
use half::{bf16, f16};
use iris_kernels::cpu::reference::{self, AttentionParams, KvStrides};
use iris_kernels::testing::{assert_nmse, Rng, NMSE_F32_REDUCTION, NMSE_HALF};
use iris_runtime::backend::cuda::{CudaBackend, CudaSlot};
use iris_runtime::backend::{Backend, Operand};
use iris_runtime::graph::Op;
use iris_runtime::{DType, Shape, Tensor};

/// Random values in [-2, 2] rounded to bf16 (kept as f32).
fn bf16_vec(rng: &mut Rng, n: usize) -> Vec<f32> {
    rng.vec(n, -2.0, 2.0)
        .into_iter()
        .map(|x| bf16::from_f32(x).to_f32())
        .collect()
}

/// f32 operands in one arena, uploaded, each starting `skew` bytes past a 256-byte boundary
/// (0: aligned as the graph planner places them; 4: misaligned for the float4 loads of the
/// fast kernels, which forces the fallback).
fn place_f32(
    be: &mut CudaBackend,
    data: &[(&[f32], &[usize])],
    skew: usize,
) -> Vec<Operand<CudaSlot>> {
    let mut offsets = Vec::with_capacity(data.len());
    let mut cursor = 0;
    for (values, _) in data {
        offsets.push(cursor + skew);
        cursor += (values.len() * 4 + skew).div_ceil(256) * 256;
    }
    let arena = be.alloc(cursor.max(256)).expect("alloc arena");
    data.iter()
        .zip(offsets)
        .map(|((values, dims), offset)| {
            let slot = be.sub_slot(&arena, offset, values.len() * 4);
            be.write(&slot, &tensor(values, dims)).expect("upload");
            operand(&slot, DType::F32, dims)
        })
        .collect()
}

/// Prints the shared timer's median with rates.
fn report_time(
    be: &mut CudaBackend,
    what: &str,
    flops: f64,
    bytes: f64,
    op: &Op,
    inputs: &[Operand<CudaSlot>],
    output: &Operand<CudaSlot>,
) {
    let t = cuda_common::time_op(be, op, inputs, output);
    println!(
        "timing {what}: {:.1} us, {:.2} TFLOP/s, {:.1} GB/s (median of 20, host clock)",
        t * 1e6,
        flops / t / 1e12,
        bytes / t / 1e9
    );
}

/// Sizes of one plain attention case: q [b, tq, hq, d], k/v [b, tk, hkv, d].
#[derive(Clone, Copy, Debug)]
struct Case {
    b: usize,
    tq: usize,
    tk: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    causal: bool,
}

impl Case {
    fn params(&self) -> AttentionParams {
        AttentionParams {
            batch: self.b,
            q_len: self.tq,
            kv_len: self.tk,
            n_heads: self.hq,
            n_kv_heads: self.hkv,
            head_dim: self.d,
            scale: 1.0 / (self.d as f32).sqrt(),
            causal: self.causal,
        }
    }
}

/// Runs `Op::Attention` for `case` (operands `skew` bytes off alignment, optional mask) and
/// returns (device, reference) outputs.
fn plain_attention(
    be: &mut CudaBackend,
    rng: &mut Rng,
    case: Case,
    skew: usize,
    with_mask: bool,
) -> (Vec<f32>, Vec<f32>, Op) {
    let Case {
        b,
        tq,
        tk,
        hq,
        hkv,
        d,
        ..
    } = case;
    let p = case.params();
    let q = bf16_vec(rng, b * tq * hq * d);
    let k = bf16_vec(rng, b * tk * hkv * d);
    let v = bf16_vec(rng, b * tk * hkv * d);
    let mask = rng.vec(b * tq * tk, -3.0, 0.5);
    let mut want = vec![0.0; q.len()];
    reference::attention(
        &q,
        &k,
        &v,
        KvStrides::bthd(tk, hkv, d),
        with_mask.then_some(&mask[..]),
        &p,
        &mut want,
    );
    let poison = vec![0.0f32; q.len()];
    let (q_dims, kv_dims, mask_dims) = ([b, tq, hq, d], [b, tk, hkv, d], [b, tq, tk]);
    let mut data: Vec<(&[f32], &[usize])> = vec![
        (&q, &q_dims),
        (&k, &kv_dims),
        (&v, &kv_dims),
        (&poison, &q_dims),
    ];
    if with_mask {
        data.push((&mask, &mask_dims));
    }
    let mut ops = place_f32(be, &data, skew);
    let out = ops.remove(3);
    let op = Op::Attention {
        causal: case.causal,
        scale: p.scale,
        has_mask: with_mask,
    };
    let got = run(be, &op, &ops, &out);
    (got, want, op)
}

/// The flash kernels (rows >= 16) and `attention_f32` (seq 1) on odd sizes: every head dim,
/// GQA 9/3 and MHA 4/4, causal and not, square and ragged (q shorter / longer than k).
#[test]
fn prefill_attention_matches_reference_on_odd_sizes() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(0xf1a5);
    for d in [64, 72, 80, 128] {
        for (hq, hkv) in [(9, 3), (4, 4)] {
            for seq in [1, 17, 77, 200] {
                for causal in [false, true] {
                    let b = if seq == 77 { 2 } else { 1 };
                    let mut cases = vec![(seq, seq)];
                    if seq > 1 {
                        // Queries as the last rows of a longer key range, and more queries
                        // than keys (causal rows that see nothing give zeros).
                        cases.push((seq, seq + 45));
                        cases.push((seq, seq / 2 + 1));
                    }
                    for (tq, tk) in cases {
                        let case = Case {
                            b,
                            tq,
                            tk,
                            hq,
                            hkv,
                            d,
                            causal,
                        };
                        let (got, want, _) = plain_attention(&mut be, &mut rng, case, 0, false);
                        assert_nmse(&format!("attention {case:?}"), &got, &want, NMSE_HALF);
                    }
                }
            }
        }
    }
}

/// Operands off 16-byte alignment, an additive mask, or an unsupported head dim take the
/// exact `attention_f32` path: f32 accuracy.
#[test]
fn fallback_paths_stay_exact() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(0xfa11);
    let case = Case {
        b: 1,
        tq: 33,
        tk: 41,
        hq: 4,
        hkv: 2,
        d: 64,
        causal: true,
    };
    let (got, want, _) = plain_attention(&mut be, &mut rng, case, 4, false);
    assert_nmse("misaligned operands", &got, &want, NMSE_F32_REDUCTION);
    let case = Case {
        causal: false,
        ..case
    };
    let (got, want, _) = plain_attention(&mut be, &mut rng, case, 0, true);
    assert_nmse("additive mask", &got, &want, NMSE_F32_REDUCTION);
    let case = Case { d: 96, ..case };
    let (got, want, _) = plain_attention(&mut be, &mut rng, case, 0, false);
    assert_nmse("head_dim 96", &got, &want, NMSE_F32_REDUCTION);
}

/// A KV cache [1, hkv, cap, d] on the device, filled with garbage (50..60) past the rows the
/// steps write, and the whole sequence's q, k, v (bf16-rounded) for the reference.
struct CachedSequence {
    hq: usize,
    hkv: usize,
    d: usize,
    cap: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    k_cache: CudaSlot,
    v_cache: CudaSlot,
    past_slot: CudaSlot,
    /// The caches' dtype: f32, or f16 (`--kv-cache f16`).
    cache: DType,
}

impl CachedSequence {
    fn new(
        be: &mut CudaBackend,
        rng: &mut Rng,
        name: &str,
        heads: (usize, usize),
        (d, cap): (usize, usize),
        cache: DType,
    ) -> Self {
        let (hq, hkv) = heads;
        let shape = Shape::new([1, hkv, cap, d]);
        let k_cache = be.state(&format!("{name}.k"), cache, &shape).unwrap();
        let v_cache = be.state(&format!("{name}.v"), cache, &shape).unwrap();
        for slot in [&k_cache, &v_cache] {
            let garbage = rng.vec(hkv * cap * d, 50.0, 60.0);
            let dims = [1, hkv, cap, d];
            let garbage = match cache {
                DType::F16 => {
                    let halves: Vec<f16> = garbage.iter().map(|&x| f16::from_f32(x)).collect();
                    Tensor::from_slice(&halves, dims).unwrap()
                }
                _ => tensor(&garbage, &dims),
            };
            be.write(slot, &garbage).unwrap();
        }
        CachedSequence {
            cache,
            hq,
            hkv,
            d,
            cap,
            q: bf16_vec(rng, cap * hq * d),
            k: bf16_vec(rng, cap * hkv * d),
            v: bf16_vec(rng, cap * hkv * d),
            k_cache,
            v_cache,
            past_slot: be.alloc(8).unwrap(),
        }
    }

    /// Rows `past..past + t` of the whole-sequence causal reference.
    fn expected(&self, past: usize, t: usize) -> Vec<f32> {
        let (hq, hkv, d) = (self.hq, self.hkv, self.d);
        let total = past + t;
        let p = AttentionParams {
            batch: 1,
            q_len: t,
            kv_len: total,
            n_heads: hq,
            n_kv_heads: hkv,
            head_dim: d,
            scale: 1.0 / (d as f32).sqrt(),
            causal: true,
        };
        // An f16 cache holds the keys and values rounded to f16.
        let stored = |x: &[f32]| -> Vec<f32> {
            match self.cache {
                DType::F16 => x.iter().map(|&v| f16::from_f32(v).to_f32()).collect(),
                _ => x.to_vec(),
            }
        };
        let mut out = vec![0.0; t * hq * d];
        reference::attention(
            &self.q[past * hq * d..total * hq * d],
            &stored(&self.k[..total * hkv * d]),
            &stored(&self.v[..total * hkv * d]),
            KvStrides::bthd(total, hkv, d),
            None,
            &p,
            &mut out,
        );
        out
    }

    /// One CachedAttention step of `t` tokens at `past`: (device output, op, inputs, output).
    fn step(
        &self,
        be: &mut CudaBackend,
        past: usize,
        t: usize,
    ) -> (Vec<f32>, Op, Vec<Operand<CudaSlot>>, Operand<CudaSlot>) {
        let (op, ops, out) = self.operands(be, past, t);
        let got = run(be, &op, &ops, &out);
        (got, op, ops, out)
    }

    /// The op and operands of that step, placed on the device with `past` written.
    fn operands(
        &self,
        be: &mut CudaBackend,
        past: usize,
        t: usize,
    ) -> (Op, Vec<Operand<CudaSlot>>, Operand<CudaSlot>) {
        let (hq, hkv, d) = (self.hq, self.hkv, self.d);
        let rows = past..past + t;
        let q = &self.q[rows.start * hq * d..rows.end * hq * d];
        let k = &self.k[rows.start * hkv * d..rows.end * hkv * d];
        let v = &self.v[rows.start * hkv * d..rows.end * hkv * d];
        let out_init = vec![0.0f32; q.len()];
        let mut ops = place_f32(
            be,
            &[
                (q, &[1, t, hq, d]),
                (k, &[1, t, hkv, d]),
                (v, &[1, t, hkv, d]),
                (&out_init, &[1, t, hq, d]),
            ],
            0,
        );
        let out = ops.remove(3);
        be.write(
            &self.past_slot,
            &Tensor::from_slice(&[past as i64], [1]).unwrap(),
        )
        .unwrap();
        let cache_dims = [1, hkv, self.cap, d];
        ops.push(operand(&self.k_cache, self.cache, &cache_dims));
        ops.push(operand(&self.v_cache, self.cache, &cache_dims));
        ops.push(operand(&self.past_slot, DType::I64, &[1]));
        let op = Op::CachedAttention {
            scale: 1.0 / (d as f32).sqrt(),
        };
        (op, ops, out)
    }
}

/// Prefill (flash over the cache), a second prompt after it (flash with past_len > 0), then
/// decode steps of 1 and 3 tokens (split-KV for head dims 64/128, attention_f32 for 72/80):
/// each step equals the rows of causal attention over the whole sequence.
#[test]
fn cached_prefill_then_decode_matches_reference() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(0xdec0de);
    for d in [64, 72, 80, 128] {
        prefill_then_decode(&mut be, &mut rng, d, DType::F32);
    }
}

/// For both GQA and plain heads over a 300-row cache of `cache` dtype: prompts of 77 and 17
/// tokens, then decode steps of 1, 3 and 1, each against the whole-sequence reference.
fn prefill_then_decode(be: &mut CudaBackend, rng: &mut Rng, d: usize, cache: DType) {
    for heads in [(9, 3), (4, 4)] {
        let name = format!("test.cached.{cache}.d{d}.h{}_{}", heads.0, heads.1);
        let seq = CachedSequence::new(be, rng, &name, heads, (d, 300), cache);
        let mut past = 0;
        for (t, bound) in [
            (77, NMSE_HALF),
            (17, NMSE_HALF),
            (1, NMSE_F32_REDUCTION),
            (3, NMSE_F32_REDUCTION),
            (1, NMSE_F32_REDUCTION),
        ] {
            let (got, _, _, _) = seq.step(be, past, t);
            let what = format!("{cache} cache d{d} heads {heads:?}: {t} tokens at past {past}");
            assert_nmse(&what, &got, &seq.expected(past, t), bound);
            past += t;
        }
    }
}

/// The same over f16 caches (`--kv-cache f16`): `kv_write_f16` rounds each new key and value
/// to f16, and the `_kvf16` flash and split-KV entries widen them as they load, so the
/// reference attends over the f16-rounded keys and values with the f32 path's bounds. A head
/// dim without f16 kernels (80, decode) is refused before the cache is written.
#[test]
fn cached_attention_over_an_f16_cache_matches_reference() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(0xf16c);
    for d in [64, 128] {
        prefill_then_decode(&mut be, &mut rng, d, DType::F16);
    }
    let seq = CachedSequence::new(
        &mut be,
        &mut rng,
        "test.cached_f16.d80",
        (4, 4),
        (80, 40),
        DType::F16,
    );
    seq.step(&mut be, 0, 20);
    let before = be
        .read(&seq.k_cache, DType::F16, &Shape::new([1, 4, 40, 80]))
        .unwrap();
    let (op, ops, out) = seq.operands(&mut be, 20, 1);
    let err = be.execute(&op, &ops, &out).unwrap_err().to_string();
    assert!(
        err.contains("f16 KV cache") && err.contains("head_dim 80"),
        "{err}"
    );
    let after = be
        .read(&seq.k_cache, DType::F16, &Shape::new([1, 4, 40, 80]))
        .unwrap();
    assert_eq!(
        before.to_vec_f32(),
        after.to_vec_f32(),
        "the refused call wrote the cache"
    );
}

/// Model shapes, with rough timings: ViT-L/14-336 self-attention, SmolLM2-135M prefill
/// (9/3 heads, 512 tokens, causal, over a 2048-row cache) and Llama-2-7B decode (32 heads,
/// 4096 cached rows, d128).
#[test]
fn model_shapes_match_reference() {
    let Some(mut be) = backend() else { return };
    let mut rng = Rng::new(0x5ba9e);
    let vit = Case {
        b: 1,
        tq: 577,
        tk: 577,
        hq: 16,
        hkv: 16,
        d: 64,
        causal: false,
    };
    let (got, want, op) = plain_attention(&mut be, &mut rng, vit, 0, false);
    assert_nmse("ViT-L 577 x 16 heads d64", &got, &want, NMSE_HALF);
    // Time the same shape again (operands re-placed: `plain_attention` keeps none).
    let q = bf16_vec(&mut rng, 577 * 16 * 64);
    let mut ops = place_f32(
        &mut be,
        &[
            (&q, &[1, 577, 16, 64]),
            (&q, &[1, 577, 16, 64]),
            (&q, &[1, 577, 16, 64]),
            (&q, &[1, 577, 16, 64]),
        ],
        0,
    );
    let out = ops.remove(3);
    let flops = 4.0 * 577.0 * 577.0 * 16.0 * 64.0;
    report_time(
        &mut be,
        "ViT-L attention 577 x 16 x d64",
        flops,
        4.0 * 4.0 * q.len() as f64,
        &op,
        &ops,
        &out,
    );

    // A 7B prompt of 600 tokens, 32 heads: enough query tiles for the 8-warp flash kernels
    // (128 query rows per CTA), causal over a plain K/V.
    let prefill_7b = Case {
        b: 1,
        tq: 600,
        tk: 600,
        hq: 32,
        hkv: 32,
        d: 128,
        causal: true,
    };
    assert_eq!(
        iris_kernels::cuda::flash_attention::flash_attention_warps(128, 600, 32, 1),
        8
    );
    let (got, want, _) = plain_attention(&mut be, &mut rng, prefill_7b, 0, false);
    assert_nmse(
        "7B prefill 600 x 32 heads d128 causal",
        &got,
        &want,
        NMSE_HALF,
    );

    let smol = CachedSequence::new(
        &mut be,
        &mut rng,
        "test.model.smollm2",
        (9, 3),
        (64, 2048),
        DType::F32,
    );
    let (got, op, ops, out) = smol.step(&mut be, 0, 512);
    assert_nmse(
        "SmolLM2 prefill 512 x 9/3 d64",
        &got,
        &smol.expected(0, 512),
        NMSE_HALF,
    );
    let flops = 2.0 * 512.0 * 512.0 * 9.0 * 64.0; // causal: half of 4 T^2 H D
    report_time(
        &mut be,
        "SmolLM2 prefill 512 (incl. kv_write)",
        flops,
        0.0,
        &op,
        &ops,
        &out,
    );

    // Llama-2-7B decode: the cache holds 4095 rows, the step writes the 4096th.
    let llama = CachedSequence::new(
        &mut be,
        &mut rng,
        "test.model.llama2",
        (32, 32),
        (128, 4096),
        DType::F32,
    );
    let fill = |src: &[f32]| -> Vec<f32> {
        let mut cache = vec![0.0f32; 32 * 4096 * 128];
        for j in 0..4095 {
            for h in 0..32 {
                let dst = (h * 4096 + j) * 128;
                cache[dst..dst + 128].copy_from_slice(&src[(j * 32 + h) * 128..][..128]);
            }
        }
        cache
    };
    be.write(
        &llama.k_cache,
        &tensor(&fill(&llama.k), &[1, 32, 4096, 128]),
    )
    .unwrap();
    be.write(
        &llama.v_cache,
        &tensor(&fill(&llama.v), &[1, 32, 4096, 128]),
    )
    .unwrap();
    let (got, op, ops, out) = llama.step(&mut be, 4095, 1);
    assert_nmse(
        "Llama-2 decode 32 heads x 4096 d128",
        &got,
        &llama.expected(4095, 1),
        NMSE_F32_REDUCTION,
    );
    let bytes = 2.0 * 4096.0 * 32.0 * 128.0 * 4.0;
    report_time(
        &mut be,
        "Llama-2 decode 4096 KV (incl. kv_write)",
        4.0 * 4096.0 * 32.0 * 128.0,
        bytes,
        &op,
        &ops,
        &out,
    );
}
