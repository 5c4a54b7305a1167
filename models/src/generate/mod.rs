//! Text generation over a preallocated KV cache: a prefill graph for the prompt, then one
//! decode graph, built once and replayed per token with positions and cache length as
//! data (`decode.rs`; a recorded CUDA graph on the GPU). Greedy steps read back only the
//! chosen id. Tokens are streamed to a callback as they are made.

mod decode;
pub mod sampling;

use std::sync::Arc;
use std::time::{Duration, Instant};

use iris_runtime::backend::Backend;
use iris_runtime::graph::{Executor, ExecutorOptions, ReplayState};
use iris_runtime::Tensor;

use crate::error::ModelError;
use crate::llm::{KvCacheDtype, LlamaModel, LogitsMode, PhaseShape};
pub(crate) use decode::DecodeGraph;
pub use decode::{build_decode_graph, NEXT_TOKEN};
pub use sampling::{Sampler, SamplingParams};

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// An end-of-sequence token was produced (it is the last of `tokens`).
    Eos,
    /// `max_new_tokens` were produced.
    MaxTokens,
    /// The KV cache is full.
    ContextFull,
    /// The callback asked to stop.
    Cancelled,
}

#[derive(Clone, Debug)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    pub eos_token_ids: Vec<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct Timings {
    pub prefill: Duration,
    /// Prompt in to first new token out.
    pub time_to_first_token: Duration,
    /// One entry per decode step (tokens after the first).
    pub decode_steps: Vec<Duration>,
}

impl Timings {
    pub fn decode_tokens_per_second(&self) -> f64 {
        let total: Duration = self.decode_steps.iter().sum();
        if total.is_zero() {
            return 0.0;
        }
        self.decode_steps.len() as f64 / total.as_secs_f64()
    }
}

#[derive(Clone, Debug)]
pub struct GenerationOutput {
    pub tokens: Vec<u32>,
    pub stop_reason: StopReason,
    pub timings: Timings,
}

/// A session that has prefilled a prompt and can take decode steps.
pub(crate) trait StepDecoder {
    /// The last logits read back (the prefill's, or a non-greedy step's).
    fn logits(&self) -> &[f32];
    /// Tokens in the KV cache.
    fn cached(&self) -> usize;
    fn max_context(&self) -> usize;
    /// Decodes `token`. Greedy: returns the next token (its argmax, computed on the device)
    /// and reads back nothing else. Otherwise reads the next logits and returns `None`.
    fn decode_one(&mut self, token: u32, greedy: bool) -> Result<Option<u32>, ModelError>;
}

/// Samples and decodes after a prefill whose logits are in `session` (started at
/// `prefill_start`, taking `prefill`), streaming each token to `on_token` (false stops).
pub(crate) fn sample_until_stop<D: StepDecoder>(
    session: &mut D,
    config: &GenerationConfig,
    vocab_size: usize,
    prefill_start: Instant,
    prefill: Duration,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<GenerationOutput, ModelError> {
    let mut sampler = Sampler::new(config.sampling, vocab_size);
    let greedy = config.sampling.is_greedy();
    // The decode step's own choice (greedy); `None` means sample from the logits.
    let mut chosen: Option<u32> = None;
    // Both vectors sized up front: the decode loop must not allocate.
    let mut timings = Timings {
        prefill,
        decode_steps: Vec::with_capacity(config.max_new_tokens),
        ..Timings::default()
    };
    let mut tokens = Vec::with_capacity(config.max_new_tokens);
    let mut stop_reason = StopReason::MaxTokens;
    let mut step_start = Instant::now();
    for i in 0..config.max_new_tokens {
        if i > 0 {
            if session.cached() >= session.max_context() {
                stop_reason = StopReason::ContextFull;
                break;
            }
            step_start = Instant::now();
            chosen = session.decode_one(*tokens.last().expect("a token was produced"), greedy)?;
        }
        let token = match chosen {
            Some(token) => token,
            None => sampler.sample(session.logits()),
        };
        tokens.push(token);
        if i == 0 {
            timings.time_to_first_token = prefill_start.elapsed();
        } else {
            timings.decode_steps.push(step_start.elapsed());
        }
        if !on_token(token) {
            stop_reason = StopReason::Cancelled;
            break;
        }
        if config.eos_token_ids.contains(&token) {
            stop_reason = StopReason::Eos;
            break;
        }
    }
    Ok(GenerationOutput {
        tokens,
        stop_reason,
        timings,
    })
}

/// A model bound to a backend with its KV cache. One sequence at a time.
pub struct TextSession<B: Backend> {
    model: Arc<LlamaModel>,
    backend: B,
    decode: DecodeGraph<B>,
    max_context: usize,
    kv_cache: KvCacheDtype,
    /// Tokens in the KV cache.
    cached: usize,
    logits: Vec<f32>,
}

impl<B: Backend> TextSession<B> {
    /// Builds and compiles the decode graph; the KV cache holds `max_context` tokens in f32.
    pub fn new(model: Arc<LlamaModel>, backend: B, max_context: usize) -> Result<Self, ModelError> {
        Self::with_kv_cache(model, backend, max_context, KvCacheDtype::F32)
    }

    /// As [`TextSession::new`] with the KV cache in `kv_cache`.
    pub fn with_kv_cache(
        model: Arc<LlamaModel>,
        mut backend: B,
        max_context: usize,
        kv_cache: KvCacheDtype,
    ) -> Result<Self, ModelError> {
        if max_context == 0 {
            return Err(ModelError::Invalid(
                "the context must hold at least one token".into(),
            ));
        }
        let decode = DecodeGraph::new(&mut backend, &model, max_context, kv_cache)?;
        let vocab = model.config.vocab_size;
        Ok(TextSession {
            model,
            backend,
            decode,
            max_context,
            kv_cache,
            cached: 0,
            logits: vec![0.0; vocab],
        })
    }

    pub fn model(&self) -> &LlamaModel {
        &self.model
    }

    pub fn max_context(&self) -> usize {
        self.max_context
    }

    /// Whether decode steps replay a recorded graph (CUDA graphs), and why not.
    pub fn decode_replay_state(&self) -> &ReplayState {
        self.decode.replay_state()
    }

    fn check_fits(&self, prompt: usize, new: usize) -> Result<(), ModelError> {
        if prompt == 0 {
            return Err(ModelError::Invalid("the prompt has no tokens".into()));
        }
        if self.cached + prompt >= self.max_context {
            return Err(ModelError::PromptTooLong {
                prompt: self.cached + prompt,
                new,
                context: self.max_context,
            });
        }
        Ok(())
    }

    fn prompt_inputs(&self, tokens: &[u32]) -> Result<[Tensor; 3], ModelError> {
        let t = tokens.len();
        let ids: Vec<i64> = tokens.iter().map(|&id| id as i64).collect();
        let positions: Vec<i64> = (self.cached..self.cached + t).map(|p| p as i64).collect();
        Ok([
            Tensor::from_slice(&ids, [1, t])?,
            Tensor::from_slice(&positions, [1, t])?,
            Tensor::from_slice(&[self.cached as i64], [1])?,
        ])
    }

    /// Compiles a graph for `tokens` after what is cached, runs it and counts the tokens as
    /// cached; the caller reads the logits from the returned executor.
    fn run_prompt(
        &mut self,
        tokens: &[u32],
        logits: LogitsMode,
    ) -> Result<Executor<B>, ModelError> {
        self.check_fits(tokens.len(), 0)?;
        let shape = PhaseShape {
            seq_len: tokens.len(),
            max_context: self.max_context,
            kv_cache: self.kv_cache,
            logits,
        };
        let mut exec = Executor::new(
            &mut self.backend,
            self.model.build_graph(shape)?,
            ExecutorOptions::default(),
        )?;
        let [ids, positions, past] = self.prompt_inputs(tokens)?;
        exec.run(
            &mut self.backend,
            &[
                ("input_ids", &ids),
                ("positions", &positions),
                ("past_len", &past),
            ],
        )?;
        self.cached += tokens.len();
        Ok(exec)
    }

    /// Runs `tokens` through the model after what is cached, returning the logits of every
    /// position ([1, T, V]). Used by `iris check`.
    pub fn forward_all(&mut self, tokens: &[u32]) -> Result<Tensor, ModelError> {
        let exec = self.run_prompt(tokens, LogitsMode::All)?;
        Ok(exec.read(&mut self.backend, "logits")?)
    }

    /// Prefills `tokens` after what is cached; returns the last position's logits.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError> {
        let exec = self.run_prompt(tokens, LogitsMode::Last)?;
        exec.read_into(
            &mut self.backend,
            "logits",
            bytemuck::cast_slice_mut(&mut self.logits),
        )?;
        Ok(&self.logits)
    }

    /// One decode step for `token`; returns the next logits. No allocation.
    pub fn step(&mut self, token: u32) -> Result<&[f32], ModelError> {
        self.decode.step_logits(
            &mut self.backend,
            token,
            &mut self.cached,
            self.max_context,
            &mut self.logits,
        )?;
        Ok(&self.logits)
    }

    /// One greedy decode step for `token`: returns the next token, read back alone (the
    /// logits stay on the device). No allocation.
    pub fn step_greedy(&mut self, token: u32) -> Result<u32, ModelError> {
        self.decode
            .step_greedy(&mut self.backend, token, &mut self.cached, self.max_context)
    }

    /// Forgets the cached sequence (the cache rows are overwritten by the next prompt).
    pub fn reset(&mut self) {
        self.cached = 0;
    }

    /// Generates after `prompt`, calling `on_token` with each new token as soon as it is
    /// chosen; `on_token` returns false to stop.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        config: &GenerationConfig,
        on_token: impl FnMut(u32) -> bool,
    ) -> Result<GenerationOutput, ModelError> {
        self.reset();
        self.check_fits(prompt.len(), config.max_new_tokens)?;
        let start = Instant::now();
        self.prefill(prompt)?;
        let prefill = start.elapsed();
        let vocab_size = self.model.config.vocab_size;
        sample_until_stop(self, config, vocab_size, start, prefill, on_token)
    }
}

impl<B: Backend> StepDecoder for TextSession<B> {
    fn logits(&self) -> &[f32] {
        &self.logits
    }
    fn cached(&self) -> usize {
        self.cached
    }
    fn max_context(&self) -> usize {
        self.max_context
    }
    fn decode_one(&mut self, token: u32, greedy: bool) -> Result<Option<u32>, ModelError> {
        if greedy {
            self.step_greedy(token).map(Some)
        } else {
            self.step(token).map(|_| None)
        }
    }
}
