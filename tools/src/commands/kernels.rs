//! `iris kernels --dump-ptx DIR`: writes every PTX module the CUDA backend can load, one
//! `NAME.ptx` file each, so they can be assembled offline (`ptxas`) or inspected. Needs no
//! GPU and no CUDA at run time, but a binary built with the `cuda` feature (the modules
//! come from the CUDA backend). Without `--dump-ptx` it lists the modules and their kernels.

use std::path::PathBuf;

#[cfg(feature = "cuda")]
use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Folder to write `NAME.ptx` files into (created if missing).
    #[arg(long = "dump-ptx", value_name = "DIR")]
    pub dump_ptx: Option<PathBuf>,
}

#[cfg(not(feature = "cuda"))]
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("this iris was built without the `cuda` feature: it holds no PTX modules")
}

#[cfg(feature = "cuda")]
pub fn run(args: Args) -> anyhow::Result<()> {
    let modules = iris_runtime::backend::cuda::MODULES;
    let Some(dir) = args.dump_ptx else {
        for module in modules {
            println!("{:<24} {}", module.name, module.kernels.join(", "));
        }
        return Ok(());
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for module in modules {
        let path = dir.join(format!("{}.ptx", module.name));
        std::fs::write(&path, module.source)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("wrote {} PTX modules to {}", modules.len(), dir.display());
    Ok(())
}
