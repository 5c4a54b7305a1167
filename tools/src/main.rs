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
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
