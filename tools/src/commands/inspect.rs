//! `iris inspect PATH`: what a checkpoint holds. PATH is a `.safetensors` file, a shard index,
//! or a Hugging Face folder (`model.safetensors` or `model.safetensors.index.json`, plus
//! `config.json`). Prints the files, a table of tensors, totals per dtype and, for a folder,
//! a summary of `config.json`. Everything is validated before anything is printed, so a
//! malformed input gives only its error (stderr, exit 1).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use iris_models::ConfigSummary;
use iris_runtime::safetensors::{FileDType, WeightStore};

#[derive(clap::Args)]
pub struct Args {
    /// A .safetensors file, a model.safetensors.index.json, or a Hugging Face model folder.
    pub path: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let store = WeightStore::open(&args.path)?;
    let config = if args.path.is_dir() {
        let config_path = args.path.join("config.json");
        config_path
            .exists()
            .then(|| ConfigSummary::from_file(&config_path))
            .transpose()?
    } else {
        None
    };
    let report = render(&args.path, &store, config.as_ref());
    match std::io::stdout().lock().write_all(report.as_bytes()) {
        // `iris inspect ... | head` is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The whole report as text.
fn render(path: &Path, store: &WeightStore, config: Option<&ConfigSummary>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, path, store, config);
    out
}

fn write_report(
    out: &mut String,
    path: &Path,
    store: &WeightStore,
    config: Option<&ConfigSummary>,
) -> std::fmt::Result {
    writeln!(out, "path: {}", path.display())?;
    if let Some(index) = store.index_path() {
        writeln!(out, "index: {}", index.display())?;
    }
    writeln!(out, "files ({}):", store.files().len())?;
    for file in store.files() {
        let name = file
            .path()
            .file_name()
            .map(Path::new)
            .unwrap_or(file.path());
        let bytes: usize = file.tensors().iter().map(|t| t.byte_len()).sum();
        writeln!(
            out,
            "  {}  {} tensors  {}",
            name.display(),
            file.len(),
            human_bytes(bytes as u64)
        )?;
        if !file.metadata().is_empty() {
            let pairs: Vec<String> = file
                .metadata()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(out, "    metadata: {}", pairs.join(", "))?;
        }
    }
    writeln!(out)?;

    let rows: Vec<[String; 4]> = store
        .tensors()
        .map(|t| {
            [
                t.name.clone(),
                t.dtype.to_string(),
                format!("{:?}", t.shape),
                t.byte_len().to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "DTYPE", "SHAPE", "BYTES"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )?;
    }
    writeln!(out)?;

    let mut per_dtype: BTreeMap<FileDType, (usize, u64)> = BTreeMap::new();
    let mut total = 0u64;
    for t in store.tensors() {
        let entry = per_dtype.entry(t.dtype).or_default();
        entry.0 += 1;
        entry.1 += t.byte_len() as u64;
        total += t.byte_len() as u64;
    }
    writeln!(
        out,
        "total: {} tensors, {} bytes ({})",
        store.len(),
        total,
        human_bytes(total)
    )?;
    for (dtype, (count, bytes)) in &per_dtype {
        let note = if dtype.to_dtype().is_none() {
            "  (not loadable by iris)"
        } else {
            ""
        };
        writeln!(
            out,
            "  {dtype:<8} {count:>6} tensors  {bytes:>14} bytes ({}){note}",
            human_bytes(*bytes)
        )?;
    }

    if path.is_dir() {
        writeln!(out)?;
        match config {
            Some(config) => {
                writeln!(out, "config: {}", config.path.display())?;
                for line in config.to_string().lines() {
                    writeln!(out, "  {line}")?;
                }
            }
            None => writeln!(out, "config: (no config.json)")?,
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(3 << 30), "3.00 GiB");
    }
}
