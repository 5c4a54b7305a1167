//! `iris bench kernels [--json]`: probes this machine's FMA peak and read bandwidth, then
//! times each CPU kernel at model shapes (median of N runs) and prints kernel, shape, time,
//! GFLOP/s, GB/s and % of the relevant peak. The measuring code lives in
//! `iris_kernels::cpu::bench`; this file parses arguments and prints.
//! `iris bench e2e` (end-to-end generation timing) lives in `bench_e2e.rs`, and
//! `iris bench kernels --device cuda` (the CUDA backend's kernels) in `bench_cuda/`.

use anyhow::bail;
use iris_runtime::backend::cpu::bench::{self, Bound};
use iris_runtime::backend::cpu::Isa;

use super::device::Device;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand)]
pub enum What {
    /// CPU kernels at model shapes, with % of the probed peak; `--device cuda`: the CUDA
    /// backend's kernels, with % of the GPU's peak.
    Kernels(KernelArgs),
    /// End-to-end generation: load time, vision, prefill tok/s, TTFT, decode tok/s and
    /// per-step p50/p99 for a synthetic prompt of --prompt-tokens ids.
    E2e(super::bench_e2e::E2eArgs),
}

#[derive(clap::Args)]
pub struct KernelArgs {
    /// cpu: this machine's SIMD kernels; cuda: the CUDA backend's kernels on device 0, timed
    /// with CUDA events (needs an iris built with `--features cuda`).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: Device,
    /// ISA level (scalar, avx2, avx512); default: the detected one (or IRIS_ISA).
    #[arg(long)]
    pub isa: Option<String>,
    /// Timed runs per kernel, the median is reported (default: 7 on cpu, 30 on cuda).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: Option<u64>,
    /// Size of the bandwidth probe's buffer in MiB.
    #[arg(long, default_value_t = 512)]
    pub bandwidth_mb: usize,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// cuda only: time just the kernels whose `kernel shape` contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// cuda only: peak dense bf16 TFLOP/s for % of peak (default: by device name, H100 989).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// cuda only: peak memory bandwidth in TB/s (default: by device name, H100 3.35).
    #[arg(long)]
    pub peak_tb_s: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Kernels(a) => kernels(a),
        What::E2e(a) => super::bench_e2e::run(a),
    }
}

fn kernels(args: KernelArgs) -> anyhow::Result<()> {
    if args.device == Device::Cuda {
        if args.isa.is_some() {
            bail!("--isa picks a CPU kernel set; it does not apply to --device cuda");
        }
        #[cfg(feature = "cuda")]
        return super::bench_cuda::run(&args, args.runs.unwrap_or(30) as usize);
        #[cfg(not(feature = "cuda"))]
        bail!(
            "this iris was built without CUDA support: rebuild with `--features cuda` to time \
             the CUDA kernels"
        );
    }
    if args.filter.is_some() || args.peak_tflops.is_some() || args.peak_tb_s.is_some() {
        bail!("--filter, --peak-tflops and --peak-tb-s apply to --device cuda only");
    }
    let runs = args.runs.unwrap_or(7) as usize;
    let isa = match &args.isa {
        Some(s) => Isa::parse(s)?,
        None => iris_runtime::backend::cpu::CpuBackend::new().kernels_isa(),
    };
    if !isa.is_supported() {
        bail!(
            "ISA level {isa} is not supported by this CPU (supported: {:?})",
            Isa::available()
        );
    }
    let peaks = bench::probe(isa, args.bandwidth_mb);
    let rows = bench::suite(isa, runs);
    if args.json {
        let kernels: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "kernel": r.kernel,
                    "shape": r.shape,
                    "median_ms": r.median_s * 1e3,
                    "gflop_s": r.gflops(),
                    "gb_s": r.gb_s(),
                    "bound": if r.bound == Bound::Compute { "compute" } else { "memory" },
                    "percent_of_peak": r.percent_of_peak(&peaks),
                })
            })
            .collect();
        let out = serde_json::json!({
            "isa": isa.name(),
            "threads": peaks.threads,
            "peak_gflop_s_per_core": peaks.gflops_per_core,
            "peak_gflop_s": peaks.gflops,
            "read_gb_s": peaks.read_gb_s,
            "kernels": kernels,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "isa {isa}, {} threads: FMA peak {:.1} GFLOP/s per core, {:.1} GFLOP/s all threads; read bandwidth {:.1} GB/s",
        peaks.threads, peaks.gflops_per_core, peaks.gflops, peaks.read_gb_s
    );
    println!(
        "{:<18} {:<24} {:>10} {:>10} {:>8} {:>12}",
        "kernel", "shape", "time ms", "GFLOP/s", "GB/s", "% of peak"
    );
    for r in &rows {
        let which = if r.bound == Bound::Compute {
            "flops"
        } else {
            "bw"
        };
        println!(
            "{:<18} {:<24} {:>10.3} {:>10.1} {:>8.1} {:>8.1} {which}",
            r.kernel,
            r.shape,
            r.median_s * 1e3,
            r.gflops(),
            r.gb_s(),
            r.percent_of_peak(&peaks)
        );
    }
    Ok(())
}
