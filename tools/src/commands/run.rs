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
use iris_models::text_model::TextModel;
use iris_models::tokenizer::{build_prompt_ids, ChatMessage, Prompt, TextTokenizer};

use super::device::{parse_dtype, with_backend, Device};

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
    /// Tokenize the prompt as given, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON object (text, tokens, timings) instead of streaming.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.temperature < 0.0 || !args.temperature.is_finite() {
        bail!("--temperature must be >= 0, got {}", args.temperature);
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1], got {}", args.top_p);
    }
    let dtype = parse_dtype(args.dtype.as_deref())?;
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
    let generation = GenerationConfig {
        max_new_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
        eos_token_ids: model.eos_token_ids.clone(),
    };

    let mut decoder = tokenizer.stream_decoder(true);
    let mut stdout = std::io::stdout().lock();
    let mut stream_error = None;
    let output: GenerationOutput = with_backend!(args.device, |backend| {
        let mut session = TextSession::new(model.model.clone(), backend, context)?;
        session.generate(&prompt_ids, &generation, |token| {
            if args.json {
                return true;
            }
            match decoder.step(token) {
                Ok(piece) => {
                    // A closed stdout (`| head`) ends generation quietly.
                    stdout
                        .write_all(piece.as_bytes())
                        .and_then(|_| stdout.flush())
                        .is_ok()
                }
                Err(e) => {
                    stream_error = Some(e);
                    false
                }
            }
        })?
    });
    if let Some(e) = stream_error {
        return Err(e.into());
    }

    let t = &output.timings;
    let prefill_tok_s = prompt_ids.len() as f64 / t.prefill.as_secs_f64().max(1e-9);
    let text = tokenizer.decode(&output.tokens, true)?;
    if args.json {
        let doc = serde_json::json!({
            "text": text,
            "tokens": output.tokens,
            "prompt_tokens": prompt_ids.len(),
            "stop_reason": format!("{:?}", output.stop_reason).to_lowercase(),
            "timings": {
                "load_ms": load_ms,
                "prefill_ms": t.prefill.as_secs_f64() * 1e3,
                "prefill_tok_s": prefill_tok_s,
                "ttft_ms": t.time_to_first_token.as_secs_f64() * 1e3,
                "decode_tok_s": t.decode_tokens_per_second(),
            },
        });
        println!("{doc}");
    } else {
        let tail = decoder.finish()?;
        writeln!(stdout, "{tail}").ok();
        let stop = match output.stop_reason {
            StopReason::Eos => "eos",
            StopReason::MaxTokens => "max tokens",
            StopReason::ContextFull => "context full",
            StopReason::Cancelled => "stopped",
        };
        eprintln!(
            "load {load_ms:.0} ms | prompt {} tokens, prefill {:.1} tok/s | TTFT {:.0} ms | {} new tokens, decode {:.1} tok/s | stop: {stop}",
            prompt_ids.len(),
            prefill_tok_s,
            t.time_to_first_token.as_secs_f64() * 1e3,
            output.tokens.len(),
            t.decode_tokens_per_second(),
        );
    }
    Ok(())
}
