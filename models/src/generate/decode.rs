//! The decode graph of a session: one token in, compiled once per session and run for every
//! token with its position and the KV length written as data. Besides the logits it outputs
//! their argmax (`next_token`), so a greedy step reads back one id, not the vocabulary's
//! logits. Each step runs through `Executor::execute_replayed`: on a backend that records
//! (CUDA graphs) the first step runs op by op, the second records the graph, and every later
//! step is one replayed launch; elsewhere (the CPU) every step runs op by op as before.

use iris_runtime::backend::Backend;
use iris_runtime::graph::{Executor, ExecutorOptions, Graph, GraphBuilder, ReplayState};
use iris_runtime::DType;

use crate::error::ModelError;
use crate::llm::{KvCacheDtype, LlamaModel, LogitsMode, PhaseShape};

/// Name of the decode graph's greedy output: i64 [1, 1], the first maximum of the logits.
pub const NEXT_TOKEN: &str = "next_token";

pub(crate) struct DecodeGraph<B: Backend> {
    exec: Executor<B>,
}

/// The text model's graph for one token after `past_len` cached ones: inputs `input_ids`,
/// `positions` (i64 [1, 1]) and `past_len` (i64 [1]); outputs `logits` (f32 [1, 1, V]) and
/// `next_token`.
pub fn build_decode_graph(
    llm: &LlamaModel,
    max_context: usize,
    kv_cache: KvCacheDtype,
) -> Result<Graph, ModelError> {
    let shape = PhaseShape {
        seq_len: 1,
        max_context,
        kv_cache,
        logits: LogitsMode::Last,
    };
    let mut g = GraphBuilder::new();
    let ids = g.input("input_ids", DType::I64, [1, 1])?;
    let positions = g.input("positions", DType::I64, [1, 1])?;
    let past_len = g.input("past_len", DType::I64, [1])?;
    let hidden = llm.record_embeddings(&mut g, ids)?;
    let logits = llm.record_decoder(&mut g, hidden, positions, past_len, shape)?;
    let next = g.argmax(logits)?;
    g.output("logits", logits)?;
    g.output(NEXT_TOKEN, next)?;
    Ok(g.build())
}

impl<B: Backend> DecodeGraph<B> {
    /// Compiles the decode graph for a KV cache of `max_context` tokens.
    pub fn new(
        backend: &mut B,
        llm: &LlamaModel,
        max_context: usize,
        kv_cache: KvCacheDtype,
    ) -> Result<Self, ModelError> {
        let graph = build_decode_graph(llm, max_context, kv_cache)?;
        let exec = Executor::new(backend, graph, ExecutorOptions::default())?;
        Ok(DecodeGraph { exec })
    }

    /// One step that reads back the next token's logits into `logits` (for sampling, or a
    /// caller that wants them). No allocation.
    pub fn step_logits(
        &mut self,
        backend: &mut B,
        token: u32,
        cached: &mut usize,
        max_context: usize,
        logits: &mut [f32],
    ) -> Result<(), ModelError> {
        self.run(backend, token, *cached, max_context)?;
        self.exec
            .read_into(backend, "logits", bytemuck::cast_slice_mut(logits))?;
        *cached += 1;
        Ok(())
    }

    /// One greedy step: reads back only the next token (8 bytes; the logits stay where the
    /// backend computed them). No allocation.
    pub fn step_greedy(
        &mut self,
        backend: &mut B,
        token: u32,
        cached: &mut usize,
        max_context: usize,
    ) -> Result<u32, ModelError> {
        self.run(backend, token, *cached, max_context)?;
        let mut id = [0u8; 8];
        self.exec.read_into(backend, NEXT_TOKEN, &mut id)?;
        let id = i64::from_le_bytes(id);
        let next = u32::try_from(id).map_err(|_| {
            ModelError::Invalid(format!("the decode graph's argmax gave token id {id}"))
        })?;
        *cached += 1;
        Ok(next)
    }

    /// Checks the KV cache has a free row, writes the token, its position and the cache
    /// length, and runs the graph.
    fn run(
        &mut self,
        backend: &mut B,
        token: u32,
        cached: usize,
        max_context: usize,
    ) -> Result<(), ModelError> {
        if cached >= max_context {
            return Err(ModelError::PromptTooLong {
                prompt: cached,
                new: 1,
                context: max_context,
            });
        }
        let position = (cached as i64).to_le_bytes();
        let exec = &mut self.exec;
        exec.write_input_bytes(backend, "input_ids", &(token as i64).to_le_bytes())?;
        exec.write_input_bytes(backend, "positions", &position)?;
        exec.write_input_bytes(backend, "past_len", &position)?;
        exec.execute_replayed(backend)?;
        Ok(())
    }

    /// Whether steps replay a recorded graph (CUDA), and why not.
    pub fn replay_state(&self) -> &ReplayState {
        self.exec.replay_state()
    }
}
