//! `iris`: the command-line tool. Argument parsing lives here; each subcommand is a file in
//! `commands/`. Errors go to stderr with their causes, and the exit code is 1.

mod commands;

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "iris",
    version,
    about = "A tensor runtime for multimodal models"
)]
struct Cli {
    /// CPU threads for the kernels (default: IRIS_THREADS, else one per CPU)
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// How the CPU computes GEMMs over bf16 weights: f32 (exact, the default) or bf16
    /// (activations rounded to bf16, AVX512-BF16 dot products, about twice as fast for
    /// prefill and vision). Default: IRIS_BF16_DOT=1 means bf16, else f32
    #[arg(long, global = true, value_enum)]
    cpu_compute: Option<CpuCompute>,
    #[command(subcommand)]
    command: commands::Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CpuCompute {
    F32,
    Bf16,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = iris_runtime::threads::init_threads(cli.threads) {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    if let Some(compute) = cli.cpu_compute {
        let bf16 = matches!(compute, CpuCompute::Bf16);
        if let Err(err) = iris_runtime::backend::cpu::bf16_dot::choose(bf16) {
            eprintln!("error: --cpu-compute: {err}");
            return ExitCode::FAILURE;
        }
    }
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}
