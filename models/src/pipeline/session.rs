//! Generation with images: the vision graph encodes `pixel_values` into image features, a
//! prefill graph built for the prompt puts them at the image-token positions, and the text
//! decode graph (the LLM's own, built once) produces the following tokens over the shared KV
//! cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use iris_runtime::backend::Backend;
use iris_runtime::graph::{Executor, ExecutorOptions, ReplayState};
use iris_runtime::Tensor;

use super::MultimodalModel;
use crate::error::ModelError;
use crate::generate::{
    sample_until_stop, DecodeGraph, GenerationConfig, GenerationOutput, StepDecoder,
};
use crate::llm::{KvCacheDtype, LogitsMode, PhaseShape};

/// What `generate` returns: the text generation and the time spent encoding images.
#[derive(Clone, Debug)]
pub struct MultimodalOutput {
    pub generation: GenerationOutput,
    pub vision: Duration,
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

    /// Encodes `pixel_values` f32 [N, C, S, S] (N images for LLaVA, the N tiles of one image
    /// for Idefics3) into image features f32 [N, tokens_per_image, H]: the projector /
    /// connector output, in the order the image tokens of the prompt take them.
    pub fn encode_images(&mut self, pixel_values: &Tensor) -> Result<Tensor, ModelError> {
        let dims = pixel_values.dims().to_vec();
        if dims.len() != 4 || dims[0] == 0 {
            return Err(ModelError::Invalid(format!(
                "pixel_values must be [N, C, H, W] with N > 0, got {dims:?}"
            )));
        }
        let pixels = pixel_values
            .to_dtype(iris_runtime::DType::F32)?
            .contiguous();
        let n = dims[0];
        let batch = self.model.vision_batch(n);
        if !n.is_multiple_of(batch) {
            return Err(ModelError::Invalid(format!(
                "{n} images do not split into vision runs of {batch}"
            )));
        }
        if self.vision.as_ref().map(|(b, _)| *b) != Some(batch) {
            let graph = self.model.build_vision_graph(batch)?;
            self.vision = Some((
                batch,
                Executor::new(&mut self.backend, graph, ExecutorOptions::default())?,
            ));
        }
        let (_, exec) = self.vision.as_mut().expect("compiled above");
        let (tokens, h) = (
            self.model.tokens_per_image(),
            self.model.llm.config.hidden_size,
        );
        let mut out = Vec::with_capacity(n * tokens * h);
        for start in (0..n).step_by(batch) {
            let chunk = pixels.narrow(0, start, batch)?.contiguous();
            exec.run(&mut self.backend, &[("pixel_values", &chunk)])?;
            out.extend(exec.read(&mut self.backend, "image_features")?.to_vec_f32());
        }
        Ok(Tensor::from_slice(&out, [n, tokens, h])?)
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

    /// Runs the prompt (image tokens taking the rows of `image_features`, any shape
    /// [.., H] with as many rows as the prompt has image tokens) after what is cached.
    fn run_prompt(
        &mut self,
        tokens: &[u32],
        image_features: Option<&Tensor>,
        logits: LogitsMode,
    ) -> Result<Executor<B>, ModelError> {
        self.check_fits(tokens.len())?;
        let image_token = self.model.image_token_id;
        let h = self.model.llm.config.hidden_size;
        let n_tokens = tokens.iter().filter(|&&t| t == image_token).count();
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
        let ids = Tensor::from_slice(&ids, [1, t])?;
        let positions = Tensor::from_slice(&positions, [1, t])?;
        let past = Tensor::from_slice(&[self.cached as i64], [1])?;
        let mut inputs = vec![
            ("input_ids", &ids),
            ("positions", &positions),
            ("past_len", &past),
        ];
        let features;
        if let Some(f) = image_features.filter(|_| rows > 0) {
            features = f
                .to_dtype(iris_runtime::DType::F32)?
                .contiguous()
                .reshape([1, rows, h])?;
            inputs.push(("image_features", &features));
        }
        exec.run(&mut self.backend, &inputs)?;
        self.cached += t;
        Ok(exec)
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

    /// Encodes `pixel_values` (if any), prefills `prompt` (whose image tokens must number
    /// N x tokens_per_image) and generates, calling `on_token` with each new token; it
    /// returns false to stop.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        pixel_values: Option<&Tensor>,
        config: &GenerationConfig,
        on_token: impl FnMut(u32) -> bool,
    ) -> Result<MultimodalOutput, ModelError> {
        self.reset();
        let start = Instant::now();
        let features = pixel_values.map(|p| self.encode_images(p)).transpose()?;
        let vision = start.elapsed();
        let prefill_start = Instant::now();
        self.prefill(prompt, features.as_ref())?;
        let prefill = prefill_start.elapsed();
        let vocab_size = self.model.llm.config.vocab_size;
        let generation =
            sample_until_stop(self, config, vocab_size, prefill_start, prefill, on_token)?;
        Ok(MultimodalOutput { generation, vision })
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
