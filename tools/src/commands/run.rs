//! `iris run --model DIR --prompt TEXT`: generates text, streaming it to stdout as it is
//! made; load time, TTFT and tokens/s go to stderr. `--json` prints one object with the
//! text, the token ids and the timings instead.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use iris_models::generate::{
    GenerationConfig, GenerationOutput, SamplingParams, StopReason, TextSession,
};
use iris_models::pipeline::PipelineKind;
use iris_models::text_model::TextModel;
use iris_models::tokenizer::{build_prompt_ids, ChatMessage, Prompt, TextTokenizer};

use super::device::{parse_dtype, with_backend, Device, KvCache};

#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face model folder (config.json, safetensors, tokenizer.json, ...).
    #[arg(long)]
    pub model: PathBuf,
    /// The user message (or, with --raw, the whole prompt text).
    #[arg(long)]
    pub prompt: String,
    /// A system message placed before the prompt (chat mode).
    #[arg(long)]
    pub system: Option<String>,
    /// Images for multimodal models.
    #[arg(long)]
    pub image: Vec<PathBuf>,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Keep the k most likely tokens when sampling (0: off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Nucleus sampling mass (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most tokens (prompt + generated) the KV cache holds (default: the model's
    /// max_position_embeddings, at most 4096).
    #[arg(long)]
    pub context: Option<usize>,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: Device,
    /// Weight precision: f32, bf16 or f16 (default: as stored).
    #[arg(long)]
    pub dtype: Option<String>,
    /// KV cache precision: f32 (exact, the default) or f16 (half the memory and the cache
    /// bytes each decode step reads; CPU only).
    #[arg(long, value_enum, default_value = "f32")]
    pub kv_cache: KvCache,
    /// Tokenize the prompt as given, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON object (text, tokens, timings) instead of streaming.
    #[arg(long)]
    pub json: bool,
    /// Keep generating past end-of-sequence tokens (for timing a fixed number of tokens).
    #[arg(long)]
    pub ignore_eos: bool,
}

impl Args {
    /// Generation settings from the options, stopping at `eos_token_ids`.
    pub(super) fn generation_config(&self, eos_token_ids: Vec<u32>) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: self.max_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                seed: self.seed,
            },
            eos_token_ids: if self.ignore_eos {
                Vec::new()
            } else {
                eos_token_ids
            },
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.temperature < 0.0 || !args.temperature.is_finite() {
        bail!("--temperature must be >= 0, got {}", args.temperature);
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1], got {}", args.top_p);
    }
    let dtype = parse_dtype(args.dtype.as_deref())?;
    let kv_cache = args.kv_cache.for_device(args.device)?;
    let architecture = iris_models::pipeline::architecture(&args.model)?;
    if PipelineKind::from_architecture(&architecture).is_some() {
        return super::run_multimodal::run(&args, dtype, kv_cache);
    }
    let start = Instant::now();
    let model = TextModel::load(&args.model, dtype)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let tokenizer = TextTokenizer::from_dir(&args.model)?;
    if !args.image.is_empty() {
        bail!(
            "{} is a text model ({}): it takes no --image",
            args.model.display(),
            model.model.config.architecture
        );
    }
    let load_ms = start.elapsed().as_secs_f64() * 1e3;

    let messages: Vec<ChatMessage> = args
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s.as_str()))
        .chain(std::iter::once(ChatMessage::new(
            "user",
            args.prompt.as_str(),
        )))
        .collect();
    let prompt = if args.raw {
        Prompt::Raw(&args.prompt)
    } else {
        Prompt::Chat {
            messages: &messages,
            add_generation_prompt: true,
        }
    };
    let prompt_ids = build_prompt_ids(&tokenizer, prompt)?;
    let config = &model.model.config;
    let context = args
        .context
        .unwrap_or(config.max_position_embeddings.min(4096));
    let generation = args.generation_config(model.eos_token_ids.clone());

    let mut stream = TokenStream::new(&tokenizer, args.json);
    // The session's setup (graph compilation, weight packing) counts as load.
    let setup_ms: f64;
    let output: GenerationOutput = with_backend!(args.device, |backend| {
        let setup = Instant::now();
        let mut session =
            TextSession::with_kv_cache(model.model.clone(), backend, context, kv_cache)?;
        setup_ms = setup.elapsed().as_secs_f64() * 1e3;
        session.generate(&prompt_ids, &generation, |token| stream.push(token))?
    });
    stream.finish(&output, prompt_ids.len(), load_ms + setup_ms, None)?;
    Ok(())
}

/// Streams generated text to stdout as tokens arrive (unless `--json`), then prints the
/// summary: timings to stderr, or the JSON object to stdout.
pub(super) struct TokenStream<'a> {
    tokenizer: &'a TextTokenizer,
    decoder: iris_models::tokenizer::StreamDecoder,
    json: bool,
    stdout: std::io::StdoutLock<'static>,
    error: Option<iris_models::tokenizer::TokenizerError>,
}

impl<'a> TokenStream<'a> {
    pub(super) fn new(tokenizer: &'a TextTokenizer, json: bool) -> Self {
        TokenStream {
            tokenizer,
            decoder: tokenizer.stream_decoder(true),
            json,
            stdout: std::io::stdout().lock(),
            error: None,
        }
    }

    /// Prints `token`'s text; false stops generation (closed stdout or a decoding error).
    pub(super) fn push(&mut self, token: u32) -> bool {
        if self.json {
            return true;
        }
        match self.decoder.step(token) {
            // A closed stdout (`| head`) ends generation quietly.
            Ok(piece) => self
                .stdout
                .write_all(piece.as_bytes())
                .and_then(|_| self.stdout.flush())
                .is_ok(),
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    pub(super) fn finish(
        mut self,
        output: &GenerationOutput,
        prompt_tokens: usize,
        load_ms: f64,
        vision_ms: Option<f64>,
    ) -> anyhow::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e.into());
        }
        let t = &output.timings;
        let prefill_tok_s = prompt_tokens as f64 / t.prefill.as_secs_f64().max(1e-9);
        if self.json {
            let doc = serde_json::json!({
                "text": self.tokenizer.decode(&output.tokens, true)?,
                "tokens": output.tokens,
                "prompt_tokens": prompt_tokens,
                "stop_reason": format!("{:?}", output.stop_reason).to_lowercase(),
                "timings": {
                    "load_ms": load_ms,
                    "vision_ms": vision_ms,
                    "prefill_ms": t.prefill.as_secs_f64() * 1e3,
                    "prefill_tok_s": prefill_tok_s,
                    "ttft_ms": t.time_to_first_token.as_secs_f64() * 1e3,
                    "decode_tok_s": t.decode_tokens_per_second(),
                },
            });
            println!("{doc}");
            return Ok(());
        }
        let tail = self.decoder.finish()?;
        writeln!(self.stdout, "{tail}").ok();
        let stop = match output.stop_reason {
            StopReason::Eos => "eos",
            StopReason::MaxTokens => "max tokens",
            StopReason::ContextFull => "context full",
            StopReason::Cancelled => "stopped",
        };
        let vision = vision_ms
            .map(|v| format!("vision {v:.0} ms | "))
            .unwrap_or_default();
        eprintln!(
            "load {load_ms:.0} ms | {vision}prompt {prompt_tokens} tokens, prefill {prefill_tok_s:.1} tok/s | TTFT {:.0} ms | {} new tokens, decode {:.1} tok/s | stop: {stop}",
            t.time_to_first_token.as_secs_f64() * 1e3,
            output.tokens.len(),
            t.decode_tokens_per_second(),
        );
        Ok(())
    }
}
