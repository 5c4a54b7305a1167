//! `iris convert --gguf FILE --out DIR [--dtype f32|bf16] [--force]`: a llama-architecture
//! GGUF file to a Hugging Face folder (dequantized `model.safetensors`, `config.json`,
//! `generation_config.json`, `tokenizer.json`, `tokenizer_config.json` with the chat
//! template). The numbers match transformers' own GGUF loader bit for bit in f32. Prints a
//! summary: tensors converted by source type, output files and bytes, time.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use iris_models::gguf::{convert_gguf, ConvertOptions, ConvertSummary, OutDType};

#[derive(clap::Args)]
pub struct Args {
    /// The GGUF file (llama architecture; F32, F16, BF16, Q8_0, Q4_0, Q4_1 tensors).
    #[arg(long)]
    pub gguf: PathBuf,
    /// The output folder (created; must be empty unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Dtype of the written weights.
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16"])]
    pub dtype: String,
    /// Write into a non-empty output folder, replacing the converter's files there.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = ConvertOptions {
        dtype: args.dtype.parse::<OutDType>().map_err(anyhow::Error::msg)?,
        force: args.force,
    };
    let start = Instant::now();
    let summary = convert_gguf(&args.gguf, &args.out, &options)?;
    let seconds = start.elapsed().as_secs_f64();
    print!("{}", render(&args, &summary, seconds));
    Ok(())
}

fn render(args: &Args, s: &ConvertSummary, seconds: f64) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_summary(&mut out, args, s, seconds);
    out
}

fn write_summary(
    out: &mut String,
    args: &Args,
    s: &ConvertSummary,
    seconds: f64,
) -> std::fmt::Result {
    writeln!(
        out,
        "converted {} -> {}",
        args.gguf.display(),
        args.out.display()
    )?;
    writeln!(
        out,
        "model: {} ({}), {} layers, hidden {}, vocab {}, tied embeddings: {}",
        s.model_name.as_deref().unwrap_or("unnamed"),
        s.architecture,
        s.layers,
        s.hidden_size,
        s.vocab_size,
        s.tie_word_embeddings
    )?;
    let types: Vec<String> = s
        .source_types
        .iter()
        .map(|(ty, n)| format!("{ty} {n}"))
        .collect();
    writeln!(
        out,
        "tensors: {} ({}) -> {}, {} parameters",
        s.tensors,
        types.join(", "),
        s.dtype.torch_name(),
        s.parameters
    )?;
    for (name, why) in &s.skipped {
        writeln!(out, "skipped: {name}: {why}")?;
    }
    writeln!(
        out,
        "tokenizer: byte-level BPE, {} tokens, {} added, pre-tokenizer {}",
        s.tokenizer_vocab,
        s.tokenizer_added,
        s.tokenizer_pre.as_deref().unwrap_or("(none)")
    )?;
    writeln!(out, "files:")?;
    for (name, bytes) in &s.files {
        writeln!(out, "  {name:<24} {:>12}", human_bytes(*bytes))?;
    }
    writeln!(
        out,
        "total: {} bytes ({}) in {seconds:.2} s",
        s.output_bytes(),
        human_bytes(s.output_bytes())
    )
}

/// `1536` -> `1.50 KiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}
