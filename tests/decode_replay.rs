//! Recorded replay (`Executor::execute_replayed`, the CUDA-graph path of the decode step)
//! checked on the CPU: `ReplayingCpu` is the CPU backend plus recording. Between
//! `begin_capture` and `end_capture` its `execute` stores each op with its operands instead of
//! running it, and refuses any copy or read (as a CUDA stream capture would); its recording
//! re-runs the stored ops over the same buffers. So these tests prove that the executor
//! records once and replays with fresh inputs, falls back when recording fails, and that the
//! decode loop gives transformers' greedy tokens when every step is a replay, reading back
//! only the chosen id per greedy step; the vision graph of a multimodal session replays too,
//! and its features reach the prefill by a copy on the backend, never read back.
//! `iris bench e2e --json` reports the decode path.

mod common;
#[path = "common/greedy.rs"]
mod greedy_common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use greedy_common::{fixture, greedy, greedy_json};
use iris_kernels::testing::{assert_nmse, Rng, NMSE_F32_ELEMENTWISE};
use iris_models::generate::{GenerationConfig, SamplingParams, TextSession};
use iris_models::pipeline::{MultimodalModel, MultimodalSession};
use iris_models::text_model::TextModel;
use iris_runtime::backend::cpu::{CpuBackend, CpuSlot};
use iris_runtime::backend::{Backend, Operand, Recording};
use iris_runtime::graph::{Executor, ExecutorOptions, Graph, GraphBuilder, Op, ReplayState};
use iris_runtime::safetensors::WeightStore;
use iris_runtime::{DType, Error, Result, Shape, Tensor};

#[derive(Default)]
struct Counters {
    captures: AtomicUsize,
    replays: AtomicUsize,
    bytes_read: AtomicUsize,
    bytes_copied: AtomicUsize,
}

struct StoredOp {
    op: Op,
    inputs: Vec<Operand<CpuSlot>>,
    output: Operand<CpuSlot>,
}

#[derive(Default)]
struct ReplayingCpu {
    inner: CpuBackend,
    /// Some while recording.
    recorded: Option<Vec<StoredOp>>,
    /// Makes the next recorded op fail (a backend that cannot record some op).
    fail_while_recording: bool,
    counters: Arc<Counters>,
}

struct CpuRecording {
    ops: Vec<StoredOp>,
    runner: Mutex<CpuBackend>,
    counters: Arc<Counters>,
}

impl Recording for CpuRecording {
    fn replay(&self) -> Result<()> {
        let mut runner = self.runner.lock().expect("not poisoned");
        for stored in &self.ops {
            runner.execute(&stored.op, &stored.inputs, &stored.output)?;
        }
        self.counters.replays.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl ReplayingCpu {
    fn refuse_while_recording(&self, what: &str) -> Result<()> {
        if self.recorded.is_some() {
            return Err(Error::InvalidOp {
                op: "replaying-cpu",
                message: format!("{what} while recording"),
            });
        }
        Ok(())
    }
}

impl Backend for ReplayingCpu {
    type Slot = CpuSlot;
    fn name(&self) -> &'static str {
        "replaying-cpu"
    }
    fn alloc(&mut self, bytes: usize) -> Result<CpuSlot> {
        self.refuse_while_recording("an allocation")?;
        self.inner.alloc(bytes)
    }
    fn sub_slot(&self, slot: &CpuSlot, offset: usize, len: usize) -> CpuSlot {
        self.inner.sub_slot(slot, offset, len)
    }
    fn weight(&mut self, tensor: &Tensor) -> Result<CpuSlot> {
        self.refuse_while_recording("a weight upload")?;
        self.inner.weight(tensor)
    }
    fn state(&mut self, name: &str, dtype: DType, shape: &Shape) -> Result<CpuSlot> {
        self.refuse_while_recording("a state allocation")?;
        self.inner.state(name, dtype, shape)
    }
    fn write_bytes(&mut self, slot: &CpuSlot, bytes: &[u8]) -> Result<()> {
        self.refuse_while_recording("a host-to-device copy")?;
        self.inner.write_bytes(slot, bytes)
    }
    fn read_into(&mut self, slot: &CpuSlot, out: &mut [u8]) -> Result<()> {
        self.refuse_while_recording("a device-to-host copy")?;
        self.counters
            .bytes_read
            .fetch_add(out.len(), Ordering::SeqCst);
        self.inner.read_into(slot, out)
    }
    fn copy_slot(&mut self, src: &CpuSlot, dst: &CpuSlot, bytes: usize) -> Result<()> {
        self.refuse_while_recording("a device-to-device copy")?;
        self.counters
            .bytes_copied
            .fetch_add(bytes, Ordering::SeqCst);
        self.inner.copy_slot(src, dst, bytes)
    }
    fn execute(
        &mut self,
        op: &Op,
        inputs: &[Operand<CpuSlot>],
        output: &Operand<CpuSlot>,
    ) -> Result<()> {
        match self.recorded.as_mut() {
            None => self.inner.execute(op, inputs, output),
            Some(_) if self.fail_while_recording => Err(Error::Unsupported {
                backend: "replaying-cpu",
                what: format!("recording `{}`", op.name()),
            }),
            Some(ops) => {
                ops.push(StoredOp {
                    op: op.clone(),
                    inputs: inputs.to_vec(),
                    output: output.clone(),
                });
                Ok(())
            }
        }
    }
    fn synchronize(&mut self) -> Result<()> {
        self.refuse_while_recording("a synchronize")
    }
    fn begin_capture(&mut self) -> Result<bool> {
        self.refuse_while_recording("begin_capture")?;
        self.recorded = Some(Vec::new());
        Ok(true)
    }
    fn end_capture(&mut self) -> Result<Box<dyn Recording>> {
        let ops = self.recorded.take().ok_or_else(|| Error::InvalidOp {
            op: "replaying-cpu",
            message: "end_capture without begin_capture".into(),
        })?;
        self.counters.captures.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(CpuRecording {
            ops,
            runner: Mutex::new(CpuBackend::new()),
            counters: self.counters.clone(),
        }))
    }
}

/// `y = rope(x, positions) @ w^T`: a per-run position input read by a kernel, as in decode.
fn small_graph(w: &Tensor) -> Graph {
    let mut g = GraphBuilder::new();
    let x = g.input("x", DType::F32, [1, 2, 3, 8]).unwrap();
    let positions = g.input("positions", DType::I64, [1, 2]).unwrap();
    let w = g.weight("w", w.clone()).unwrap();
    let rotated = g.rope(x, positions, vec![1.0, 0.31, 0.07, 0.011]).unwrap();
    let y = g.matmul(rotated, w, None).unwrap();
    g.output("y", y).unwrap();
    g.build()
}

fn inputs(rng: &mut Rng, step: i64) -> (Tensor, Tensor) {
    let x = Tensor::from_slice(&rng.vec(48, -1.0, 1.0), [1, 2, 3, 8]).unwrap();
    let positions = Tensor::from_slice(&[3 * step + 1, 3 * step + 5], [1, 2]).unwrap();
    (x, positions)
}

/// `y` of the graph run op by op on a fresh CPU backend.
fn expected_y(w: &Tensor, x: &Tensor, positions: &Tensor) -> Vec<f32> {
    let mut cpu = CpuBackend::new();
    let mut exec = Executor::new(&mut cpu, small_graph(w), ExecutorOptions::default()).unwrap();
    exec.run(&mut cpu, &[("x", x), ("positions", positions)])
        .unwrap();
    exec.read(&mut cpu, "y").unwrap().to_vec_f32()
}

#[test]
fn records_on_the_second_run_then_replays_with_each_runs_inputs() {
    let mut rng = Rng::new(11);
    let w = Tensor::from_slice(&rng.vec(40, -1.0, 1.0), [5, 8]).unwrap();
    let mut be = ReplayingCpu::default();
    let counters = be.counters.clone();
    let mut exec = Executor::new(&mut be, small_graph(&w), ExecutorOptions::default()).unwrap();
    let expected_states = [
        ReplayState::NotRecorded,
        ReplayState::Recorded,
        ReplayState::Recorded,
        ReplayState::Recorded,
    ];
    for (step, expected_state) in expected_states.iter().enumerate() {
        let (x, positions) = inputs(&mut rng, step as i64);
        exec.write_input(&mut be, "x", &x).unwrap();
        exec.write_input(&mut be, "positions", &positions).unwrap();
        // Fresh inputs every run: a replay that kept the last run's output, or read the
        // inputs of the recording run, fails the comparison.
        exec.execute_replayed(&mut be).unwrap();
        assert_eq!(exec.replay_state(), expected_state, "after run {step}");
        let y = exec.read(&mut be, "y").unwrap().to_vec_f32();
        assert_nmse(
            &format!("y of run {step}"),
            &y,
            &expected_y(&w, &x, &positions),
            NMSE_F32_ELEMENTWISE,
        );
    }
    assert_eq!(counters.captures.load(Ordering::SeqCst), 1, "recorded once");
    assert_eq!(counters.replays.load(Ordering::SeqCst), 3);
}

#[test]
fn a_failed_recording_falls_back_to_op_by_op_and_says_why() {
    let mut rng = Rng::new(12);
    let w = Tensor::from_slice(&rng.vec(40, -1.0, 1.0), [5, 8]).unwrap();
    let mut be = ReplayingCpu {
        fail_while_recording: true,
        ..ReplayingCpu::default()
    };
    let mut exec = Executor::new(&mut be, small_graph(&w), ExecutorOptions::default()).unwrap();
    for step in 0..3 {
        let (x, positions) = inputs(&mut rng, step);
        exec.run(&mut be, &[("x", &x), ("positions", &positions)])
            .unwrap();
        exec.execute_replayed(&mut be).unwrap();
        let y = exec.read(&mut be, "y").unwrap().to_vec_f32();
        assert_nmse(
            "y",
            &y,
            &expected_y(&w, &x, &positions),
            NMSE_F32_ELEMENTWISE,
        );
    }
    match exec.replay_state() {
        ReplayState::Failed(why) => assert!(why.contains("recording `rope`"), "{why}"),
        other => panic!("expected a failed recording, got {other:?}"),
    }
    assert!(be.recorded.is_none(), "the backend was left recording");
    assert_eq!(be.counters.replays.load(Ordering::SeqCst), 0);
}

#[test]
fn backends_that_do_not_record_run_op_by_op() {
    let mut rng = Rng::new(13);
    let w = Tensor::from_slice(&rng.vec(40, -1.0, 1.0), [5, 8]).unwrap();
    let mut cpu = CpuBackend::new();
    let mut exec = Executor::new(&mut cpu, small_graph(&w), ExecutorOptions::default()).unwrap();
    for step in 0..3 {
        let (x, positions) = inputs(&mut rng, step);
        exec.write_input(&mut cpu, "x", &x).unwrap();
        exec.write_input(&mut cpu, "positions", &positions).unwrap();
        exec.execute_replayed(&mut cpu).unwrap();
        let y = exec.read(&mut cpu, "y").unwrap().to_vec_f32();
        assert_nmse(
            "y",
            &y,
            &expected_y(&w, &x, &positions),
            NMSE_F32_ELEMENTWISE,
        );
    }
    assert_eq!(exec.replay_state(), &ReplayState::Unavailable);
}

#[test]
fn replayed_greedy_decode_matches_transformers_and_reads_back_one_id_per_step() {
    let dir = fixture("tiny-llama");
    let (prompt, expected) = greedy_json(&dir);
    let model = TextModel::load(&dir, None).unwrap();
    let vocab = model.model.config.vocab_size;
    let be = ReplayingCpu::default();
    let counters = be.counters.clone();
    let mut session = TextSession::new(model.model.clone(), be, 64).unwrap();
    for run in 0..2 {
        let before = counters.bytes_read.load(Ordering::SeqCst);
        let out = session
            .generate(&prompt, &greedy(expected.len()), |_| true)
            .unwrap();
        assert_eq!(out.tokens, expected, "run {run}: greedy tokens differ");
        // The prefill's logits, then one i64 per decode step.
        let read = counters.bytes_read.load(Ordering::SeqCst) - before;
        assert_eq!(read, vocab * 4 + (expected.len() - 1) * 8, "run {run}");
    }
    assert_eq!(session.decode_replay_state(), &ReplayState::Recorded);
    assert_eq!(counters.captures.load(Ordering::SeqCst), 1);
    // Two runs of 31 decode steps: the first step runs op by op, the second records.
    assert_eq!(counters.replays.load(Ordering::SeqCst), 2 * 31 - 1);
}

#[test]
fn replayed_sampling_matches_op_by_op_sampling() {
    let dir = fixture("tiny-llama");
    let (prompt, _) = greedy_json(&dir);
    let model = TextModel::load(&dir, None).unwrap();
    let config = GenerationConfig {
        max_new_tokens: 24,
        sampling: SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            seed: 5,
        },
        eos_token_ids: Vec::new(),
    };
    let mut replayed = TextSession::new(model.model.clone(), ReplayingCpu::default(), 64).unwrap();
    let mut plain = TextSession::new(model.model.clone(), CpuBackend::new(), 64).unwrap();
    let a = replayed.generate(&prompt, &config, |_| true).unwrap();
    let b = plain.generate(&prompt, &config, |_| true).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(replayed.decode_replay_state(), &ReplayState::Recorded);
    assert_eq!(plain.decode_replay_state(), &ReplayState::Unavailable);
}

#[test]
fn replayed_llava_decode_matches_transformers() {
    let dir = fixture("tiny-llava");
    let (prompt, expected) = greedy_json(&dir);
    let store = WeightStore::open(dir.join("reference.safetensors")).unwrap();
    let pixels = store.get("pixel_values").unwrap();
    let model = Arc::new(MultimodalModel::load(&dir, None).unwrap());
    let mut session = MultimodalSession::new(model, ReplayingCpu::default(), 128).unwrap();
    let out = session
        .generate(&prompt, Some(&pixels), &greedy(expected.len()), |_| true)
        .unwrap();
    assert_eq!(out.generation.tokens, expected);
    assert_eq!(session.decode_replay_state(), &ReplayState::Recorded);
}

/// Generation with an image keeps the features on the backend (copied, never read back) and
/// runs the vision graph through `execute_replayed`: the first image op by op, the second
/// records, the third replays.
#[test]
fn replayed_llava_vision_keeps_the_features_on_the_backend() {
    let dir = fixture("tiny-llava");
    let (prompt, expected) = greedy_json(&dir);
    let store = WeightStore::open(dir.join("reference.safetensors")).unwrap();
    let pixels = store.get("pixel_values").unwrap();
    let model = Arc::new(MultimodalModel::load(&dir, None).unwrap());
    let (vocab, hidden) = (model.llm.config.vocab_size, model.llm.config.hidden_size);
    let features = model.tokens_per_image() * hidden * 4;
    let be = ReplayingCpu::default();
    let counters = be.counters.clone();
    let mut session = MultimodalSession::new(model, be, 128).unwrap();
    let vision_states = [
        ReplayState::NotRecorded,
        ReplayState::Recorded,
        ReplayState::Recorded,
    ];
    for (run, state) in vision_states.iter().enumerate() {
        let (read, copied) = (
            counters.bytes_read.load(Ordering::SeqCst),
            counters.bytes_copied.load(Ordering::SeqCst),
        );
        let out = session
            .generate(&prompt, Some(&pixels), &greedy(expected.len()), |_| true)
            .unwrap();
        assert_eq!(out.generation.tokens, expected, "run {run}");
        assert_eq!(session.vision_replay_state(), Some(state), "run {run}");
        // Read back: the prefill's logits and one id per decode step, no image features.
        let read = counters.bytes_read.load(Ordering::SeqCst) - read;
        assert_eq!(read, vocab * 4 + (expected.len() - 1) * 8, "run {run}");
        let copied = counters.bytes_copied.load(Ordering::SeqCst) - copied;
        assert_eq!(copied, features, "run {run}: one image's features copied");
    }
    // Decode recorded in the first run, vision in the second.
    assert_eq!(counters.captures.load(Ordering::SeqCst), 2);
}

#[test]
fn bench_e2e_reports_the_decode_path_and_the_tokens() {
    let out = Command::new(common::iris_bin())
        .args([
            "bench",
            "e2e",
            "--model",
            "fixtures/tiny-llama",
            "--prompt-tokens",
            "8",
        ])
        .args(["--gen-tokens", "5", "--runs", "1", "--json"])
        .current_dir(common::repo_root())
        .output()
        .expect("run iris");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["decode_graph"], "off", "the CPU does not record: {doc}");
    let tokens = doc["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 5, "{doc}");
    assert!(
        tokens.iter().all(|t| t.as_u64().is_some_and(|t| t < 1003)),
        "{doc}"
    );
}
