//! `iris bench kernels --device cuda [--json] [--runs N] [--filter TEXT]`: times each CUDA op
//! at model shapes through the CUDA backend's op dispatch (`Backend::execute`, so whatever
//! kernel the backend picks today), with CUDA events on the backend's stream
//! (`CudaBackend::time_on_stream`), and reports the median time, TFLOP/s, TB/s and % of the
//! device's peak for the resource that bounds the op: the larger of flops / peak FLOP/s and
//! bytes / peak bandwidth (a roofline), so a GEMV is judged on bandwidth and a GEMM on FLOPs.
//!
//! - Each case runs with bf16 activations where the backend has kernels for them, else with
//!   f32 activations (weights stay bf16); the `dtypes` column says which ran.
//! - Every buffer a call touches is rotated over `copies` independent sets, at least
//!   `ROTATE_BYTES` together (5x the H100's 50 MB L2), so each call reads from HBM as it
//!   would inside a model. Weights are rotated too (a decode GEMV streams its weight).
//! - Per case: one untimed call per set, a 3-call probe, then up to `--runs` timed calls
//!   within `BUDGET_S` of device time (at least `MIN_RUNS`); the median is reported.
//! - The cases and their `kernel` + `shape` keys match scripts/gpu/bench_kernels.py (the
//!   PyTorch side), whose `table` mode joins the two JSON files.

mod cases;
mod measure;

use anyhow::{bail, Context};
use iris_runtime::backend::cuda::CudaBackend;
use iris_runtime::Error;

use self::cases::{cases, Case};
use self::measure::{time_variant, Timing, ROTATE_BYTES};
use super::bench::KernelArgs;

/// Peak dense bf16 TFLOP/s and memory TB/s, from the flags or the device's name.
fn peaks(args: &KernelArgs, device: &str) -> (f64, f64, String) {
    let (tflops, tb_s, source) = if device.contains("H200") {
        (989.0, 4.8, "H200")
    } else if device.contains("H100") && device.contains("PCIe") {
        (756.0, 2.0, "H100 PCIe")
    } else if device.contains("H100") && device.contains("NVL") {
        (835.0, 3.9, "H100 NVL")
    } else if device.contains("H100") {
        (989.0, 3.35, "H100 SXM")
    } else {
        (989.0, 3.35, "unknown device: H100 SXM figures assumed")
    };
    let mut source = source.to_string();
    if args.peak_tflops.is_some() || args.peak_tb_s.is_some() {
        source = "given on the command line".into();
    }
    (
        args.peak_tflops.unwrap_or(tflops),
        args.peak_tb_s.unwrap_or(tb_s),
        source,
    )
}

enum Outcome {
    Timed(Timing),
    /// The backend has no kernel for any variant (Error::Unsupported): reported, not a failure.
    Unsupported(String),
    Failed(String),
}

pub fn run(args: &KernelArgs, runs: usize) -> anyhow::Result<()> {
    let selected: Vec<Case> = cases()
        .into_iter()
        .filter(|c| {
            let key = format!("{} {}", c.kernel, c.shape);
            args.filter
                .as_ref()
                .is_none_or(|f| key.contains(f.as_str()))
        })
        .collect();
    if selected.is_empty() {
        bail!(
            "--filter {:?} matches no kernel (keys are `kernel shape`, e.g. `matmul 1x4096x4096`)",
            args.filter.as_deref().unwrap_or("")
        );
    }
    let mut backend = CudaBackend::new(0).context("starting the CUDA backend on device 0")?;
    let device = backend.device_name().to_string();
    let (major, minor) = backend.compute_capability();
    let (peak_tflops, peak_tb_s, peak_source) = peaks(args, &device);
    if !args.json {
        println!(
            "{device} (compute capability {major}.{minor}); peaks {peak_tflops} TFLOP/s dense \
             bf16, {peak_tb_s} TB/s ({peak_source}); median of up to {runs} calls, CUDA events, \
             buffers rotated over >= {} MiB",
            ROTATE_BYTES >> 20
        );
        println!(
            "{:<17} {:<22} {:<13} {:>10} {:>8} {:>7} {:>12}",
            "kernel", "shape", "dtypes", "time us", "TFLOP/s", "TB/s", "% of peak"
        );
    }
    let mut rows = Vec::new();
    for case in &selected {
        let outcome = time_case(&mut backend, case, runs);
        if !args.json {
            print_row(case, &outcome, peak_tflops, peak_tb_s);
        }
        rows.push(outcome);
    }
    if args.json {
        let kernels: Vec<_> = selected
            .iter()
            .zip(&rows)
            .map(|(case, outcome)| row_json(case, outcome, peak_tflops, peak_tb_s))
            .collect();
        let out = serde_json::json!({
            "device": device,
            "compute_capability": format!("{major}.{minor}"),
            "peak_tflops": peak_tflops,
            "peak_tb_s": peak_tb_s,
            "peak_source": peak_source,
            "runs": runs,
            "rotate_bytes": ROTATE_BYTES,
            "timer": "cuda events on the backend's stream",
            "kernels": kernels,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    let failed: Vec<String> = selected
        .iter()
        .zip(&rows)
        .filter_map(|(case, outcome)| match outcome {
            Outcome::Failed(e) => Some(format!("{} {}: {e}", case.kernel, case.shape)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} kernel(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

fn print_row(case: &Case, outcome: &Outcome, peak_tflops: f64, peak_tb_s: f64) {
    let head = format!("{:<17} {:<22}", case.kernel, case.shape);
    match outcome {
        Outcome::Timed(t) => println!(
            "{head} {:<13} {:>10.1} {:>8.1} {:>7.3} {:>7.1} {}",
            t.dtypes,
            t.median_s * 1e6,
            t.tflops(),
            t.tb_s(),
            t.percent(peak_tflops, peak_tb_s),
            if t.bound(peak_tflops, peak_tb_s) == "compute" {
                "flops"
            } else {
                "bw"
            }
        ),
        Outcome::Unsupported(why) => println!("{head} unsupported: {why}"),
        Outcome::Failed(why) => println!("{head} FAILED: {why}"),
    }
}

fn row_json(case: &Case, outcome: &Outcome, peak_tflops: f64, peak_tb_s: f64) -> serde_json::Value {
    let mut row = serde_json::json!({ "kernel": case.kernel, "shape": case.shape });
    let extra = match outcome {
        Outcome::Timed(t) => serde_json::json!({
            "dtypes": t.dtypes,
            "median_us": t.median_s * 1e6,
            "min_us": t.min_s * 1e6,
            "runs": t.runs,
            "copies": t.copies,
            "flops": t.flops,
            "bytes": t.bytes,
            "tflop_s": t.tflops(),
            "tb_s": t.tb_s(),
            "bound": t.bound(peak_tflops, peak_tb_s),
            "percent_of_peak": t.percent(peak_tflops, peak_tb_s),
        }),
        Outcome::Unsupported(why) => serde_json::json!({ "unsupported": why }),
        Outcome::Failed(why) => serde_json::json!({ "error": why }),
    };
    if let (Some(row), Some(extra)) = (row.as_object_mut(), extra.as_object()) {
        row.extend(extra.clone());
    }
    row
}

/// The first variant the backend supports, timed; or why none ran.
fn time_case(backend: &mut CudaBackend, case: &Case, runs: usize) -> Outcome {
    let mut unsupported = Vec::new();
    for variant in &case.variants {
        match time_variant(backend, variant, runs) {
            Ok(timing) => return Outcome::Timed(timing),
            Err(Error::Unsupported { what, .. }) => {
                unsupported.push(format!("{}: {what}", variant.dtypes))
            }
            Err(err) => return Outcome::Failed(format!("{} ({})", err, variant.dtypes)),
        }
    }
    Outcome::Unsupported(unsupported.join("; "))
}
