//! The subcommands. Adding one: a file here with an `Args` struct (clap derive) and a
//! `run(Args) -> anyhow::Result<()>`, then a variant and a match arm below.

pub mod bench;
#[cfg(feature = "cuda")]
pub mod bench_cuda;
pub mod bench_e2e;
pub mod check;
pub mod convert;
pub mod device;
pub mod inspect;
pub mod kernels;
pub mod run;
pub mod run_multimodal;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// List the tensors (name, dtype, shape, bytes) of a .safetensors file or a Hugging Face
    /// folder, with totals, shard files and a summary of config.json.
    Inspect(inspect::Args),
    /// Convert a llama-architecture GGUF file to a Hugging Face folder (dequantized
    /// model.safetensors, config.json, tokenizer.json, tokenizer_config.json).
    Convert(convert::Args),
    /// Generate text from a prompt (chat template unless --raw), streamed to stdout;
    /// timings to stderr.
    Run(run::Args),
    /// Run a model on a reference file's inputs and compare its outputs (NMSE, max abs
    /// error, cosine); exit 1 on failure.
    Check(check::Args),
    /// Benchmarks: `iris bench kernels` times the CPU kernels at model shapes against this
    /// machine's probed FMA peak and read bandwidth (`--device cuda`: the CUDA kernels
    /// against the GPU's peak).
    Bench(bench::Args),
    /// List the CUDA PTX modules; `--dump-ptx DIR` writes each one to DIR/NAME.ptx.
    Kernels(kernels::Args),
}

impl Command {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Inspect(args) => inspect::run(args),
            Command::Convert(args) => convert::run(args),
            Command::Run(args) => run::run(args),
            Command::Check(args) => check::run(args),
            Command::Bench(args) => bench::run(args),
            Command::Kernels(args) => kernels::run(args),
        }
    }
}
