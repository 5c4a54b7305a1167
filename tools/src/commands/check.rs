//! `iris check --model DIR --reference REF.safetensors`: runs the model on the reference's
//! inputs and compares each expected output (NMSE, max abs error, cosine, pass/fail).
//! Text models and LLaVA / Idefics3 pipelines (then `pixel_values` in, `image_features` and
//! `logits` compared). Needs only the weights and config.json. Exit code 1 when any output fails.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use iris_models::check::{CheckOptions, Comparison};
use iris_models::check_multimodal::check_model;

use super::device::{parse_dtype, with_backend, Device, KvCache};

#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face model folder (config.json + safetensors weights).
    #[arg(long)]
    pub model: PathBuf,
    /// Safetensors file with `input_ids` and the expected `logits`.
    #[arg(long)]
    pub reference: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: Device,
    /// Weight precision: f32, bf16 or f16 (default: as stored).
    #[arg(long)]
    pub dtype: Option<String>,
    /// NMSE bound (default 1e-6 for f32 weights, 1e-3 for half precision).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// KV cache precision: f32 (exact, the default) or f16, to see how far its rounding
    /// moves the outputs (CPU only).
    #[arg(long, value_enum, default_value = "f32")]
    pub kv_cache: KvCache,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dtype = parse_dtype(args.dtype.as_deref())?;
    let options = CheckOptions {
        threshold: args.threshold,
        kv_cache: args.kv_cache.for_device(args.device)?,
    };
    let start = Instant::now();
    let report: Vec<Comparison> = with_backend!(args.device, |backend| check_model(
        &args.model,
        backend,
        &args.reference,
        dtype,
        options
    )
    .with_context(|| format!(
        "checking {} against {}",
        args.model.display(),
        args.reference.display()
    ))?);
    let run_ms = start.elapsed().as_secs_f64() * 1e3;
    let passed = report.iter().all(|c| c.passed);
    if args.json {
        let outputs: Vec<_> = report
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name, "nmse": c.nmse, "max_abs_error": c.max_abs_error,
                    "cosine": c.cosine, "threshold": c.threshold, "passed": c.passed,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "model": args.model, "reference": args.reference,
            "outputs": outputs, "passed": passed, "run_ms": run_ms,
        });
        println!("{doc}");
    } else {
        println!(
            "{:<16} {:>12} {:>14} {:>14} {:>10}  result",
            "output", "nmse", "max abs err", "cosine", "bound"
        );
        for c in &report {
            println!(
                "{:<16} {:>12.3e} {:>14.3e} {:>14.9} {:>10.0e}  {}",
                c.name,
                c.nmse,
                c.max_abs_error,
                c.cosine,
                c.threshold,
                if c.passed { "pass" } else { "FAIL" }
            );
        }
        eprintln!("load + run {run_ms:.0} ms");
    }
    if !passed {
        bail!(
            "check failed: {}",
            report
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
