//! `iris bench e2e --model DIR`: end-to-end generation timing. Loads the model once, then
//! generates `--gen-tokens` tokens greedily (end-of-sequence ignored) after a prompt of
//! exactly `--prompt-tokens` ids, `--warmup` uncounted runs then `--runs` counted ones, each
//! from an empty KV cache, and reports medians over the counted runs.
//!
//! The prompt is synthetic: ordinary ids of the vocabulary (special, end-of-sequence and
//! image ids left out) in a fixed order, so runs and machines see the same tokens. With
//! `--image` (multimodal models), the prompt starts with the images' tokens expanded as
//! `iris run --raw` does, and text ids fill it up to the count.
//!
//! On CUDA the decode step is a replayed CUDA graph after its first two steps (recorded in
//! the warm-up run); `decode_graph` says whether it was (`replayed`), or why not (`off` on the
//! CPU or with IRIS_CUDA_GRAPH=0, `failed: ...`). `tokens` (JSON) are the last run's ids, to
//! compare devices and paths. `ttft_ms` runs from the start of prefill: with an image, time
//! to first token from the image is `vision_ms + ttft_ms`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use iris_models::generate::{GenerationConfig, GenerationOutput, SamplingParams, TextSession};
use iris_models::image::{load_image, preprocess, PreprocessorConfig};
use iris_models::pipeline::prompt::{multimodal_prompt_ids, MultimodalPrompt};
use iris_models::pipeline::{MultimodalModel, MultimodalSession, PipelineKind};
use iris_models::text_model::TextModel;
use iris_models::tokenizer::TextTokenizer;
use iris_runtime::graph::ReplayState;

use super::device::{parse_dtype, with_backend, Device, KvCache};

#[derive(clap::Args)]
pub struct E2eArgs {
    /// Hugging Face model folder (config.json, safetensors, tokenizer.json, ...).
    #[arg(long)]
    pub model: PathBuf,
    /// Images for multimodal models (their tokens count toward --prompt-tokens).
    #[arg(long)]
    pub image: Vec<PathBuf>,
    /// Prompt length in tokens (image tokens included).
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// Tokens generated per run (the first comes from prefill, the rest are decode steps).
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: Device,
    /// Weight precision: f32, bf16 or f16 (default: as stored).
    #[arg(long)]
    pub dtype: Option<String>,
    /// KV cache precision: f32 (exact, the default) or f16 (CPU only; llama.cpp's default).
    #[arg(long, value_enum, default_value = "f32")]
    pub kv_cache: KvCache,
    /// Counted runs (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Uncounted runs before the counted ones (graph compilation, caches, clocks).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One run's measurements.
struct RunTimes {
    vision: Option<Duration>,
    output: GenerationOutput,
}

/// The loaded model, either kind.
enum Loaded {
    Text(TextModel),
    Multimodal(Arc<MultimodalModel>),
}

pub fn run(args: E2eArgs) -> anyhow::Result<()> {
    if args.prompt_tokens == 0 {
        bail!("--prompt-tokens must be at least 1");
    }
    if args.gen_tokens == 0 {
        bail!("--gen-tokens must be at least 1");
    }
    let kv_cache = args.kv_cache.for_device(args.device)?;
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let dtype = parse_dtype(args.dtype.as_deref())?;
    let architecture = iris_models::pipeline::architecture(&args.model)?;
    let multimodal = PipelineKind::from_architecture(&architecture).is_some();

    let start = Instant::now();
    let loaded = if multimodal {
        Loaded::Multimodal(Arc::new(
            MultimodalModel::load(&args.model, dtype)
                .with_context(|| format!("loading {}", args.model.display()))?,
        ))
    } else {
        Loaded::Text(
            TextModel::load(&args.model, dtype)
                .with_context(|| format!("loading {}", args.model.display()))?,
        )
    };
    // Only needed for images and to know the special ids; tiny test folders have none.
    let tokenizer =
        if args.model.join("tokenizer.json").exists() || (multimodal && !args.image.is_empty()) {
            Some(TextTokenizer::from_dir(&args.model)?)
        } else {
            None
        };
    let load_ms = start.elapsed().as_secs_f64() * 1e3;

    let (llm_config, eos, weight_dtype, image_id) = match &loaded {
        Loaded::Text(m) => (&m.model.config, &m.eos_token_ids, m.weight_dtype, None),
        Loaded::Multimodal(m) => (
            &m.llm.config,
            &m.eos_token_ids,
            m.weight_dtype,
            Some(m.image_token_id),
        ),
    };
    let max_positions = llm_config.max_position_embeddings;
    let total = args.prompt_tokens + args.gen_tokens;
    if total > max_positions {
        bail!(
            "--prompt-tokens {} + --gen-tokens {} = {total} exceeds the model's context of {max_positions} tokens (max_position_embeddings)",
            args.prompt_tokens,
            args.gen_tokens
        );
    }
    let vocab = llm_config.vocab_size;
    let filler = ordinary_ids(
        tokenizer.as_ref(),
        vocab,
        &llm_config.bos_token_id,
        eos,
        image_id,
    )?;

    // Image tokens first (multimodal with --image), then text ids up to the count.
    let (mut prompt_ids, pixel_values) = match &loaded {
        Loaded::Text(_) => {
            if !args.image.is_empty() {
                bail!(
                    "{} is a text model ({architecture}): it takes no --image",
                    args.model.display()
                );
            }
            (Vec::new(), None)
        }
        Loaded::Multimodal(model) if !args.image.is_empty() => {
            let processor =
                PreprocessorConfig::from_file(args.model.join("preprocessor_config.json"))?;
            let images = args
                .image
                .iter()
                .map(load_image)
                .collect::<Result<Vec<_>, _>>()?;
            let processed = preprocess(&processor, &images)?;
            let tokenizer = tokenizer.as_ref().expect("loaded when there are images");
            let marker = tokenizer
                .id_to_token(model.image_token_id)
                .with_context(|| {
                    format!(
                        "the tokenizer has no token for image id {}",
                        model.image_token_id
                    )
                })?;
            let raw = marker.repeat(args.image.len());
            let ids = multimodal_prompt_ids(
                model,
                tokenizer,
                Some(&processed),
                MultimodalPrompt::Raw(&raw),
            )?;
            (ids, Some(processed.pixel_values))
        }
        Loaded::Multimodal(_) => (Vec::new(), None),
    };
    if prompt_ids.len() > args.prompt_tokens {
        bail!(
            "the images take {} prompt tokens, more than --prompt-tokens {}",
            prompt_ids.len(),
            args.prompt_tokens
        );
    }
    let fill = args.prompt_tokens - prompt_ids.len();
    prompt_ids.extend((0..fill).map(|i| filler[(i * 7919) % filler.len()]));

    let generation = GenerationConfig {
        max_new_tokens: args.gen_tokens,
        sampling: SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        },
        eos_token_ids: Vec::new(),
    };
    // The KV cache holds exactly what a run needs.
    let context = total;
    let all_runs = args.warmup + args.runs;
    let mut results: Vec<RunTimes> = Vec::with_capacity(all_runs);
    let replay: ReplayState;
    // The session's setup (graph compilation, weight packing) counts as load.
    let mut load_ms = load_ms;
    match &loaded {
        Loaded::Text(model) => with_backend!(args.device, |backend| {
            let setup = Instant::now();
            let mut session =
                TextSession::with_kv_cache(model.model.clone(), backend, context, kv_cache)?;
            load_ms += setup.elapsed().as_secs_f64() * 1e3;
            for _ in 0..all_runs {
                session.reset();
                let output = session.generate(&prompt_ids, &generation, |_| true)?;
                results.push(RunTimes {
                    vision: None,
                    output,
                });
            }
            replay = session.decode_replay_state().clone();
        }),
        Loaded::Multimodal(model) => with_backend!(args.device, |backend| {
            let setup = Instant::now();
            let mut session =
                MultimodalSession::with_kv_cache(model.clone(), backend, context, kv_cache)?;
            load_ms += setup.elapsed().as_secs_f64() * 1e3;
            for _ in 0..all_runs {
                let out =
                    session.generate(&prompt_ids, pixel_values.as_ref(), &generation, |_| true)?;
                results.push(RunTimes {
                    vision: pixel_values.as_ref().map(|_| out.vision),
                    output: out.generation,
                });
            }
            replay = session.decode_replay_state().clone();
        }),
    }
    for r in &results {
        if r.output.tokens.len() != args.gen_tokens {
            bail!(
                "a run generated {} tokens instead of {} (stop: {:?})",
                r.output.tokens.len(),
                args.gen_tokens,
                r.output.stop_reason
            );
        }
    }
    let counted = &results[args.warmup..];

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let vision_ms = if pixel_values.is_some() {
        Some(median(
            counted.iter().filter_map(|r| r.vision.map(ms)).collect(),
        ))
    } else {
        None
    };
    let prefill_tok_s = median(
        counted
            .iter()
            .map(|r| args.prompt_tokens as f64 / r.output.timings.prefill.as_secs_f64().max(1e-9))
            .collect(),
    );
    let ttft_ms = median(
        counted
            .iter()
            .map(|r| ms(r.output.timings.time_to_first_token))
            .collect(),
    );
    // Per run: decode steps / their total time (null with --gen-tokens 1: no decode step).
    let decode_tok_s = if args.gen_tokens > 1 {
        Some(median(
            counted
                .iter()
                .map(|r| r.output.timings.decode_tokens_per_second())
                .collect(),
        ))
    } else {
        None
    };
    let mut steps: Vec<f64> = counted
        .iter()
        .flat_map(|r| r.output.timings.decode_steps.iter().copied().map(ms))
        .collect();
    steps.sort_by(f64::total_cmp);
    let decode_p50_ms = percentile(&steps, 50.0);
    let decode_p99_ms = percentile(&steps, 99.0);
    let threads = threads();
    let device = match args.device {
        Device::Cpu => "cpu",
        Device::Cuda => "cuda",
    };
    let dtype_name = weight_dtype.to_string();
    let decode_graph = replay_label(&replay);
    let last_tokens = &results.last().expect("at least one run").output.tokens;

    if args.json {
        let doc = serde_json::json!({
            "model": args.model.file_name().map(|n| n.to_string_lossy().into_owned()),
            "device": device,
            "dtype": dtype_name,
            "kv_cache": args.kv_cache.name(),
            "threads": threads,
            "prompt_tokens": args.prompt_tokens,
            "gen_tokens": args.gen_tokens,
            "images": args.image.len(),
            "runs": args.runs,
            "warmup_runs": args.warmup,
            "load_ms": load_ms,
            "vision_ms": vision_ms,
            "prefill_tok_s": prefill_tok_s,
            "ttft_ms": ttft_ms,
            "decode_tok_s": decode_tok_s,
            "decode_p50_ms": decode_p50_ms,
            "decode_p99_ms": decode_p99_ms,
            "decode_graph": decode_graph,
            "tokens": last_tokens,
        });
        println!("{doc}");
        return Ok(());
    }
    let opt = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "-".to_string(),
    };
    println!(
        "{} on {device}, {dtype_name} weights, {} KV cache, {threads} threads: prompt {} tokens ({} images), {} new tokens; median of {} runs after {} warm-up",
        args.model.display(),
        args.kv_cache.name(),
        args.prompt_tokens,
        args.image.len(),
        args.gen_tokens,
        args.runs,
        args.warmup
    );
    let rows = [
        ("load", format!("{load_ms:.1}"), "ms"),
        ("vision", opt(vision_ms, 1), "ms"),
        ("prefill", format!("{prefill_tok_s:.1}"), "tok/s"),
        ("TTFT", format!("{ttft_ms:.1}"), "ms"),
        ("decode", opt(decode_tok_s, 1), "tok/s"),
        ("decode step p50", opt(decode_p50_ms, 3), "ms"),
        ("decode step p99", opt(decode_p99_ms, 3), "ms"),
    ];
    for (name, value, unit) in rows {
        println!("{name:<16} {value:>12} {unit}");
    }
    println!("{:<16} {decode_graph}", "decode graph");
    Ok(())
}

/// How the decode steps ran: `replayed` (a recorded CUDA graph), `off` (op by op: the CPU,
/// or IRIS_CUDA_GRAPH=0), `not recorded` (too few steps), or `failed: <why>` (op by op).
fn replay_label(state: &ReplayState) -> String {
    match state {
        ReplayState::Recorded => "replayed".into(),
        ReplayState::Unavailable => "off".into(),
        ReplayState::NotRecorded => "not recorded".into(),
        ReplayState::Failed(why) => format!("failed: {why}"),
    }
}

/// Ids below `vocab` that are not BOS, end-of-sequence, image or special tokens, nor added
/// tokens past the base vocabulary (the last two when the folder has a tokenizer).
fn ordinary_ids(
    tokenizer: Option<&TextTokenizer>,
    vocab: usize,
    bos: &[u32],
    eos: &[u32],
    image: Option<u32>,
) -> anyhow::Result<Vec<u32>> {
    let mut excluded: Vec<u32> = bos.iter().chain(eos).copied().chain(image).collect();
    let mut limit = vocab;
    if let Some(tokenizer) = tokenizer {
        excluded.extend(
            tokenizer
                .special_tokens()
                .iter()
                .filter_map(|(_, t)| tokenizer.token_to_id(t)),
        );
        limit = limit.min(tokenizer.base_vocab_size());
    }
    excluded.sort_unstable();
    let ids: Vec<u32> = (0..limit as u32)
        .filter(|id| excluded.binary_search(id).is_err())
        .collect();
    if ids.is_empty() {
        bail!("the vocabulary has no ordinary token ids to build a prompt from");
    }
    Ok(ids)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile of sorted values (None when empty).
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The CPU worker threads: RAYON_NUM_THREADS when set to a positive number (as the thread
/// pool reads it), else the available parallelism.
fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}
