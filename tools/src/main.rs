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
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = iris_runtime::threads::init_threads(cli.threads) {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
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
