//! Generation with images: the vision graph encodes `pixel_values` into image features, a
//! prefill graph built for the prompt puts them at the image-token positions, and the text
//! decode graph (the LLM's own, built once) produces the following tokens over the shared KV
//! cache.
//!
//! On the generation path the features never leave the backend: the prefill graph is
//! compiled first, and after each vision run its output is copied into the prefill's
//! `image_features` input where the backend holds both (a device-to-device copy on a GPU).
//! `encode_images` reads them back to the host for checks. The vision graph runs through
//! `Executor::execute_replayed`, as the decode step does: on a backend that records (CUDA
//! graphs) the first image runs op by op, the second records, and later ones replay.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iris_runtime::backend::Backend;
use iris_runtime::graph::{Executor, ExecutorOptions, ReplayState};
use iris_runtime::storage::{AlignedBuffer, CpuStorage};
use iris_runtime::{DType, Layout, Tensor};

use super::MultimodalModel;
use crate::error::ModelError;
use crate::generate::{
    sample_until_stop, DecodeGraph, GenerationConfig, GenerationOutput, StepDecoder,
};
use crate::llm::{KvCacheDtype, LogitsMode, PhaseShape};

/// The vision graph's output and the prefill graph's input that takes it.
const IMAGE_FEATURES: &str = "image_features";

/// What `generate` returns: the text generation and the time spent encoding images.
#[derive(Clone, Debug)]
pub struct MultimodalOutput {
    pub generation: GenerationOutput,
    pub vision: Duration,
}

/// Where a prompt with images spent its time.
struct PromptTimes {
    /// The vision runs and the copies of their features.
    vision: Duration,
    /// Compiling and running the prefill graph, reading its logits.
    prefill: Duration,
}

/// A multimodal model bound to a backend with its KV cache. One sequence at a time.
pub struct MultimodalSession<B: Backend> {
    model: Arc<MultimodalModel>,
    backend: B,
    decode: DecodeGraph<B>,
    /// The vision graph of the last batch size used.
    vision: Option<(usize, Executor<B>)>,
    max_context: usize,
    kv_cache: KvCacheDtype,
    cached: usize,
    logits: Vec<f32>,
}

impl<B: Backend> MultimodalSession<B> {
    /// Compiles the text decode graph; the KV cache holds `max_context` tokens in f32.
    pub fn new(
        model: Arc<MultimodalModel>,
        backend: B,
        max_context: usize,
    ) -> Result<Self, ModelError> {
        Self::with_kv_cache(model, backend, max_context, KvCacheDtype::F32)
    }

    /// As [`MultimodalSession::new`] with the KV cache in `kv_cache`.
    pub fn with_kv_cache(
        model: Arc<MultimodalModel>,
        mut backend: B,
        max_context: usize,
        kv_cache: KvCacheDtype,
    ) -> Result<Self, ModelError> {
        if max_context == 0 {
            return Err(ModelError::Invalid(
                "the context must hold at least one token".into(),
            ));
        }
        let decode = DecodeGraph::new(&mut backend, &model.llm, max_context, kv_cache)?;
        let vocab = model.llm.config.vocab_size;
        Ok(MultimodalSession {
            model,
            backend,
            decode,
            vision: None,
            max_context,
            kv_cache,
            cached: 0,
            logits: vec![0.0; vocab],
        })
    }

    pub fn model(&self) -> &MultimodalModel {
        &self.model
    }

    /// Whether decode steps replay a recorded graph (CUDA graphs), and why not.
    pub fn decode_replay_state(&self) -> &ReplayState {
        self.decode.replay_state()
    }

    /// The same for the vision graph of the last batch size used (`None` before an image).
    pub fn vision_replay_state(&self) -> Option<&ReplayState> {
        self.vision.as_ref().map(|(_, exec)| exec.replay_state())
    }

    /// Encodes `pixel_values` f32 [N, C, S, S] (N images for LLaVA, the N tiles of one image
    /// for Idefics3) into image features f32 [N, tokens_per_image, H]: the projector /
    /// connector output, in the order the image tokens of the prompt take them, read back to
    /// the host (`iris check` compares them; generation keeps them on the backend).
    pub fn encode_images(&mut self, pixel_values: &Tensor) -> Result<Tensor, ModelError> {
        let (n, _) = self.vision_runs(pixel_values)?;
        let (tokens, h) = self.feature_dims();
        let image_bytes = tokens * h * DType::F32.size_in_bytes();
        let mut out = AlignedBuffer::zeroed(n * image_bytes);
        let bytes = out.as_mut_slice();
        self.run_vision(pixel_values, |backend, vision, images| {
            let part = &mut bytes[images.start * image_bytes..images.end * image_bytes];
            Ok(vision.read_into(backend, IMAGE_FEATURES, part)?)
        })?;
        Ok(Tensor::from_storage(
            Arc::new(CpuStorage::Owned(out)),
            Layout::contiguous([n, tokens, h]),
            DType::F32,
        )?)
    }

    /// Rows per image (tile) and the LLM hidden size: one image's features are [rows, H].
    fn feature_dims(&self) -> (usize, usize) {
        (
            self.model.tokens_per_image(),
            self.model.llm.config.hidden_size,
        )
    }

    /// Checks `pixel_values` is [N, C, H, W] with N > 0 that splits into vision runs; returns
    /// N and the images per run.
    fn vision_runs(&self, pixel_values: &Tensor) -> Result<(usize, usize), ModelError> {
        let dims = pixel_values.dims();
        if dims.len() != 4 || dims[0] == 0 {
            return Err(ModelError::Invalid(format!(
                "pixel_values must be [N, C, H, W] with N > 0, got {dims:?}"
            )));
        }
        let n = dims[0];
        let batch = self.model.vision_batch(n);
        if !n.is_multiple_of(batch) {
            return Err(ModelError::Invalid(format!(
                "{n} images do not split into vision runs of {batch}"
            )));
        }
        Ok((n, batch))
    }

    /// Runs the vision graph over `pixel_values`, one run per vision batch in image order,
    /// and hands each run's executor (its output holds f32 [batch, rows, H], checked here) to
    /// `take` with the range of images it encoded, before the next run overwrites it.
    fn run_vision(
        &mut self,
        pixel_values: &Tensor,
        mut take: impl FnMut(&mut B, &Executor<B>, Range<usize>) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let (n, batch) = self.vision_runs(pixel_values)?;
        if self.vision.as_ref().map(|(b, _)| *b) != Some(batch) {
            let graph = self.model.build_vision_graph(batch)?;
            let exec = Executor::new(&mut self.backend, graph, ExecutorOptions::default())?;
            let (tokens, h) = self.feature_dims();
            let (shape, dtype) = exec.value_info(IMAGE_FEATURES)?;
            if dtype != DType::F32 || shape.dims() != [batch, tokens, h] {
                return Err(ModelError::Invalid(format!(
                    "the vision graph gives {IMAGE_FEATURES} {dtype} {shape}, expected f32 \
                     [{batch}, {tokens}, {h}]"
                )));
            }
            self.vision = Some((batch, exec));
        }
        let (_, exec) = self.vision.as_mut().expect("compiled above");
        let pixels = pixel_values.to_dtype(DType::F32)?.contiguous();
        for start in (0..n).step_by(batch) {
            // A narrow along the first axis of a contiguous tensor is contiguous: no copy.
            let chunk = pixels.narrow(0, start, batch)?;
            exec.write_input(&mut self.backend, "pixel_values", &chunk)?;
            exec.execute_replayed(&mut self.backend)?;
            take(&mut self.backend, exec, start..start + batch)?;
        }
        Ok(())
    }

    fn check_fits(&self, prompt: usize) -> Result<(), ModelError> {
        if prompt == 0 {
            return Err(ModelError::Invalid("the prompt has no tokens".into()));
        }
        if self.cached + prompt >= self.max_context {
            return Err(ModelError::PromptTooLong {
                prompt: self.cached + prompt,
                new: 0,
                context: self.max_context,
            });
        }
        Ok(())
    }

    /// Compiles the prefill graph of `tokens` after what is cached and writes every input
    /// but `image_features`, which must then get the `rows` feature rows the caller says the
    /// images give (as many as the prompt has image tokens).
    fn prompt_executor(
        &mut self,
        tokens: &[u32],
        rows: usize,
        logits: LogitsMode,
    ) -> Result<Executor<B>, ModelError> {
        self.check_fits(tokens.len())?;
        let image_token = self.model.image_token_id;
        let n_tokens = tokens.iter().filter(|&&t| t == image_token).count();
        if n_tokens != rows {
            return Err(ModelError::Invalid(format!(
                "the prompt has {n_tokens} image tokens (id {image_token}) but the images give {rows} feature rows \
                 ({} per image)",
                self.model.tokens_per_image()
            )));
        }
        let t = tokens.len();
        let shape = PhaseShape {
            seq_len: t,
            max_context: self.max_context,
            kv_cache: self.kv_cache,
            logits,
        };
        let graph = self.model.build_prefill_graph(tokens, shape)?;
        let mut exec = Executor::new(&mut self.backend, graph, ExecutorOptions::default())?;
        // Image-token ids are replaced by 0 for the embedding gather (their rows are dropped),
        // so an id beyond the vocabulary does no harm.
        let ids: Vec<i64> = tokens
            .iter()
            .map(|&id| if id == image_token { 0 } else { id as i64 })
            .collect();
        let positions: Vec<i64> = (self.cached..self.cached + t).map(|p| p as i64).collect();
        let inputs = [
            ("input_ids", Tensor::from_slice(&ids, [1, t])?),
            ("positions", Tensor::from_slice(&positions, [1, t])?),
            ("past_len", Tensor::from_slice(&[self.cached as i64], [1])?),
        ];
        for (name, tensor) in &inputs {
            exec.write_input(&mut self.backend, name, tensor)?;
        }
        Ok(exec)
    }

    /// Runs a prompt executor whose inputs are all written; its tokens join the cache.
    fn finish_prompt(&mut self, exec: &mut Executor<B>, tokens: usize) -> Result<(), ModelError> {
        exec.execute(&mut self.backend)?;
        self.cached += tokens;
        Ok(())
    }

    /// Runs the prompt (image tokens taking the rows of host `image_features`, any shape
    /// [.., H] with as many rows as the prompt has image tokens) after what is cached.
    fn run_prompt(
        &mut self,
        tokens: &[u32],
        image_features: Option<&Tensor>,
        logits: LogitsMode,
    ) -> Result<Executor<B>, ModelError> {
        let h = self.model.llm.config.hidden_size;
        let rows = match image_features {
            None => 0,
            Some(f) => {
                if f.dims().last() != Some(&h) {
                    return Err(ModelError::Invalid(format!(
                        "image features {:?} do not end in the LLM hidden size {h}",
                        f.dims()
                    )));
                }
                f.numel() / h
            }
        };
        let mut exec = self.prompt_executor(tokens, rows, logits)?;
        if let Some(f) = image_features.filter(|_| rows > 0) {
            let features = f.to_dtype(DType::F32)?.contiguous().reshape([1, rows, h])?;
            exec.write_input(&mut self.backend, IMAGE_FEATURES, &features)?;
        }
        self.finish_prompt(&mut exec, tokens.len())?;
        Ok(exec)
    }

    /// Encodes `pixel_values` (if any) and prefills `prompt` after what is cached, as
    /// `prefill` does with the features of `encode_images`, but the features go from the
    /// vision graph's output to the prefill graph's input on the backend and are never read
    /// back. Returns the last position's logits.
    pub fn prefill_images(
        &mut self,
        prompt: &[u32],
        pixel_values: Option<&Tensor>,
    ) -> Result<&[f32], ModelError> {
        self.prefill_images_timed(prompt, pixel_values)?;
        Ok(&self.logits)
    }

    /// `prefill_images`, timed: the vision runs apart from the prefill's own work.
    fn prefill_images_timed(
        &mut self,
        prompt: &[u32],
        pixel_values: Option<&Tensor>,
    ) -> Result<PromptTimes, ModelError> {
        let started = Instant::now();
        let images = match pixel_values {
            Some(pixels) => self.vision_runs(pixels)?.0,
            None => 0,
        };
        let (tokens, h) = self.feature_dims();
        let mut exec = self.prompt_executor(prompt, images * tokens, LogitsMode::Last)?;
        let compiled = started.elapsed();
        let vision_start = Instant::now();
        if let Some(pixels) = pixel_values.filter(|_| images * tokens > 0) {
            self.run_vision(pixels, |backend, vision, images| {
                let features = vision.operand(IMAGE_FEATURES)?;
                let at = images.start * tokens * h;
                Ok(exec.write_input_part_from(backend, IMAGE_FEATURES, at, &features)?)
            })?;
            // A GPU backend only queued the vision work: wait for it, so `vision` is the
            // device's time and not the host's launch time (which would move the rest of
            // the vision into the prefill's).
            self.backend.synchronize()?;
        }
        let vision = vision_start.elapsed();
        let run_start = Instant::now();
        self.finish_prompt(&mut exec, prompt.len())?;
        exec.read_into(
            &mut self.backend,
            "logits",
            bytemuck::cast_slice_mut(&mut self.logits),
        )?;
        Ok(PromptTimes {
            vision,
            prefill: compiled + run_start.elapsed(),
        })
    }

    /// Logits of every position ([1, T, V]) of the prompt after what is cached (`iris check`).
    pub fn forward_all(
        &mut self,
        tokens: &[u32],
        image_features: Option<&Tensor>,
    ) -> Result<Tensor, ModelError> {
        let exec = self.run_prompt(tokens, image_features, LogitsMode::All)?;
        Ok(exec.read(&mut self.backend, "logits")?)
    }

    /// Prefills the prompt after what is cached; returns the last position's logits.
    pub fn prefill(
        &mut self,
        tokens: &[u32],
        image_features: Option<&Tensor>,
    ) -> Result<&[f32], ModelError> {
        let exec = self.run_prompt(tokens, image_features, LogitsMode::Last)?;
        exec.read_into(
            &mut self.backend,
            "logits",
            bytemuck::cast_slice_mut(&mut self.logits),
        )?;
        Ok(&self.logits)
    }

    /// One decode step for a text `token`; returns the next logits. No allocation.
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

    /// One greedy decode step for a text `token`: returns the next token, read back alone.
    pub fn step_greedy(&mut self, token: u32) -> Result<u32, ModelError> {
        self.decode
            .step_greedy(&mut self.backend, token, &mut self.cached, self.max_context)
    }

    /// Forgets the cached sequence.
    pub fn reset(&mut self) {
        self.cached = 0;
    }

    /// Encodes `pixel_values` (if any) and prefills `prompt` (whose image tokens must number
    /// N x tokens_per_image) as `prefill_images` does, then generates, calling `on_token`
    /// with each new token; it returns false to stop.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        pixel_values: Option<&Tensor>,
        config: &GenerationConfig,
        on_token: impl FnMut(u32) -> bool,
    ) -> Result<MultimodalOutput, ModelError> {
        self.reset();
        let started = Instant::now();
        let times = self.prefill_images_timed(prompt, pixel_values)?;
        // Time to first token counts from the start of the prefill's own work: the vision
        // runs (between compiling the prefill graph and running it) are `vision`.
        let prefill_start = started.checked_add(times.vision).unwrap_or(started);
        let vocab_size = self.model.llm.config.vocab_size;
        let generation = sample_until_stop(
            self,
            config,
            vocab_size,
            prefill_start,
            times.prefill,
            on_token,
        )?;
        Ok(MultimodalOutput {
            generation,
            vision: times.vision,
        })
    }
}

impl<B: Backend> StepDecoder for MultimodalSession<B> {
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
