//! The CPU decode loop allocates nothing. A counting global allocator (this test binary's
//! own) counts heap allocations, and reallocations, made on the threads that decode:
//!
//! - `decode_loop_allocates_nothing`: the tiny Llama fixture, at every ISA level, greedy and
//!   sampled: after the prefill and `WARM_UP` tokens of `TextSession::generate`, the next
//!   `MEASURED` tokens (decode graph runs, sampling, the loop's own bookkeeping) must make
//!   no allocation.
//! - `decode_kernels_at_model_sizes_allocate_nothing`: the kernels of a decode step at
//!   SmolLM2-135M sizes, where GEMV and attention do split over rayon (the tiny model's
//!   mostly stay on one thread).
//!
//! Rayon: parallel work entered from a thread outside the pool goes through rayon's global
//! injector, a queue of 63-slot blocks allocated as it fills (one allocation per 63
//! parallel regions, rayon's own cost). So each test's thread joins the pool it decodes
//! with (`ThreadPoolBuilder::use_current_thread`), as an embedder's decode thread can; its
//! parallel regions then go to its own work-stealing deque and allocate nothing.
//!
//! A failure names the count; `IRIS_ALLOC_TRACE=1` prints a backtrace per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use half::{bf16, f16};
use iris_kernels::cpu::reference::{rope_inv_freq, AttentionParams, KvStrides};
use iris_kernels::cpu::{attention, gemm, rowops};
use iris_kernels::testing::Rng;
use iris_kernels::WeightSlice;
use iris_models::generate::{GenerationConfig, SamplingParams, TextSession};
use iris_models::llm::KvCacheDtype;
use iris_models::text_model::TextModel;
use iris_runtime::backend::cpu::{CpuBackend, Isa};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static TRACE: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread decodes (a test thread or a worker of its pool).
    static DECODER: Cell<bool> = const { Cell::new(false) };
    /// This thread is printing a trace (its own allocations are not traced).
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

fn note(size: usize) {
    if !COUNTING.load(Ordering::Relaxed) || !DECODER.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size, Ordering::Relaxed);
    if TRACE.load(Ordering::Relaxed) && !TRACING.try_with(Cell::get).unwrap_or(true) {
        TRACING.with(|t| t.set(true));
        eprintln!(
            "allocation of {size} bytes:\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        TRACING.with(|t| t.set(false));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; `note` only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One counting test at a time: the counters are global.
static SERIAL: Mutex<()> = Mutex::new(());

/// Until dropped: this thread is a counted decoder (its exit, after the test, runs thread-
/// local destructors that may allocate while the next test counts).
struct Decoder;

impl Drop for Decoder {
    fn drop(&mut self) {
        DECODER.with(|d| d.set(false));
    }
}

/// Makes the calling thread worker 0 of a new rayon pool (the rest of the machine's cores
/// as the other workers), every worker counted as a decoder. The pool is leaked: it must
/// outlive this thread's use of it. A broadcast makes every worker, this thread included,
/// take a job from its queue, which registers it with crossbeam's epoch collector (a
/// one-time allocation per thread) before anything is counted.
fn join_a_pool() -> Decoder {
    TRACE.store(
        std::env::var_os("IRIS_ALLOC_TRACE").is_some(),
        Ordering::Relaxed,
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .use_current_thread()
        .start_handler(|_| DECODER.with(|d| d.set(true)))
        .build()
        .expect("a rayon pool with the test thread as a worker");
    DECODER.with(|d| d.set(true));
    Box::leak(Box::new(pool));
    rayon::broadcast(|_| ());
    Decoder
}

fn start_counting() {
    ALLOCS.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
}

/// Stops counting; returns (allocations, bytes).
fn stop_counting() -> (usize, usize) {
    COUNTING.store(false, Ordering::SeqCst);
    (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

const WARM_UP: usize = 4;
const MEASURED: usize = 16;

#[test]
fn decode_loop_allocates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _decoder = join_a_pool();
    let model = TextModel::load(fixture("tiny-llama"), None).unwrap();
    let prompt = [1u32, 306, 496, 304, 17, 263, 871, 42];
    let sampled = SamplingParams {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.9,
        seed: 7,
    };
    let runs = [
        (SamplingParams::default(), KvCacheDtype::F32),
        (sampled, KvCacheDtype::F32),
        (SamplingParams::default(), KvCacheDtype::F16),
    ];
    for isa in Isa::available() {
        for (sampling, kv_cache) in runs {
            let backend = CpuBackend::with_isa(isa).unwrap();
            let mut session =
                TextSession::with_kv_cache(model.model.clone(), backend, 64, kv_cache).unwrap();
            let config = GenerationConfig {
                max_new_tokens: WARM_UP + MEASURED + 1,
                sampling,
                eos_token_ids: Vec::new(),
            };
            // Token i is passed to the callback after decode step i - 1 and its sampling.
            let (mut seen, mut counted) = (0, None);
            let out = session
                .generate(&prompt, &config, |_| {
                    seen += 1;
                    if seen == WARM_UP {
                        start_counting();
                    } else if seen == WARM_UP + MEASURED {
                        counted = Some(stop_counting());
                    }
                    true
                })
                .unwrap();
            stop_counting();
            assert_eq!(out.tokens.len(), config.max_new_tokens, "{isa}");
            let (allocs, bytes) = counted.expect("the measured window closed");
            println!(
                "{isa} {sampling:?} {kv_cache:?} cache: {allocs} allocations in {MEASURED} decode steps"
            );
            assert_eq!(
                allocs, 0,
                "{isa} {sampling:?} {kv_cache:?} cache: {allocs} heap allocations ({bytes} bytes) in {MEASURED} \
                 decode steps; IRIS_ALLOC_TRACE=1 prints where"
            );
        }
    }
}

/// SmolLM2-135M decode sizes (hidden 576, 9 / 3 heads of 64, MLP 1536) with 300 cached
/// tokens, and a cut vocabulary of 8192 for the LM head (still split over rayon).
#[test]
fn decode_kernels_at_model_sizes_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _decoder = join_a_pool();
    let (hidden, heads, kv_heads, d, ffn, vocab, max_seq, past) =
        (576, 9, 3, 64, 1536, 8192, 512, 300);
    let mut rng = Rng::new(11);
    let bf = |v: Vec<f32>| -> Vec<bf16> { v.into_iter().map(bf16::from_f32).collect() };
    let x = rng.vec(hidden, -1.0, 1.0);
    let norm_w = bf(rng.vec(hidden, 0.5, 1.5));
    let qkv_n = (heads + 2 * kv_heads) * d;
    let w_qkv = bf(rng.vec(qkv_n * hidden, -0.05, 0.05));
    let b_qkv = rng.vec(qkv_n, -0.1, 0.1);
    let w_up = bf(rng.vec(2 * ffn * hidden, -0.05, 0.05));
    let w_down: Vec<f16> = rng
        .vec(hidden * ffn, -0.05, 0.05)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    let lm_head = rng.vec(vocab * hidden, -0.05, 0.05);
    let table = bf(rng.vec(vocab * hidden, -1.0, 1.0));
    let ln_b = rng.vec(hidden, -0.1, 0.1);
    let inv_freq = rope_inv_freq(d, 10000.0);
    let mut k_cache = rng.vec(kv_heads * max_seq * d, -1.0, 1.0);
    let mut v_cache = rng.vec(kv_heads * max_seq * d, -1.0, 1.0);
    let (mut h, mut qkv, mut q) = (vec![0.0; hidden], vec![0.0; qkv_n], vec![0.0; heads * d]);
    let (mut gate_up, mut act) = (vec![0.0; 2 * ffn], vec![0.0; ffn]);
    let (mut attn, mut logits, mut probs) =
        (vec![0.0; heads * d], vec![0.0; vocab], vec![0.0; vocab]);
    let mut next = [0i64; 1];
    let params = AttentionParams {
        batch: 1,
        q_len: 1,
        kv_len: past + 1,
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim: d,
        scale: 0.125,
        causal: true,
    };
    for isa in Isa::available() {
        let mut step = || {
            rowops::embedding(isa, &[4321], WeightSlice::BF16(&table), hidden, &mut h).unwrap();
            rowops::rms_norm(isa, &x, WeightSlice::BF16(&norm_w), 1e-5, hidden, &mut h);
            let (w, b) = (WeightSlice::BF16(&w_qkv), Some(WeightSlice::F32(&b_qkv)));
            gemm::matmul(isa, &h, w, b, 1, qkv_n, hidden, &mut qkv);
            let (q_new, kv_new) = qkv.split_at(heads * d);
            rowops::rope(isa, q_new, &[past as i64], heads, d, &inv_freq, &mut q);
            let (k_new, v_new) = kv_new.split_at(kv_heads * d);
            rowops::kv_write(&mut k_cache, k_new, 1, 1, kv_heads, d, max_seq, past);
            rowops::kv_write(&mut v_cache, v_new, 1, 1, kv_heads, d, max_seq, past);
            let kv = KvStrides::bhsd(max_seq, kv_heads, d);
            attention::attention(isa, &q, &k_cache, &v_cache, kv, None, &params, &mut attn);
            rowops::add(isa, &x, &attn[..hidden], &mut h);
            let w = WeightSlice::BF16(&w_up);
            gemm::matmul(isa, &h, w, None, 1, 2 * ffn, hidden, &mut gate_up);
            let (gate, up) = gate_up.split_at(ffn);
            rowops::silu_mul(isa, gate, up, &mut act);
            let w = WeightSlice::F16(&w_down);
            gemm::matmul(isa, &act, w, None, 1, hidden, ffn, &mut h);
            rowops::layer_norm(
                isa,
                &x,
                WeightSlice::BF16(&norm_w),
                Some(WeightSlice::F32(&ln_b)),
                1e-5,
                hidden,
                &mut h,
            );
            rowops::gelu_erf(isa, &x, &mut h);
            gemm::matmul(
                isa,
                &h,
                WeightSlice::F32(&lm_head),
                None,
                1,
                vocab,
                hidden,
                &mut logits,
            );
            rowops::softmax(isa, &logits, vocab, &mut probs);
            rowops::argmax(isa, &logits, vocab, &mut next);
        };
        step(); // warm up: per-thread scratch, rayon's worker state
        start_counting();
        for _ in 0..4 {
            step();
        }
        let (allocs, bytes) = stop_counting();
        println!("{isa}: {allocs} allocations in 4 decode-sized kernel steps");
        assert_eq!(
            allocs, 0,
            "{isa}: {allocs} heap allocations ({bytes} bytes) in 4 kernel steps; \
             IRIS_ALLOC_TRACE=1 prints where"
        );
    }
}
