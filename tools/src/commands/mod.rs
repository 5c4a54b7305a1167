//! The subcommands. Adding one: a file here with an `Args` struct (clap derive) and a
//! `run(Args) -> anyhow::Result<()>`, then a variant and a match arm below.

pub mod inspect;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// List the tensors (name, dtype, shape, bytes) of a .safetensors file or a Hugging Face
    /// folder, with totals, shard files and a summary of config.json.
    Inspect(inspect::Args),
}

impl Command {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Inspect(args) => inspect::run(args),
        }
    }
}
